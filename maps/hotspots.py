"""The case-hotspot map: the cells of an area coloured by their Gi* confidence (hot red, cold
blue, not significant left white) with a legend, and, for the roles that may see cases, a heat
map of the cases and the cases themselves as clustered markers with a popup each. It only
draws what ``api.hotspot_maps`` fetched: the public's data has no case, and no count of a cell
with too few.

Leaflet.heat and Leaflet.markercluster come from maps/assets like Leaflet (``PLUGIN_FILES``):
``local_plugins`` links them from the app, or writes them into a page meant to be a file.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import folium
from branca.element import Element
from folium.plugins import FastMarkerCluster, HeatMap

from maps.assets import NODE_MODULES, AssetsMissing, RawHtml, served_url
from maps.coverage import STYLE as COVERAGE_STYLE
from maps.coverage import frame
from maps.jobs import esc

CELL_NAMES = {"GRID": "网格 grids", "MICRO_GRID": "微网格 micro-grids", "HEX": "六边形 hexagons"}
# Red for hot, blue for cold (ColorBrewer RdBu), darker as the confidence grows.
CONFIDENCE = {
    "HOT_99": ("#b2182b", "热点 hot spot, 99 % confidence"),
    "HOT_95": ("#ef8a62", "热点 hot spot, 95 %"),
    "HOT_90": ("#fddbc7", "热点 hot spot, 90 %"),
    "NOT_SIGNIFICANT": ("#ffffff", "不显著 not significant"),
    "COLD_90": ("#d1e5f0", "冷点 cold spot, 90 %"),
    "COLD_95": ("#67a9cf", "冷点 cold spot, 95 %"),
    "COLD_99": ("#2166ac", "冷点 cold spot, 99 % confidence"),
}
EMERGING = {
    "NEW": "新热点 new",
    "INTENSIFYING": "加剧 intensifying",
    "PERSISTENT": "持续 persistent",
    "DIMINISHING": "减弱 diminishing",
    "NONE": "—",
}
STATES = {
    "REPORTED": "已上报 reported",
    "ACCEPTED": "已受理 accepted",
    "DISPATCHED": "已派遣 dispatched",
    "HANDLED": "已处置 handled",
    "RETURNED": "已退回 returned",
    "VERIFIED": "已核查 verified",
    "CLOSED": "已结案 closed",
}
MAX_ZOOM = 18
OPEN_CASE = "#e65100"  # orange: on red and on blue cells alike
CLOSED_CASE = "#616161"

# Folium's plugins here → the files of maps/assets/package.json that replace their CDN links.
PLUGIN_FILES: dict[str, tuple[str, str]] = {
    "leaflet-heat.js": ("script", "leaflet.heat/dist/leaflet-heat.js"),
    "markerclusterjs": ("script", "leaflet.markercluster/dist/leaflet.markercluster.js"),
    "markerclustercss": ("style", "leaflet.markercluster/dist/MarkerCluster.css"),
    "markerclusterdefaultcss": ("style", "leaflet.markercluster/dist/MarkerCluster.Default.css"),
}


@dataclass(frozen=True)
class HotspotMapData:
    """What a hotspot map shows. A cell is a dict of ``geo.case_hotspots.hotspots`` with its
    geometry parsed; ``suppressed`` true means its count is withheld (None)."""

    scope: str
    scope_name: str | None
    scope_geometry: dict[str, Any]
    cell: str
    first_day: dt.date
    last_day: dt.date
    previous: list[tuple[dt.date, dt.date]]  # oldest first
    cells: list[dict[str, Any]]
    timezone: str
    hex_m: float | None = None
    categories: list[str] | None = None  # names of the categories counted; None: all
    # The window's cases the caller may see, the most recent first (number, category_name,
    # state, reported_at, closed_at, lon, lat); None: not for this caller.
    cases: list[dict[str, Any]] | None = None
    cases_total: int = 0  # of which ``cases`` is the first part
    markers: int = 0  # the first so many of ``cases`` get a marker (all get heat)
    # For the public: cells with fewer cases show no count. None: nothing withheld.
    suppressed_below: int | None = None
    now: dt.datetime | None = None  # "days open" counts to this time (default: now)


def hotspot_map(
    data: HotspotMapData, *, tiles: str | None = None, attribution: str = ""
) -> folium.Map:
    """The map, fitted to the scope; without ``tiles`` no base map."""
    # Leaflet.markercluster needs the map's maxZoom (Folium gives one to tile layers only).
    m = folium.Map(tiles=None, control_scale=True, zoom_snap=0.25, maxZoom=MAX_ZOOM)
    if tiles:
        folium.TileLayer(tiles, attr=attribution or "base map", name="底图 base map").add_to(m)
    significant = sum(c["confidence"] != "NOT_SIGNIFICANT" for c in data.cells)
    layer = folium.FeatureGroup(
        name=f"{CELL_NAMES[data.cell]} ({len(data.cells)}, {significant} 显著 significant)"
    )
    _cells(data).add_to(layer)
    layer.add_to(m)
    if data.cases:
        zone = ZoneInfo(data.timezone)
        now = data.now or dt.datetime.now(dt.UTC)
        heat = LocalHeatMap(
            [[c["lat"], c["lon"]] for c in data.cases], name=f"热力图 heat map ({len(data.cases)})",
            radius=14, blur=12, min_opacity=0.3, max_zoom=MAX_ZOOM,
        )  # fmt: skip
        heat.add_to(m)
        shown = data.cases[: data.markers]
        rows = [[c["lat"], c["lon"], _popup(c, zone, now), _state_class(c)] for c in shown]
        CaseMarkers(
            rows, callback=MARKER, name=f"案件 cases ({len(shown)})",
            show_coverage_on_hover=False, max_cluster_radius=40,
        ).add_to(m)  # fmt: skip
    frame(m, data.scope_geometry)
    figure = m.get_root()
    title = (
        f"案件热点 Case hotspots: {data.scope_name or ''} {data.scope}, "
        f"{data.first_day} – {data.last_day}"
    )
    figure.title = html.escape(title)
    figure.html.add_child(RawHtml(COVERAGE_STYLE + STYLE), name="hotspot_style")
    figure.html.add_child(RawHtml(_legend(data, title)), name="legend")
    return m


def _cells(data: HotspotMapData) -> folium.GeoJson:
    k = data.suppressed_below
    features = []
    for c in data.cells:
        colour, label = CONFIDENCE[c["confidence"]]
        count = f"不公开 not public (fewer than {k})" if c.get("suppressed") else str(c["count"])
        properties = {
            "code": esc(c["code"]) + (f" {esc(c['name'])}" if c.get("name") else ""),
            "count": count,
            "confidence": label,
            "z": f"{c['z']:.2f} (p = {c['p']:.3g}, q = {c['q']:.3g})",
            "emerging": EMERGING[c["emerging"]],
            "fill": colour,
            "significant": c["confidence"] != "NOT_SIGNIFICANT",
        }
        features.append({"type": "Feature", "geometry": c["geometry"], "properties": properties})
    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        style_function=lambda f: {
            "fillColor": f["properties"]["fill"], "color": "#777", "weight": 0.6,
            "fillOpacity": 0.75 if f["properties"]["significant"] else 0.05,
            "className": "hotspot-cell",
        },
        highlight_function=lambda _: {"weight": 3, "color": "#000"},
        tooltip=folium.GeoJsonTooltip(
            fields=["code", "count", "confidence", "z", "emerging"],
            aliases=["编码 code", "案件 cases", "置信度 confidence", "Gi* z", "趋势 trend"],
        ),
    )  # fmt: skip


def _state_class(case: dict[str, Any]) -> str:
    return "case-closed" if case["state"] == "CLOSED" else "case-open"


def _popup(case: dict[str, Any], zone: ZoneInfo, now: dt.datetime) -> str:
    reported = case["reported_at"]
    end = case["closed_at"] or now
    days = max(0, (end - reported).days)
    open_text = (
        f"{days} 天结案 closed after {days} days" if case["closed_at"] else f"已 {days} 天 open "
        f"{days} days"
    )  # fmt: skip
    return (
        f"<b>{esc(case['number'])}</b><br>{esc(case['category_name'])}<br>"
        f"{esc(STATES.get(case['state'], case['state']))}<br>"
        f"上报 reported {reported.astimezone(zone):%Y-%m-%d %H:%M}<br>{open_text}"
    )


# One small dot per case (a DivIcon: no image to fetch), its popup from the row.
MARKER = """function (row) {
    var icon = L.divIcon({className: 'case-marker ' + row[3], iconSize: [12, 12]});
    return L.marker(new L.LatLng(row[0], row[1]), {icon: icon}).bindPopup(row[2]);
}"""


def _legend(data: HotspotMapData, title: str) -> str:
    rows = [
        f'<div class="coverage-title">{html.escape(title)}</div>',
        "<div>Getis-Ord Gi*, 相邻单元 neighbours: cells sharing an edge or a corner; "
        "置信度 confidence after the false-discovery-rate correction</div>",
    ]
    for colour, label in CONFIDENCE.values():
        rows.append(
            f'<div><span class="coverage-swatch" style="background: {colour}"></span>'
            f"{html.escape(label)}</div>"
        )
    size = f" of {data.hex_m:g} m" if data.hex_m else ""
    rows.append(f"<div>{CELL_NAMES[data.cell]}{size}: {len(data.cells):,}</div>")
    if data.previous:
        first, last = data.previous[0][0], data.previous[-1][1]
        rows.append(
            f"<div>趋势 trend: against the {len(data.previous)} windows of the same length "
            f"before, {first} – {last}</div>"
        )
    if data.categories:
        rows.append(f"<div>类别 categories: {html.escape(', '.join(data.categories))}</div>")
    if data.suppressed_below is not None:
        k = data.suppressed_below
        rows.append(f"<div>少于 {k} 件的单元不公开件数 cells of fewer than {k} cases: count "
                    "not public</div>")  # fmt: skip
    if data.cases is not None:
        rows.append(
            f'<div><span class="coverage-dot" style="background: {OPEN_CASE}"></span>未结案 open '
            f'<span class="coverage-dot" style="background: {CLOSED_CASE}"></span>已结案 closed'
            "</div>"
        )
        shown = min(data.markers, len(data.cases))
        if data.cases_total > shown:
            rows.append(
                f"<div>案件 cases: the {shown:,} most recent of {data.cases_total:,} as markers, "
                f"{len(data.cases):,} in the heat map</div>"
            )
    return f'<div class="coverage-legend hotspot-legend">{"".join(rows)}</div>'


STYLE = f"""<style>
.case-marker {{ border-radius: 50%; border: 2px solid #fff; box-shadow: 0 0 0 1px #555; }}
.case-open {{ background: {OPEN_CASE}; }}
.case-closed {{ background: {CLOSED_CASE}; }}
</style>"""


# --------------------------------------------------------------------------------------------
# The plugins' scripts and styles from maps/assets
# --------------------------------------------------------------------------------------------


class LocalPlugin(Element):
    """A Folium plugin whose files come from ``PLUGIN_FILES``: ``maps.assets`` (which knows
    only the files every map needs) sees no link on it, and it adds its own to the page's head
    when rendered, after Leaflet's, linked from the app or, ``inline``, written in."""

    plugin_links: ClassVar[list[tuple[str, str]]]
    default_js: ClassVar[list[tuple[str, str]]] = []
    default_css: ClassVar[list[tuple[str, str]]] = []
    inline = False

    def render(self, **kwargs: Any) -> None:
        header = self.get_root().header
        for name, _ in self.plugin_links:
            kind, file = PLUGIN_FILES[name]
            header.add_child(RawHtml(_tag(kind, file, self.inline)), name=name)
        super().render(**kwargs)


class LocalHeatMap(LocalPlugin, HeatMap):
    plugin_links = HeatMap.default_js


class CaseMarkers(LocalPlugin, FastMarkerCluster):
    plugin_links = FastMarkerCluster.default_js + FastMarkerCluster.default_css


def check_plugins_installed() -> None:
    for _, file in PLUGIN_FILES.values():
        if not (NODE_MODULES / file).is_file():
            raise AssetsMissing(
                f"map assets are not installed ({file} is missing): run `make assets` "
                "(npm ci in maps/assets)"
            )


def local_plugins(m: folium.Map, *, inline: bool) -> None:
    """Before ``api.maps.render``: the plugins link their files (``inline`` False) or write
    them into the page (True, for a file that opens from disk)."""
    stack: list[Element] = [m]
    while stack:
        element = stack.pop()
        if isinstance(element, LocalPlugin):
            element.inline = inline
        stack.extend(element._children.values())


def _tag(kind: str, file: str, inline: bool) -> str:
    if not inline:
        url = html.escape(served_url(file))
        if kind == "script":
            return f'<script src="{url}"></script>'
        return f'<link rel="stylesheet" href="{url}"/>'
    code = (NODE_MODULES / file).read_text(encoding="utf-8")
    if f"</{kind}" in code.lower():
        raise ValueError(f"{file} contains </{kind}: it cannot be written into a page")
    return f"<{kind}>{code}</{kind}>"
