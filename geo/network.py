"""The walking network: streets and footpaths noded into pgRouting's edge table, and every
building and community office joined to it by an entrance path from its door.

Why build it here rather than with pgRouting's topology functions: a door must meet the street
at the point nearest it, which means cutting street edges at thousands of points; shapely does
the noding and the cutting in one pass in local metres, and PostgreSQL gets finished rows. The
network is rebuilt as a whole (one transaction) whenever streets or buildings change: the demo
builds it from its street lattice, an OpenStreetMap import from the ways it reads.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import LineString
from shapely.ops import substring

# Vertices closer than this (metres) are one vertex; a door closer than this to its street needs
# no path of its own.
SNAP_M = 0.5
# A door farther than this from every street gets no entrance (the street file does not cover
# it): its households are left out of routes, named.
MAX_DOOR_M = 500.0
# What a door's path to the street is called (OpenStreetMap's highway=footway is a different
# thing: a real path the data holds).
ENTRANCE = "entrance"
# OpenStreetMap highway classes people walk on; motorways and their ramps are left out.
WALKABLE = frozenset(
    {
        "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
        "living_street", "service", "pedestrian", "footway", "path", "steps", "track",
        "cycleway", "primary_link", "secondary_link", "tertiary_link", "trunk_link", "corridor",
    }
)  # fmt: skip


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat`` (WGS-84)."""
    p = math.radians(lat)
    mx = 111412.84 * math.cos(p) - 93.5 * math.cos(3 * p) + 0.118 * math.cos(5 * p)
    my = 111132.92 - 559.82 * math.cos(2 * p) + 1.175 * math.cos(4 * p) - 0.0023 * math.cos(6 * p)
    return mx, my


@dataclass(frozen=True)
class Street:
    line: LineString  # longitude, latitude
    highway: str


@dataclass(frozen=True)
class Door:
    """Something to walk to: a building (its footprint) or a community office (a point)."""

    code: str
    geom: Any  # longitude, latitude


@dataclass(frozen=True)
class Network:
    edges: list[tuple[int, int, str, LineString]]  # source, target, highway, lon/lat line
    entrances: list[tuple[str, int, Any]]  # code, vertex, door point (lon/lat)
    unreached: list[str]  # doors with no street within MAX_DOOR_M


class _Local:
    """An equirectangular plane in metres around a latitude: exact enough over a district for
    choosing nearest streets and cutting them (lengths are measured on the spheroid later)."""

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0, self.lat0 = lon0, lat0
        self.mx, self.my = metres_per_degree(lat0)

    def to_m(self, geom: Any) -> Any:
        return shapely.transform(geom, lambda c: (c - (self.lon0, self.lat0)) * (self.mx, self.my))

    def to_deg(self, geom: Any) -> Any:
        return shapely.transform(geom, lambda c: c / (self.mx, self.my) + (self.lon0, self.lat0))


def plan_network(streets: Sequence[Street], doors: Sequence[Door]) -> Network:
    """Node the streets, cut them where doors join them, and number the vertices."""
    if not streets:
        return Network([], [], [d.code for d in doors])
    lines = [s.line for s in streets]
    x0, y0, x1, y1 = shapely.total_bounds(lines)
    local = _Local((x0 + x1) / 2, (y0 + y1) / 2)
    src = local.to_m(np.array(lines, dtype=object))
    # Node: every crossing and touching becomes a vertex; overlapping duplicates dissolve.
    noded = shapely.get_parts(shapely.union_all(src))
    noded = noded[shapely.length(noded) > 0]
    # Each piece keeps the class of the input street it came from.
    source_tree = STRtree(src)
    mid = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    nearest = source_tree.query_nearest(mid, return_distance=False, all_matches=False)[1]
    highway = [streets[i].highway for i in nearest]

    # Doors: the shortest line from each footprint (or office point) to its nearest piece.
    door_geoms = local.to_m(np.array([d.geom for d in doors], dtype=object))
    piece_tree = STRtree(noded)
    which = piece_tree.query_nearest(
        door_geoms, max_distance=MAX_DOOR_M, return_distance=False, all_matches=False
    )
    piece_of = np.full(len(doors), -1)
    piece_of[which[0]] = which[1]
    links = shapely.shortest_line(door_geoms, noded[np.maximum(piece_of, 0)])
    door_pt = shapely.get_point(links, 0)
    street_pt = shapely.get_point(links, 1)
    at = shapely.line_locate_point(noded[np.maximum(piece_of, 0)], street_pt)

    vertices: dict[tuple[int, int], int] = {}

    def vertex(x: float, y: float) -> int:
        key = (round(x / SNAP_M), round(y / SNAP_M))
        found = vertices.get(key)
        if found is None:
            found = vertices[key] = len(vertices) + 1
        return found

    cuts: dict[int, list[float]] = {}
    for i, p in enumerate(piece_of):
        if p >= 0:
            cuts.setdefault(int(p), []).append(float(at[i]))
    edges_m: list[tuple[int, int, str, LineString]] = []
    for p, piece in enumerate(noded):
        length = piece.length
        stops = sorted({0.0, length, *(a for a in cuts.get(p, ()) if SNAP_M < a < length - SNAP_M)})
        for a, b in itertools.pairwise(stops):
            if b - a < 1e-6:
                continue
            part = substring(piece, a, b)
            (x0, y0), (x1, y1) = part.coords[0], part.coords[-1]
            s, t = vertex(x0, y0), vertex(x1, y1)
            if s != t:
                edges_m.append((s, t, highway[p], part))
            elif b - a > 2 * SNAP_M:  # a loop (a roundabout, a close): two halves
                half = (a + b) / 2
                mx, my = piece.interpolate(half).coords[0]
                m = vertex(mx, my)
                edges_m.append((s, m, highway[p], substring(piece, a, half)))
                edges_m.append((m, t, highway[p], substring(piece, half, b)))
    entrances: list[tuple[str, int, Any]] = []
    unreached: list[str] = []
    for i, door in enumerate(doors):
        if piece_of[i] < 0:
            unreached.append(door.code)
            continue
        piece = noded[piece_of[i]]
        a = float(at[i])
        # Where the door's path meets the street: a cut point, or the piece's end it is near.
        # (interpolated as substring() cuts it, so both name the same vertex)
        if a <= SNAP_M:
            sx, sy = piece.coords[0]
        elif a >= piece.length - SNAP_M:
            sx, sy = piece.coords[-1]
        else:
            sx, sy = piece.interpolate(a).coords[0]
        on_street = vertex(sx, sy)
        dx, dy = door_pt[i].coords[0]
        at_door = vertex(dx, dy)
        if at_door != on_street:
            edges_m.append((at_door, on_street, ENTRANCE, LineString([(dx, dy), (sx, sy)])))
        entrances.append((door.code, at_door, door_pt[i]))
    lines_deg = local.to_deg(np.array([e[3] for e in edges_m], dtype=object))
    doors_deg = local.to_deg(np.array([e[2] for e in entrances], dtype=object))
    return Network(
        [(s, t, h, g) for (s, t, h, _), g in zip(edges_m, lines_deg, strict=True)],
        [(c, v, g) for (c, v, _), g in zip(entrances, doors_deg, strict=True)],
        unreached,
    )


# Every building's footprint and every community's office: the doors of the network.
DOORS = """
SELECT code, ST_AsBinary(geom) FROM building
UNION ALL
SELECT code, ST_AsBinary(office) FROM community WHERE office IS NOT NULL
ORDER BY 1
"""


def doors(cur: Any) -> list[Door]:
    cur.execute(DOORS)
    return [Door(code, shapely.from_wkb(bytes(wkb))) for code, wkb in cur.fetchall()]


def store(cur: Any, network: Network) -> dict[str, int]:
    """Replace the network in the database (a psycopg2 cursor of the tables' owner, inside the
    caller's transaction); lengths are measured on the spheroid."""
    cur.execute("TRUNCATE walk_edge, walk_entrance RESTART IDENTITY")
    cur.execute(
        "CREATE TEMP TABLE walk_edge_in (source bigint, target bigint, highway text,"
        " geom geometry(LineString, 4326)) ON COMMIT DROP"
    )
    cur.copy_expert(
        "COPY walk_edge_in FROM STDIN",
        io.StringIO(_rows((s, t, h, _ewkb(g)) for s, t, h, g in network.edges)),
        size=1 << 20,
    )
    cur.execute(
        "INSERT INTO walk_edge (source, target, highway, length_m, geom)"
        " SELECT source, target, highway, ST_Length(geom::geography), geom FROM walk_edge_in"
    )
    cur.execute("DROP TABLE walk_edge_in")
    cur.copy_expert(
        "COPY walk_entrance (code, vertex, geom) FROM STDIN",
        io.StringIO(_rows((c, v, _ewkb(g)) for c, v, g in network.entrances)),
        size=1 << 20,
    )
    cur.execute("ANALYZE walk_edge")
    cur.execute("ANALYZE walk_entrance")
    return {
        "edges": len(network.edges),
        "entrances": len(network.entrances),
        "unreached": len(network.unreached),
    }


def build(cur: Any, streets: Iterable[Street]) -> dict[str, int]:
    """Rebuild the network from ``streets`` and the doors in the database."""
    walkable = [s for s in streets if s.highway in WALKABLE or s.highway == ENTRANCE]
    return store(cur, plan_network(walkable, doors(cur)))


def _ewkb(geom: Any) -> str:
    return shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True)


def _rows(rows: Iterable[tuple[Any, ...]]) -> str:
    return "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
