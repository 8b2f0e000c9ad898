"""Grid codes: the 3-digit suffix of DESIGN.md's fixed-width scheme (community 12 digits + grid 3),
numbered west to east, north to south, stable across redrawing.

Rule (pure, deterministic):
- Rows: centroids sorted north to south; a row starts at the northernmost grid not yet placed and
  takes every grid whose centroid lies within one band below it. The band is the median
  north-south extent of the grids, so rows follow the grids' own size. Within a row, west to east.
- A grid whose building set equals an old grid's keeps that old code.
- Other grids take the next free numbers in reading order, skipping every code in use and every
  retired one: codes are retired, never reused (DESIGN.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence

from shapely.geometry.base import BaseGeometry

WIDTH = 3


def reading_order(boundaries: Sequence[BaseGeometry]) -> list[int]:
    """Indexes of the grids, north-west first, in rows banded by latitude."""
    if not boundaries:
        return []
    band = statistics.median(b.bounds[3] - b.bounds[1] for b in boundaries)
    centres = [(b.centroid.x, b.centroid.y) for b in boundaries]
    left = sorted(range(len(boundaries)), key=lambda i: (-centres[i][1], centres[i][0], i))
    order: list[int] = []
    while left:
        top = centres[left[0]][1]
        row = [i for i in left if top - centres[i][1] <= band]
        order.extend(sorted(row, key=lambda i: (centres[i][0], i)))
        taken = set(row)
        left = [i for i in left if i not in taken]
    return order


def assign_codes(
    grids: Sequence[Sequence[Hashable]],
    boundaries: Sequence[BaseGeometry],
    old: Mapping[str, Sequence[Hashable]] | None = None,
    *,
    parent: str = "",
    retired: Iterable[str] = (),
) -> list[str]:
    """Codes for `grids` (building ids each, with WGS-84 `boundaries`), in input order:
    `parent` + 3 digits. `old` maps the existing grids' codes (full codes with the same parent,
    or bare suffixes) to their building ids; `retired` codes are skipped too. Raises ValueError
    when 999 numbers run out."""
    old = old or {}
    bare = {c[len(parent) :] if c.startswith(parent) else c for c in retired}
    suffix = {c[len(parent) :] if c.startswith(parent) else c: frozenset(b) for c, b in old.items()}
    by_set = {b: c for c, b in sorted(suffix.items())}
    used = {int(c) for c in (*suffix, *bare) if c.isdigit()}
    codes: list[str | None] = [None] * len(grids)
    for i, g in enumerate(grids):
        kept = by_set.get(frozenset(g))
        if kept is not None:
            codes[i] = kept
            by_set.pop(frozenset(g))
    n = 0
    for i in reading_order(boundaries):
        if codes[i] is not None:
            continue
        n += 1
        while n in used:
            n += 1
        if n >= 10**WIDTH:
            raise ValueError(f"no {WIDTH}-digit grid codes left under {parent or 'this parent'}")
        codes[i] = f"{n:0{WIDTH}d}"
    return [parent + c for c in codes if c is not None]
