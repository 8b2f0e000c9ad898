"""Drawing grids from buildings: a pure partition of one community's buildings into contiguous,
compact grids of about a target number of households that do not cross major streets (issue 7).
No database here: the command reads buildings and streets, calls `partition`, shows or stores it.

How (measured against spopt's SKATER/max-p in tests/test_grid_partition.py):
1. Work in a local metric projection (`quality.Local`).
2. Blocks: the community cut by the major streets (`MAJOR_HIGHWAYS`). Each building belongs to the
   block holding its footprint's representative point.
3. Cells: in each block, the Voronoi diagram of points sampled along the footprints (every
   `SAMPLE_M` metres), clipped to the block, dissolved per building. Cells tile the community
   with no gap and no overlap, and their edges follow the streets. Blocks without a building, and
   stray pieces of a cell cut off by a concave block, go to the cell they share the longest
   border with (snapped first), so every cell is one piece.
4. Graph: buildings whose cells share a border, in the same block, and whose centre-to-centre
   segment crosses no major street (streets that end inside a block still cut).
5. Clusters (components of the graph) too small for a grid are merged, across the street, with
   their smallest neighbour — named in `problems`, as that grid crosses a street.
6. Per cluster k = round(households / target) grids: seeds far apart, regions grown smallest
   first taking the frontier building nearest their centre; then boundary buildings are moved
   between neighbouring grids while that lowers Σ balance + (1 − Polsby-Popper), keeping every
   grid in one piece. Polsby-Popper is kept exact and cheap from cell areas, perimeters and shared
   border lengths. A few restarts (seeded) keep the best.
7. Grid polygons are the dissolved cells; `quality.measure` reports on them.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import shapely
from shapely.geometry import LineString, MultiPoint
from shapely.geometry.base import BaseGeometry

from geo.grids.quality import Local, Quality, measure

# OpenStreetMap highway classes that grids must not cross (their *_link ramps are not barriers of
# their own: they run beside the road they link).
MAJOR_HIGHWAYS = frozenset({"motorway", "trunk", "primary", "secondary", "tertiary"})
SAMPLE_M = 5.0  # spacing of footprint sample points: cells follow footprints to a few metres
SHARED_MIN_M = 0.5  # cells touching at less than this (a corner) are not neighbours
DEFAULT_TOLERANCE = 0.15
BALANCE_WEIGHT = 10.0  # squared relative deviation vs (1 - Polsby-Popper): balance first
OUT_OF_TOLERANCE_PENALTY = 200.0  # on the squared excess beyond the tolerance
RESTARTS = 6

# Households estimate (see estimate_households).
DWELLING_GROSS_M2 = 90.0
OCCUPANCY = 0.9
SMALL_FOOTPRINT_M2 = 150.0
DEFAULT_LEVELS = 6


def estimate_households(footprint_m2: float, levels: int | None) -> tuple[int, bool]:
    """Households of a building without a register, and whether its levels were assumed.

    households = round(footprint × levels × OCCUPANCY / DWELLING_GROSS_M2), at least 0.
    - DWELLING_GROSS_M2 = 90 m²: gross floor area per urban dwelling in China — the 2020 census
      gives ~36.5 m² of housing per urban resident and ~2.6 persons per household (≈ 95 m²),
      and gross building area includes stairs, walls and shared space that the census counts
      partly; 90 m² is the customary planning figure for a standard flat.
    - OCCUPANCY = 0.9: about one flat in ten empty or not a home (shops on the ground floor,
      vacancy); rough, the register replaces the estimate.
    - Levels unknown (most OpenStreetMap buildings): DEFAULT_LEVELS = 6, the walk-up block of
      Chinese estates, for footprints of at least SMALL_FOOTPRINT_M2 (150 m²); smaller ones are
      sheds, kiosks, gatehouses: 1 level. Either way the second value is True (levels assumed).
    The result is always flagged estimated by the caller; it only serves to draw grids before
    the register arrives.
    """
    if footprint_m2 < 0 or not math.isfinite(footprint_m2):
        raise ValueError(f"footprint area must be a non-negative number, not {footprint_m2}")
    assumed = levels is None or levels < 1
    if assumed:
        levels = DEFAULT_LEVELS if footprint_m2 >= SMALL_FOOTPRINT_M2 else 1
    return max(0, round(footprint_m2 * levels * OCCUPANCY / DWELLING_GROSS_M2)), assumed


@dataclass(frozen=True, slots=True)
class Building:
    """`footprint` WGS-84 (Polygon/MultiPolygon, or a Point for a building known by location
    only); `households` None means unknown: estimated from the footprint by `partition`."""

    id: Hashable
    footprint: BaseGeometry | None
    households: int | None
    estimated: bool = False
    levels: int | None = None


@dataclass(slots=True)
class Partition:
    """`grids[i]` the building ids of grid i, `boundaries[i]` its WGS-84 polygon; `households[i]`
    its count; `problems` what could not be satisfied (empty when every grid is within the
    tolerance, in one piece and crossing no major street); `estimated` ids whose households
    were estimated here; `cells` each building's share of its grid (WGS-84: micro-grids are
    drawn from them) and `neighbours` the buildings whose cells share a border with it."""

    grids: list[list[Hashable]]
    boundaries: list[BaseGeometry]
    households: list[int]
    quality: Quality
    problems: list[str] = field(default_factory=list)
    estimated: list[Hashable] = field(default_factory=list)
    cells: dict[Hashable, BaseGeometry] = field(default_factory=dict)
    building_households: dict[Hashable, int] = field(default_factory=dict)
    neighbours: dict[Hashable, set[Hashable]] = field(default_factory=dict)


class PartitionError(ValueError):
    """Input that admits no honest partition; `problems` names each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- cells and graph ---------------------------------------------------------------------------


@dataclass(slots=True)
class Cells:
    """Per building (index): its cell (metric), area, perimeter, centre; shared border lengths
    between touching cells; graph neighbours (shared border, no street between)."""

    geoms: list[BaseGeometry]
    area: list[float]
    perim: list[float]
    centre: list[tuple[float, float]]
    shared: dict[tuple[int, int], float]
    nbrs: list[set[int]]
    block: list[int]
    touching: list[list[int]]  # every cell sharing a border, street or not (for perimeters)


def blocks_of(community_m: BaseGeometry, streets_m: Sequence[BaseGeometry]) -> list[BaseGeometry]:
    """The community cut by the street lines into faces (streets ending inside stay uncut)."""
    if not streets_m:
        return [community_m]
    lines = shapely.union_all(
        [community_m.boundary, *[s.intersection(community_m) for s in streets_m]]
    )
    faces = [f for f in shapely.get_parts(shapely.polygonize([lines]).geoms) if f.area > 0]
    faces = [f for f in faces if community_m.contains(f.representative_point())]
    return faces or [community_m]


def _sample(footprint: BaseGeometry) -> list[tuple[float, float]]:
    pts = [footprint.representative_point().coords[0]]
    if footprint.geom_type != "Point":
        ring = shapely.segmentize(footprint.boundary, SAMPLE_M)
        pts.extend(tuple(c) for c in shapely.get_coordinates(ring))
    return pts


def _block_cells(
    block: BaseGeometry, footprints: dict[int, BaseGeometry]
) -> dict[int, BaseGeometry]:
    if len(footprints) == 1:
        return {next(iter(footprints)): block}
    owner: dict[tuple[float, float], int] = {}
    for b, fp in footprints.items():
        for x, y in _sample(fp):
            owner.setdefault((round(x, 3), round(y, 3)), b)
    keys = list(owner)
    diagram = shapely.voronoi_polygons(MultiPoint(keys), extend_to=block, ordered=True)
    parts: dict[int, list[BaseGeometry]] = defaultdict(list)
    for key, cell in zip(keys, diagram.geoms, strict=True):
        parts[owner[key]].append(cell)
    out = {}
    for b, cs in parts.items():
        out[b] = shapely.intersection(shapely.union_all(cs), block)
    return out


def _crosses(
    a: tuple[float, float],
    b: tuple[float, float],
    tree: shapely.STRtree | None,
    streets: Sequence[BaseGeometry],
) -> bool:
    if tree is None:
        return False
    seg = LineString([a, b])
    return any(seg.intersects(streets[i]) for i in tree.query(seg))


def build_cells(
    footprints_m: Sequence[BaseGeometry],
    community_m: BaseGeometry,
    streets_m: Sequence[BaseGeometry],
) -> tuple[Cells, list[str]]:
    """The cells of the buildings and their graph (see the module's steps 2-4)."""
    problems: list[str] = []
    blocks = blocks_of(community_m, streets_m)
    btree = shapely.STRtree(blocks)
    block_of: list[int] = []
    for fp in footprints_m:
        p = fp.representative_point()
        hits = [int(i) for i in btree.query(p, predicate="within")]
        block_of.append(hits[0] if hits else int(btree.nearest(p)))
    members: dict[int, dict[int, BaseGeometry]] = defaultdict(dict)
    for i, blk in enumerate(block_of):
        members[blk][i] = footprints_m[i]
    geoms: list[BaseGeometry] = [shapely.Polygon()] * len(footprints_m)
    for blk, fps in members.items():
        for i, cell in _block_cells(blocks[blk], fps).items():
            geoms[i] = cell
    # Empty blocks, and stray pieces of cells that a concave block cut in two, go to the cell
    # they share the longest border with: every cell is one piece, and the cells still tile.
    orphans = [(blocks[j], -1) for j in range(len(blocks)) if j not in members]
    for i, g in enumerate(geoms):
        parts = [p for p in shapely.get_parts(g) if p.area > 0]
        if len(parts) > 1:
            anchor = footprints_m[i].representative_point()
            main = min(parts, key=lambda p: (p.distance(anchor), -p.area))
            geoms[i] = main
            orphans.extend((p, i) for p in parts if p is not main)
    least = SHARED_MIN_M  # first only real borders; corners only when nothing else is left
    while orphans:
        tree = shapely.STRtree(geoms)
        left = []
        for piece, owner in orphans:
            grown = piece.buffer(0.01)
            best, length = -1, least
            for i in tree.query(grown, predicate="intersects"):
                shared = geoms[i].boundary.intersection(grown).length
                if int(i) != owner and shared >= length:
                    best, length = int(i), shared
            if best < 0:
                left.append((piece, owner))
            else:
                # Faces and cells meet along the same street with vertices a hair apart:
                # snapped first, the union is one piece.
                snapped = shapely.snap(piece, geoms[best], 0.01)
                geoms[best] = shapely.union_all([geoms[best], snapped])
        if len(left) == len(orphans):
            if least > 0:
                least = 0.0
                continue
            problems.append(f"{len(left)} part(s) of the community touch no building's cell")
            break
        orphans = left
    tree = shapely.STRtree(geoms)
    stree = shapely.STRtree(list(streets_m)) if streets_m else None
    centre = [(g.centroid.x, g.centroid.y) if not g.is_empty else (0.0, 0.0) for g in geoms]
    shared: dict[tuple[int, int], float] = {}
    nbrs: list[set[int]] = [set() for _ in geoms]
    for i, g in enumerate(geoms):
        if g.is_empty:
            continue
        grown = g.buffer(0.01)
        for j in tree.query(grown, predicate="intersects"):
            j = int(j)
            if j <= i:
                continue
            length = geoms[j].boundary.intersection(grown).length
            if length < SHARED_MIN_M:
                continue
            shared[(i, j)] = length
            fp_a = footprints_m[i].representative_point().coords[0]
            fp_b = footprints_m[j].representative_point().coords[0]
            if block_of[i] == block_of[j] and not _crosses(fp_a, fp_b, stree, streets_m):
                nbrs[i].add(j)
                nbrs[j].add(i)
    touching: list[list[int]] = [[] for _ in geoms]
    for a, b in shared:
        touching[a].append(b)
        touching[b].append(a)
    cells = Cells(
        geoms=geoms,
        area=[g.area for g in geoms],
        perim=[g.length for g in geoms],
        centre=centre,
        shared=shared,
        nbrs=nbrs,
        block=block_of,
        touching=touching,
    )
    return cells, problems


def components(nbrs: Sequence[set[int]], nodes: Sequence[int] | None = None) -> list[list[int]]:
    """Connected components of the graph (restricted to `nodes`), each sorted, in order."""
    pool = set(range(len(nbrs)) if nodes is None else nodes)
    out = []
    for start in sorted(pool):
        if start not in pool:
            continue
        pool.discard(start)
        comp, queue = [start], deque([start])
        while queue:
            for v in nbrs[queue.popleft()]:
                if v in pool:
                    pool.discard(v)
                    comp.append(v)
                    queue.append(v)
        out.append(sorted(comp))
    return out


# --- regions -----------------------------------------------------------------------------------


class _Regions:
    """Assignment of a cluster's buildings to k regions with running households, area,
    perimeter and area-weighted centre, so a move's effect is known in O(degree)."""

    def __init__(
        self,
        cells: Cells,
        hh: Sequence[int],
        nodes: list[int],
        k: int,
        target: float,
        tolerance: float,
    ) -> None:
        self.c, self.hh, self.nodes, self.k = cells, hh, nodes, k
        self.target, self.tol = target, tolerance
        self.of: dict[int, int] = {}
        self.h = [0] * k
        self.area = [0.0] * k
        self.perim = [0.0] * k
        self.mx = [0.0] * k
        self.my = [0.0] * k
        self.members: list[set[int]] = [set() for _ in range(k)]

    def _shared(self, a: int, b: int) -> float:
        return self.c.shared.get((a, b) if a < b else (b, a), 0.0)

    def _inside_border(self, v: int, r: int) -> float:
        return sum(self._shared(v, u) for u in self._touching(v) if self.of.get(u) == r)

    def _touching(self, v: int) -> list[int]:
        return self.c.touching[v]

    def add(self, v: int, r: int) -> None:
        self.perim[r] += self.c.perim[v] - 2 * self._inside_border(v, r)
        self.of[v] = r
        self._acc(v, r, 1)

    def remove(self, v: int) -> int:
        r = self.of.pop(v)
        self.perim[r] -= self.c.perim[v] - 2 * self._inside_border(v, r)
        self._acc(v, r, -1)
        return r

    def _acc(self, v: int, r: int, sign: int) -> None:
        a = self.c.area[v]
        self.h[r] += sign * self.hh[v]
        self.area[r] += sign * a
        self.mx[r] += sign * a * self.c.centre[v][0]
        self.my[r] += sign * a * self.c.centre[v][1]
        (self.members[r].add if sign > 0 else self.members[r].discard)(v)

    def centre(self, r: int) -> tuple[float, float]:
        a = self.area[r] or 1.0
        return self.mx[r] / a, self.my[r] / a

    def cost(self, h: float, area: float, perim: float) -> float:
        dev = abs(h - self.target) / self.target
        over = max(0.0, dev - self.tol)
        pp = 4 * math.pi * area / (perim * perim) if perim > 0 else 0.0
        return BALANCE_WEIGHT * dev * dev + OUT_OF_TOLERANCE_PENALTY * over * over + (1 - pp)

    def region_cost(self, r: int) -> float:
        if not self.members[r]:
            return 0.0
        return self.cost(self.h[r], self.area[r], self.perim[r])

    def total(self) -> float:
        return sum(self.region_cost(r) for r in range(self.k))

    def connected_without(self, v: int) -> bool:
        rest = self.members[self.of[v]] - {v}
        if not rest:
            return True  # emptying a region (one grid fewer) is allowed when it lowers the cost
        start = next(iter(rest))
        seen, queue = {start}, deque([start])
        while queue:
            for u in self.c.nbrs[queue.popleft()]:
                if u in rest and u not in seen:
                    seen.add(u)
                    queue.append(u)
        return len(seen) == len(rest)


def _seeds(cells: Cells, nodes: list[int], k: int, rng: random.Random) -> list[int]:
    """k buildings far apart: farthest-point sampling from a random first one."""
    seeds = [rng.choice(nodes)]
    dist = {v: math.dist(cells.centre[v], cells.centre[seeds[0]]) for v in nodes}
    while len(seeds) < k:
        far = max(nodes, key=lambda v: (dist[v], -v))
        seeds.append(far)
        for v in nodes:
            dist[v] = min(dist[v], math.dist(cells.centre[v], cells.centre[far]))
    return seeds


def _grow(reg: _Regions, seeds: list[int]) -> None:
    for r, s in enumerate(seeds):
        reg.add(s, r)
    free = set(reg.nodes) - set(seeds)
    while free:
        frontier: dict[int, set[int]] = defaultdict(set)
        for v in free:
            for u in reg.c.nbrs[v]:
                if u in reg.of:
                    frontier[reg.of[u]].add(v)
        r = min(frontier, key=lambda r: (reg.h[r], r))
        cx, cy = reg.centre(r)
        v = min(frontier[r], key=lambda v: (math.dist(reg.c.centre[v], (cx, cy)), v))
        reg.add(v, r)
        free.discard(v)


def _improve(reg: _Regions, passes: int = 40) -> None:
    """Move boundary buildings to a neighbouring region while the total cost drops."""
    for _ in range(passes):
        moved = False
        for v in reg.nodes:
            r = reg.of[v]
            targets = sorted({reg.of[u] for u in reg.c.nbrs[v]} - {r})
            if not targets or not reg.connected_without(v):
                continue
            before = reg.region_cost(r)
            best, gain = -1, 1e-9
            reg.remove(v)
            after_r = reg.region_cost(r)
            for t in targets:
                old_t = reg.region_cost(t)
                reg.add(v, t)
                delta = (before + old_t) - (after_r + reg.region_cost(t))
                reg.remove(v)
                if delta > gain:
                    best, gain = t, delta
            reg.add(v, best if best >= 0 else r)
            moved |= best >= 0
        if not moved:
            return


def _regions(
    cells: Cells,
    hh: Sequence[int],
    nodes: list[int],
    k: int,
    target: float,
    tolerance: float,
    seed: int,
) -> list[list[int]]:
    if k <= 1:
        return [nodes]
    rng = random.Random(seed)
    best: _Regions | None = None
    for _ in range(RESTARTS):
        reg = _Regions(cells, hh, nodes, k, target, tolerance)
        _grow(reg, _seeds(cells, nodes, k, rng))
        _improve(reg)
        if best is None or reg.total() < best.total() - 1e-12:
            best = reg
    assert best is not None
    return [sorted(m) for m in best.members if m]


# --- the partition -----------------------------------------------------------------------------


def partition(
    buildings: Sequence[Building],
    community: BaseGeometry,
    streets: Sequence[BaseGeometry],
    target: int,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    seed: int = 0,
) -> Partition:
    """Partition the buildings of `community` (WGS-84) into grids of about `target` households
    not crossing the major `streets` (lines, already filtered by `MAJOR_HIGHWAYS`).

    Raises PartitionError when no honest partition exists (no buildings, a building with neither
    households nor footprint, a target above the community's households, …). Grids that still
    miss the tolerance, or cross a street because a cluster was too small, are in `problems`."""
    fatal: list[str] = []
    if target <= 0:
        fatal.append(f"target households must be positive, not {target}")
    if not 0 <= tolerance < 1:
        fatal.append(f"tolerance must be in [0, 1), not {tolerance}")
    if not buildings:
        fatal.append("the community has no buildings")
    if community is None or community.is_empty or community.area <= 0:
        fatal.append("the community has no boundary polygon")
    ids = [b.id for b in buildings]
    if len(set(ids)) != len(ids):
        fatal.append("building ids repeat")
    if fatal:
        raise PartitionError(fatal)

    local = Local.around(community)
    community_m = shapely.make_valid(local.to_m(community))
    hh: list[int] = []
    footprints_m: list[BaseGeometry] = []
    estimated: list[Hashable] = []
    for b in buildings:
        fp = None if b.footprint is None or b.footprint.is_empty else local.to_m(b.footprint)
        if fp is not None and fp.geom_type != "Point":
            fp = shapely.make_valid(fp)
        if b.households is None:
            if fp is None or fp.area <= 0:
                fatal.append(
                    f"building {b.id}: no households and no footprint to estimate them from"
                )
                continue
            h, _ = estimate_households(fp.area, b.levels)
            estimated.append(b.id)
        elif b.households < 0:
            fatal.append(f"building {b.id}: negative households ({b.households})")
            continue
        else:
            h = b.households
        if fp is None:
            fatal.append(f"building {b.id}: no footprint or location, cannot be placed")
            continue
        if not community_m.buffer(1.0).intersects(fp):
            fatal.append(f"building {b.id}: outside the community")
            continue
        hh.append(h)
        footprints_m.append(fp)
    if fatal:
        raise PartitionError(fatal)
    total = sum(hh)
    if total < target * (1 - tolerance):
        raise PartitionError(
            [f"target {target} households is more than the community's {total} can fill"]
        )

    streets_m = [local.to_m(s) for s in streets if s is not None and not s.is_empty]
    streets_m = [s for s in streets_m if s.intersects(community_m)]
    cells, problems = build_cells(footprints_m, community_m, streets_m)
    hidden = [v for v, g in enumerate(cells.geoms) if g.is_empty or g.area <= 0]
    if hidden:
        raise PartitionError([_under(v, ids, footprints_m) for v in hidden])

    clusters = _merge_small(cells, hh, target, tolerance, ids, problems)
    grids_idx: list[list[int]] = []
    for n, nodes in enumerate(clusters):
        h = sum(hh[v] for v in nodes)
        k = max(1, round(h / target))
        grids_idx.extend(_regions(cells, hh, nodes, k, h / k, tolerance, seed + n))

    polys_m = [shapely.union_all([cells.geoms[v] for v in g]) for g in grids_idx]
    polys_m = [_clean(p) for p in polys_m]
    households = [sum(hh[v] for v in g) for g in grids_idx]
    quality = measure(polys_m, households, streets_m)
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    for g, q in zip(grids_idx, quality.grids, strict=True):
        name = f"grid of buildings {_names(ids, g)}"
        if not lo <= q.households <= hi:
            problems.append(f"{name}: {q.households} households, outside {lo:.0f}-{hi:.0f}")
        if not q.contiguous:
            problems.append(f"{name}: not in one piece")
    order = sorted(range(len(grids_idx)), key=lambda i: min(grids_idx[i]))
    return Partition(
        grids=[[ids[v] for v in grids_idx[i]] for i in order],
        boundaries=[_clean(local.to_deg(polys_m[i]), 1e-16) for i in order],
        households=[households[i] for i in order],
        quality=Quality(
            grids=tuple(quality.grids[i] for i in order),
            min=quality.min,
            max=quality.max,
            cv=quality.cv,
            median_polsby_popper=quality.median_polsby_popper,
        ),
        problems=problems,
        estimated=estimated,
        cells={ids[v]: _clean(local.to_deg(g), 1e-16) for v, g in enumerate(cells.geoms)},
        neighbours={ids[v]: {ids[u] for u in cells.nbrs[v]} for v in range(len(ids))},
        building_households=dict(zip(ids, hh, strict=True)),
    )


def _clean(geom: BaseGeometry, sliver: float = 1e-6) -> BaseGeometry:
    """Dissolved cells as one valid Polygon when they are one piece (drops rounding slivers
    smaller than `sliver`, in the geometry's units squared)."""
    geom = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > sliver]
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(parts) if parts else geom


def _under(v: int, ids: Sequence[Hashable], footprints: Sequence[BaseGeometry]) -> str:
    """Why building `v` got no cell: others' footprints cover all of it."""
    inside = footprints[v].representative_point()
    over = [str(ids[u]) for u, fp in enumerate(footprints) if u != v and fp.covers(inside)]
    return (f"buildings {ids[v]} and {', '.join(over)} lie on the same ground (imported twice?):"
            " remove one")  # fmt: skip


def _names(ids: Sequence[Hashable], nodes: Sequence[int], most: int = 5) -> str:
    shown = ", ".join(str(ids[v]) for v in nodes[:most])
    return shown + (f" … ({len(nodes)} buildings)" if len(nodes) > most else "")


def _merge_small(
    cells: Cells,
    hh: Sequence[int],
    target: int,
    tolerance: float,
    ids: Sequence[Hashable],
    problems: list[str],
) -> list[list[int]]:
    """Clusters cut off by streets with too few households for a grid join their smallest
    touching neighbour cluster across the street (the joining cells become graph neighbours);
    each such join is named in `problems`."""
    floor = target * (1 - tolerance)
    while True:
        comps = components(cells.nbrs)
        comp_of = {v: n for n, comp in enumerate(comps) for v in comp}
        sums = [sum(hh[v] for v in comp) for comp in comps]
        small = sorted((s, n) for n, s in enumerate(sums) if s < floor)
        if not small or len(comps) == 1:
            return comps
        _, n = small[0]
        best: tuple[float, float, int, int] | None = None
        for (a, b), length in cells.shared.items():
            ca, cb = comp_of[a], comp_of[b]
            if n not in (ca, cb) or ca == cb:
                continue
            other = cb if ca == n else ca
            key = (sums[other], -length, a, b)
            if best is None or key < best:
                best = key
        if best is None:
            problems.append(
                f"buildings {_names(ids, comps[n])} ({sums[n]} households) touch no other"
                " cluster: kept as a grid below the target"
            )
            # Isolate it from further merging by pretending it is large enough.
            hh_fix = list(hh)
            hh_fix[comps[n][0]] += math.ceil(floor)
            hh = hh_fix
            continue
        _, _, a, b = best
        cells.nbrs[a].add(b)
        cells.nbrs[b].add(a)
        problems.append(
            f"buildings {_names(ids, comps[n])} ({sums[n]} households) are cut off by major"
            f" streets with too few households for a grid: joined across the street with"
            f" building {ids[b] if comp_of[a] == n else ids[a]}'s cluster"
        )


__all__ = [
    "MAJOR_HIGHWAYS",
    "Building",
    "Partition",
    "PartitionError",
    "estimate_households",
    "partition",
]
