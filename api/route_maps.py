"""A block head's walking route on a phone: the map, ``/maps/route``, and the GPX file for a
map app, ``/routes/{workerCode}/{date}.gpx``; ``gridmap route`` prints it. All show the
worker's saved plan for the day, planned with the defaults and saved first when there is none
(``geo.routes.saved_or_planned``), so they agree with GraphQL's ``walkingRoute``. It is fetched
as the caller (row-level security), and every household shown is recorded in the audit log.
Pages, assets and errors work as the other maps' (``api.maps``)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from zoneinfo import ZoneInfo

import gpxpy.gpx
import orjson
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from api.maps import PAGE_HEADERS, caller_page, parse_day, render
from api.settings import Settings
from geo.access import Caller
from geo.audit import reads_sql
from geo.db import scoped_session
from geo.errors import BadInput, GridmapError
from geo.routes import Route, RouteSettings, saved_or_planned
from maps.assets import check_installed
from maps.route import SKIPS_SHOWN, route_map

DEMO_WORKER = "JA015-WG-0001"
GPX_TYPE = "application/gpx+xml"
STOP_FIELDS = frozenset({"household_class", "geometry", "route_stop"})
SKIP_FIELDS = frozenset({"route_skip"})
STATUS = {"NOT_FOUND": 404, "FORBIDDEN": 403}


def status_of(exc: GridmapError) -> int:
    """404 for an unknown worker, 403 for a route the caller may not see, else 400."""
    return STATUS.get(exc.code, 400)


def route_data(
    *,
    engine: Engine,
    caller: Caller,
    worker: str,
    day: dt.date | None,
    settings: RouteSettings,
    skipped_shown: int | None,
    request_id: uuid.UUID | None = None,
) -> Route:
    """The worker's route for ``day`` (today in the worker's subdistrict when None), saved
    first when it was not; the stops and the first ``skipped_shown`` skipped households (all:
    None) recorded in the audit log as read. Raises ``NotFound`` (worker), ``Forbidden`` or
    ``BadInput`` (date)."""
    worker = worker.strip()
    if not worker:
        raise BadInput("worker", f"required: a staff number, e.g. worker={DEMO_WORKER}")
    with scoped_session(engine, caller.settings()) as session:
        route = saved_or_planned(
            session=session, caller=caller, worker_code=worker, day=day, settings=settings
        )
        reads = {s.household_id: (s.household_code, set(STOP_FIELDS)) for s in route.stops}
        for skip in route.skipped[:skipped_shown]:
            _, fields = reads.setdefault(skip.household_id, (skip.household_code, set()))
            fields |= SKIP_FIELDS
        if reads:
            session.connection().exec_driver_sql(*reads_sql(caller, reads, request_id))
        return route


def route_html(settings: Settings, route: Route, *, self_contained: bool) -> str:
    m = route_map(route, tiles=settings.map_tiles, attribution=settings.map_tiles_attribution)
    return render(m, self_contained=self_contained)


def route_gpx(route: Route) -> str:
    """GPX 1.1: the start and the stops in order as waypoints (named so a list sorts them),
    times in UTC as GPX wants, and the walk as a track."""
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "gridmap"
    gpx.name = f"步行路线 walking route {route.worker_code} {route.day}"
    gpx.description = route.reason or (
        f"{len(route.stops)} 站 stops, {route.total_m:,.0f} m, from {route.start} and back"
    )
    gpx.time = route.planned_at
    width = max(2, len(str(len(route.stops))))
    if route.start_lonlat:
        lon, lat = route.start_lonlat
        gpx.waypoints.append(gpxpy.gpx.GPXWaypoint(
            lat, lon, name=f"{0:0{width}d} 起点 start {route.start}",
            description="起点与终点 start and end", symbol="Flag", type="start",
        ))  # fmt: skip
    zone = ZoneInfo(route.timezone)
    for s in route.stops:
        gpx.waypoints.append(gpxpy.gpx.GPXWaypoint(
            s.lat, s.lon, time=s.arrival_at.astimezone(dt.UTC),
            name=f"{s.order:0{width}d} {s.household_code}",
            description=f"{s.household_class} 类 class {s.household_class}, 到达 arrival "
            f"{s.arrival_at.astimezone(zone):%H:%M}, 步行 walk {s.leg_m:,.0f} m",
            symbol="Pin", type="stop",
        ))  # fmt: skip
    if route.path:
        line = orjson.loads(route.path)["coordinates"]
        segment = gpxpy.gpx.GPXTrackSegment([gpxpy.gpx.GPXTrackPoint(y, x) for x, y in line])
        track = gpxpy.gpx.GPXTrack(name=gpx.name)
        track.segments.append(segment)
        gpx.tracks.append(track)
    return gpx.to_xml(version="1.1")


def gpx_filename(route: Route) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"route-{route.worker_code}-{route.day}") + ".gpx"


async def route_page(request: Request) -> Response:
    """``/maps/route?worker=CODE&date=YYYY-MM-DD`` as the caller."""
    params = request.query_params

    def answer(settings: Settings, engine: Engine, caller: Caller) -> Response:
        check_installed()  # before planning: a page that cannot be drawn saves nothing
        route = route_data(
            engine=engine, caller=caller, worker=params.get("worker", ""),
            day=parse_day(params.get("date"), "date"), settings=settings.route_settings(),
            skipped_shown=SKIPS_SHOWN,
        )  # fmt: skip
        return HTMLResponse(route_html(settings, route, self_contained=False), headers=PAGE_HEADERS)

    return await caller_page(request, answer, status_of)


async def route_gpx_file(request: Request) -> Response:
    """``GET /routes/{workerCode}/{date}.gpx`` as the caller: a download."""
    worker, date = request.path_params["workerCode"], request.path_params["date"]

    def answer(settings: Settings, engine: Engine, caller: Caller) -> Response:
        route = route_data(
            engine=engine, caller=caller, worker=worker, day=parse_day(date, "date"),
            settings=settings.route_settings(), skipped_shown=0,
        )  # fmt: skip
        headers = {
            "Content-Disposition": f'attachment; filename="{gpx_filename(route)}"',
            "Cache-Control": "no-store",
        }
        return Response(route_gpx(route), media_type=GPX_TYPE, headers=headers)

    return await caller_page(request, answer, status_of)
