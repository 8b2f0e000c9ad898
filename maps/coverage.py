"""The visit-coverage map a grid center puts on the wall: cells coloured by the share of their
households contacted within their cadence, one switchable layer per level, the overdue class C
households as markers when the caller may see them. It only draws what ``api.maps`` fetched.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import folium
from branca.colormap import LinearColormap
from shapely.geometry import shape

from maps.assets import RawHtml

LEVEL_NAMES = {
    "GRID": "网格 grids",
    "MICRO_GRID": "微网格 micro-grids",
    "BUILDING": "楼栋 buildings",
}
# Red (nobody contacted) through yellow to green (everyone within cadence).
COLOURS = ["#d73027", "#fee08b", "#1a9850"]
OVERDUE = "#7b1fa2"  # purple: stands out on red and on green
NO_DATA = "#bdbdbd"  # no households, or too few for the public to see counts
LABEL_LIMIT = 200  # cells per layer that get a name label; more would cover the map


@dataclass(frozen=True)
class CoverageData:
    """What a coverage map shows. A cell is a dict of ``geo.coverage.cells``; ``suppressed``
    true means its counts are withheld (None)."""

    scope: str
    scope_name: str | None
    scope_geometry: dict[str, Any]
    level: str  # the layer shown when the map opens
    as_of: dt.date
    layers: dict[str, list[dict[str, Any]]]  # level → cells, coarsest first
    timezone: str  # of the scope's days: a last contact is shown as a local day
    # Overdue class C households (``geo.coverage.overdue_households``); None: not for this caller.
    overdue_c: list[dict[str, Any]] | None = None
    left_out: dict[str, int] = field(default_factory=dict)  # level → cells, too many to draw
    # For the public: cells with fewer households show no counts. None: nothing withheld.
    suppressed_below: int | None = None


def coverage_map(
    data: CoverageData, *, tiles: str | None = None, attribution: str = ""
) -> folium.Map:
    """The map, fitted to the scope. Without ``tiles`` there is no base map: the cells and
    their labels on white still read."""
    m = folium.Map(tiles=None, control_scale=True, zoom_snap=0.25)
    if tiles:
        folium.TileLayer(tiles, attr=attribution or "base map", name="底图 base map").add_to(m)
    scale = LinearColormap(COLOURS, vmin=0, vmax=1)
    for level, cells in data.layers.items():
        layer = folium.FeatureGroup(
            name=f"{LEVEL_NAMES[level]} ({len(cells)})", show=level == data.level
        )
        _cells(cells, scale, data.suppressed_below).add_to(layer)
        if len(cells) <= LABEL_LIMIT:
            for cell in cells:
                _label(cell).add_to(layer)
        layer.add_to(m)
    if data.overdue_c is not None:
        _overdue(data.overdue_c, ZoneInfo(data.timezone)).add_to(m)
    frame(m, data.scope_geometry)
    figure = m.get_root()
    title = f"走访覆盖 Visit coverage: {data.scope_name or ''} {data.scope}, {data.as_of}"
    figure.title = html.escape(title)
    # In the body: after Leaflet's and Bootstrap's style sheets, which the head links.
    figure.html.add_child(RawHtml(STYLE), name="coverage_style")
    figure.html.add_child(RawHtml(_legend(data, title)), name="legend")
    return m


def frame(m: folium.Map, scope_geometry: dict[str, Any]) -> None:
    """The scope's outline, the layer control, and the view fitted to the scope."""
    folium.GeoJson(
        scope_geometry, name="outline", control=False, interactive=False,
        style_function=lambda _: {"color": "#333", "weight": 3, "fill": False},
    ).add_to(m)  # fmt: skip
    folium.LayerControl(collapsed=False).add_to(m)
    west, south, east, north = shape(scope_geometry).bounds
    m.fit_bounds([[south, west], [north, east]])


def _cells(cells: list[dict[str, Any]], scale: LinearColormap, k: int | None) -> folium.GeoJson:
    features = [
        {"type": "Feature", "geometry": c["geometry"], "properties": _tooltip_fields(c, scale, k)}
        for c in cells
    ]
    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        style_function=lambda f: {
            "fillColor": f["properties"]["fill"], "fillOpacity": 0.7, "color": "#555",
            "weight": 1, "className": "coverage-cell",
        },
        highlight_function=lambda _: {"weight": 3, "color": "#000"},
        tooltip=folium.GeoJsonTooltip(
            fields=["code", "name", "households", "contacted", "coverage", "overdue"],
            aliases=["编码 code", "名称 name", "户数 households", "已联系 contacted",
                     "覆盖率 coverage", "逾期 overdue A / B / C"],
        ),
    )  # fmt: skip


def _tooltip_fields(cell: dict[str, Any], scale: LinearColormap, k: int | None) -> dict[str, str]:
    shown = {"code": cell["code"], "name": html.escape(cell["name"] or "—")}
    if cell.get("suppressed"):
        return shown | {
            "households": "—", "contacted": "—", "overdue": "—", "fill": NO_DATA,
            "coverage": f"不公开 suppressed (fewer than {k} households)",
        }  # fmt: skip
    ratio = cell["ratio"]
    return shown | {
        "households": str(cell["households"]),
        "contacted": str(cell["contacted"]),
        "coverage": "—" if ratio is None else f"{ratio:.0%}",
        "overdue": f"{cell['overdue_a']} / {cell['overdue_b']} / {cell['overdue_c']}",
        "fill": NO_DATA if ratio is None else scale.rgb_hex_str(ratio),
    }


def _label(cell: dict[str, Any]) -> folium.Marker:
    """The cell's name (or the last digits of its code) and coverage, at a point inside it."""
    point = shape(cell["geometry"]).representative_point()
    name = html.escape(cell["name"] or cell["code"][-3:])
    ratio = None if cell.get("suppressed") else cell["ratio"]
    text = name if ratio is None else f"{name}<br>{ratio:.0%}"
    return folium.Marker(
        [point.y, point.x], interactive=False,
        icon=folium.DivIcon(html=f"<div>{text}</div>", class_name="cell-label", icon_size=(0, 0)),
    )  # fmt: skip


def _overdue(households: list[dict[str, Any]], zone: ZoneInfo) -> folium.FeatureGroup:
    """Small dots, not pins: a poorly covered grid has hundreds, and pins would hide the map."""
    layer = folium.FeatureGroup(name=f"逾期C类户 overdue class C households ({len(households)})")
    for h in households:
        last = h["last_contact_at"]
        last_text = last.astimezone(zone).date().isoformat() if last else "从未 never"
        tip = (
            f"{html.escape(h['code'])}<br>C类 逾期 {h['days_overdue']} 天 "
            f"(class C, {h['days_overdue']} days overdue)<br>上次联系 last contact: {last_text}"
        )
        folium.CircleMarker(
            [h["lat"], h["lon"]], radius=5, color="#fff", weight=1.5, fill_color=OVERDUE,
            fill_opacity=1, tooltip=tip, class_name="overdue-c",
        ).add_to(layer)  # fmt: skip
    return layer


def _legend(data: CoverageData, title: str) -> str:
    gradient = ", ".join(COLOURS)
    k = data.suppressed_below
    grey = "无住户 no households"
    if k is not None:
        grey = f"无住户或少于 {k} 户 no households, or fewer than {k}: counts not public"
    rows = [
        f'<div class="coverage-title">{html.escape(title)}</div>',
        "<div>覆盖率 share of households contacted within their cadence</div>",
        f'<div class="coverage-scale" style="background: linear-gradient(to right, {gradient})">'
        "</div>",
        '<div class="coverage-ticks"><span>0%</span><span>50%</span><span>100%</span></div>',
        f'<div><span class="coverage-swatch" style="background: {NO_DATA}"></span>{grey}</div>',
    ]
    if data.overdue_c is not None:
        rows.append(
            f'<div><span class="coverage-dot" style="background: {OVERDUE}"></span>'
            "逾期C类户 overdue class C household</div>"
        )
    for level, count in data.left_out.items():
        rows.append(
            f"<div>{LEVEL_NAMES[level]}: {count} cells, too many to draw here; open a smaller "
            "scope</div>"
        )
    return f'<div class="coverage-legend">{"".join(rows)}</div>'


STYLE = """<style>
.leaflet-container { background: #fff; font-family: "Noto Sans CJK SC", "Source Han Sans SC",
  "Microsoft YaHei", "PingFang SC", sans-serif; }
.cell-label > div { display: inline-block; transform: translate(-50%, -50%); font-size: 13px;
  line-height: 1.2; text-align: center; white-space: nowrap; color: #111; font-weight: 600;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff; }
.coverage-legend { position: fixed; bottom: 28px; right: 10px; z-index: 1000; background: #fff;
  padding: 8px 10px; border: 1px solid #999; border-radius: 4px; font: 13px/1.5 "Noto Sans CJK SC",
  "Microsoft YaHei", sans-serif; max-width: 22rem; }
.coverage-title { font-weight: bold; font-size: 15px; }
.coverage-scale { height: 12px; border: 1px solid #777; margin-top: 4px; }
.coverage-ticks { display: flex; justify-content: space-between; }
.coverage-swatch { display: inline-block; width: 14px; height: 12px; border: 1px solid #777;
  vertical-align: middle; margin-right: 4px; }
.coverage-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  border: 1.5px solid #fff; box-shadow: 0 0 0 1px #777; margin: 0 6px 0 2px; }
</style>"""
