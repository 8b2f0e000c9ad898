"""Visit coverage: which households were contacted within their class's cadence, per cell, and
who is overdue. Computed in the database (migration 0006: ``household_contact_status`` and
``coverage_counts``); this module picks the cells, checks the input and pages the overdue list.

Days are counted in the subdistrict's time zone: ``as_of`` is a local day, "today" by default.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import queries as q
from geo.errors import BadInput, NotFound

# Cells by level: the width of their codes (a household's code starts with its building's).
LEVELS = {"GRID": 15, "MICRO_GRID": 18, "BUILDING": 21}
CELL_ENTITY = {"GRID": q.GRID, "MICRO_GRID": q.MICRO_GRID, "BUILDING": q.BUILDING}


@dataclass(frozen=True)
class Scope:
    """An area code checked against the database, with the day it is counted on."""

    code: str
    as_of: dt.date


def today(session: Session, scope: str) -> dt.date:
    """Today in the time zone of the subdistrict holding ``scope`` (the settings' zone for a
    district, which may span several)."""
    zone = session.execute(
        text("SELECT timezone FROM subdistrict WHERE code = :c"), {"c": scope[:9]}
    ).scalar()
    return dt.datetime.now(ZoneInfo(zone or "Asia/Shanghai")).date()


def check_scope(session: Session, scope: str, as_of: dt.date | None) -> Scope:
    """The scope and day, or an error naming ``scope`` or ``asOf``."""
    q.area_by_code(session=session, code=scope, argument="scope")
    now = today(session, scope)
    if as_of is None:
        as_of = now
    elif as_of > now:
        raise BadInput("asOf", f"{as_of} is in the future (today is {now} where {scope} is)")
    return Scope(scope, as_of)


def check_level(scope: str, level: str) -> int:
    width = LEVELS.get(level)
    if width is None:
        raise BadInput("level", f"{level!r} is not one of {', '.join(LEVELS)}")
    if width < len(scope):
        raise BadInput(
            "level", f"{level} is above the scope {scope} (a {len(scope)}-digit area): pick a "
            "level at or below it"
        )  # fmt: skip
    return width


def cells(
    *, session: Session, scope: str, level: str, as_of: dt.date | None = None
) -> list[dict[str, Any]]:
    """Every cell of ``level`` inside ``scope`` in code order, counted as of ``as_of``: code,
    name, households, contacted, ratio (None without households), overdue_a/b/c, geometry
    (GeoJSON text: a district has thousands of cells, passed on as they are)."""
    width = check_level(scope, level)
    where = check_scope(session, scope, as_of)
    entity = CELL_ENTITY[level]
    rows = session.execute(
        text(
            f"SELECT t.code, t.name, ST_AsGeoJSON(t.geom, {q.GEOJSON_DIGITS}) AS geometry,"
            " coalesce(c.households, 0) AS households, coalesce(c.contacted, 0) AS contacted,"
            " coalesce(c.overdue_a, 0) AS overdue_a, coalesce(c.overdue_b, 0) AS overdue_b,"
            " coalesce(c.overdue_c, 0) AS overdue_c"
            f" FROM {entity.table} t"
            " LEFT JOIN coverage_counts(:scope, :width, :as_of) c ON c.cell = t.code"
            " WHERE t.code >= :scope AND t.code < :scope || chr(1114111)"
            + (" AND length(t.code) = 21" if level == "BUILDING" else "")
            + " ORDER BY t.code"
        ),
        {"scope": where.code, "width": width, "as_of": where.as_of},
    ).mappings()
    out = []
    for r in rows:
        cell = dict(r)
        cell["ratio"] = cell["contacted"] / cell["households"] if cell["households"] else None
        out.append(cell)
    return out


STATUS_COLUMNS = (
    "s.household_id, s.code, s.household_class, s.last_contact_at, s.due_on, s.days_overdue"
)


def overdue_page(
    *,
    session: Session,
    scope: str,
    as_of: dt.date | None,
    first: int,
    after: tuple[Any, ...] | None,
    household_class: str | None = None,
) -> q.Page:
    """Overdue households the caller may see (row-level security), class C first, then the
    most overdue, then by code. ``after``: the sort key of the last row of the previous page.
    The first page's rows carry ``total_count`` (all of them sorted anyway): a dashboard's
    totalCount does not run the status function a second time."""
    where = check_scope(session, scope, as_of)
    params: dict[str, Any] = {"scope": where.code, "as_of": where.as_of, "limit": first + 1}
    clauses = ["NOT s.contacted"]
    if household_class is not None:
        clauses.append("s.household_class = :cls")
        params["cls"] = household_class
    if after is not None:
        clauses.append("(s.household_class <> 'C', -s.days_overdue, s.code) > (:a0, :a1, :a2)")
        params.update(a0=bool(after[0]), a1=int(after[1]), a2=str(after[2]))
    total = ", count(*) OVER () AS total_count" if after is None else ""
    rows = session.execute(
        text(
            f"SELECT {STATUS_COLUMNS}, ST_X(h.location) AS lon, ST_Y(h.location) AS lat{total}"
            " FROM household_contact_status(:scope, :as_of) s"
            " JOIN household h ON h.id = s.household_id"
            f" WHERE {' AND '.join(clauses)}"
            " ORDER BY s.household_class <> 'C', s.days_overdue DESC, s.code LIMIT :limit"
        ),
        params,
    ).mappings()
    found = [dict(r) for r in rows]
    return q.Page(found[:first], len(found) > first)


def overdue_count(
    *, session: Session, scope: str, as_of: dt.date | None, household_class: str | None = None
) -> int:
    where = check_scope(session, scope, as_of)
    return session.execute(
        text(
            "SELECT count(*) FROM household_contact_status(:scope, :as_of) s"
            " WHERE NOT s.contacted AND (CAST(:cls AS text) IS NULL OR s.household_class = :cls)"
        ),
        {"scope": where.code, "as_of": where.as_of, "cls": household_class},
    ).scalar_one()


def overdue_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["household_class"] != "C", -row["days_overdue"], row["code"])


def overdue_households(
    *,
    session: Session,
    scope: str,
    as_of: dt.date | None = None,
    household_class: str | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """The first ``limit`` overdue households (for maps): household_id, code, household_class,
    last_contact_at, due_on, days_overdue, lon, lat."""
    return overdue_page(
        session=session, scope=scope, as_of=as_of, first=limit, after=None,
        household_class=household_class,
    ).rows  # fmt: skip


# --------------------------------------------------------------------------------------------
# The cadence policy of a subdistrict
# --------------------------------------------------------------------------------------------

POLICY = """
SELECT s.id AS subdistrict_id, s.code, s.timezone,
       coalesce(p.class_a_days, 182) AS class_a_days, coalesce(p.class_b_days, 182) AS class_b_days,
       coalesce(p.class_c_days, 30) AS class_c_days, p.starts_on, p.updated_at, p.updated_by
FROM subdistrict s LEFT JOIN cadence_policy p ON p.subdistrict_id = s.id
WHERE s.code = :code
"""


def cadence_policy(*, session: Session, scope: str) -> dict[str, Any]:
    """The policy that applies to ``scope`` (any area code): its subdistrict's."""
    if len(scope) < 9:
        raise BadInput("scope", f"{scope!r}: a cadence policy belongs to a subdistrict or below")
    q.area_by_code(session=session, code=scope, argument="scope")
    return dict(session.execute(text(POLICY), {"code": scope[:9]}).mappings().one())


def set_cadence_policy(
    *,
    session: Session,
    scope: str,
    days: dict[str, int | None],
    starts_on: dt.date | None,
    clear_start: bool,
    worker_code: str | None,
) -> dict[str, Any]:
    """Change a subdistrict's policy; ``days`` maps A/B/C to new day counts (None: unchanged).
    Row-level security lets only the grid center of that subdistrict write it."""
    if len(scope) != 9 or not scope.isdigit():
        raise BadInput("input.scope", f"{scope!r} is not a subdistrict code (9 digits)")
    current = cadence_policy(session=session, scope=scope)
    values = {
        f"class_{k.lower()}_days": current[f"class_{k.lower()}_days"] if v is None else v
        for k, v in days.items()
    }
    for key, value in values.items():
        if not 1 <= value <= 3660:
            name = "class" + key[6].upper() + "Days"
            raise BadInput(f"input.{name}", f"{value} is out of range: 1 to 3660 days")
    start = None if clear_start else (starts_on or current["starts_on"])
    done = session.execute(
        text(
            "INSERT INTO cadence_policy AS p (subdistrict_id, class_a_days, class_b_days,"
            " class_c_days, starts_on, updated_by)"
            " VALUES (:sid, :class_a_days, :class_b_days, :class_c_days, :start, :by)"
            " ON CONFLICT (subdistrict_id) DO UPDATE SET class_a_days = EXCLUDED.class_a_days,"
            " class_b_days = EXCLUDED.class_b_days, class_c_days = EXCLUDED.class_c_days,"
            " starts_on = EXCLUDED.starts_on, updated_by = EXCLUDED.updated_by,"
            " updated_at = now()"
        ),
        {"sid": current["subdistrict_id"], "start": start, "by": worker_code, **values},
    )
    if done.rowcount != 1:
        raise NotFound("input.scope", f"no subdistrict {scope} in your areas")
    return cadence_policy(session=session, scope=scope)
