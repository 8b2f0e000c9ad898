"""`caseStats`: reported, due, closed cases and their rates in a period, in total and by grid,
worker, unit, category or month (``geo.case_stats`` computes them, and defines every figure).

Staff and departments read them: the figures count the cases row-level security shows the
caller (staff: their areas; a department: its unit's). The public gets FORBIDDEN: the cases are
hidden from it, and public figures would need a SECURITY DEFINER aggregate of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from api.schema.base import values_enum
from api.schema.context import Info
from geo import case_stats as cs
from geo.access import FAMILY_FILE_ROLES, Role
from geo.errors import Forbidden

CaseStatsGroupBy = values_enum(
    "CaseStatsGroupBy",
    cs.GROUP_BY,
    "GRID: by grid; WORKER: by the worker who reported the case; UNIT: by the unit it is "
    "dispatched to; CATEGORY: by category; MONTH: by local month, each month a period of its own.",
)


@strawberry.type(description="The figures of a set of cases over a period (see `caseStats`).")
class CaseFigures:
    reported: int = strawberry.field(description="Cases reported in the period (all of them).")
    due_to_close: int = strawberry.field(
        description="应结案: cases closed in the period, or whose deadline falls in it and that "
        "were not closed before it; rejected and merged cases excluded. Each case once."
    )
    closed: int = strawberry.field(
        description="Cases closed in the period (merged duplicates excluded)."
    )
    closed_on_time: int = strawberry.field(
        description="Closed in the period by their deadline (or with no deadline)."
    )
    reworked: int = strawberry.field(
        description="Closed in the period having been RETURNED at least once."
    )
    closure_rate: float | None = strawberry.field(
        description="结案率: closed / dueToClose (null when nothing is due)."
    )
    on_time_closure_rate: float | None = strawberry.field(
        description="按期结案率: closedOnTime / dueToClose (null when nothing is due)."
    )
    rework_rate: float | None = strawberry.field(
        description="reworked / closed (null when nothing was closed)."
    )
    median_hours_to_close: float | None = strawberry.field(
        description="Median hours from report to closure of the cases closed in the period."
    )
    whistles: int = strawberry.field(
        description="GRID_WHISTLE cases reported in the period (by this worker, in a WORKER group)."
    )
    grid_workers: int | None = strawberry.field(
        description="Grid workers now assigned to the grids counted (the scope's, or the "
        "group's grid); null in WORKER, UNIT and CATEGORY groups."
    )
    whistles_per_worker: float | None = strawberry.field(
        description="The whistling rate: whistles / gridWorkers."
    )


@strawberry.type(description="The figures of one group of cases.")
class CaseStatsGroup(CaseFigures):
    key: str | None = strawberry.field(
        description="Grid code, staff number, unit code, category code or 'YYYY-MM'. Null: not "
        "reported by a worker (WORKER), not dispatched yet (UNIT)."
    )
    name: str | None = strawberry.field(
        description="The grid's, worker's, unit's or category's name (null for a month)."
    )


@strawberry.type(description="Case figures of a scope over a period.")
class CaseStats:
    totals: CaseFigures
    groups: list[CaseStatsGroup] = strawberry.field(
        description="In key order (null last); empty without `groupBy`."
    )


async def case_stats(
    info: Info,
    scope: Annotated[str, strawberry.argument(description="An area code, district to micro-grid.")],
    from_: Annotated[
        dt.date,
        strawberry.argument(name="from", description="The first local day of the period."),
    ],
    to: Annotated[dt.date, strawberry.argument(description="The last local day (included).")],
    group_by: CaseStatsGroupBy | None = None,
) -> CaseStats:
    """Staff (in their areas) and departments (their unit's cases) only; days are counted in the
    time zone of the case's subdistrict."""
    caller = info.context.caller
    if caller.role is Role.PUBLIC:
        raise Forbidden(
            "case statistics are for staff and departments: sign in (the public reads none)"
        )
    found = await info.context.db.run(
        cs.case_stats,
        scope=scope,
        start=from_,
        end=to,
        group_by=None if group_by is None else group_by.value,
        areas=caller.areas if caller.role in FAMILY_FILE_ROLES else None,
    )
    return CaseStats(
        totals=CaseFigures(**found["totals"]),
        groups=[CaseStatsGroup(**g) for g in found["groups"]],
    )
