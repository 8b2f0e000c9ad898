"""Streets and footpaths from an OpenStreetMap file (``.osm.pbf`` or ``.osm``), for the walking
network (``geo.network``). Ways cut at the extract's edge (nodes without a location) are normal
in extracts: they are skipped and counted as ``incomplete``, not errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import osmium
from shapely.geometry import LineString

from geo import network
from geo.errors import BadInput
from geo.network import WALKABLE, Street


@dataclass
class StreetsRead:
    streets: list[Street] = field(default_factory=list)
    incomplete: int = 0  # cut at the edge of the extract
    not_walkable: int = 0  # motorways, ways under construction …


def read_streets(path: Path) -> StreetsRead:
    """The walkable highways of the file, with their OpenStreetMap class."""
    if not path.is_file():
        raise BadInput("FILE", f"{path}: no such file")
    out = StreetsRead()
    try:
        ways = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for way in ways:
            if not way.is_way():
                continue
            highway = way.tags.get("highway", "")
            if highway not in WALKABLE:
                out.not_walkable += 1
                continue
            try:
                points = [(n.lon, n.lat) for n in way.nodes]
            except osmium.InvalidLocationError:
                out.incomplete += 1
                continue
            if len(set(points)) >= 2:
                out.streets.append(Street(LineString(points), highway))
    except RuntimeError as exc:  # libosmium: not an OSM file, truncated …
        raise BadInput("FILE", f"{path}: not a readable OpenStreetMap file ({exc})") from None
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
