"""`gridmap grids unit`: square and hexagonal cells of a fixed area on the ground over an area,
whole, without overlaps, covering it, numbered from the north-west; drawing again replaces."""

from __future__ import annotations

import json
from typing import Any

import psycopg2
import pytest
from conftest import ScratchDB, query
from sqlalchemy.engine import make_url

COMMUNITY = "310106015001"
SUBDISTRICT = "310106015"


def _draw(db: ScratchDB, *args: str) -> dict[str, Any]:
    done = db.gridmap("grids", "unit", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _layer(db: ScratchDB, scope: str, shape: str, area: int = 10_000) -> list[tuple[Any, ...]]:
    """The layer's cells in code order: code, row, column, partial, centroid x/y (metres, in the
    layer's UTM zone), ground area."""
    return query(db.owner_url, """
        SELECT c.code, c.row_no, c.col_no, c.partial, ST_X(ST_Transform(ST_Centroid(c.geom),
               l.srid)), ST_Y(ST_Transform(ST_Centroid(c.geom), l.srid)),
               ST_Area(c.geom::geography)
        FROM unit_grid_cell c JOIN unit_grid_layer l ON l.id = c.layer_id
        WHERE l.scope = %s AND l.shape = %s AND l.area_m2 = %s ORDER BY c.code""",
        (scope, shape, area))  # fmt: skip


def _geometry_checks(db: ScratchDB, scope: str, shape: str) -> tuple[float, float, float]:
    """Area of the community the cells leave uncovered, area where two cells overlap (m²), and
    the community's area."""
    ((uncovered, overlap, area),) = query(db.owner_url, """
        WITH cells AS (
            SELECT c.code, c.geom FROM unit_grid_cell c JOIN unit_grid_layer l ON l.id = c.layer_id
            WHERE l.scope = %(s)s AND l.shape = %(shape)s AND l.area_m2 = 10000)
        SELECT ST_Area(ST_Difference(a.geom, (SELECT ST_Union(geom) FROM cells))::geography),
               (SELECT coalesce(sum(ST_Area(ST_Intersection(x.geom, y.geom)::geography)), 0)
                FROM cells x JOIN cells y ON x.code < y.code AND ST_Intersects(x.geom, y.geom)),
               ST_Area(a.geom::geography)
        FROM community a WHERE a.code = %(s)s""", {"s": scope, "shape": shape})  # fmt: skip
    return uncovered, overlap, area


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_cells_of_10000_m2_cover_a_community_without_overlaps(
    fresh_db: ScratchDB, shape: str
) -> None:
    result = _draw(fresh_db, "--scope", COMMUNITY, "--shape", shape)
    assert set(result) == {"scope", "shape", "areaM2", "cells", "partial"}
    assert (result["scope"], result["shape"], result["areaM2"]) == (COMMUNITY, shape, 10_000)
    cells = _layer(fresh_db, COMMUNITY, shape)
    assert len(cells) == result["cells"]
    assert sum(partial for _, _, _, partial, *_ in cells) == result["partial"]
    uncovered, overlap, area = _geometry_checks(fresh_db, COMMUNITY, shape)
    # Whole cells: at least the community's area, at most one more cell per boundary cell.
    inner = len(cells) - result["partial"]
    assert inner <= area / 10_000 <= len(cells)
    assert 0 < result["partial"] < len(cells)
    for code, *_, ground in cells:
        assert ground == pytest.approx(10_000, rel=0.001), code
    assert uncovered < 0.01
    assert overlap < 0.01
    letter = "S" if shape == "square" else "H"
    numbers = range(1, len(cells) + 1)
    assert [c[0] for c in cells] == [f"{COMMUNITY}{letter}{n:06d}" for n in numbers]


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_cells_are_numbered_west_to_east_then_north_to_south(
    fresh_db: ScratchDB, shape: str
) -> None:
    _draw(fresh_db, "--scope", COMMUNITY, "--shape", shape)
    cells = _layer(fresh_db, COMMUNITY, shape)
    rows: dict[int, list[tuple[int, float, float]]] = {}
    for _, row, col, _, x, y, _ in cells:
        rows.setdefault(row, []).append((col, x, y))
    assert sorted(rows) == list(range(1, len(rows) + 1))
    for row in rows.values():  # in code order: west to east
        xs = [x for _, x, _ in row]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)
        assert [col for col, _, _ in row] == sorted(col for col, _, _ in row)
    mean_y = [sum(y for *_, y in rows[r]) / len(rows[r]) for r in sorted(rows)]
    assert mean_y == sorted(mean_y, reverse=True)  # row 1 the northernmost
    if shape == "square":
        for r in rows.values():
            assert max(y for *_, y in r) - min(y for *_, y in r) < 0.01
    # Codes follow rows: every cell of row r before any of row r + 1.
    assert [row for _, row, *_ in cells] == sorted(row for _, row, *_ in cells)


def test_drawing_again_replaces_the_layer(fresh_db: ScratchDB) -> None:
    first = _draw(fresh_db, "--scope", SUBDISTRICT, "--area-m2", "20000")
    before = _layer(fresh_db, SUBDISTRICT, "square", 20_000)
    other = _draw(fresh_db, "--scope", SUBDISTRICT, "--area-m2", "20000", "--shape", "hex")
    again = _draw(fresh_db, "--scope", SUBDISTRICT, "--area-m2", "20000")
    assert again == first
    assert _layer(fresh_db, SUBDISTRICT, "square", 20_000) == before
    counts = "SELECT (SELECT count(*) FROM unit_grid_layer), (SELECT count(*) FROM unit_grid_cell)"
    ((layers, cells),) = query(fresh_db.owner_url, counts)
    assert (layers, cells) == (2, first["cells"] + other["cells"])
    for _, _, _, _, _, _, ground in before:
        assert ground == pytest.approx(20_000, rel=0.01)


def test_the_text_report(fresh_db: ScratchDB) -> None:
    done = fresh_db.gridmap("grids", "unit", "--scope", COMMUNITY)
    assert done.returncode == 0, done.stderr
    assert "square cells of 10,000 m² over 310106015001" in done.stdout
    assert "EPSG:32651" in done.stdout  # Shanghai: UTM zone 51 north


@pytest.mark.parametrize(("args", "message"), [
    (["--scope", "310106015999"], "no community 310106015999"),
    (["--scope", "3101"], "is not an area code"),
    (["--scope", "abc"], "is not an area code"),
    (["--scope", COMMUNITY, "--area-m2", "50"], "--area-m2"),
    (["--scope", COMMUNITY, "--area-m2", "0"], "--area-m2"),
    (["--scope", COMMUNITY, "--shape", "triangle"], "--shape"),
    (["--scope", COMMUNITY, "--area-m2", "100"], None),  # fits: 6,000 cells
    (["--scope", "310106015001999"], "no grid 310106015001999"),
])  # fmt: skip
def test_bad_input_is_refused_and_writes_nothing(
    fresh_db: ScratchDB, args: list[str], message: str | None
) -> None:
    done = fresh_db.gridmap("grids", "unit", *args)
    if message is None:
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert query(fresh_db.owner_url, "SELECT count(*) FROM unit_grid_cell") == [(0,)]


def test_too_many_cells_are_refused(fresh_db: ScratchDB) -> None:
    from geo.grids import units

    conn = psycopg2.connect(make_url(fresh_db.owner_url).set(drivername="postgresql")
                            .render_as_string(False))  # fmt: skip
    try:
        with conn.cursor() as cur:
            units.MAX_CELLS, saved = 100, units.MAX_CELLS
            try:
                with pytest.raises(units.BadInput, match="at most 100"):
                    units.draw(cur, SUBDISTRICT, 1_000)
            finally:
                units.MAX_CELLS = saved
    finally:
        conn.close()


def test_the_app_reads_the_cells_and_never_writes_them(fresh_db: ScratchDB) -> None:
    _draw(fresh_db, "--scope", COMMUNITY)
    assert query(fresh_db.app_url, "SELECT count(*) > 0 FROM unit_grid_cell") == [(True,)]
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(fresh_db.app_url, "DELETE FROM unit_grid_cell")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(fresh_db.app_url, "UPDATE unit_grid_layer SET cells = 0")
