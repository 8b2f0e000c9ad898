"""`gridmap export households|visits|cases`: registers out of the model as Excel files, in the
layout `gridmap import` reads (importers.headers; Chinese headers by default), so an exported
households or cases file imports again with no options.

Decisions a caller relies on:

- Who reads: without ``--worker``, the tables' owner (an administrator at the command line:
  every row, nothing masked). With ``--worker``, that worker's rights as in the app: row-level
  security picks the rows (api.cli's ``_as_caller``, the app's database role) and
  ``Caller.access_inside`` masks what the role reads masked (the grid center's phones).
- Scope: any area code, matched as a prefix of household codes (cases: of their micro-grid or
  grid). A code of no area is an error, and so is one outside a worker's areas.
- Households: living households only (a moved-out file is closed); one row per member with the
  household's columns repeated, one row for a household without members. Each member's code
  (``member_code``) is written: the importer matches members by it first (twins of one name
  and birth year are told apart without ID numbers). Values are written in
  the importer's own words (男/女, 上门, 工作日晚上, 是/否; codes with ``--english``), taken
  from its keyword tables so that they always read back.
- ID numbers are masked (``310106********1234``, the form the database keeps) unless
  ``--with-id-numbers``: unsealed in full, for roles that read them in full, and the audit
  entry says so. The importer reads a masked phone or ID number as blank, which keeps what the
  database holds (importers.registers ``_unmasked``): a default export re-imports unchanged.
- Cases: ``number`` is the case number (what a re-import matches first), ``source_id`` the
  external id of a case that has one (a hotline's), ``category`` our category's name (an
  import's own name under OTHER; blank for OTHER without one, which is what reads back as plain
  OTHER), times ISO with the subdistrict's offset, ``status`` the state's name (Chinese as the
  maps name them, or the code), which importers.cases reads back as that state.
- Audit: one ``audit_entry`` per export (action ``read``: who, kind, scope, rows, file), and
  for households and visits the households read in one ``audit_read`` row, as the app records
  reads, under the same request id. The file is written beside its target (mode 0600, as
  ``gridmap db backup`` writes: personal data) and moved there once the audit is committed: no
  file without its audit.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from geo.errors import BadInput, Forbidden, GridmapError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from api.settings import Settings
    from geo.access import Caller
    from geo.pii import Vault

HOUSEHOLD_COLUMNS = ("code", "building", "unit", "room", "class", "moved_in",
                     "contact_preference", "visit_times", "notes", "member_code", "name",
                     "gender", "relation", "birth_year", "phone")  # fmt: skip
VISIT_COLUMNS = ("household", "visited_at", "worker", "worker_name", "mode", "night", "weekend",
                 "tasks", "notes", "demands", "warnings", "recorded_at", "recorded_by")  # fmt: skip
CASE_COLUMNS = ("number", "source_id", "category", "description", "lat", "lon", "requested_at",
                "closed_at", "status", "reporter_name", "reporter_phone")  # fmt: skip

# The "six tasks" of a first visit as seed 02 names them (六个一).
TASKS_ZH = {"SHOW_IDENTITY": "亮身份", "DELIVER_SERVICE": "送服务", "KNOW_FAMILY": "知情况",
            "PUBLICIZE": "做宣传", "ASK_DEMANDS": "问需求", "FIND_TALENT": "挖能人"}  # fmt: skip
OWNER_ROLE = "admin"  # the audit's role for the tables' owner at the command line


# --------------------------------------------------------------------------------------------
# Values in the importer's words
# --------------------------------------------------------------------------------------------


@functools.cache
def _chinese(table: str) -> dict[str, str]:
    """Code → the first Chinese word of one of importers.registers' keyword tables: what the
    export writes is what the importer reads."""
    from importers import registers

    out: dict[str, str] = {}
    for word, code in getattr(registers, table).items():
        if any("\u3400" <= ch <= "\u9fff" for ch in word):
            out.setdefault(code, word)
    return out


@dataclass(frozen=True)
class Words:
    """Chinese words (the default) or the model's codes (``--english``)."""

    chinese: bool

    def _word(self, table: str, code: str | None) -> str | None:
        if code is None or not self.chinese:
            return code
        return _chinese(table).get(code, code)

    def gender(self, code: str | None) -> str | None:
        return self._word("GENDERS", code)

    def channel(self, code: str | None) -> str | None:
        return self._word("CONTACTS", code)

    def visit_times(self, codes: Iterable[str]) -> str | None:
        return self.listed(self._word("TIMES", c) or c for c in codes)

    def tasks(self, codes: Iterable[str]) -> str | None:
        return self.listed(TASKS_ZH.get(c, c) if self.chinese else c for c in codes)

    def flag(self, value: bool | None) -> str | None:
        if value is None:
            return None
        return ("是" if value else "否") if self.chinese else ("yes" if value else "no")

    def state(self, code: str) -> str:
        from importers.cases import STATE_NAMES

        return STATE_NAMES.get(code, code) if self.chinese else code

    def listed(self, words: Iterable[str]) -> str | None:
        """Several values in one cell, as importers.tables.split_list splits them."""
        return ("、" if self.chinese else ";").join(words) or None


def _local(at: dt.datetime | None, zone: str, *, seconds: bool = False) -> dt.datetime | None:
    """An instant in its subdistrict's time, with the offset (written as ISO text)."""
    if at is None:
        return None
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(microsecond=0) if seconds else local


# --------------------------------------------------------------------------------------------
# Reading, row by row
# --------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One export: what, where, for whom."""

    kind: str
    scope: str
    output: Path
    chinese: bool = True
    caller: Caller | None = None  # None: the tables' owner
    with_id_numbers: bool = False
    vault: Vault | None = None
    # Filled while the rows are read: household id → code, for the audit.
    households: dict[Any, str] = field(default_factory=dict)

    def access(self, name: str) -> str:
        """``full`` or ``masked`` (``geo.access.Access`` values) for a personal field."""
        if self.caller is None:
            return "full"
        return self.caller.access_inside(name).value

    @property
    def read_fields(self) -> list[str]:
        """The personal fields the file holds in full, for the audit."""
        from geo.models import PERSON_FLAGS

        if self.kind == "households":
            names = ["name", "gender", "relation", "birth_year", *PERSON_FLAGS]
            names += ["phone"] if self.access("phone") == "full" else []
            return sorted(names + (["id_number"] if self.with_id_numbers else []))
        if self.kind == "visits":
            return ["demands", "visits"]
        return ["reporter_name", "reporter_phone"]

    @property
    def fields(self) -> list[str]:
        """The file's columns, canonical names in importers.headers."""
        from geo.models import PERSON_FLAGS

        if self.kind == "households":
            return [*HOUSEHOLD_COLUMNS, "id_number", *PERSON_FLAGS]
        return list(VISIT_COLUMNS if self.kind == "visits" else CASE_COLUMNS)


def _stream(session: Session, sql: str, **params: Any) -> Iterator[Mapping[str, Any]]:
    """Rows of a query a batch at a time (a server-side cursor): a district is large."""
    from sqlalchemy import text

    result = session.execute(text(sql).execution_options(yield_per=2000), params)
    yield from result.mappings()


HOUSEHOLDS = """
SELECT h.id AS household_id, h.code, b.code AS building, h.unit, h.room, h.household_class,
       h.moved_in, h.contact_preference, h.visit_times, h.notes, p.code AS member, p.name,
       p.gender, p.relation, p.birth_year, p.phone, p.id_number_sealed, p.id_number_masked,
       {flags}
FROM household h
JOIN building b ON b.id = h.building_id
LEFT JOIN person p ON p.household_id = h.id
WHERE h.code >= :scope AND h.code < :scope || chr(1114111) AND h.moved_out IS NULL
ORDER BY h.code, p.code
"""


def household_rows(session: Session, job: Job) -> Iterator[dict[str, Any]]:
    """The register layout importers.registers reads: a row per member, household columns
    repeated; member columns blank on the one row of a household without members (a flag's
    "否" there would read as a member without a name)."""
    from geo.models import PERSON_FLAGS
    from geo.pii import mask_phone

    words = Words(job.chinese)
    masked_phone = job.access("phone") != "full"
    sql = HOUSEHOLDS.format(flags=", ".join(f"p.{flag}" for flag in PERSON_FLAGS))
    for r in _stream(session, sql, scope=job.scope):
        job.households.setdefault(r["household_id"], r["code"])
        row: dict[str, Any] = {
            "code": r["code"], "building": r["building"], "unit": r["unit"], "room": r["room"],
            "class": r["household_class"], "moved_in": r["moved_in"],
            "contact_preference": words.channel(r["contact_preference"]),
            "visit_times": words.visit_times(r["visit_times"] or ()), "notes": r["notes"],
        }  # fmt: skip
        if r["member"] is not None:
            phone = r["phone"]
            row.update(
                member_code=r["member"], name=r["name"], gender=words.gender(r["gender"]),
                relation=r["relation"], birth_year=r["birth_year"],
                phone=mask_phone(phone) if phone and masked_phone else phone,
                **{flag: words.flag(r[flag]) for flag in PERSON_FLAGS},
            )  # fmt: skip
            sealed = r["id_number_sealed"]
            if job.with_id_numbers and sealed is not None:
                assert job.vault is not None
                row["id_number"] = job.vault.open(bytes(sealed))
            else:
                row["id_number"] = r["id_number_masked"]
        yield row


VISITS = """
SELECT v.household_id, v.household_code, v.visited_at, w.code AS worker, w.name AS worker_name,
       v.mode, v.night, v.weekend, v.tasks, v.notes, v.warnings, v.recorded_at, v.recorded_by,
       s.timezone,
       (SELECT json_agg(json_build_object('text', d.text, 'resolution', d.resolution,
                                          'answer', d.answer, 'case', c.number)
                        ORDER BY d.raised_at, d.id)
        FROM demand d LEFT JOIN grid_case c ON c.demand_id = d.id
        WHERE d.visit_id = v.id) AS demands
FROM visit v
JOIN worker w ON w.id = v.worker_id
JOIN subdistrict s ON s.code = left(v.household_code, 9)
WHERE v.household_code >= :scope AND v.household_code < :scope || chr(1114111)
ORDER BY v.visited_at, v.household_code, v.id
"""


def _demand(d: Mapping[str, Any], chinese: bool) -> str:
    """A demand with what became of it: answered on the spot, or escalated to a case."""
    text, answer, case = d["text"], d["answer"], d["case"]
    if d["resolution"] == "ANSWERED":
        return f"{text}（当场答复：{answer}）" if chinese else f"{text} (answered: {answer})"
    if chinese:
        return f"{text}（已转事件 {case}）" if case else f"{text}（已转事件）"
    return f"{text} (escalated: case {case})" if case else f"{text} (escalated)"


def visit_rows(session: Session, job: Job) -> Iterator[dict[str, Any]]:
    """A row per visit, oldest first: times local with their offset, demands one a line."""
    words = Words(job.chinese)
    for r in _stream(session, VISITS, scope=job.scope):
        job.households.setdefault(r["household_id"], r["household_code"])
        zone = r["timezone"]
        demands = r["demands"]
        if isinstance(demands, str):  # json, not jsonb: some drivers leave it as text
            demands = json.loads(demands)
        yield {
            "household": r["household_code"],
            "visited_at": _local(r["visited_at"], zone, seconds=True),
            "worker": r["worker"], "worker_name": r["worker_name"],
            "mode": words.channel(r["mode"]), "night": words.flag(r["night"]),
            "weekend": words.flag(r["weekend"]), "tasks": words.tasks(r["tasks"] or ()),
            "notes": r["notes"],
            "demands": "\n".join(_demand(d, job.chinese) for d in demands or ()) or None,
            "warnings": "\n".join(r["warnings"] or ()) or None,
            "recorded_at": _local(r["recorded_at"], zone, seconds=True),
            "recorded_by": r["recorded_by"],
        }  # fmt: skip


# In a grid, micro-grid or any area above: its grids by index, then the exact prefix.
CASES = """
SELECT c.number, c.external_id, c.category_code, c.source_category, k.name AS category_name,
       k.name_en AS category_name_en, c.description, ST_Y(c.location) AS lat,
       ST_X(c.location) AS lon, c.reported_at, c.closed_at, c.state, c.reporter_name,
       c.reporter_phone, s.timezone
FROM grid_case c
JOIN case_category k ON k.code = c.category_code
JOIN subdistrict s ON s.code = left(c.grid_code, 9)
WHERE c.grid_code >= left(:scope, 15) AND c.grid_code < left(:scope, 15) || chr(1114111)
  AND starts_with(coalesce(c.micro_grid_code, c.grid_code), :scope)
ORDER BY c.reported_at, c.number
"""


def case_rows(session: Session, job: Job) -> Iterator[dict[str, Any]]:
    """The hotline layout importers.cases reads, a row per case in report order."""
    words = Words(job.chinese)
    for r in _stream(session, CASES, scope=job.scope):
        if r["category_code"] == "OTHER":
            # The importer keeps any name it does not know as the source category under
            # OTHER, OTHER's own name included: blank is what reads back as plain OTHER.
            category = r["source_category"]
        else:
            category = r["category_name"] if job.chinese else r["category_name_en"]
        zone = r["timezone"]
        yield {
            "number": r["number"], "source_id": r["external_id"], "category": category,
            "description": r["description"],
            "lat": r["lat"], "lon": r["lon"], "requested_at": _local(r["reported_at"], zone),
            "closed_at": _local(r["closed_at"], zone), "status": words.state(r["state"]),
            "reporter_name": r["reporter_name"], "reporter_phone": r["reporter_phone"],
        }  # fmt: skip


ROWS: dict[str, Callable[[Session, Job], Iterator[dict[str, Any]]]] = {
    "households": household_rows,
    "visits": visit_rows,
    "cases": case_rows,
}


# --------------------------------------------------------------------------------------------
# Rights, audit, the file
# --------------------------------------------------------------------------------------------


def check_rights(job: Job) -> None:
    """What a worker may not export, said before anything is read (row-level security would
    only return an empty file)."""
    from geo.access import FAMILY_FILE_ROLES, Access

    caller = job.caller
    if caller is None:
        return
    who = f"{caller.worker_code} ({caller.role.value})"
    family = caller.role in FAMILY_FILE_ROLES
    if job.kind in ("households", "visits") and not family:
        raise Forbidden("--worker", f"{who} reads no family files or visits: export cases, or "
                        "export as grid staff")  # fmt: skip
    if family and not any(a.startswith(job.scope) or job.scope.startswith(a)
                          for a in caller.areas):  # fmt: skip
        raise Forbidden("--scope", f"{job.scope} is outside the areas of {who}: "
                        f"{', '.join(caller.areas) or 'none'}")  # fmt: skip
    if job.with_id_numbers and caller.access_inside("id_number") is not Access.FULL:
        raise Forbidden("--with-id-numbers", f"{who} reads ID numbers masked only: export "
                        "without them")  # fmt: skip


ENTRY = """
INSERT INTO audit_entry (worker_code, role, action, household_id, household_code, fields,
                         remote, request_id, detail)
VALUES (:worker, :role, 'read', NULL, NULL, :fields, :remote, :request_id,
        CAST(:detail AS jsonb))
"""


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def write_audit(session: Session, job: Job, rows: int) -> None:
    """The export as one entry, and the households it read as one read (``audit_log`` shows
    both, the read one row per household)."""
    from sqlalchemy import text

    from geo import audit

    caller = job.caller
    worker = caller.worker_code if caller else None
    role = caller.role.value if caller else OWNER_ROLE
    request_id = uuid.uuid4()
    detail = {
        "export": job.kind, "scope": job.scope, "rows": rows, "file": job.output.name,
        "households": len(job.households) if job.kind != "cases" else None,
        "id_numbers": job.with_id_numbers, "headers": "zh" if job.chinese else "en",
        "os_user": _os_user(),
    }  # fmt: skip
    fields = job.read_fields
    session.execute(text(ENTRY), {"worker": worker, "role": role, "fields": fields,
                                  "remote": "cli", "request_id": request_id,
                                  "detail": json.dumps(detail, ensure_ascii=False)})  # fmt: skip
    if job.households:
        read = ",".join(fields)
        session.connection().exec_driver_sql(audit.READS, {
            "worker": worker, "role": role, "remote": "cli", "request_id": str(request_id),
            "ids": audit.array_literal(str(h) for h in job.households),
            "codes": audit.array_literal(job.households.values()),
            "fields": audit.array_literal(read for _ in job.households),
        })  # fmt: skip


def export(engine: Engine, job: Job) -> int:
    """Read, write the file and audit in one transaction (as ``job.caller``, or the owner);
    the number of rows written. Moved into place only once committed."""
    from sqlalchemy.orm import Session

    from geo import queries as q
    from geo.db import set_scope
    from importers.tables import write_xlsx

    output = job.output
    if not output.parent.is_dir():
        raise BadInput("-o/--output", f"no folder {output.parent} to write {output.name} in")
    partial: Path | None = None
    try:
        handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".xlsx",
                                        dir=output.parent)  # fmt: skip
        os.close(handle)
        partial = Path(name)
        with Session(engine) as session, session.begin():
            if job.caller is not None:
                set_scope(session, job.caller.settings())
            q.area_by_code(session=session, code=job.scope, argument="--scope")
            check_rights(job)
            rows = write_xlsx(partial, job.kind, ROWS[job.kind](session, job),
                              chinese=job.chinese, fields=job.fields)  # fmt: skip
            write_audit(session, job, rows)
        os.replace(partial, output)
    except OSError as exc:
        raise BadInput("-o/--output", f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    return rows


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _xlsx(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if value.suffix.lower() != ".xlsx":
        raise click.BadParameter(f"{value.name}: exports are Excel workbooks, name the file "
                                 "FILE.xlsx")  # fmt: skip
    if value.is_dir():
        raise click.BadParameter(f"{value} is a folder")
    return value


def _common(command: Callable[..., None]) -> Callable[..., None]:
    """The options every export takes."""
    for option in reversed((
        click.option("--scope", required=True, metavar="CODE", help="Area code: district, "
                     "subdistrict, community, grid or micro-grid (e.g. 310106015003004); "
                     "everything whose code starts with it."),
        click.option("-o", "--output", required=True, callback=_xlsx,
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="The Excel file to write (.xlsx); an existing one is replaced."),
        click.option("--english", is_flag=True, help="English headers and the model's codes "
                     "as values [Chinese headers and words]."),
        click.option("--worker", "worker", default=None, metavar="CODE", help="Export as this "
                     "worker (staff number): only what its role and areas let it see, masked "
                     "as it reads them. Without it, as the tables' owner: everything."),
    )):  # fmt: skip
        command = option(command)
    return command


def _run(job: Job, worker: str | None) -> None:
    """The export as ``worker`` (api.cli's ``_as_caller``: the app's role, row-level security)
    or as the tables' owner; errors end the command with their message, no file written."""
    from api import cli
    from geo.db import make_engine
    from geo.pii import Vault

    def work(settings: Settings, engine: Engine, caller: Caller | None) -> int:
        job.caller = caller
        if job.with_id_numbers:
            job.vault = Vault(settings.secret_key)
        return export(engine, job)

    if worker:
        rows = cli._as_caller(worker, work)
    else:
        settings = cli._settings()
        engine = make_engine(cli._owner_url(settings), pool_size=1)
        try:
            rows = work(settings, engine, None)
        except GridmapError as exc:
            raise click.ClickException(exc.message) from None
        finally:
            engine.dispose()
    extra = f"{len(job.households):,} households, " if job.kind != "cases" else ""
    who = f"as {worker}" if worker else "as the tables' owner"
    click.echo(f"wrote {rows} rows to {job.output} ({extra}{who})")


@click.group("export")
def export_group() -> None:
    """Registers out of the model as Excel files, in the layout `gridmap import` reads.

    Headers are Chinese unless --english. An exported households or cases file imports again
    with no options. The files hold personal data: each export is written to the audit log
    (who, what, scope, rows) and the file is readable by its owner only.
    """


@export_group.command("households")
@_common
@click.option("--with-id-numbers", is_flag=True, help="ID numbers in full (unsealed; "
              "audited) [masked, which a re-import leaves as they are].")  # fmt: skip
def export_households(scope: str, output: Path, english: bool, worker: str | None,
                      with_id_numbers: bool) -> None:  # fmt: skip
    """Households and their members, one row per member with the household's columns
    repeated (one row for a household without members), as the household register is
    imported. Moved-out households are left out.

    \b
    Example:
      gridmap export households --scope 310106015003004 -o households.xlsx
    """
    _run(Job("households", scope, output, chinese=not english,
             with_id_numbers=with_id_numbers), worker)  # fmt: skip


@export_group.command("visits")
@_common
def export_visits(scope: str, output: Path, english: bool, worker: str | None) -> None:
    """Visits, one row per visit, oldest first: household, time (local, with its offset),
    worker, how, the six tasks done, notes, the demands raised and what became of them.

    \b
    Example:
      gridmap export visits --scope 310106015 -o visits.xlsx --worker JA015-GC-0001
    """
    _run(Job("visits", scope, output, chinese=not english), worker)


@export_group.command("cases")
@_common
def export_cases(scope: str, output: Path, english: bool, worker: str | None) -> None:
    """Cases in the hotline layout `gridmap import cases` reads: case number (matched first
    on import), external id (a hotline's), category, description, coordinates, report and
    closing times (local, with their offset), state, reporter.

    \b
    Example:
      gridmap export cases --scope 310106015 -o cases.xlsx --english
    """
    _run(Job("cases", scope, output, chinese=not english), worker)
