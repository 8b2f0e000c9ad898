"""Regular unit grids: square or hexagonal cells of a fixed area laid over an area.

Urban management counts and dispatches by cells of a fixed area (10,000 m² is the habit), apart
from the household grids. PostGIS lays the cells out (``ST_SquareGrid`` / ``ST_HexagonGrid``) in
the UTM zone of the scope's centroid, a metric CRS in which a 6° zone distorts areas by under
0.3 %; the cell size is then corrected by the scale measured on the ellipsoid at the centroid, so
a cell has its area on the ground, not on the map. Cells are kept whole (the habit: a cell is a
cell, wherever the boundary runs) when they share area with the scope, and ``partial`` marks
those reaching beyond it. Numbering: row by row from the north, west to east within a row (see
migration 0013 for the code). The layer is one transaction: drawing it again replaces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from geo.errors import BadInput, NotFound
from importers.codes import level_of

Shape = Literal["square", "hex"]
SHAPES: dict[str, str] = {"square": "S", "hex": "H"}
MIN_AREA_M2 = 100
MAX_AREA_M2 = 10_000_000
# Six-digit cell numbers; well past any sensible layer (a district in 100 m² cells).
MAX_CELLS = 999_999

# A table per level, each with ``code`` and a MultiPolygon ``geom`` in 4326.
TABLES = {
    "district": "district",
    "subdistrict": "subdistrict",
    "community": "community",
    "grid": "grid",
    "micro_grid": "micro_grid",
}

CELLS = """
WITH scope AS (SELECT ST_Transform(geom, %(srid)s) AS g FROM {table} WHERE code = %(scope)s),
cells AS (
    SELECT c.i, c.j, c.geom, NOT ST_CoveredBy(c.geom, scope.g) AS partial
    FROM scope, {grid}(%(size)s, scope.g) AS c
    WHERE ST_Intersects(c.geom, scope.g) AND NOT ST_Touches(c.geom, scope.g)
),
numbered AS (
    SELECT *, row_number() OVER (ORDER BY j DESC, i) AS n,
           max(j) OVER () - j + 1 AS row_no, i - min(i) OVER () + 1 AS col_no
    FROM cells
)
INSERT INTO unit_grid_cell (layer_id, code, row_no, col_no, partial, geom)
SELECT %(layer)s, %(scope)s || %(letter)s || lpad(n::text, 6, '0'), row_no, col_no, partial,
       ST_Transform(geom, 4326)
FROM numbered
"""


@dataclass(frozen=True)
class UnitGrid:
    scope: str
    shape: str
    area_m2: int
    srid: int
    cells: int
    partial: int

    def as_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "shape": self.shape, "areaM2": self.area_m2,
                "cells": self.cells, "partial": self.partial}  # fmt: skip


def utm_srid(lon: float, lat: float) -> int:
    """The EPSG code of the WGS-84 UTM zone holding the point (326zz north, 327zz south)."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def cell_size(shape: str, area_m2: float) -> float:
    """PostGIS's size parameter for a cell of this area: a square's side, a hexagon's edge
    (a regular hexagon of edge s has area 3√3/2 · s²)."""
    if shape == "square":
        return math.sqrt(area_m2)
    return math.sqrt(2 * area_m2 / (3 * math.sqrt(3)))


def _check(scope: str, shape: str, area_m2: int) -> str:
    level = level_of(scope)
    if level is None:
        raise BadInput("scope", f"{scope!r} is not an area code (6, 9, 12, 15 or 18 digits: a "
                       "district, sub-district, community, grid or micro-grid)")  # fmt: skip
    if shape not in SHAPES:
        raise BadInput("shape", f"{shape!r}: square or hex")
    if not MIN_AREA_M2 <= area_m2 <= MAX_AREA_M2:
        raise BadInput("area_m2", f"{area_m2:,} m²: between {MIN_AREA_M2:,} and "
                       f"{MAX_AREA_M2:,}")  # fmt: skip
    return TABLES[level]


def draw(cur: Any, scope: str, area_m2: int = 10_000, shape: str = "square") -> UnitGrid:
    """Draw (or redraw) the layer of ``shape`` cells of ``area_m2`` over the area ``scope`` with
    the cursor's connection (a psycopg2 cursor of the tables' owner); the caller commits."""
    table = _check(scope, shape, area_m2)
    cur.execute(
        f"SELECT ST_X(c), ST_Y(c), ST_Area(geom::geography), ST_Perimeter(geom::geography)"
        f" FROM (SELECT geom, ST_PointOnSurface(geom) AS c FROM {table} WHERE code = %s) s",
        (scope,),
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound("scope", f"no {table.replace('_', '-')} {scope}")
    lon, lat, area, perimeter = row
    srid = utm_srid(lon, lat)
    size = cell_size(shape, area_m2)
    # The map's scale at the scope: a cell of `size` there, measured on the ellipsoid.
    cur.execute(
        "SELECT ST_Area(ST_Transform(ST_Expand(ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s),"
        " 4326), %s), %s), 4326)::geography)",
        (lon, lat, srid, size / 2),
    )
    (measured,) = cur.fetchone()
    size *= math.sqrt(size * size / measured)
    # Cells inside, plus a ring of cells along the boundary.
    estimate = area / area_m2 + 2 * perimeter / math.sqrt(area_m2)
    if estimate > MAX_CELLS:
        raise BadInput("area_m2", f"about {estimate:,.0f} cells of {area_m2:,} m² over {scope}; "
                       f"at most {MAX_CELLS:,}: take larger cells or a smaller area")  # fmt: skip
    cur.execute("SET LOCAL lock_timeout = '30s'")
    # The layer's row, locked until commit: a concurrent redraw of it waits, then replaces.
    cur.execute(
        "INSERT INTO unit_grid_layer (scope, shape, area_m2, srid, cells) VALUES (%s, %s, %s, %s,"
        " 0) ON CONFLICT (scope, shape, area_m2) DO UPDATE SET srid = EXCLUDED.srid, cells = 0,"
        " drawn_at = now() RETURNING id",
        (scope, shape, area_m2, srid),
    )
    (layer,) = cur.fetchone()
    cur.execute("DELETE FROM unit_grid_cell WHERE layer_id = %s", (layer,))
    grid = "ST_SquareGrid" if shape == "square" else "ST_HexagonGrid"
    cur.execute(
        CELLS.format(table=table, grid=grid),
        {"srid": srid, "scope": scope, "size": size, "layer": layer, "letter": SHAPES[shape]},
    )
    cur.execute(
        "UPDATE unit_grid_layer SET cells = (SELECT count(*) FROM unit_grid_cell WHERE layer_id"
        " = %(l)s) WHERE id = %(l)s RETURNING cells,"
        " (SELECT count(*) FROM unit_grid_cell WHERE layer_id = %(l)s AND partial)",
        {"l": layer},
    )
    cells, partial = cur.fetchone()
    return UnitGrid(scope, shape, area_m2, srid, cells, partial)
