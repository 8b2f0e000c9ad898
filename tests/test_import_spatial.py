"""Buildings, merchants and boundaries merged into the model: placed by containment, matched
again by key, and a file with errors changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import shapely
from conftest import ScratchDB
from shapely.geometry import box
from test_family_files import owner

from importers.records import Feature
from importers.run import ImportFailed, Options, run
from importers.spatial import load_boundaries, load_buildings, load_merchants

FILE = Path("test.gpkg")


def _import(db: ScratchDB, load: Any, features: list[Feature], **options: Any) -> Any:
    return run(db.owner_url, FILE, lambda cur, s: load(cur, features, s, Options(**options)),
               Options(**options))  # fmt: skip


def _micro_grid(db: ScratchDB) -> tuple[str, Any]:
    code, wkt = owner(db, "SELECT code, ST_AsText(geom) FROM micro_grid ORDER BY code LIMIT 1")[0]
    return code, shapely.from_wkt(wkt)


def _footprint(area: Any, i: int) -> Any:
    p = area.representative_point()
    d = 0.00004
    return box(p.x + i * 3 * d, p.y, p.x + i * 3 * d + d, p.y + d)


def test_buildings_are_placed_numbered_and_matched_again(fresh_db: ScratchDB) -> None:
    code, area = _micro_grid(fresh_db)
    features = [
        Feature("buildings", f"osm:w{9000 + i}", f"feature {i}", _footprint(area, i).wkb,
                {"name": f"Block {i}", "levels": 6})
        for i in range(2)
    ]
    far = box(10.0, 10.0, 10.0001, 10.0001)
    features.append(Feature("buildings", "osm:w9999", "feature 9", far.wkb, {}))
    before = owner(fresh_db, "SELECT count(*) FROM building WHERE micro_grid_id = "
                   "(SELECT id FROM micro_grid WHERE code = %s)", code)[0][0]  # fmt: skip

    first = _import(fresh_db, load_buildings, features)
    assert first.counts["buildings"]["inserted"] == 3

    placed = owner(fresh_db, "SELECT b.code, b.name FROM building b WHERE source_key LIKE "
                   "'osm:w900_' ORDER BY b.code")  # fmt: skip
    assert [c[:18] for c, _ in placed] == [code, code]
    assert [int(c[18:]) for c, _ in placed] == [before + 1, before + 2]  # west to east
    assert [n for _, n in placed] == ["Block 0", "Block 1"]
    # Outside every micro-grid: kept, its key is its code until grids are drawn.
    assert owner(fresh_db, "SELECT code, micro_grid_id FROM building WHERE source_key = "
                 "'osm:w9999'") == [("osm:w9999", None)]  # fmt: skip

    again = _import(fresh_db, load_buildings, features)
    assert dict(again.counts["buildings"]) == {"unchanged": 3}

    features[0].fields["levels"] = 7
    changed = _import(fresh_db, load_buildings, features)
    assert (changed.counts["buildings"]["updated"], changed.counts["buildings"]["unchanged"]) \
        == (1, 2)
    assert owner(fresh_db, "SELECT levels FROM building WHERE source_key = 'osm:w9000'") == [(7,)]


def test_a_file_with_errors_changes_nothing(fresh_db: ScratchDB) -> None:
    _, area = _micro_grid(fresh_db)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    good = Feature("buildings", "osm:w1", "feature 1", _footprint(area, 0).wkb, {})
    swapped = Feature("buildings", "osm:w2", "feature 2",
                      shapely.transform(_footprint(area, 1), lambda c: c[:, ::-1]).wkb, {})
    nan = Feature("buildings", "osm:w3", "feature 3",
                  shapely.Polygon([(0, 0), (float("nan"), 0), (1, 1), (0, 0)]).wkb, {})
    count = "SELECT count(*) FROM building"
    before = owner(fresh_db, count)

    with pytest.raises(ImportFailed) as failed:
        _import(fresh_db, load_buildings, [good, swapped, nan])
    message = str(failed.value)
    assert "feature 2, geometry: latitude" in message and "swapped?" in message
    assert "feature 3, geometry: coordinates are not finite" in message
    assert owner(fresh_db, count) == before

    summary = _import(fresh_db, load_buildings, [good, swapped], skip_invalid=True)
    assert (summary.counts["buildings"]["inserted"], summary.counts["buildings"]["rejected"]) \
        == (1, 1)

    # A self-intersecting footprint is repaired (counted), or refused when asked.
    shifted = shapely.affinity.translate(shapely.affinity.scale(bowtie, 1e-4, 1e-4),
                                         area.centroid.x, area.centroid.y)  # fmt: skip
    repaired = _import(fresh_db, load_buildings,
                       [Feature("buildings", "osm:w4", "feature 4", shifted.wkb, {})])
    assert repaired.counts["buildings"]["repaired"] == 1
    with pytest.raises(ImportFailed, match="feature 5, geometry: invalid geometry"):
        _import(fresh_db, load_buildings,
                [Feature("buildings", "osm:w5", "feature 5", shifted.wkb, {})], repair=False)


def test_merchants_stand_in_their_building(fresh_db: ScratchDB) -> None:
    building, wkt = owner(fresh_db, "SELECT code, ST_AsText(ST_PointOnSurface(geom)) FROM "
                          "building WHERE micro_grid_id IS NOT NULL ORDER BY code LIMIT 1")[0]
    at = shapely.from_wkt(wkt)
    shop = Feature("merchants", "91310106MA1234567X", "row 2", at.wkb,
                   {"name": "Fresh Market", "category": "shop=greengrocer"})
    unnamed = Feature("merchants", "X2", "row 3", at.wkb, {"category": "shop=bakery"})
    summary = _import(fresh_db, load_merchants, [shop, unnamed], skip_invalid=True)
    assert summary.problems[0].where == "row 3" and summary.problems[0].field == "name"
    assert owner(fresh_db, "SELECT b.code FROM merchant m JOIN building b ON b.id = "
                 "m.building_id WHERE m.code = '91310106MA1234567X'") == [(building,)]
    assert _import(fresh_db, load_merchants, [shop]).counts["merchants"]["unchanged"] == 1


def test_boundaries_find_their_parent_by_code(empty_db: ScratchDB) -> None:
    def area(code: str, x: float, level: str | None = None) -> Feature:
        fields = {"code": code, "name": f"area {code}"} | ({"level": level} if level else {})
        return Feature("boundaries", None, f"feature {code}", box(x, 31, x + 0.01, 31.01).wkb,
                       fields)

    # The national tables: 310106 is Jing'an, 310106015 Tianmu West Road, 310106015001 one of
    # its committees; 310106999 is no subdistrict.
    with pytest.raises(ImportFailed, match="310106999 is not a subdistrict code"):
        _import(empty_db, load_boundaries, [area("310106", 121.4), area("310106999", 121.4)])
    summary = _import(empty_db, load_boundaries, [
        area("310106", 121.4), area("310106015", 121.4), area("310106015001", 121.4),
        area("310106015001001", 121.4)])  # fmt: skip
    assert summary.counts["boundaries"]["inserted"] == 4
    assert owner(empty_db, "SELECT c.code FROM grid g JOIN community c ON c.id = g.community_id")\
        == [("310106015001",)]

    with pytest.raises(ImportFailed, match="parent subdistrict 990001001 is not in the database"):
        _import(empty_db, load_boundaries, [area("990001001001", 0)], codes="free")
    free = _import(empty_db, load_boundaries, [area("990001", 0), area("990001001", 0)],
                   codes="free")
    assert free.counts["boundaries"]["inserted"] == 2
