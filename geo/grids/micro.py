"""Micro-grids of one grid, drawn building by building (the seed articles: "take the building as
the unit to draw the micro grid"): one per building, or small neighbouring buildings merged up
to a household count, so that a micro-grid leader looks after a stairwell's worth of homes.

Pure: buildings are ids with their households, their share of the grid (the partition's cells)
and the buildings whose share touches theirs."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import shapely
from shapely.geometry.base import BaseGeometry

from geo.grids.codes import WIDTH, reading_order


def group(
    buildings: Sequence[Hashable],
    households: Mapping[Hashable, int],
    cells: Mapping[Hashable, BaseGeometry],
    neighbours: Mapping[Hashable, set[Hashable]],
    merge_up_to: int | None = None,
) -> list[list[Hashable]]:
    """The micro-grids of one grid's `buildings`, in reading order (north-west first).

    Without `merge_up_to`, one per building. With it, buildings are taken in reading order; each
    one not placed yet starts a micro-grid and takes in the smallest touching neighbours (within
    this grid) while the total stays within `merge_up_to` households. A building that alone
    reaches the count stays alone."""
    order = [buildings[i] for i in reading_order([cells[b] for b in buildings])]
    if not merge_up_to:
        return [[b] for b in order]
    rank = {b: i for i, b in enumerate(order)}
    placed: set[Hashable] = set()
    groups: list[list[Hashable]] = []
    for b in order:
        if b in placed:
            continue
        members, total = [b], households[b]
        placed.add(b)
        while total < merge_up_to:
            frontier = {n for m in members for n in neighbours.get(m, ()) if n in rank} - placed
            fits = [n for n in frontier if total + households[n] <= merge_up_to]
            if not fits:
                break
            pick = min(fits, key=lambda n: (households[n], rank[n]))
            members.append(pick)
            placed.add(pick)
            total += households[pick]
        groups.append(sorted(members, key=rank.__getitem__))
    boundaries = [shapely.union_all([cells[b] for b in g]) for g in groups]
    return [groups[i] for i in reading_order(boundaries)]


def numbered(parent: str, count: int, what: str = "micro-grids") -> list[str]:
    """`count` codes under `parent`, 001 upwards; ValueError past the fixed width."""
    if count >= 10**WIDTH:
        raise ValueError(f"{count} {what} under {parent}: at most {10**WIDTH - 1} fit the "
                         f"{WIDTH}-digit code")  # fmt: skip
    return [f"{parent}{n:0{WIDTH}d}" for n in range(1, count + 1)]
