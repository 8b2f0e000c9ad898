"""Map pages: ``/maps/coverage`` and what it shows, fetched as the caller (row-level security)
with the households it draws audited. ``gridmap map coverage`` writes the same map to a file."""

from __future__ import annotations

import datetime as dt
import html
import uuid
from collections.abc import Callable
from typing import Any

import folium
import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from api.settings import Settings
from api.web import request_caller
from geo import coverage
from geo import queries as q
from geo.access import FAMILY_FILE_ROLES, Caller
from geo.audit import reads_sql
from geo.db import scoped_session
from geo.errors import BadInput, GridmapError
from maps.assets import AssetsMissing, check_installed, inline_assets, use_local_assets
from maps.coverage import CoverageData, coverage_map

MARKER_LIMIT = 2_000  # overdue class C households drawn, most overdue first
LAYER_LIMIT = 5_000  # cells of a layer other than the one asked for; more are left out
DEMO_SCOPE = "310106015"
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"}


def coverage_data(
    *,
    engine: Engine,
    caller: Caller,
    scope: str,
    level: str,
    as_of: dt.date | None,
    k_anonymity: int,
    timezone: str = "Asia/Shanghai",
    request_id: uuid.UUID | None = None,
) -> CoverageData:
    """The cells of every level from the scope's down, and the overdue class C households for
    roles that read family files (each drawn one recorded in the audit log). Raises
    ``BadInput`` or ``NotFound`` naming ``scope``, ``level`` or ``asOf``."""
    with scoped_session(engine, caller.settings()) as session:
        asked = coverage.cells(session=session, scope=scope, level=level, as_of=as_of)
        area = q.area_by_code(session=session, code=scope, argument="scope")
        if len(scope) >= 9:  # days are the subdistrict's; a district's are the settings'
            subdistrict = q.area_by_code(session=session, code=scope[:9], argument="scope")
            timezone = subdistrict["timezone"]
        layers: dict[str, list[dict[str, Any]]] = {}
        left_out: dict[str, int] = {}
        for name, width in coverage.LEVELS.items():
            if width < len(scope):
                continue
            cells = asked if name == level else coverage.cells(
                session=session, scope=scope, level=name, as_of=as_of
            )  # fmt: skip
            cells = [c | {"geometry": orjson.loads(c["geometry"])} for c in cells]
            if name != level and len(cells) > LAYER_LIMIT:
                left_out[name] = len(cells)
            elif caller.is_public:
                layers[name] = [_suppress_small(c, k_anonymity) for c in cells]
            else:
                layers[name] = cells
        overdue = None
        if caller.role in FAMILY_FILE_ROLES:
            overdue = coverage.overdue_households(
                session=session, scope=scope, as_of=as_of, household_class="C",
                limit=MARKER_LIMIT,
            )  # fmt: skip
            if overdue:
                reads = {
                    h["household_id"]: (h["code"], {"household_class", "geometry"}) for h in overdue
                }
                session.connection().exec_driver_sql(*reads_sql(caller, reads, request_id))
        return CoverageData(
            scope=scope, scope_name=area.get("name"), scope_geometry=area["geometry"],
            level=level, as_of=as_of or coverage.today(session, scope), layers=layers,
            timezone=timezone, overdue_c=overdue, left_out=left_out,
            suppressed_below=k_anonymity if caller.is_public else None,
        )  # fmt: skip


def _suppress_small(cell: dict[str, Any], k: int) -> dict[str, Any]:
    """The public sees no count of fewer than ``k`` households (nor any count of that cell)."""
    if cell.get("suppressed") or (cell["households"] or 0) < k:
        keys = ("households", "contacted", "ratio", "overdue_a", "overdue_b", "overdue_c")
        return cell | dict.fromkeys(keys) | {"suppressed": True}
    return cell


def coverage_html(
    settings: Settings,
    engine: Engine,
    caller: Caller,
    *,
    scope: str,
    level: str,
    as_of: dt.date | None,
    self_contained: bool,
) -> str:
    """The whole page: assets linked from the app, or written into the page for a file."""
    check_installed()
    data = coverage_data(
        engine=engine, caller=caller, scope=scope, level=level, as_of=as_of,
        k_anonymity=settings.k_anonymity, timezone=settings.timezone,
    )  # fmt: skip
    m = coverage_map(data, tiles=settings.map_tiles, attribution=settings.map_tiles_attribution)
    return render(m, self_contained=self_contained)


def render(m: folium.Map, *, self_contained: bool) -> str:
    """The map's page: its assets linked from the app, or written into it for a file."""
    if self_contained:
        inline_assets(m)
    else:
        use_local_assets(m)
    return m.get_root().render()


def parse_day(value: str | None, argument: str = "asOf") -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadInput(argument, f"{value!r} is not a date: use YYYY-MM-DD") from None


async def coverage_page(request: Request) -> Response:
    """``/maps/coverage?scope=CODE&level=GRID&asOf=YYYY-MM-DD`` as the caller."""

    def draw(settings: Settings, engine: Engine, caller: Caller, scope: str, params: Any) -> str:
        level = params.get("level", "GRID").strip().upper()
        return coverage_html(
            settings, engine, caller, scope=scope, level=level,
            as_of=parse_day(params.get("asOf")), self_contained=False,
        )  # fmt: skip

    return await map_page(request, draw)


async def map_page(
    request: Request, draw: Callable[[Settings, Engine, Caller, str, Any], str]
) -> Response:
    """A map page with ``scope`` required (``draw(settings, engine, caller, scope, query
    params)``), answered as ``caller_page`` answers."""
    params = request.query_params

    def page(settings: Settings, engine: Engine, caller: Caller) -> Response:
        scope = params.get("scope", "").strip()
        if not scope:
            raise BadInput("scope", f"required: an area code, e.g. ?scope={DEMO_SCOPE}")
        return HTMLResponse(draw(settings, engine, caller, scope, params), headers=PAGE_HEADERS)

    return await caller_page(request, page)


async def caller_page(
    request: Request,
    answer: Callable[[Settings, Engine, Caller], Response],
    status_of: Callable[[GridmapError], int] = lambda _: 400,
) -> Response:
    """A page or file as its caller: credentials and the rate limit (``request_caller``), made
    off the event loop (``answer(settings, engine, caller)``), an error a page naming the
    parameter (400 unless ``status_of`` says otherwise), missing map assets a 503 page."""
    caller = await request_caller(request)
    try:
        return await run_in_threadpool(
            answer, request.app.state.settings, request.app.state.engine, caller
        )
    except GridmapError as exc:
        return _error_page(status_of(exc), exc.message)
    except AssetsMissing as exc:
        return _error_page(503, str(exc))


def _error_page(status: int, message: str) -> Response:
    page = (
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>gridmap: map</title>'
        f'<p role="alert">{html.escape(message)}</p><p><a href="/">gridmap</a></p></html>'
    )
    return HTMLResponse(page, status, headers=PAGE_HEADERS)
