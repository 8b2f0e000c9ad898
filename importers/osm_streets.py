"""Streets and footpaths from an OpenStreetMap file (``.osm.pbf`` or ``.osm``), for the walking
network (``geo.network``): the streets `importers.osm.read_osm` reads for ``gridmap import osm``,
so both see the same ways. Ways cut at the extract's edge (nodes missing from the file) are
normal in extracts: they are skipped and counted as ``incomplete``, not errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely

from geo import network
from geo.errors import BadInput
from geo.network import WALKABLE, Street
from importers.osm import read_osm
from importers.summary import Summary


@dataclass
class StreetsRead:
    streets: list[Street] = field(default_factory=list)
    incomplete: int = 0  # cut at the edge of the extract
    not_walkable: int = 0  # motorways, platforms …


def read_streets(path: Path) -> StreetsRead:
    """The walkable highways of the file, with their OpenStreetMap class; lines of fewer than
    two distinct points left out. Raises BadInput naming the file if it cannot be read."""
    summary = Summary()
    out = StreetsRead()
    for street in read_osm(path, summary, kinds=("streets",)):
        highway = street.fields["highway"]
        if highway not in WALKABLE:
            out.not_walkable += 1
            continue
        line = shapely.from_wkb(street.wkb)
        if len(set(line.coords)) >= 2:
            out.streets.append(Street(line, highway))
    out.incomplete = summary.counts["streets"]["incomplete"] if summary.counts else 0
    return out


def build_network(cur: Any, path: Path) -> dict[str, int]:
    """Replace the walking network with the file's streets and the doors in the database (a
    psycopg2 cursor of the tables' owner; the caller commits). Nothing is replaced when the file
    holds no walkable street."""
    read = read_streets(path)
    if not read.streets:
        raise BadInput(
            "FILE", f"{path}: no walkable street (highway=*) in the file"
            + (f"; {read.incomplete} ways cut at its edge" if read.incomplete else "")
        )  # fmt: skip
    counts = network.build(cur, read.streets)
    return {
        "streets": len(read.streets),
        "incomplete": read.incomplete,
        "not_walkable": read.not_walkable,
        **counts,
    }
