"""Where the jobs map draws things: merchants near an area with their openings, the area's
job seekers at their homes, and the area's grids for orientation. Matching itself is
``geo.jobs``; this only places what it names.

Merchants, openings and areas are public business information. Seekers are personal data: the
query runs under row-level security (a caller sees the seekers of its areas only), and the
caller of ``seekers`` records each one it shows with ``geo.audit.reads_sql``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import jobs
from geo import queries as q

MERCHANTS = """
WITH area AS (SELECT geom FROM {table} WHERE code = :scope)
SELECT m.id, m.code, m.name, m.category, m.address, m.opening_hours,
       ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat
FROM merchant m, area
WHERE ST_DWithin(m.geom::geography, area.geom::geography, :max)
   OR m.id = ANY(CAST(:merchants AS uuid[]))
   OR m.id IN (SELECT o.merchant_id FROM job_opening o WHERE o.id = ANY(CAST(:openings AS uuid[])))
ORDER BY m.code
LIMIT :limit
"""

SEEKERS = """
SELECT js.id, js.household_id, js.household_code, p.code AS person_code, js.skills, js.shifts,
       js.weekly_hours, js.min_wage, js.max_walk_meters,
       ST_X(h.location) AS lon, ST_Y(h.location) AS lat,
       (SELECT m.state FROM job_match m
        WHERE m.seeker_id = js.id AND m.state <> 'DECLINED'
        ORDER BY m.updated_at DESC LIMIT 1) AS match_state
FROM job_seeker js
JOIN household h ON h.id = js.household_id
JOIN person p ON p.id = js.person_id
WHERE js.household_code >= :scope AND js.household_code < :scope || chr(1114111)
  AND h.moved_out IS NULL AND h.location IS NOT NULL
ORDER BY p.code
LIMIT :limit
"""

AREAS = """
SELECT t.code, t.name, ST_AsGeoJSON(t.geom, 6) AS geometry
FROM {table} t
WHERE t.code >= :scope AND t.code < :scope || chr(1114111) AND length(t.code) = :width
ORDER BY t.code
LIMIT :limit
"""


def merchants(
    *,
    session: Session,
    scope: str,
    max_distance: float,
    today: dt.date,
    also_merchants: Sequence[uuid.UUID] = (),
    also_openings: Sequence[uuid.UUID] = (),
    limit: int = 5_000,
) -> list[dict[str, Any]]:
    """Merchants within ``max_distance`` metres of the area (a proposal reaches no farther),
    plus those named (an offer's, a proposed opening's), each with ``openings``: the ones
    valid ``today``, with their open slots."""
    q.area_by_code(session=session, code=scope, argument="scope")
    table = q.AREAS_BY_WIDTH[len(scope)].table
    rows = [
        dict(r)
        for r in session.execute(
            text(MERCHANTS.format(table=table)),
            {
                "scope": scope,
                "max": max_distance,
                "merchants": [str(m) for m in also_merchants],
                "openings": [str(o) for o in also_openings],
                "limit": limit,
            },
        ).mappings()
    ]
    openings = jobs.openings_of(session=session, merchant_ids=[r["id"] for r in rows])
    for r in rows:
        r["openings"] = [
            o
            for o in openings[r["id"]]
            if o["valid_from"] <= today and (o["valid_until"] is None or o["valid_until"] >= today)
        ]
    return rows


def seekers(*, session: Session, scope: str, limit: int) -> list[dict[str, Any]]:
    """The job seekers of ``scope`` the caller may see (row-level security), at their homes,
    with the state of their live or final match if they have one."""
    return [
        dict(r) for r in session.execute(text(SEEKERS), {"scope": scope, "limit": limit}).mappings()
    ]


def child_areas(*, session: Session, scope: str, limit: int) -> tuple[str, list[dict[str, Any]]]:
    """The grids of an area above a grid (the micro-grids of a grid or micro-grid) with their
    names and GeoJSON: without a base map they are what a reader finds their way by."""
    width = 18 if len(scope) >= 15 else 15
    entity = q.AREAS_BY_WIDTH[width]
    rows = session.execute(
        text(AREAS.format(table=entity.table)), {"scope": scope, "width": width, "limit": limit}
    ).mappings()
    return entity.name, [dict(r) | {"geometry": orjson.loads(r["geometry"])} for r in rows]
