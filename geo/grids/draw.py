"""A proposed drawing of one community's grids, from what the database holds: its boundary, its
buildings with their registered households (estimated for buildings not placed in a grid yet),
the major streets (imported OpenStreetMap streets and the walking network's classes), and the
grids it has now — for `gridmap grids draw` to print, map and compare."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geo.errors import BadInput, NotFound
from geo.grids.codes import assign_codes
from geo.grids.partition import MAJOR_HIGHWAYS, Building, Partition, PartitionError, partition

BUILDINGS = """
SELECT b.id::text, ST_AsBinary(b.geom), b.levels, b.micro_grid_id IS NOT NULL,
       (SELECT count(*) FROM household h WHERE h.building_id = b.id AND h.moved_out IS NULL),
       b.code
FROM building b
LEFT JOIN micro_grid mg ON mg.id = b.micro_grid_id
LEFT JOIN grid g ON g.id = mg.grid_id
WHERE g.community_id = %(community)s
   OR (b.micro_grid_id IS NULL
       AND ST_Contains((SELECT geom FROM community WHERE id = %(community)s),
                       ST_PointOnSurface(b.geom)))
ORDER BY b.id  -- not by code: a redraw changes codes, the same buildings must draw alike
"""

# Major streets: imported ones and the walking network's (the demo's arterials live only there).
STREETS = """
WITH area AS (SELECT geom FROM community WHERE id = %(community)s)
SELECT ST_AsBinary(s.geom) FROM street s, area
WHERE s.highway = ANY(%(major)s) AND ST_Intersects(s.geom, area.geom)
UNION ALL
SELECT ST_AsBinary(e.geom) FROM walk_edge e, area
WHERE e.highway = ANY(%(major)s) AND ST_Intersects(e.geom, area.geom)
"""

OLD_GRIDS = """
SELECT g.code, ST_AsBinary(g.geom),
       coalesce(array_agg(b.id::text) FILTER (WHERE b.id IS NOT NULL), '{}')
FROM grid g
LEFT JOIN micro_grid mg ON mg.grid_id = g.id
LEFT JOIN building b ON b.micro_grid_id = mg.id
WHERE g.community_id = %(community)s
GROUP BY g.code, g.geom ORDER BY g.code
"""

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Codes are retired, never reused (DESIGN.md).
RETIRED = "SELECT code FROM grid_history WHERE community_id = %(community)s"


@dataclass(frozen=True, slots=True)
class ProposedGrid:
    code: str
    buildings: tuple[Hashable, ...]
    boundary: BaseGeometry
    households: int
    polsby_popper: float
    contiguous: bool
    streets_crossed: int
    estimated: bool  # some of its households are estimated
    kept: bool  # the same buildings as the grid of this code now


@dataclass
class Proposal:
    community: str
    boundary: BaseGeometry
    target: int
    tolerance: float
    grids: list[ProposedGrid]
    cv: float
    median_polsby_popper: float
    problems: list[str]
    old: dict[str, BaseGeometry] = field(default_factory=dict)
    streets: list[BaseGeometry] = field(default_factory=list)
    partition: Partition | None = None

    def band(self) -> tuple[float, float]:
        """The households a grid may hold: the target within the tolerance."""
        return self.target * (1 - self.tolerance), self.target * (1 + self.tolerance)

    def as_json(self) -> dict[str, Any]:
        return {
            "community": self.community,
            "target": self.target,
            "tolerance": self.tolerance,
            "grids": [{"code": g.code, "households": g.households,
                       "polsbyPopper": round(g.polsby_popper, 4), "contiguous": g.contiguous,
                       "streetsCrossed": g.streets_crossed, "buildings": len(g.buildings),
                       "estimated": g.estimated, "kept": g.kept} for g in self.grids],
            "cv": round(self.cv, 4),
            "min": min((g.households for g in self.grids), default=0),
            "max": max((g.households for g in self.grids), default=0),
            "medianPolsbyPopper": round(self.median_polsby_popper, 4),
            "problems": self.problems,
        }  # fmt: skip


def propose(cur: Any, community: str, target: int, tolerance: float) -> Proposal:
    """The drawing the partition proposes for ``community`` (a psycopg2 cursor, read only)."""
    cur.execute("SELECT id, ST_AsBinary(geom) FROM community WHERE code = %s", (community,))
    row = cur.fetchone()
    if row is None:
        raise NotFound("--community", f"no community {community}")
    community_id, wkb = row[0], bytes(row[1])
    boundary = shapely.from_wkb(wkb)
    args = {"community": community_id, "major": sorted(MAJOR_HIGHWAYS)}
    cur.execute(BUILDINGS, args)
    rows = cur.fetchall()
    buildings = [
        Building(
            id=bid,
            footprint=shapely.from_wkb(bytes(g)),
            levels=levels,
            # Placed buildings have their register; new ones are estimated.
            households=int(n) if placed else (int(n) or None),
        )
        for bid, g, levels, placed, n, _ in rows
    ]
    code_of = {row[0]: row[5] for row in rows}

    def named(problem: str) -> str:
        """A problem naming buildings by code, as people know them, not by id."""
        return UUID.sub(lambda m: code_of.get(m[0], m[0]), problem)

    cur.execute(STREETS, args)
    streets = [shapely.from_wkb(bytes(g)) for (g,) in cur.fetchall()]
    cur.execute(OLD_GRIDS, args)
    old = {code: (shapely.from_wkb(bytes(g)), frozenset(ids)) for code, g, ids in cur.fetchall()}
    cur.execute(RETIRED, args)
    retired = [code for (code,) in cur.fetchall()]
    try:
        drawn = partition(buildings, boundary, streets, target, tolerance)
    except PartitionError as exc:
        raise BadInput(
            "--target-households", "cannot draw grids: " + "; ".join(map(named, exc.problems))
        ) from None
    try:
        codes = assign_codes(
            drawn.grids,
            drawn.boundaries,
            {c: ids for c, (_, ids) in old.items()},
            parent=community,
            retired=retired,
        )
    except ValueError as exc:
        raise BadInput("--target-households", str(exc)) from None
    estimated = set(drawn.estimated)
    grids = [
        ProposedGrid(code=codes[i], buildings=tuple(ids), boundary=drawn.boundaries[i],
                     households=drawn.households[i],
                     polsby_popper=drawn.quality.grids[i].polsby_popper,
                     contiguous=drawn.quality.grids[i].contiguous,
                     streets_crossed=drawn.quality.grids[i].streets_crossed,
                     estimated=any(b in estimated for b in ids),
                     kept=frozenset(ids) == old.get(codes[i], (None, None))[1])
        for i, ids in enumerate(drawn.grids)
    ]  # fmt: skip
    grids.sort(key=lambda g: g.code)
    return Proposal(community, boundary, target, tolerance, grids, drawn.quality.cv,
                    drawn.quality.median_polsby_popper, [named(p) for p in drawn.problems],
                    {c: g for c, (g, _) in old.items()}, streets, drawn)  # fmt: skip
