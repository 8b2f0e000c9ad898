"""Case statistics: how many cases were reported, fell due, were closed (on time, after rework)
in a period, in total and by grid, reporting worker, unit, category or month, with the grid
workers' whistles. One SQL statement computes the totals and every group from ``grid_case``
(migration 0009); it reads the table as the caller, so row-level security decides which cases
count: staff count the cases of their areas, a department those dispatched to its unit.

Definitions (a case counts in a period when the local day of the instant named falls in it):

* **The period** ``start``..``end`` is a run of whole local days, both included. Days and months
  are those of the time zone of the case's subdistrict (``subdistrict.timezone``, Asia/Shanghai
  when unknown): for a scope at or below a subdistrict, the scope's zone; a district may span
  several, and each case is counted in its own.
* **reported**: reported (``reported_at``) in the period, whatever became of it: rejected and
  merged duplicates included; it is the intake (the hotline's volume).
* **closed**: closed (``closed_at``) in the period, merged duplicates excluded (they are closed
  as part of the case they were merged into, which is the one counted).
* **due to close** (应结案): the cases (each once in a period), neither rejected nor merged,
  closed in the period, or whose deadline falls in the period and that were not closed before
  it began (a case closed early is due where it was closed, not a second time at its deadline).
  By month, a case whose deadline passed in February and that was closed in April is due in
  February (not closed) and in April (closed). ``closed`` is a part of ``due_to_close``, so the
  rates are at most 1.
* **closed on time**: closed in the period at or before its deadline; a case closed with no
  deadline (settled on the spot, never dispatched) had none to miss, and is on time.
* **reworked**: closed in the period having been RETURNED at least once (``returned_count``).
* **closure rate** (结案率) = closed / due to close; **on-time closure rate** (按期结案率) =
  closed on time / due to close; **rework rate** = reworked / closed; **median hours to close**:
  the median (``percentile_cont(0.5)``) of ``closed_at - reported_at`` in hours over the closed.
  A rate whose denominator is 0, and the median of no case, are None.
* **whistles**: GRID_WHISTLE cases reported in the period (by anyone who whistles: grid workers,
  micro-grid leaders …). **grid workers**: workers of the GRID_WORKER role assigned now to a grid
  of the scope that the caller covers (every grid of the scope for a department); the whistling
  rate is **whistles per worker** = whistles / grid workers (None without grid workers).

Groups (``group_by``), each with ``key`` and ``name``, in key order, a None key last:

* GRID: the case's grid (``grid_code``), named; every grid of the scope the caller covers is
  listed, with zeros when nothing happened there. ``grid_workers`` are that grid's.
* WORKER: the worker who reported the case (``reporter_code`` matched to a staff number), named;
  every grid worker of the scope is listed, with zeros for those who never whistled. Cases not
  reported by a worker (hotline, online, Open311) make the group with a None key: a resident's
  reporter code or name is never shown. No ``grid_workers`` (None).
* UNIT: the unit the case is dispatched to, named; None: not dispatched. Only units with cases.
* CATEGORY: the case's category, named. Only categories with cases.
* MONTH: 'YYYY-MM'. Each month is a period of its own, clipped to the period: a case counts as
  reported in the month it was reported, closed in the month it was closed, due in each month
  where it is due as defined above. Every month of the period is listed (a series has no gaps);
  the totals count a case once, so a month's figures need not add up to them. ``grid_workers``
  are the scope's. At most ``MAX_MONTHS`` months.

Errors: ``from`` after ``to`` (BadInput naming ``from``), a MONTH series of more than
``MAX_MONTHS`` months (``to``), a malformed or unknown scope (BadInput or NotFound naming
``scope``), and for staff a scope outside all their areas (Forbidden naming ``scope``). The API
refuses the public before any of these (``api.schema.case_stats``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import queries as q
from geo.errors import BadInput, Forbidden

GROUP_BY = ("GRID", "WORKER", "UNIT", "CATEGORY", "MONTH")
MAX_MONTHS = 120
DEFAULT_ZONE = "Asia/Shanghai"
GRID_WIDTH = 15
MICRO_GRID_WIDTH = 18

# The key of a case's group (the month is the bucket's, see STATS).
CASE_KEY = {
    None: "NULL::text",
    "GRID": "c.grid_code",
    "WORKER": "w.code",
    "UNIT": "c.unit_code",
    "CATEGORY": "c.category_code",
    "MONTH": "NULL::text",
}
# Where a group's name comes from: a table with code and name.
NAMES = {"GRID": "grid", "WORKER": "worker", "UNIT": "unit", "CATEGORY": "case_category"}

# The grids of the scope the caller covers (a department: every one), and their grid workers.
GRIDS = (
    "SELECT g.id, g.code FROM grid g"
    " WHERE g.code >= :grids AND g.code < :grids || chr(1114111)"
    " AND (gridmap_covers(g.code) OR current_setting('gridmap.role', true) = 'department')"
)
# Keys listed even without a case: every grid, every grid worker, every month of the period.
LISTED = {
    "GRID": "SELECT code AS key FROM scope_grids",
    "WORKER": "SELECT DISTINCT worker_code AS key FROM grid_workers",
    "MONTH": (
        "SELECT to_char(m, 'YYYY-MM') AS key FROM generate_series("
        "date_trunc('month', CAST(:start AS timestamp)), CAST(:end AS timestamp),"
        " interval '1 month') AS m"
    ),
}
NO_KEYS = "SELECT NULL::text AS key WHERE false"

# The buckets a case is counted in, besides the whole period (the totals): the whole period
# again for its group, or each month of the period where something happened to it.
GROUP_BUCKET = "SELECT false, s.key, CAST(:start AS date), CAST(:end AS date)"
MONTH_BUCKETS = """
SELECT DISTINCT false, to_char(mm.m, 'YYYY-MM'), greatest(mm.m, CAST(:start AS date)),
       least(CAST(mm.m + interval '1 month' AS date) - 1, CAST(:end AS date))
FROM (SELECT CAST(date_trunc('month', CAST(v.d AS timestamp)) AS date) AS m
      FROM (VALUES (s.reported_on), (s.closed_on), (s.deadline_on)) AS v(d)
      WHERE v.d BETWEEN :start AND :end) AS mm
"""

STATS = """
WITH scope_grids AS ({grids}),
grid_workers AS (
    SELECT DISTINCT g.code AS grid_code, w.code AS worker_code
    FROM scope_grids g
    JOIN worker_grid wg ON wg.grid_id = g.id
    JOIN worker w ON w.id = wg.worker_id AND w.role = 'GRID_WORKER'
),
scoped AS MATERIALIZED (
    SELECT c.source, c.state, c.merged_into IS NOT NULL AS merged, c.returned_count,
           c.reported_at, c.closed_at, c.deadline, {key} AS key,
           CAST(c.reported_at AT TIME ZONE coalesce(z.timezone, :zone) AS date) AS reported_on,
           CAST(c.closed_at AT TIME ZONE coalesce(z.timezone, :zone) AS date) AS closed_on,
           CAST(c.deadline AT TIME ZONE coalesce(z.timezone, :zone) AS date) AS deadline_on
    FROM grid_case c
    LEFT JOIN subdistrict z ON z.code = left(c.grid_code, 9)
    {worker_join}
    WHERE {in_scope}
),
flagged AS MATERIALIZED (
    SELECT b.total, b.key, s.source, s.returned_count, s.reported_at, s.closed_at,
           s.reported_on BETWEEN b.d0 AND b.d1 AS reported,
           NOT s.merged AND s.closed_on BETWEEN b.d0 AND b.d1 AS closed,
           NOT s.merged AND s.state <> 'REJECTED'
               AND (s.closed_on BETWEEN b.d0 AND b.d1
                    OR (s.deadline_on BETWEEN b.d0 AND b.d1
                        AND (s.closed_on IS NULL OR s.closed_on >= b.d0))) AS due,
           s.deadline IS NULL OR s.closed_at <= s.deadline AS in_time
    FROM scoped s
    CROSS JOIN LATERAL (
        SELECT true, NULL::text, CAST(:start AS date), CAST(:end AS date)
        {buckets}
    ) AS b(total, key, d0, d1)
    WHERE s.reported_on BETWEEN :start AND :end OR s.closed_on BETWEEN :start AND :end
       OR s.deadline_on BETWEEN :start AND :end
),
counted AS (
    SELECT total, key,
           count(*) FILTER (WHERE reported) AS reported,
           count(*) FILTER (WHERE due) AS due_to_close,
           count(*) FILTER (WHERE closed) AS closed,
           count(*) FILTER (WHERE closed AND in_time) AS closed_on_time,
           count(*) FILTER (WHERE closed AND returned_count > 0) AS reworked,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM closed_at - reported_at) / 3600
           ) FILTER (WHERE closed) AS median_hours_to_close,
           count(*) FILTER (WHERE reported AND source = 'GRID_WHISTLE') AS whistles
    FROM flagged
    WHERE reported OR due
    GROUP BY total, key
),
grouped AS (
    SELECT key, reported, due_to_close, closed, closed_on_time, reworked,
           median_hours_to_close, whistles
    FROM counted WHERE NOT total
    UNION ALL
    SELECT l.key, 0, 0, 0, 0, 0, NULL, 0
    FROM ({listed}) AS l
    WHERE NOT EXISTS (SELECT 1 FROM counted k WHERE NOT k.total AND k.key = l.key)
),
everyone AS (SELECT count(DISTINCT worker_code) AS n FROM grid_workers),
answer AS (
    SELECT true AS total, NULL::text AS key, NULL::text AS name,
           coalesce(t.reported, 0) AS reported, coalesce(t.due_to_close, 0) AS due_to_close,
           coalesce(t.closed, 0) AS closed, coalesce(t.closed_on_time, 0) AS closed_on_time,
           coalesce(t.reworked, 0) AS reworked, t.median_hours_to_close,
           coalesce(t.whistles, 0) AS whistles, (SELECT n FROM everyone) AS grid_workers
    FROM (SELECT 1) AS one LEFT JOIN counted t ON t.total
    UNION ALL
    SELECT false, g.key, {name}, g.reported, g.due_to_close, g.closed, g.closed_on_time,
           g.reworked, g.median_hours_to_close, g.whistles, {group_workers}
    FROM grouped g {name_join}
)
SELECT *,
       CAST(closed AS float8) / nullif(due_to_close, 0) AS closure_rate,
       CAST(closed_on_time AS float8) / nullif(due_to_close, 0) AS on_time_closure_rate,
       CAST(reworked AS float8) / nullif(closed, 0) AS rework_rate,
       CAST(whistles AS float8) / nullif(grid_workers, 0) AS whistles_per_worker
FROM answer
ORDER BY total DESC, key COLLATE "C" NULLS LAST
"""

# The reporter's staff number; a resident's reporter code matches no worker (a None key).
WORKER_JOIN = "LEFT JOIN worker w ON w.code = c.reporter_code"
GROUP_WORKERS = {
    "GRID": "(SELECT count(*) FROM grid_workers gw WHERE gw.grid_code = g.key)",
    "MONTH": "(SELECT n FROM everyone)",
}


def check(*, start: dt.date, end: dt.date, group_by: str | None) -> None:
    """The period and grouping, or an error naming ``from``, ``to`` or ``groupBy``."""
    if start > end:
        raise BadInput("from", f"{start} is after to ({end}): the period runs from one day to a "
                       "later one (or the same day)")  # fmt: skip
    if group_by is not None and group_by not in GROUP_BY:
        raise BadInput("groupBy", f"{group_by!r} is not one of {', '.join(GROUP_BY)}")
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    if group_by == "MONTH" and months > MAX_MONTHS:
        raise BadInput(
            "to", f"by month, a period spans at most {MAX_MONTHS} months ({start} to {end} "
            f"spans {months}): shorten it"
        )  # fmt: skip


def statement(scope: str, group_by: str | None) -> str:
    """The SQL of ``case_stats`` for a scope of this width and this grouping."""
    if len(scope) == MICRO_GRID_WIDTH:
        in_scope = "c.grid_code = :grids AND c.micro_grid_code = :scope"
    else:
        in_scope = "c.grid_code >= :scope AND c.grid_code < :scope || chr(1114111)"
    if group_by is None:
        buckets = ""
    elif group_by == "MONTH":
        buckets = "UNION ALL " + MONTH_BUCKETS
    else:
        buckets = "UNION ALL " + GROUP_BUCKET
    table = NAMES.get(group_by or "")
    return STATS.format(
        grids=GRIDS,
        key=CASE_KEY[group_by],
        worker_join=WORKER_JOIN if group_by == "WORKER" else "",
        in_scope=in_scope,
        buckets=buckets,
        listed=LISTED.get(group_by or "", NO_KEYS),
        name="n.name" if table else "NULL::text",
        name_join=f"LEFT JOIN {table} n ON n.code = g.key" if table else "",
        group_workers=GROUP_WORKERS.get(group_by or "", "NULL::bigint"),
    )


def case_stats(
    *,
    session: Session,
    scope: str,
    start: dt.date,
    end: dt.date,
    group_by: str | None = None,
    areas: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """``{"totals": figures, "groups": [figures with key and name]}`` of the cases the caller
    sees in ``scope`` (an area code, district to micro-grid) over the local days ``start`` to
    ``end`` (see the module's docstring for every figure). ``areas``: the caller's, when it
    covers areas (staff): a scope outside them all is refused rather than answered with zeros.
    Figures: reported, due_to_close, closed, closed_on_time, reworked, closure_rate,
    on_time_closure_rate, rework_rate, median_hours_to_close, whistles, grid_workers,
    whistles_per_worker."""
    check(start=start, end=end, group_by=group_by)
    q.area_by_code(session=session, code=scope, argument="scope")
    if areas is not None and not any(scope.startswith(a) or a.startswith(scope) for a in areas):
        raise Forbidden("scope", f"{scope} is outside your areas ({', '.join(areas) or 'none'})")
    rows = session.execute(
        text(statement(scope, group_by)),
        {
            "scope": scope,
            "grids": scope[:GRID_WIDTH],
            "start": start,
            "end": end,
            "zone": DEFAULT_ZONE,
        },
    ).mappings()
    found = [dict(r) for r in rows]
    for r in found:
        del r["total"]
    totals = found[0]
    del totals["key"], totals["name"]
    return {"totals": totals, "groups": found[1:]}
