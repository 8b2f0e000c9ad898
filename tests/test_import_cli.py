"""`gridmap import …` as a sub-district runs it on its real files: OpenStreetMap, GIS boundaries
and footprints, registers; the JSON summary, idempotence, and refusal that changes nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyogrio
import pyproj
import pytest
import shapely
from conftest import ScratchDB
from shapely.geometry import box
from test_family_files import owner

DATA = Path(__file__).parent / "data"
WANGJING = DATA / "osm" / "beijing_chaoyang_wangjing_2020.osm.gz"
CHICAGO = DATA / "merchants" / "chicago_business_licenses_ward29.csv"
COUNTS = {"read", "inserted", "updated", "unchanged", "repaired", "rejected", "incomplete",
          "outside"}  # fmt: skip


def _json(db: ScratchDB, *args: str) -> dict[str, Any]:
    done = db.gridmap("import", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_openstreetmap_extract_imports_once(empty_db: ScratchDB) -> None:
    first = _json(empty_db, "osm", str(WANGJING))
    kinds = first["kinds"]
    assert set(kinds) == {"buildings", "merchants", "streets"}
    assert all(set(counts) == COUNTS for counts in kinds.values())
    assert kinds["buildings"]["inserted"] == kinds["buildings"]["read"] == 226
    assert kinds["streets"]["inserted"] == kinds["streets"]["read"] == 241
    merchants = kinds["merchants"]
    assert merchants["inserted"] == merchants["read"] and merchants["incomplete"] == 6  # no name
    assert owner(empty_db, "SELECT count(*) FROM building WHERE micro_grid_id IS NULL "
                "AND code = source_key AND code LIKE 'osm:%%'") == [(226,)]  # no grids yet
    assert owner(empty_db, "SELECT count(*) > 241 FROM walk_edge") == [(True,)]
    assert owner(empty_db, "SELECT count(*) FROM walk_entrance") == [(226,)]

    again = _json(empty_db, "osm", str(WANGJING))["kinds"]
    for kind, counts in again.items():
        assert counts["unchanged"] == counts["read"] == kinds[kind]["read"], kind
        assert counts["inserted"] == counts["updated"] == 0, kind


def _layer(path: Path, geoms: list[Any], crs: str, **columns: list[Any]) -> None:
    import numpy as np

    pyogrio.raw.write(
        path, geometry=np.array(shapely.to_wkb(geoms), dtype=object),
        field_data=[np.array(v) for v in columns.values()], fields=list(columns),
        geometry_type="Unknown", crs=crs, driver="GPKG" if path.suffix == ".gpkg" else None,
    )  # fmt: skip


def test_boundaries_then_footprints_in_a_projected_crs(empty_db: ScratchDB,
                                                       tmp_path: Path) -> None:  # fmt: skip
    # Areas over Boston, drawn in WGS-84, with made-up codes (--codes free).
    levels = [("district", "990001", 6), ("subdistrict", "990001001", 5),
              ("community", "990001001001", 4), ("grid", "990001001001001", 3),
              ("micro_grid", "990001001001001001", 2)]  # fmt: skip
    for level, code, size in levels:
        area = box(-71.07 - size * 0.001, 42.35 - size * 0.001, -71.07 + size * 0.001,
                   42.35 + size * 0.001)  # fmt: skip
        path = tmp_path / f"{level}.geojson"
        _layer(path, [area], "EPSG:4326", CODE=[code], NAME=[f"{level} one"])
        summary = _json(empty_db, "boundaries", str(path), "--level", level, "--code-field",
                        "CODE", "--name-field", "NAME", "--codes", "free")  # fmt: skip
        assert summary["kinds"]["boundaries"]["inserted"] == 1
    # Footprints in a projected CRS (UTM 19N), named by the file, with levels and a key.
    utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32619", always_xy=True)
    x, y = utm.transform(-71.07, 42.35)
    footprints = [box(x + i * 30, y, x + i * 30 + 20, y + 15) for i in range(3)]
    bowtie = shapely.Polygon([(x, y - 50), (x + 20, y - 30), (x + 20, y - 50), (x, y - 30)])
    path = tmp_path / "footprints.gpkg"
    _layer(path, [*footprints, bowtie], "EPSG:32619", FID_=[1, 2, 3, 4], FLOORS=[6, 7, 8, 3])
    summary = _json(empty_db, "buildings", str(path), "--key-field", "FID_", "--levels-field",
                    "FLOORS")["kinds"]["buildings"]  # fmt: skip
    assert (summary["inserted"], summary["repaired"]) == (4, 1)
    rows = owner(empty_db, "SELECT code, levels, ST_X(ST_Centroid(geom)) FROM building "
                "ORDER BY code")  # fmt: skip
    assert [r[0] for r in rows] == [f"990001001001001001{n:03d}" for n in range(1, 5)]
    assert sorted(r[1] for r in rows) == [3, 6, 7, 8]
    assert all(abs(r[2] + 71.07) < 0.001 for r in rows)  # converted to WGS-84 longitudes
    again = _json(empty_db, "buildings", str(path), "--key-field", "FID_", "--levels-field",
                  "FLOORS")["kinds"]["buildings"]  # fmt: skip
    assert again["unchanged"] == 4


def test_a_file_with_errors_changes_nothing_unless_skipped(empty_db: ScratchDB,
                                                           tmp_path: Path) -> None:  # fmt: skip
    rows = list(csv.reader(CHICAGO.open(encoding="utf-8")))
    header = rows[0]
    lat = header.index("LATITUDE")
    rows[5][lat] = "not a number"
    broken = tmp_path / "licences.csv"
    with broken.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)

    refused = empty_db.gridmap("import", "merchants", str(broken))
    assert refused.returncode != 0
    assert "licences.csv line 6, lat: 'not a number' is not a number" in refused.stderr
    assert owner(empty_db, "SELECT count(*) FROM merchant") == [(0,)]

    done = empty_db.gridmap("import", "merchants", str(broken), "--skip-invalid")
    assert done.returncode == 0, done.stderr
    rejects = list(csv.DictReader((tmp_path / "licences.csv.rejects.csv").open(
        encoding="utf-8-sig")))  # fmt: skip
    assert [(r["where"], r["field"], r["lat"]) for r in rejects] == [
        ("licences.csv line 6", "lat", "not a number")]  # the row itself, to fix
    licences = {r[header.index("LICENSE NUMBER")] for r in rows[1:]}
    assert owner(empty_db, "SELECT count(*) FROM merchant") == [(len(licences),)]


@pytest.mark.parametrize(("args", "message"), [
    (["boundaries", "--level", "community", "--code-field", "NOPE"], "NOPE"),
    (["buildings", "--crs", "mars"], "--crs"),
])  # fmt: skip
def test_wrong_options_are_named(empty_db: ScratchDB, tmp_path: Path, args: list[str],
                                 message: str) -> None:  # fmt: skip
    path = tmp_path / "one.geojson"
    _layer(path, [box(0, 0, 1, 1)], "EPSG:4326", CODE=["990001"])
    done = empty_db.gridmap("import", args[0], str(path), *args[1:])
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr
