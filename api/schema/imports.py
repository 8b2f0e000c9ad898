"""`importRegister`: a grid center uploads a small register (CSV or Excel) instead of running
`gridmap import` — the same importer, limited to the caller's subdistrict, with the summary as
the answer. Uploads come as GraphQL multipart requests (api/graphql.py)."""

from __future__ import annotations

import enum
import tempfile
import uuid
from pathlib import Path
from typing import Any

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.file_uploads import Upload
from strawberry.types import Info

from geo import audit
from geo.access import Caller, Role
from geo.errors import BadInput, Forbidden, GridmapError
from importers.run import ImportFailed, Options
from importers.summary import COUNTS, Summary

# Uploads are for a community's registers; a city's hotline archive goes through the CLI.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
SUFFIXES = (".csv", ".txt", ".xlsx")


@strawberry.enum
class RegisterKind(enum.Enum):
    HOUSEHOLDS = "households"
    WORKERS = "workers"
    MERCHANTS = "merchants"
    OPENINGS = "openings"
    CASES = "cases"


@strawberry.input
class ColumnMapping:
    field: str = strawberry.field(description="The importer's field, e.g. `lat`.")
    header: str = strawberry.field(description="The column's header as the file has it.")


@strawberry.input
class ImportRegisterInput:
    kind: RegisterKind
    file: Upload = strawberry.field(description="The register: .csv (UTF-8 or GB18030) or .xlsx.")
    scope: str | None = strawberry.field(
        default=None, description="An area code inside yours [your subdistrict]: rows outside "
        "it are not imported.",
    )  # fmt: skip
    skip_invalid: bool = strawberry.field(
        default=False, description="Import the valid rows; the refused ones are listed."
    )
    dry_run: bool = strawberry.field(default=False, description="Check and count, write nothing.")
    prefer_file: bool = strawberry.field(
        default=False, description="Overwrite what workers changed in the app since the last "
        "import (listed as conflicts otherwise).",
    )  # fmt: skip
    columns: list[ColumnMapping] | None = None


@strawberry.type
class ImportCount:
    kind: str
    read: int
    inserted: int
    updated: int
    unchanged: int
    repaired: int
    rejected: int
    incomplete: int
    outside: int


@strawberry.type
class ImportProblem:
    kind: str
    where: str = strawberry.field(description="The row, e.g. `households.xlsx row 12`.")
    field: str | None
    message: str


@strawberry.type
class ImportRegisterPayload:
    written: bool = strawberry.field(
        description="Whether anything was written: false for a dry run and for a file with "
        "refused rows (unless skipInvalid), which changes nothing."
    )
    counts: list[ImportCount]
    problems: list[ImportProblem]
    warnings: list[str]
    conflicts: list[str]
    seconds: float

    @classmethod
    def of(cls, summary: Summary, written: bool) -> ImportRegisterPayload:
        return cls(
            written=written,
            counts=[ImportCount(kind=kind, **{c: counts[c] for c in COUNTS})
                    for kind, counts in summary.counts.items()],
            problems=[ImportProblem(kind=p.kind, where=p.where, field=p.field, message=p.message)
                      for p in summary.problems],
            warnings=summary.warnings,
            conflicts=summary.conflicts,
            seconds=round(summary.seconds, 3),
        )


async def import_register(info: Info, input: ImportRegisterInput) -> ImportRegisterPayload:
    caller = info.context.caller
    if caller.role is not Role.GRID_CENTER:
        raise Forbidden("importRegister", "registers are uploaded by the grid center")
    scope = _scope(caller, input.scope)
    settings = info.context.settings
    if not settings.owner_database_url or settings.owner_database_url == settings.database_url:
        raise GridmapError("imports need the tables' owner: set GRIDMAP_OWNER_DATABASE_URL for "
                           "the server, or use `gridmap import`")  # fmt: skip
    upload: Any = input.file
    if not (hasattr(upload, "filename") and hasattr(upload, "read")):
        raise BadInput("input.file", "send the file itself, as a GraphQL multipart request "
                       "(operations, map, the file)")  # fmt: skip
    name = Path(upload.filename or "register.csv").name
    if Path(name).suffix.lower() not in SUFFIXES:
        raise BadInput("input.file", f"{name}: a .csv or .xlsx file")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadInput("input.file", f"{name}: larger than {MAX_UPLOAD_BYTES >> 20} MB: import "
                       "it with `gridmap import` on the server")  # fmt: skip
    options = Options(skip_invalid=input.skip_invalid, dry_run=input.dry_run,
                      prefer_file=input.prefer_file, scope=scope)  # fmt: skip
    mapping = [f"{c.field}={c.header}" for c in input.columns or ()]
    summary, written = await run_in_threadpool(
        _run, settings.owner_database_url, name, data, input.kind.value, options, mapping
    )
    if written:
        await info.context.db.write(_audit, caller=caller, kind=input.kind.value, name=name,
                                    scope=scope, summary=summary)  # fmt: skip
    return ImportRegisterPayload.of(summary, written)


def _audit(*, session: Any, caller: Any, kind: str, name: str, scope: str,
           summary: Summary) -> None:  # fmt: skip
    """Who imported which register into which area, with the counts (not the rows)."""
    detail = {"import": kind, "file": name, "scope": scope, "counts": summary.as_json()["kinds"]}
    audit.record(session=session, caller=caller, request_id=uuid.uuid4(), action="create",
                 entries=[{"household_id": None, "household_code": None, "fields": ["import"],
                           "detail": detail}])  # fmt: skip


def _scope(caller: Caller, asked: str | None) -> str:
    areas = caller.areas
    if asked is None:
        if len(areas) != 1:
            raise BadInput("input.scope", f"you cover {', '.join(areas)}: name one")
        return areas[0]
    if not caller.covers(asked):
        raise Forbidden("input.scope", f"{asked} is outside your areas ({', '.join(areas)})")
    return asked


def _run(owner_url: str, name: str, data: bytes, kind: str, options: Options,
         mapping: list[str]) -> tuple[Summary, bool]:  # fmt: skip
    """The importer on a private copy of the upload (the readers want a file)."""
    from importers import sources

    with tempfile.TemporaryDirectory(prefix="gridmap-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            summary = sources.register(owner_url, path, kind, options, mapping=mapping)
        except ImportFailed as exc:
            return exc.summary, False
    return summary, not options.dry_run
