"""One import, all or nothing: read, validate, write in one transaction as the tables' owner;
a file with errors changes nothing unless the caller skips invalid rows, whose reasons then go
to a rejects file. The loaders of each kind plug in as ``load(cur, summary)``."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

from geo.errors import GridmapError
from importers.summary import Summary

# The problems printed with a failed import; the rest are counted ("… and 1,234 more").
SHOWN = 50


@dataclass(frozen=True)
class Options:
    skip_invalid: bool = False
    rejects: Path | None = None
    prefer_file: bool = False
    codes: str = "national"
    crs: Any = None  # an importers.crs CRS, None: WGS-84
    repair: bool = True
    dry_run: bool = False
    scope: str | None = None  # an area code: only rows within it (API uploads)


class ImportFailed(GridmapError):
    """The file had errors and nothing was written; `summary.problems` names each."""

    code = "BAD_USER_INPUT"

    def __init__(self, path: Path, summary: Summary) -> None:
        n = len(summary.problems)
        lines = [str(p) for p in summary.problems[:SHOWN]]
        if n > SHOWN:
            lines.append(f"… and {n - SHOWN:,} more")
        super().__init__(
            f"{path.name}: {n:,} {'row' if n == 1 else 'rows'} refused, nothing imported (fix "
            "them, or import the rest with --skip-invalid):\n  " + "\n  ".join(lines)
        )
        self.summary = summary


def connect(owner_url: str) -> Any:
    url = make_url(owner_url).set(drivername="postgresql")
    return psycopg2.connect(url.render_as_string(hide_password=False))


def run(
    owner_url: str,
    path: Path,
    load: Callable[[Any, Summary], None],
    options: Options,
    rows: Callable[[], Iterable[tuple[str, Mapping[str, str]]]] | None = None,
) -> Summary:
    """Run ``load`` in one transaction; commit only if nothing was refused or the caller skips
    invalid rows (and not on a dry run). ``rows`` reads a register's rows again, so the rejects
    file holds the refused rows themselves beside their reasons."""
    started = time.monotonic()
    summary = Summary()
    conn = connect(owner_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '30s'")
            load(cur, summary)
        summary.seconds = time.monotonic() - started
        if summary.problems and not options.skip_invalid:
            conn.rollback()
            raise ImportFailed(path, summary)
        if options.dry_run:
            conn.rollback()
        else:
            conn.commit()
    finally:
        conn.close()
    if summary.problems and options.rejects:
        write_rejects(options.rejects, summary, rows)
    return summary


def write_rejects(
    path: Path,
    summary: Summary,
    rows: Callable[[], Iterable[tuple[str, Mapping[str, str]]]] | None = None,
) -> None:
    """The refused rows and why, as a CSV a person opens in Excel (UTF-8 with BOM): where,
    the field, the problem, then the row's values (registers), to fix and import again."""
    refused = {p.where for p in summary.problems}
    values: dict[str, Mapping[str, str]] = {}
    if rows is not None:
        values = {where: v for where, v in rows() if where in refused}
    fields = list(dict.fromkeys(name for v in values.values() for name in v))
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(["kind", "where", "field", "problem", *fields])
        for p in summary.problems:
            row = values.get(p.where, {})
            out.writerow([p.kind, p.where, p.field or "", p.message,
                          *(row.get(name, "") for name in fields)])  # fmt: skip
