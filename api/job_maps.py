"""The jobs map page, ``/maps/jobs``, and what it shows, fetched as the caller (row-level
security) with every seeker it draws audited. ``gridmap map jobs`` writes the same map to a file.
Pages, assets and errors work as the coverage map's (``api.maps``)."""

from __future__ import annotations

import math
import uuid
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from api.maps import MARKER_LIMIT, map_page, render
from api.settings import Settings
from geo import coverage, job_places, jobs
from geo import queries as q
from geo.access import FAMILY_FILE_ROLES, Caller
from geo.audit import reads_sql
from geo.db import scoped_session
from geo.errors import BadInput
from maps.assets import check_installed
from maps.jobs import JobMapData, jobs_map

DEFAULT_DISTANCE = 1500.0
MERCHANT_LIMIT = 5_000
AREA_LIMIT = 5_000
SEEKER_FIELDS = frozenset({"job_seeker", "geometry"})


def parse_distance(value: str | None, argument: str = "maxDistanceMeters") -> float:
    """Metres from a query parameter or an option (1500 when absent), or an error naming it."""
    if value is None or not value.strip():
        return DEFAULT_DISTANCE
    try:
        meters = float(value)
    except ValueError:
        raise BadInput(argument, f"{value!r} is not a number of metres") from None
    if not math.isfinite(meters):
        raise BadInput(argument, f"{value!r} is not a number of metres")
    jobs.check_distance(meters, argument)
    return meters


def jobs_data(
    *,
    engine: Engine,
    caller: Caller,
    scope: str,
    max_distance: float,
    request_id: uuid.UUID | None = None,
) -> JobMapData:
    """Merchants near the scope with their openings and the offers reaching it, for everyone;
    the scope's seekers and the optimal proposals only for roles that keep family files, each
    seeker drawn recorded in the audit log. Raises ``BadInput`` or ``NotFound`` naming
    ``scope`` or ``maxDistanceMeters``."""
    jobs.check_distance(max_distance)
    with scoped_session(engine, caller.settings()) as session:
        area = q.area_by_code(session=session, code=scope, argument="scope")
        today = coverage.today(session, scope)
        offers = jobs.offers(session=session, scope=scope, today=today)
        seekers = chosen = None
        notes: list[str] = []
        if caller.role in FAMILY_FILE_ROLES:
            pairs, slots = jobs.candidates(
                session=session, scope=scope, max_distance=max_distance, today=today
            )
            chosen = jobs.assign(pairs, slots)
            seekers = job_places.seekers(session=session, scope=scope, limit=MARKER_LIMIT + 1)
            if len(seekers) > MARKER_LIMIT:
                seekers = seekers[:MARKER_LIMIT]
                notes.append(f"求职者 job seekers: the first {MARKER_LIMIT} drawn; open a smaller "
                             "scope for the rest")  # fmt: skip
        merchants = job_places.merchants(
            session=session, scope=scope, max_distance=max_distance, today=today,
            also_merchants=[f["merchant_id"] for f in offers],
            also_openings=[c.opening_id for c in chosen or ()], limit=MERCHANT_LIMIT,
        )  # fmt: skip
        level, areas = job_places.child_areas(session=session, scope=scope, limit=AREA_LIMIT)
        by_id = {r["id"]: r for r in merchants}
        drawn_offers = [
            f | {"lon": m["lon"], "lat": m["lat"], "merchant_name": m["name"]}
            for f in offers
            if (m := by_id.get(f["merchant_id"]))
        ]
        proposals = None
        if seekers is not None:
            proposals = _proposals(chosen or [], seekers, merchants)
            _audit_seekers(session, caller, seekers, proposals, request_id)
        return JobMapData(
            scope=scope, scope_name=area.get("name"), scope_geometry=area["geometry"],
            today=today, max_distance=max_distance, areas_level=level, areas=areas,
            merchants=merchants, offers=drawn_offers, seekers=seekers, proposals=proposals,
            notes=notes,
        )  # fmt: skip


def _proposals(
    chosen: list[jobs.Candidate], seekers: list[dict[str, Any]], merchants: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A line's ends and popup for each chosen candidate whose seeker and merchant are drawn."""
    homes = {s["id"]: s for s in seekers}
    openings = {o["id"]: (o, m) for m in merchants for o in m["openings"]}
    lines = []
    for c in chosen:
        if c.seeker_id not in homes or c.opening_id not in openings:
            continue
        seeker, (opening, merchant) = homes[c.seeker_id], openings[c.opening_id]
        lines.append({
            "seeker_id": c.seeker_id, "household_id": seeker["household_id"],
            "person_code": seeker["person_code"],
            "home_lon": seeker["lon"], "home_lat": seeker["lat"],
            "merchant_name": merchant["name"], "merchant_code": merchant["code"],
            "merchant_lon": merchant["lon"], "merchant_lat": merchant["lat"],
            "opening_title": opening["title"], "opening_code": opening["code"],
            "score": c.score, "text": c.text, "distance_meters": c.distance_meters,
        })  # fmt: skip
    return lines


def _audit_seekers(
    session: Session,
    caller: Caller,
    seekers: list[dict[str, Any]],
    proposals: list[dict[str, Any]],
    request_id: uuid.UUID | None,
) -> None:
    """One read per household drawn: its seekers at home, and the proposals naming them."""
    if not seekers:
        return
    proposed = {p["household_id"] for p in proposals}
    reads: dict[Any, tuple[str, set[str]]] = {}
    for s in seekers:
        fields = set(SEEKER_FIELDS) | ({"job_match"} if s["household_id"] in proposed else set())
        code, before = reads.get(s["household_id"], (s["household_code"], set()))
        reads[s["household_id"]] = (code, before | fields)
    session.connection().exec_driver_sql(*reads_sql(caller, reads, request_id))


def jobs_html(
    settings: Settings,
    engine: Engine,
    caller: Caller,
    *,
    scope: str,
    max_distance: float,
    self_contained: bool,
) -> str:
    """The whole page: assets linked from the app, or written into the page for a file."""
    check_installed()
    data = jobs_data(engine=engine, caller=caller, scope=scope, max_distance=max_distance)
    m = jobs_map(data, tiles=settings.map_tiles, attribution=settings.map_tiles_attribution)
    return render(m, self_contained=self_contained)


async def jobs_page(request: Request) -> Response:
    """``/maps/jobs?scope=CODE&maxDistanceMeters=1500`` as the caller."""

    def draw(settings: Settings, engine: Engine, caller: Caller, scope: str, params: Any) -> str:
        return jobs_html(
            settings, engine, caller, scope=scope,
            max_distance=parse_distance(params.get("maxDistanceMeters")), self_contained=False,
        )  # fmt: skip

    return await map_page(request, draw)
