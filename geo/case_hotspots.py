"""Case hotspots: the cases of an area counted per cell and window, and each cell's Getis-Ord
Gi*, FDR-corrected confidence and emerging trend (``geo.hotspots`` holds the statistics).

Cells (``cell``):

- ``GRID``, ``MICRO_GRID``: the grids or micro-grids of the scope, a case counted in the one
  its code names. Neighbours: cells whose polygons share an edge or a vertex
  (``ST_Intersects``, in PostGIS).
- ``HEX``: the hexagons of PostGIS's ``ST_HexagonGrid`` with edges of ``hex_m`` metres (25 to
  2,000) that intersect the scope, made per call in the UTM zone of the centroid of the scope's
  district, so every area of a district uses the same projection. Empty hexagons are cells like
  any other (they matter to Gi*); so are the scope's empty grids. A hexagon's code,
  ``H150-c12-r-7``, is its column and row in ``ST_HexagonGrid`` and its edge length: the same
  hexagon has the same code on every call with the same size and projection (``srid``, given
  with the cells; codes of two projections are not comparable). Neighbours: the six hexagons
  around, from the column and row (an odd column is half a hexagon higher than an even one).
  No more than ``MAX_HEXAGONS`` over the scope's bounding box (what PostGIS generates).

Windows: the days ``first_day`` to ``last_day`` (the last 30 days up to today by default), days
in the subdistrict's time zone, and the ``PREVIOUS_WINDOWS`` windows of the same length just
before, for ``emerging`` (rule in ``geo.hotspots``). Counted: every case reported in a window,
less the duplicates merged into another case and the rejected ones.

Counts come from the ``SECURITY DEFINER`` functions of migration 0010, for every caller alike:
hotspots are aggregates, the same for whoever asks, and no role reads a case through them. The
cases themselves (``window_cases``, the map's markers) are read under row-level security.
Small counts are withheld from the public by the API (``suppress``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import coverage
from geo import hotspots as stats
from geo import queries as q
from geo.errors import BadInput

CELLS = ("GRID", "MICRO_GRID", "HEX")
AREA_CELLS = {"GRID": q.GRID, "MICRO_GRID": q.MICRO_GRID}
HEX_MIN_M = 25.0
HEX_MAX_M = 2000.0
DEFAULT_HEX_M = 150.0
MAX_HEXAGONS = 100_000
PREVIOUS_WINDOWS = 3
DEFAULT_DAYS = 30
SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class Window:
    first_day: dt.date
    last_day: dt.date


@dataclass
class Hotspots:
    """A call's cells, in code order (hexagons by column, then row). Each cell is a dict:
    code, name (None for hexagons), geometry (GeoJSON text), count (the window's), counts (every
    window's, oldest first, the window's last), z, p (raw, two-sided), q (Benjamini–Hochberg),
    confidence, emerging; hexagons also i, j."""

    scope: str
    cell: str
    window: Window
    previous: list[Window]  # oldest first
    cells: list[dict[str, Any]]
    hex_m: float | None = None
    srid: int | None = None  # the projection of the hexagons (a UTM zone)
    timezone: str = "Asia/Shanghai"
    categories: list[str] = field(default_factory=list)  # empty: every category


def hotspots(
    *,
    session: Session,
    scope: str,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    categories: Sequence[str] | None = None,
    cell: str = "HEX",
    hex_m: float | None = None,
    previous: int = PREVIOUS_WINDOWS,
) -> Hotspots:
    """Every cell of ``cell`` in ``scope`` with its count and statistics. Raises ``BadInput``
    or ``NotFound`` naming ``scope``, ``cell``, ``from``, ``to``, ``categories`` or
    ``hexMeters``."""
    area = q.area_by_code(session=session, code=scope, argument="scope")
    entity = q.AREAS_BY_WIDTH[len(scope)]
    window = check_window(session, scope, first_day, last_day)
    cats = check_categories(session, categories)
    windows = [_shift(window, k) for k in range(previous + 1)]  # the window first
    if cell in AREA_CELLS:
        width = AREA_CELLS[cell].code_width
        assert width is not None
        if width < len(scope):
            raise BadInput(
                "cell", f"{cell} cells are larger than the scope {scope} (a {len(scope)}-digit "
                "area): use a smaller cell"
            )  # fmt: skip
        cells, neighbours = _area_cells(session, scope, cell)
        counts = _area_counts(session, scope, width, window, previous, cats, cells)
        hex_size = srid = None
    elif cell == "HEX":
        hex_size = check_hex_meters(DEFAULT_HEX_M if hex_m is None else hex_m)
        srid = utm_srid(session, scope)
        check_hexagon_count(session, entity.table, scope, srid, hex_size)
        cells = _hex_cells(session, entity.table, scope, srid, hex_size)
        neighbours = hex_neighbours([(c["i"], c["j"]) for c in cells])
        counts = _hex_counts(session, scope, srid, hex_size, window, previous, cats, cells)
    else:
        raise BadInput("cell", f"{cell!r} is not one of {', '.join(CELLS)}")

    figures = [stats.hotspot_stats(counts[w], neighbours) for w in range(previous + 1)]
    now = figures[0]
    before = figures[:0:-1]  # oldest first
    trend = stats.emerging(
        now.z, now.confidence, [f.z for f in before], [f.confidence for f in before]
    )
    history = counts[::-1].T  # cells x windows, oldest first
    for n, c in enumerate(cells):
        c.update(
            count=int(counts[0, n]), counts=[int(v) for v in history[n]], z=float(now.z[n]),
            p=float(now.p[n]), q=float(now.q[n]), confidence=now.confidence[n],
            emerging=trend[n],
        )  # fmt: skip
    return Hotspots(
        scope=scope, cell=cell, window=window, previous=windows[:0:-1], cells=cells,
        hex_m=hex_size, srid=srid, timezone=area.get("timezone") or _timezone(session, scope),
        categories=cats,
    )  # fmt: skip


def suppress(cell: dict[str, Any], k: int) -> dict[str, Any]:
    """The cell as the public sees it: no count, and no window's count, below ``k`` cases."""
    if cell["count"] < k:
        return cell | {"count": None, "counts": None, "suppressed": True}
    return cell | {"counts": None, "suppressed": False}


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def check_window(
    session: Session, scope: str, first_day: dt.date | None, last_day: dt.date | None
) -> Window:
    """The days asked for: ``to`` defaults to today where the scope is, ``from`` to
    ``DEFAULT_DAYS`` days before ``to``."""
    if last_day is None:
        last_day = coverage.today(session, scope)
    if first_day is None:
        first_day = last_day - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise BadInput("from", f"{first_day} is after to ({last_day})")
    return Window(first_day, last_day)


def check_categories(session: Session, categories: Sequence[str] | None) -> list[str]:
    """The category codes, checked against the catalogue; None: every category."""
    if categories is None:
        return []
    codes = sorted({c.strip() for c in categories})
    if not codes or "" in codes:
        raise BadInput("categories", "give category codes, or leave the argument out for all")
    known = set(
        session.execute(
            text("SELECT code FROM case_category WHERE code = ANY(:c)"), {"c": codes}
        ).scalars()
    )
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise BadInput(
            "categories", f"unknown category code(s) {', '.join(map(repr, unknown))}: see "
            "caseCategories"
        )  # fmt: skip
    return codes


def check_hex_meters(meters: float) -> float:
    if not math.isfinite(meters) or not HEX_MIN_M <= meters <= HEX_MAX_M:
        raise BadInput(
            "hexMeters", f"{meters:g} is out of range: a hexagon's edge is {HEX_MIN_M:g} to "
            f"{HEX_MAX_M:g} metres"
        )  # fmt: skip
    return float(meters)


def utm_srid(session: Session, scope: str) -> int:
    """The UTM zone (EPSG 326xx north, 327xx south) of the centroid of the scope's district."""
    lon, lat = session.execute(
        text(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) AS c FROM district"
            " WHERE code = :d) t"
        ),
        {"d": scope[:6]},
    ).one()
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def hexagons_over(width_m: float, height_m: float, hex_m: float) -> float:
    """About how many hexagons ST_HexagonGrid makes over a box of this size."""
    return (width_m / (1.5 * hex_m) + 2) * (height_m / (SQRT3 * hex_m) + 2)


def smallest_hexagon(width_m: float, height_m: float, limit: int) -> int:
    """The smallest whole edge length whose hexagons over the box stay within ``limit``."""
    a, b = width_m / 1.5, height_m / SQRT3
    if a * b == 0:
        return math.ceil(HEX_MIN_M)
    # (a u + 2)(b u + 2) = limit for u = 1 / edge
    u = (-2 * (a + b) + math.sqrt(4 * (a + b) ** 2 - 4 * a * b * (4 - limit))) / (2 * a * b)
    edge = math.ceil(1 / u)
    while hexagons_over(width_m, height_m, edge) > limit:
        edge += 1
    return max(edge, math.ceil(HEX_MIN_M))


def check_hexagon_count(session: Session, table: str, scope: str, srid: int, hex_m: float) -> None:
    width, height = session.execute(
        text(
            "SELECT ST_XMax(b) - ST_XMin(b), ST_YMax(b) - ST_YMin(b) FROM"
            f" (SELECT ST_Transform(geom, :srid)::box2d AS b FROM {table} WHERE code = :scope) t"
        ),
        {"srid": srid, "scope": scope},
    ).one()
    n = hexagons_over(width, height, hex_m)
    if n > MAX_HEXAGONS:
        least = smallest_hexagon(width, height, MAX_HEXAGONS)
        raise BadInput(
            "hexMeters", f"{hex_m:g} m hexagons over {scope} would be about {n:,.0f}, more than "
            f"{MAX_HEXAGONS:,}: use hexMeters of {least} or more, or a smaller scope"
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Cells, neighbours, counts
# --------------------------------------------------------------------------------------------


def _shift(window: Window, k: int) -> Window:
    days = dt.timedelta(days=(window.last_day - window.first_day).days + 1) * k
    return Window(window.first_day - days, window.last_day - days)


def _area_cells(
    session: Session, scope: str, cell: str
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    table = AREA_CELLS[cell].table
    inside = "{t}.code >= :scope AND {t}.code < :scope || chr(1114111)"
    rows = session.execute(
        text(
            f"SELECT t.code, t.name, ST_AsGeoJSON(t.geom, {q.GEOJSON_DIGITS}) AS geometry"
            f" FROM {table} t WHERE {inside.format(t='t')} ORDER BY t.code"
        ),
        {"scope": scope},
    ).mappings()
    cells = [dict(r) for r in rows]
    index = {c["code"]: n for n, c in enumerate(cells)}
    neighbours: list[list[int]] = [[] for _ in cells]
    pairs = session.execute(
        text(
            f"SELECT a.code, b.code FROM {table} a JOIN {table} b"
            " ON a.geom && b.geom AND a.code < b.code AND ST_Intersects(a.geom, b.geom)"
            f" WHERE {inside.format(t='a')} AND {inside.format(t='b')}"
        ),
        {"scope": scope},
    )
    for a, b in pairs:
        neighbours[index[a]].append(index[b])
        neighbours[index[b]].append(index[a])
    for nb in neighbours:
        nb.sort()
    return cells, neighbours


def _area_counts(
    session: Session,
    scope: str,
    width: int,
    window: Window,
    previous: int,
    categories: list[str],
    cells: list[dict[str, Any]],
) -> np.ndarray:
    """windows x cells, the window first."""
    index = {c["code"]: n for n, c in enumerate(cells)}
    rows = session.execute(
        text(
            "SELECT cell, win, cases FROM case_area_counts(:scope, :width, :first, :last,"
            " :windows, CAST(:cats AS text[]))"
        ),
        {"scope": scope, "width": width, "first": window.first_day, "last": window.last_day,
         "windows": previous, "cats": categories or None},
    )  # fmt: skip
    counts = np.zeros((previous + 1, len(cells)))
    for code, win, n in rows:
        if code in index:
            counts[win, index[code]] = n
    return counts


def _hex_cells(
    session: Session, table: str, scope: str, srid: int, hex_m: float
) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            f"WITH area AS MATERIALIZED (SELECT ST_Transform(geom, :srid) AS g FROM {table}"
            " WHERE code = :scope)"
            f" SELECT h.i, h.j, ST_AsGeoJSON(ST_Transform(h.geom, 4326), {q.GEOJSON_DIGITS})"
            " AS geometry FROM area, ST_HexagonGrid(:edge, area.g) h"
            " WHERE ST_Intersects(h.geom, area.g) ORDER BY h.i, h.j"
        ),
        {"srid": srid, "scope": scope, "edge": hex_m},
    )
    return [
        {"code": stats.hex_code(i, j, hex_m), "name": None, "geometry": geometry, "i": i, "j": j}
        for i, j, geometry in rows
    ]


def hex_neighbours(cells: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The neighbours of each hexagon (i, j) of ST_HexagonGrid among ``cells``: the two above
    and below in its column, and two in each column beside it, those at rows j - 1 and j for an
    even column, j and j + 1 for an odd one (odd columns sit half a hexagon higher)."""
    index = {c: n for n, c in enumerate(cells)}
    neighbours = []
    for i, j in cells:
        rows = (j, j + 1) if abs(i) % 2 else (j - 1, j)
        around = [(i, j - 1), (i, j + 1)] + [(i + d, r) for d in (-1, 1) for r in rows]
        neighbours.append(sorted(index[c] for c in around if c in index))
    return neighbours


def _hex_counts(
    session: Session,
    scope: str,
    srid: int,
    hex_m: float,
    window: Window,
    previous: int,
    categories: list[str],
    cells: list[dict[str, Any]],
) -> np.ndarray:
    """windows x cells, the window first. Cases outside every hexagon of the scope (a point
    outside its outline) are not counted."""
    index = {(c["i"], c["j"]): n for n, c in enumerate(cells)}
    rows = session.execute(
        text(
            "SELECT hex_i, hex_j, win, cases FROM case_hex_counts(:scope, :srid, :edge, :first,"
            " :last, :windows, CAST(:cats AS text[]))"
        ),
        {"scope": scope, "srid": srid, "edge": hex_m, "first": window.first_day,
         "last": window.last_day, "windows": previous, "cats": categories or None},
    )  # fmt: skip
    counts = np.zeros((previous + 1, len(cells)))
    for i, j, win, n in rows:
        at = index.get((i, j))
        if at is not None:
            counts[win, at] = n
    return counts


def _timezone(session: Session, scope: str) -> str:
    zone = session.execute(
        text("SELECT timezone FROM subdistrict WHERE code = :c"), {"c": scope[:9]}
    ).scalar()
    return zone or "Asia/Shanghai"


# --------------------------------------------------------------------------------------------
# The cases themselves (row-level security)
# --------------------------------------------------------------------------------------------

CASES = """
SELECT {columns}
FROM grid_case c
JOIN subdistrict sd ON sd.code = left(c.grid_code, 9){join}
WHERE c.grid_code >= left(:scope, 15) AND c.grid_code < left(:scope, 15) || chr(1114111)
  AND (length(:scope) <= 15 OR c.micro_grid_code = :scope)
  AND c.reported_at >= CAST(:first AS date)::timestamp AT TIME ZONE sd.timezone
  AND c.reported_at < (CAST(:last AS date) + 1)::timestamp AT TIME ZONE sd.timezone
  AND (CAST(:cats AS text[]) IS NULL OR c.category_code = ANY (CAST(:cats AS text[])))
  AND c.merged_into IS NULL AND c.state <> 'REJECTED'
"""
CASE_COLUMNS = (
    "c.number, c.category_code, cat.name AS category_name, c.state, c.reported_at,"
    " c.closed_at, ST_X(c.location) AS lon, ST_Y(c.location) AS lat"
)
CATEGORY = " JOIN case_category cat ON cat.code = c.category_code"


def window_cases(
    *, session: Session, found: Hotspots, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The counted cases of the window that the caller may see (row-level security), the most
    recent first, at most ``limit``; and how many the caller may see in all."""
    params = {
        "scope": found.scope, "first": found.window.first_day, "last": found.window.last_day,
        "cats": found.categories or None, "limit": limit,
    }  # fmt: skip
    listed = CASES.format(columns=CASE_COLUMNS, join=CATEGORY)
    rows = session.execute(
        text(listed + " ORDER BY c.reported_at DESC, c.number DESC LIMIT :limit"), params
    ).mappings()
    cases = [dict(r) for r in rows]
    total = len(cases)
    if total == limit:
        total = session.execute(
            text(CASES.format(columns="count(*)", join="")), params
        ).scalar_one()
    return cases, total
