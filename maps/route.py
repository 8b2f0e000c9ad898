"""The walking route a block head follows on a phone: the walk as a line, the stops as numbered
circles (a popup each: household, class, arrival, metres walked), the office it starts and ends
at, and a summary that folds away. It only draws the ``geo.routes.Route`` that
``api.route_maps`` fetched.
"""

from __future__ import annotations

import html
from itertools import groupby
from zoneinfo import ZoneInfo

import folium
import orjson

from geo.routes import Route, Stop
from maps.assets import RawHtml
from maps.coverage import STYLE as COVERAGE_STYLE
from maps.jobs import esc

PATH = "#1565c0"
CLASS_COLOURS = {"C": "#c62828", "B": "#1565c0"}  # class C stands out; A is never walked to
OTHER = "#546e7a"
START = "#2e7d32"
SKIPS_SHOWN = 3  # skipped households named in the summary; the rest are counted
STOP_PX = 40  # a stop's circle: a tap target a thumb finds


def route_map(route: Route, *, tiles: str | None = None, attribution: str = "") -> folium.Map:
    """The map, fitted to the walk. Without ``tiles`` the line and the numbers on white are the
    whole map: a block head walks it with the street in front of them."""
    m = folium.Map(tiles=None, control_scale=True, zoom_snap=0.25)
    if tiles:
        folium.TileLayer(tiles, attr=attribution or "base map", name="底图 base map").add_to(m)
    points: list[list[float]] = []
    if route.path:
        line = [[lat, lon] for lon, lat in orjson.loads(route.path)["coordinates"]]
        folium.PolyLine(
            line, color=PATH, weight=6, opacity=0.8, class_name="route-path", interactive=False
        ).add_to(m)
        points += line
    # Markers join the map with their group, after their icons are set: one added straight
    # to the map would load Leaflet's default pin image first.
    markers = folium.FeatureGroup(name="站 stops", control=False)
    if route.start_lonlat:
        lon, lat = route.start_lonlat
        folium.Marker(
            [lat, lon], z_index_offset=-1000,  # under a stop at the same door
            popup=folium.Popup(f"<b>起点与终点 start and end</b><br>{esc(route.start)}",
                               max_width=260),
            icon=_icon("起", START, "route-start"),
        ).add_to(markers)  # fmt: skip
        points.append([lat, lon])
    zone = ZoneInfo(route.timezone)
    at_door = sorted(route.stops, key=lambda s: (s.lon, s.lat, s.order))
    for (lon, lat), group in groupby(at_door, key=lambda s: (s.lon, s.lat)):
        stops = list(group)
        folium.Marker(
            [lat, lon], popup=folium.Popup(_popup(stops, zone), max_width=280),
            icon=_icon(_numbers([s.order for s in stops]),
                       CLASS_COLOURS.get(stops[0].household_class, OTHER), "route-stop"),
        ).add_to(markers)  # fmt: skip
        points.append([lat, lon])
    markers.add_to(m)
    if points:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        m.fit_bounds(
            [[min(lats), min(lons)], [max(lats), max(lons)]],
            padding_top_left=(64, 84), padding_bottom_right=(28, 40),  # clear of the controls
        )  # fmt: skip
    figure = m.get_root()
    title = f"步行路线 Walking route: {route.worker_code}, {route.day}"
    figure.title = html.escape(title)
    figure.html.add_child(RawHtml(COVERAGE_STYLE + STYLE), name="route_style")
    figure.html.add_child(RawHtml(_summary(route, zone)), name="summary")
    return m


def _icon(label: str, colour: str, class_name: str) -> folium.DivIcon:
    width = max(STOP_PX, 16 + 10 * len(label))
    return folium.DivIcon(
        html=f'<div style="background: {colour}">{esc(label)}</div>', class_name=class_name,
        icon_size=(width, STOP_PX), icon_anchor=(width // 2, STOP_PX // 2),
    )  # fmt: skip


def _numbers(orders: list[int]) -> str:
    """The stops at one door: 3 → "3", 3 and 4 → "3,4", 3 to 6 → "3–6"."""
    runs: list[list[int]] = []
    for n in orders:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def _popup(stops: list[Stop], zone: ZoneInfo) -> str:
    return "<hr>".join(
        f"<b>第 {s.order} 站 stop {s.order}</b> · {s.arrival_at.astimezone(zone):%H:%M}<br>"
        f"{esc(s.household_code)}<br>{esc(s.household_class)} 类 class {esc(s.household_class)}"
        f" · 步行 walk {s.leg_m:,.0f} m"
        for s in stops
    )


def _summary(route: Route, zone: ZoneInfo) -> str:
    """Folded to its first line (worker, day, stops, km, skipped) so the map has the screen;
    open when the route is empty, to say why."""
    head = (
        f"{esc(route.worker_code)} · {route.day} · {len(route.stops)} 站 stops · "
        f"{route.total_m / 1000:.1f} km"
    )
    if route.skipped:
        head += f" · {len(route.skipped)} 未排入 skipped"
    rows: list[str] = []
    if route.stops:
        first, last = route.stops[0].arrival_at, route.stops[-1].arrival_at
        rows.append(
            f"<div>{first.astimezone(zone):%H:%M}–{last.astimezone(zone):%H:%M}, 从 from "
            f"{esc(route.start)} 出发并返回 and back (返程 last leg {route.return_m:,.0f} m)</div>"
        )
        rows.append(
            "".join(
                f'<span class="route-key" style="background: {colour}"></span>{k} 类 class {k} '
                for k, colour in CLASS_COLOURS.items()
            )
        )
    if route.reason:
        rows.append(f'<div class="route-reason">{esc(route.reason)}</div>')
    if route.skipped:
        items = "".join(
            f"<li>{esc(s.household_code)}: {esc(s.reason)}</li>"
            for s in route.skipped[:SKIPS_SHOWN]
        )
        more = len(route.skipped) - SKIPS_SHOWN
        if more > 0:
            items += f"<li>… 另 {more} 户 and {more} more</li>"
        rows.append(f"<div>未排入 skipped: {len(route.skipped)}</div><ul>{items}</ul>")
    if route.planned_at:
        rows.append(f"<div>规划于 planned {route.planned_at.astimezone(zone):%Y-%m-%d %H:%M}</div>")
    body = "".join(rows)
    fold = "" if route.stops else " open"
    return f'<details class="route-summary"{fold}><summary>{head}</summary>{body}</details>'


STYLE = """<style>
.route-stop > div, .route-start > div { display: flex; align-items: center;
  justify-content: center; width: 100%; height: 100%; box-sizing: border-box; color: #fff;
  border: 2px solid #fff; border-radius: 20px; box-shadow: 0 1px 4px rgba(0, 0, 0, .6);
  font: 700 16px/1 "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
.route-start > div { border-radius: 6px; }
.route-summary { position: fixed; top: 10px; right: 10px; z-index: 1000; background: #fff;
  max-width: min(26rem, calc(100vw - 76px)); max-height: 45vh; overflow: auto;
  padding: 8px 10px; border: 1px solid #999; border-radius: 6px;
  font: 14px/1.45 "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
.route-summary summary { font-weight: bold; cursor: pointer; min-height: 28px; }
.route-summary ul { margin: 2px 0; padding-left: 18px; }
.route-reason { font-weight: bold; color: #b71c1c; }
.route-key { display: inline-block; width: 12px; height: 12px; border-radius: 50%;
  vertical-align: middle; margin: 0 4px 0 0; }
.leaflet-touch .leaflet-bar a, .leaflet-bar a { width: 44px; height: 44px; line-height: 44px;
  font-size: 24px; }
.leaflet-popup-content { font-size: 15px; line-height: 1.45; }
</style>"""
