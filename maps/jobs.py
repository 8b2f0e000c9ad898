"""The jobs map a grid worker takes to a seeker's door: merchants near the area in one layer per
category (their openings in the popup), merchants' offers as circles of their reach, and, for the
roles that keep family files, the area's job seekers at home and the optimal proposals as lines
coloured by score. It only draws what ``api.job_maps`` fetched: the public's data has no seeker.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import folium
from branca.colormap import LinearColormap
from shapely.geometry import shape

from maps.assets import RawHtml
from maps.coverage import COLOURS, frame
from maps.coverage import STYLE as COVERAGE_STYLE

SHIFT_NAMES = {
    "WEEKDAY_MORNING": "工作日上午 weekday mornings",
    "WEEKDAY_AFTERNOON": "工作日下午 weekday afternoons",
    "WEEKDAY_EVENING": "工作日晚上 weekday evenings",
    "WEEKEND_DAYTIME": "周末白天 weekend days",
    "WEEKEND_EVENING": "周末晚上 weekend evenings",
}
# The demo's categories get a Font Awesome 6 solid icon of their trade; others a shop.
ICONS = {
    "餐饮": "utensils",
    "便利店": "store",
    "理发": "scissors",
    "药店": "pills",
    "家政": "broom",
    "维修": "wrench",
    "超市": "cart-shopping",
    "快递": "truck",
    "洗衣": "soap",
    "培训": "book",
    "水果": "apple-whole",
    "服装": "shirt",
    "五金": "hammer",
}
# Marker colours of leaflet.awesome-markers (it has no others), one per category in turn.
PIN_COLOURS = (
    "blue", "red", "green", "orange", "purple", "darkred", "cadetblue", "darkgreen", "pink",
    "darkblue", "lightred", "darkpurple", "gray", "lightgreen", "black", "beige", "lightblue",
)  # fmt: skip
SEEKER = "#1f78b4"  # blue dots: none of the score colours
MATCHED = "#9e9e9e"  # a seeker already in a live or final match: no new proposal
OFFER = "#e6550d"
LABEL_LIMIT = 200


@dataclass(frozen=True)
class JobMapData:
    """What a jobs map shows. ``seekers`` and ``proposals`` None: not for this caller (the map
    then carries nothing about them); empty lists: none in the area."""

    scope: str
    scope_name: str | None
    scope_geometry: dict[str, Any]
    today: dt.date
    max_distance: float
    areas_level: str  # "Grid" or "MicroGrid": the outlines drawn for orientation
    areas: list[dict[str, Any]]  # code, name, geometry
    merchants: list[dict[str, Any]]  # geo.job_places.merchants, with ``openings``
    offers: list[dict[str, Any]]  # geo.jobs.offers, with the merchant's name, lon, lat
    seekers: list[dict[str, Any]] | None = None  # geo.job_places.seekers
    # Each: person_code, home (lon, lat), merchant (name, lon, lat), opening_title, score, text,
    # distance_meters.
    proposals: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)  # what was left out, for the legend


def jobs_map(data: JobMapData, *, tiles: str | None = None, attribution: str = "") -> folium.Map:
    """The map, fitted to the scope; without ``tiles`` the area outlines and their names on
    white are what a reader finds their way by."""
    m = folium.Map(tiles=None, control_scale=True, zoom_snap=0.25)
    if tiles:
        folium.TileLayer(tiles, attr=attribution or "base map", name="底图 base map").add_to(m)
    _areas(data).add_to(m)
    if data.offers:
        _offers(data.offers).add_to(m)
    counts = Counter(r["category"] for r in data.merchants)
    categories = sorted(counts, key=lambda c: (-counts[c], c))  # the most common first
    for i, category in enumerate(categories):
        _merchants(category, PIN_COLOURS[i % len(PIN_COLOURS)], data.merchants).add_to(m)
    scale = LinearColormap(COLOURS, vmin=0, vmax=100)
    if data.proposals is not None:
        _proposals(data.proposals, scale).add_to(m)
    if data.seekers is not None:
        _seekers(data.seekers).add_to(m)
    frame(m, data.scope_geometry)
    figure = m.get_root()
    title = (
        f"就业匹配 Jobs nearby: {data.scope_name or ''} {data.scope}, {data.today}, "
        f"≤ {data.max_distance:g} m"
    )
    figure.title = html.escape(title)
    figure.html.add_child(RawHtml(COVERAGE_STYLE + STYLE), name="jobs_style")
    figure.html.add_child(RawHtml(_legend(data, title)), name="legend")
    return m


def esc(value: object) -> str:
    """Text for a popup or tooltip: HTML-escaped, and no ``${`` (Folium puts them in JavaScript
    template literals, where it would run)."""
    return html.escape(str(value)).replace("$", "&#36;")


def _areas(data: JobMapData) -> folium.FeatureGroup:
    name = {"Grid": "网格 grids", "MicroGrid": "微网格 micro-grids"}[data.areas_level]
    layer = folium.FeatureGroup(name=f"{name} ({len(data.areas)})")
    if data.areas:
        folium.GeoJson(
            {"type": "FeatureCollection", "features": [
                {"type": "Feature", "geometry": a["geometry"], "properties": {}}
                for a in data.areas
            ]},
            interactive=False,
            style_function=lambda _: {"color": "#777", "weight": 1, "fillColor": "#f5f5f5",
                                      "fillOpacity": 0.5, "className": "job-area"},
        ).add_to(layer)  # fmt: skip
    if len(data.areas) <= LABEL_LIMIT:
        for a in data.areas:
            point = shape(a["geometry"]).representative_point()
            folium.Marker(
                [point.y, point.x], interactive=False,
                icon=folium.DivIcon(html=f"<div>{esc(a['name'] or a['code'][-3:])}</div>",
                                    class_name="cell-label area-label", icon_size=(0, 0)),
            ).add_to(layer)  # fmt: skip
    return layer


def _merchants(category: str, colour: str, merchants: list[dict[str, Any]]) -> folium.FeatureGroup:
    mine = [r for r in merchants if r["category"] == category]
    hiring = sum(1 for r in mine if any(o["open_slots"] > 0 for o in r["openings"]))
    layer = folium.FeatureGroup(name=f"商户 {esc(category)} ({len(mine)}, {hiring} hiring)")
    for r in mine:
        folium.Marker(
            [r["lat"], r["lon"]], tooltip=esc(r["name"]),
            popup=folium.Popup(_merchant_popup(r), max_width=380),
            icon=folium.Icon(color=colour, icon=ICONS.get(category, "store"), prefix="fa"),
        ).add_to(layer)  # fmt: skip
    return layer


def _merchant_popup(r: dict[str, Any]) -> str:
    lines = [
        f"<b>{esc(r['name'])}</b>",
        f"类别 category: {esc(r['category'])}",
        f"地址 address: {esc(r['address'] or '—')}",
        f"营业时间 opening hours: {esc(r['opening_hours'] or '—')}",
    ]
    if not r["openings"]:
        lines.append("暂无招聘 no openings")
        return "<br>".join(lines)
    items = "".join(
        f"<li><b>{esc(o['title'])}</b>: 空缺 open {o['open_slots']}/{o['headcount']}, "
        f"{o['wage']} 元/小时 yuan/h, {o['weekly_hours']} h/week"
        f"<br>{esc(_shifts(o['shifts']))}"
        + (f"<br>技能 skills: {esc('、'.join(o['skills']))}" if o["skills"] else "")
        + "</li>"
        for o in r["openings"]
    )
    return "<br>".join(lines) + f'<div>招聘 openings:</div><ul class="job-openings">{items}</ul>'


def _shifts(shifts: list[str]) -> str:
    return "; ".join(SHIFT_NAMES.get(s, s) for s in shifts)


def _offers(offers: list[dict[str, Any]]) -> folium.FeatureGroup:
    layer = folium.FeatureGroup(name=f"优惠 offers ({len(offers)})")
    for f in offers:
        until = f["valid_until"].isoformat() if f["valid_until"] else "长期 open-ended"
        popup = "<br>".join([
            f"<b>{esc(f['title'])}</b>",
            f"商户 merchant: {esc(f['merchant_name'])}",
            *([esc(f["description"])] if f.get("description") else []),
            f"范围 reach: {f['radius_meters']} m",
            f"有效 valid: {f['valid_from'].isoformat()} – {until}",
        ])  # fmt: skip
        folium.Circle(
            [f["lat"], f["lon"]], radius=f["radius_meters"], color=OFFER, weight=1.5,
            dash_array="6 4", fill=False,  # a dozen overlapping fills would tint the whole map
            class_name="job-offer", popup=folium.Popup(popup, max_width=320),
            tooltip=esc(f["title"]),
        ).add_to(layer)  # fmt: skip
    return layer


def _proposals(proposals: list[dict[str, Any]], scale: LinearColormap) -> folium.FeatureGroup:
    layer = folium.FeatureGroup(name=f"推荐匹配 proposed matches ({len(proposals)})")
    for p in proposals:
        popup = "<br>".join([
            f"<b>推荐 proposal</b>: {esc(p['person_code'])} → {esc(p['merchant_name'])}",
            f"岗位 opening: {esc(p['opening_title'])}",
            f"得分 score: <b>{p['score']:.1f}</b> / 100",
            esc(p["text"]),
        ])  # fmt: skip
        folium.PolyLine(
            [[p["home_lat"], p["home_lon"]], [p["merchant_lat"], p["merchant_lon"]]],
            color=scale.rgb_hex_str(p["score"]), weight=4, opacity=0.9, class_name="job-match",
            popup=folium.Popup(popup, max_width=380),
            tooltip=f"{p['score']:.1f}: {esc(p['opening_title'])}",
        ).add_to(layer)  # fmt: skip
    return layer


def _seekers(seekers: list[dict[str, Any]]) -> folium.FeatureGroup:
    """Small dots, not pins: the pins are the merchants, and homes must not look like shops."""
    layer = folium.FeatureGroup(name=f"求职者 job seekers ({len(seekers)})")
    for s in seekers:
        lines = [
            f"<b>求职者 job seeker</b> {esc(s['person_code'])}",
            f"技能 skills: {esc('、'.join(s['skills']) or '—')}",
            f"班次 shifts: {esc(_shifts(s['shifts']))}",
            f"每周 {s['weekly_hours']} 小时 hours a week",
            f"期望时薪 wage wanted: ≥ {s['min_wage']} 元/小时 yuan/h",
            f"步行 walks up to {s['max_walk_meters']} m",
        ]
        if s.get("match_state"):
            lines.append(f"已有匹配 current match: {esc(s['match_state'])}")
        folium.CircleMarker(
            [s["lat"], s["lon"]], radius=6, color="#fff", weight=1.5,
            fill_color=MATCHED if s.get("match_state") else SEEKER, fill_opacity=1,
            class_name="job-seeker", popup=folium.Popup("<br>".join(lines), max_width=340),
        ).add_to(layer)  # fmt: skip
    return layer


def _legend(data: JobMapData, title: str) -> str:
    rows = [
        f'<div class="coverage-title">{html.escape(title)}</div>',
        '<div><span class="job-pin"></span>商户 merchants (one layer per category)</div>',
        f'<div><span class="job-ring" style="border-color: {OFFER}"></span>'
        "优惠范围 an offer's reach</div>",
    ]
    if data.seekers is not None:
        rows += [
            f'<div><span class="coverage-dot" style="background: {SEEKER}"></span>'
            "求职者 job seeker at home</div>",
            f'<div><span class="coverage-dot" style="background: {MATCHED}"></span>'
            "已有匹配 already in a match</div>",
        ]
    if data.proposals is not None:
        gradient = ", ".join(COLOURS)
        rows += [
            "<div>推荐匹配 optimal proposals, home → merchant, by score</div>",
            f'<div class="coverage-scale" style="background: linear-gradient(to right, '
            f'{gradient})"></div>',
            '<div class="coverage-ticks"><span>0</span><span>50</span><span>100</span></div>',
        ]
    else:
        rows.append(
            "<div>求职者与匹配仅对网格工作人员显示 seekers and matches: grid staff only</div>"
        )
    rows += [f"<div>{esc(note)}</div>" for note in data.notes]
    return f'<div class="coverage-legend">{"".join(rows)}</div>'


STYLE = """<style>
.job-pin { display: inline-block; width: 10px; height: 14px; margin: 0 6px 0 2px;
  background: #38aadd; border-radius: 50% 50% 50% 0; transform: rotate(-45deg);
  vertical-align: middle; }
.job-ring { display: inline-block; width: 12px; height: 12px; border-radius: 50%;
  border: 2px dashed; margin: 0 6px 0 1px; vertical-align: middle; }
.area-label > div { font-weight: 500; color: #555; font-size: 12px; }
ul.job-openings { margin: 2px 0 0 0; padding-left: 18px; }
</style>"""
