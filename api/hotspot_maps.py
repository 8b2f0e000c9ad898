"""The case-hotspot map page, ``/maps/hotspots``, and what it shows: the hotspots of
``geo.case_hotspots`` (the same for every caller, small counts withheld from the public) and,
for roles that may see cases, the window's cases read as the caller (row-level security: staff
their areas', a department its unit's). ``gridmap map hotspots`` writes the same map to a file.
Pages, assets and errors work as the coverage map's (``api.maps``)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from api.maps import MARKER_LIMIT, map_page, parse_day, render
from api.settings import Settings
from geo import case_hotspots as ch
from geo import cases as case_data
from geo import queries as q
from geo.access import Caller
from geo.db import scoped_session
from geo.errors import BadInput
from maps.assets import check_installed
from maps.hotspots import HotspotMapData, check_plugins_installed, hotspot_map, local_plugins

HEAT_LIMIT = 20_000  # the window's most recent cases in the heat map; the first MARKER_LIMIT
# of them are markers too


def parse_hex_meters(value: str | None, argument: str = "hexMeters") -> float:
    if value is None or not value.strip():
        return ch.DEFAULT_HEX_M
    try:
        meters = float(value)
    except ValueError:
        raise BadInput(argument, f"{value!r} is not a number of metres") from None
    if not math.isfinite(meters):
        raise BadInput(argument, f"{value!r} is not a number of metres")
    return meters


def parse_categories(value: str | None) -> list[str] | None:
    """``NOISE,ILLEGAL_PARKING`` → the codes; absent or empty: every category."""
    if value is None or not value.strip():
        return None
    return [c.strip().upper() for c in value.split(",")]


def hotspot_data(
    *,
    engine: Engine,
    caller: Caller,
    scope: str,
    first_day: dt.date | None,
    last_day: dt.date | None,
    cell: str,
    hex_m: float,
    categories: list[str] | None,
    k_anonymity: int,
) -> HotspotMapData:
    """The hotspots, and the window's cases the caller may see (none for the public). Raises
    ``BadInput`` or ``NotFound`` naming ``scope``, ``from``, ``to``, ``cell``, ``hexMeters`` or
    ``categories``."""
    with scoped_session(engine, caller.settings()) as session:
        found = ch.hotspots(
            session=session, scope=scope, first_day=first_day, last_day=last_day,
            categories=categories, cell=cell, hex_m=hex_m,
        )  # fmt: skip
        area = q.area_by_code(session=session, code=scope, argument="scope")
        cells = [c | {"geometry": orjson.loads(c["geometry"])} for c in found.cells]
        if caller.is_public:
            cells = [ch.suppress(c, k_anonymity) for c in cells]
        cases, total = None, 0
        if not caller.is_public:
            cases, total = ch.window_cases(session=session, found=found, limit=HEAT_LIMIT)
        names = None
        if found.categories:
            every = case_data.categories(session=session, include_inactive=True)
            names = [f"{c['name']} {c['code']}" for c in every if c["code"] in found.categories]
    return HotspotMapData(
        scope=scope, scope_name=area.get("name"), scope_geometry=area["geometry"],
        cell=found.cell, first_day=found.window.first_day, last_day=found.window.last_day,
        previous=[(w.first_day, w.last_day) for w in found.previous], cells=cells,
        timezone=found.timezone, hex_m=found.hex_m, categories=names, cases=cases,
        cases_total=total, markers=MARKER_LIMIT,
        suppressed_below=k_anonymity if caller.is_public else None,
    )  # fmt: skip


def hotspots_html(
    settings: Settings,
    engine: Engine,
    caller: Caller,
    *,
    scope: str,
    first_day: dt.date | None,
    last_day: dt.date | None,
    cell: str,
    hex_m: float,
    categories: list[str] | None,
    self_contained: bool,
) -> str:
    """The whole page: assets linked from the app, or written into the page for a file."""
    check_installed()
    check_plugins_installed()
    data = hotspot_data(
        engine=engine, caller=caller, scope=scope, first_day=first_day, last_day=last_day,
        cell=cell, hex_m=hex_m, categories=categories, k_anonymity=settings.k_anonymity,
    )  # fmt: skip
    m = hotspot_map(data, tiles=settings.map_tiles, attribution=settings.map_tiles_attribution)
    local_plugins(m, inline=self_contained)
    return render(m, self_contained=self_contained)


async def hotspots_page(request: Request) -> Response:
    """``/maps/hotspots?scope=CODE&from=YYYY-MM-DD&to=YYYY-MM-DD&cell=HEX&hexMeters=150
    &categories=NOISE,ILLEGAL_PARKING`` as the caller."""

    def draw(settings: Settings, engine: Engine, caller: Caller, scope: str, params: Any) -> str:
        return hotspots_html(
            settings, engine, caller, scope=scope,
            first_day=parse_day(params.get("from"), "from"),
            last_day=parse_day(params.get("to"), "to"),
            cell=params.get("cell", "HEX").strip().upper(),
            hex_m=parse_hex_meters(params.get("hexMeters")),
            categories=parse_categories(params.get("categories")), self_contained=False,
        )  # fmt: skip

    return await map_page(request, draw)
