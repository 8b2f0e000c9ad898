"""The walking network: streets noded where they cross, doors joined to the nearest street at
the nearest point, and a real OpenStreetMap extract turned into a network."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest
import shapely
from conftest import ScratchDB
from shapely.geometry import LineString, Point, box
from sqlalchemy.engine import make_url
from test_family_files import owner

from geo import network
from importers.osm_streets import build_network, read_streets

OSM = Path(__file__).parent / "data" / "osm" / "test.osm.pbf"  # SOURCE.md: © OSM, ODbL
# About 1 m in degrees near Shanghai (31.2° N): longitude, latitude.
MX, MY = (1 / m for m in network.metres_per_degree(31.2))


def at(x: float, y: float) -> tuple[float, float]:
    """Local metres to degrees around 121.45 E, 31.2 N."""
    return 121.45 + x * MX, 31.2 + y * MY


def line(*points: tuple[float, float]) -> LineString:
    return LineString([at(*p) for p in points])


def test_streets_are_noded_and_doors_join_them_at_the_nearest_point() -> None:
    streets = [
        network.Street(line((0, 0), (200, 0)), "primary"),  # east-west
        network.Street(line((100, -100), (100, 100)), "residential"),  # crossing it
        network.Street(line((0, 0), (200, 0)), "primary"),  # a duplicate
    ]
    footprint = shapely.transform(box(140, 20, 160, 40), lambda c: c * (MX, MY) + at(0, 0))
    doors = [
        network.Door("B1", footprint),  # 20 m north of the east-west street
        network.Door("FAR", Point(at(5000, 5000))),  # beyond MAX_DOOR_M of any street
    ]
    planned = network.plan_network(streets, doors)
    assert planned.unreached == ["FAR"]
    ((code, vertex, door),) = planned.entrances
    # On the footprint's south wall, facing the street.
    assert code == "B1" and door.y == pytest.approx(at(0, 20)[1], abs=MY * 0.01)
    assert at(140, 0)[0] - 1e-9 <= door.x <= at(160, 0)[0] + 1e-9
    entrance = [e for e in planned.edges if e[2] == network.ENTRANCE]
    assert len(entrance) == 1 and vertex in entrance[0][:2]
    # Four street edges meet at the crossing, and the east half is cut where the path joins it.
    degree: dict[int, int] = {}
    for s, t, _, _ in planned.edges:
        degree[s] = degree.get(s, 0) + 1
        degree[t] = degree.get(t, 0) + 1
    assert sorted(degree.values()).count(4) == 1  # the crossing
    assert sorted(degree.values()).count(3) == 1  # where the door's path meets the street
    streets_only = [e for e in planned.edges if e[2] != network.ENTRANCE]
    assert len(streets_only) == 5
    assert {e[2] for e in streets_only} == {"primary", "residential"}


def test_an_openstreetmap_extract_becomes_the_network(fresh_db: ScratchDB) -> None:
    read = read_streets(OSM)
    assert read.incomplete > 0 and read.not_walkable > 0  # cut ways, motorways: counted
    dsn = make_url(fresh_db.owner_url).set(drivername="postgresql").render_as_string(False)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            counts = build_network(cur, OSM)
    finally:
        conn.close()
    assert counts["streets"] == len(read.streets)
    # Every demo building is in Shanghai, far from these Finnish streets: none gets a door.
    (doors,) = owner(
        fresh_db, "SELECT (SELECT count(*) FROM building) + (SELECT count(*) FROM community)"
    )[0]
    assert counts["unreached"] == doors and counts["entrances"] == 0
    # Noding keeps every metre of street once (duplicates and overlaps dissolved).
    total = sum(
        owner(
            fresh_db, "SELECT ST_Length(ST_SetSRID(ST_GeomFromText(%s), 4326)::geography)",
            shapely.union_all([s.line for s in read.streets]).wkt,
        )[0]
    )  # fmt: skip
    (edges, metres, classes) = owner(
        fresh_db, "SELECT count(*), sum(length_m), array_agg(DISTINCT highway) FROM walk_edge"
    )[0]
    assert edges == counts["edges"] and metres == pytest.approx(total, rel=1e-6)
    assert "motorway" not in classes and {"residential", "cycleway"} <= set(classes)


def test_a_file_that_is_not_openstreetmap_is_refused_and_changes_nothing(
    fresh_db: ScratchDB, tmp_path: Path
) -> None:
    before = owner(fresh_db, "SELECT count(*), sum(length_m) FROM walk_edge")[0]
    broken = tmp_path / "cut.osm.pbf"
    broken.write_bytes(OSM.read_bytes()[:5000])  # truncated
    done = fresh_db.gridmap("network", "build", "--osm", str(broken))
    assert done.returncode == 1 and "not a readable OpenStreetMap file" in done.stderr
    assert "Traceback" not in done.stderr
    assert owner(fresh_db, "SELECT count(*), sum(length_m) FROM walk_edge")[0] == before
    # The whole file goes through: a summary, and a warning naming what has no entrance.
    done = fresh_db.gridmap("network", "build", "--osm", str(OSM))
    assert done.returncode == 0, done.stderr
    assert "walking network:" in done.stdout and "cut at the file's edge" in done.stdout
    assert "no entrance" in done.stderr
