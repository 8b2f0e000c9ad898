"""Reading OpenStreetMap files into features: real extracts counted against what pyosmium counts
on its own, the edge cases of extracts drawn by hand, and files that must be refused cleanly."""

from __future__ import annotations

import gzip
import shutil
import time
from collections import Counter
from pathlib import Path

import osmium
import pytest
import shapely

from geo.errors import BadInput
from geo.network import WALKABLE
from importers.osm import (
    OSM_KINDS,
    boundary_code,
    is_boundary,
    is_building,
    is_street,
    merchant_category,
    read_osm,
)
from importers.osm_streets import read_streets
from importers.records import Feature
from importers.summary import Summary

DATA = Path(__file__).parent / "data" / "osm"  # SOURCE.md: © OpenStreetMap contributors, ODbL
HELSINKI = DATA / "Helsinki.osm.pbf"
WANGJING = DATA / "beijing_chaoyang_wangjing_2020.osm.gz"
KOTKA = DATA / "test.osm.pbf"
GEOMETRY = {
    "buildings": {"Polygon", "MultiPolygon"},
    "merchants": {"Point"},
    "streets": {"LineString"},
    "boundaries": {"Polygon", "MultiPolygon"},
}


def read(path: Path, **options: object) -> tuple[list[Feature], Summary]:
    summary = Summary()
    return list(read_osm(path, summary, **options)), summary  # type: ignore[arg-type]


def counted(summary: Summary, kind: str, what: str) -> int:
    return summary.counts.get(kind, Counter())[what]


def independent(path: Path) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Per kind, counted with pyosmium alone: the objects of the file, those cut at its edge (a
    node or a member way missing) and the merchants with no name of any kind."""
    total: Counter[str] = Counter()
    cut: Counter[str] = Counter()
    unnamed: Counter[str] = Counter()
    ways: set[int] = set()
    cut_ways: set[int] = set()
    names = ("name", "name:zh", "name:en", "brand")
    for obj in osmium.FileProcessor(str(path)).with_locations():
        tags = obj.tags
        kinds = []
        whole = True
        if obj.is_node():
            kinds = ["merchants"] if merchant_category(tags) else []
        elif obj.is_way():
            ways.add(obj.id)
            whole = len(obj.nodes) >= 2 and all(n.location.valid() for n in obj.nodes)
            if not whole:
                cut_ways.add(obj.id)
            closed = len(obj.nodes) > 1 and obj.nodes[0].ref == obj.nodes[-1].ref
            named = boundary_code(tags)[0] or tags.get("name")
            kinds = [
                kind
                for kind, yes in (
                    ("streets", is_street(tags)),
                    ("buildings", is_building(tags)),
                    ("merchants", merchant_category(tags)),
                    ("boundaries", closed and is_boundary(tags) and named),
                )
                if yes
            ]
        elif obj.is_relation():
            kind = tags.get("type")
            multipolygon = kind == "multipolygon"
            kinds = [
                k
                for k, yes in (
                    ("buildings", multipolygon and is_building(tags)),
                    ("merchants", multipolygon and merchant_category(tags)),
                    ("boundaries", kind in ("multipolygon", "boundary") and is_boundary(tags)),
                )
                if yes
            ]
            members = [m.ref for m in obj.members if m.type == "w"]
            whole = bool(members) and all(m in ways and m not in cut_ways for m in members)
        for kind in kinds:
            total[kind] += 1
            cut[kind] += not whole
            if kind == "merchants" and whole and not any(tags.get(n) for n in names):
                unnamed[kind] += 1
    return total, cut, unnamed


# Buildings as the shared data's SOURCE.md counts them (ways + multipolygon relations).
@pytest.mark.parametrize(
    ("path", "buildings"),
    [(HELSINKI, 500), (WANGJING, 226), (KOTKA, 2219)],
    ids=["Helsinki", "Wangjing", "Kotka"],
)
def test_real_extracts_count_as_pyosmium_counts(path: Path, buildings: int) -> None:
    features, summary = read(path)
    total, cut, unnamed = independent(path)
    assert total["buildings"] == buildings
    for kind in OSM_KINDS:
        read_, incomplete = counted(summary, kind, "read"), counted(summary, kind, "incomplete")
        assert read_ + incomplete == total[kind], kind
        assert incomplete == cut[kind] + unnamed[kind], kind
        assert counted(summary, kind, "rejected") == sum(p.kind == kind for p in summary.problems)
        handed = [f for f in features if f.kind == kind]
        assert len(handed) == read_ - counted(summary, kind, "rejected")
        assert {shapely.from_wkb(f.wkb).geom_type for f in handed} <= GEOMETRY[kind]
        assert len({f.key for f in handed}) == len(handed)  # one feature per object
    # Unnamed shops are incomplete (with a warning); nothing on these files is refused.
    assert summary.problems == []
    assert [w for w in summary.warnings if "without a name" not in w] == []


def test_what_the_features_hold() -> None:
    features, _ = read(HELSINKI)
    by_key = {f.key: f for f in features if f.kind == "buildings"}
    ateneum = by_key["osm:w8033120"]
    assert ateneum.where == "Helsinki.osm.pbf way 8033120"
    assert ateneum.fields == {"name": "Ateneum", "building": "museum", "levels": 4,
                              "height": None, "address": "Kaivokatu 2, 00100 Helsinki"}  # fmt: skip
    relations = [f for f in by_key.values() if f.key.startswith("osm:r")]
    assert relations and all(f.where.startswith("Helsinki.osm.pbf relation ") for f in relations)
    assert all(shapely.from_wkb(f.wkb).geom_type == "MultiPolygon" for f in relations)
    merchants = [f for f in features if f.kind == "merchants"]
    assert {f.fields["category"] for f in merchants} >= {"shop=supermarket", "amenity=restaurant"}
    assert not {f.fields["category"] for f in merchants} & {"amenity=bench", "amenity=parking"}
    streets = [f for f in features if f.kind == "streets"]
    assert {"footway", "primary"} <= {f.fields["highway"] for f in streets}
    # Every geometry inside the extract's box (Helsinki centre).
    box = shapely.box(24.9, 60.1, 25.0, 60.2)
    assert all(box.intersects(shapely.from_wkb(f.wkb)) for f in merchants)


def test_chinese_names_and_addresses_from_the_xml_extract(tmp_path: Path) -> None:
    features, _ = read(WANGJING)
    merchants = {f.key: f.fields for f in features if f.kind == "merchants"}
    assert merchants["osm:n819984513"]["name"] == "肯德基"
    buildings = {f.key: f.fields for f in features if f.kind == "buildings"}
    assert buildings["osm:w687365084"]["address"] == "北京市朝阳区望京地区望京西园一区129号"
    # The same XML uncompressed reads the same.
    plain = tmp_path / "wangjing.osm"
    with gzip.open(WANGJING) as src, plain.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    again, _ = read(plain)
    assert [(f.kind, f.key, f.wkb) for f in again] == [(f.kind, f.key, f.wkb) for f in features]


def test_the_walking_network_reads_the_same_streets() -> None:
    features, _ = read(HELSINKI, kinds=("streets",))
    walkable = [f for f in features if f.fields["highway"] in WALKABLE]
    read_ = read_streets(HELSINKI)
    assert len(read_.streets) == len(walkable)
    assert read_.not_walkable == len(features) - len(walkable)
    assert [s.line.wkb for s in read_.streets] == [f.wkb for f in walkable]


def test_progress_counts_what_was_handled() -> None:
    seen: list[int] = []
    _, summary = read(HELSINKI, progress=seen.append)
    handled = sum(c["read"] + c["incomplete"] for c in summary.counts.values())
    assert seen[-1] == handled and len(seen) > 3 and seen == sorted(seen)


# An extract drawn by hand: what each odd case becomes.
EDGES = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="hand">
 <node id="1" lat="40.0" lon="116.0"/><node id="2" lat="40.001" lon="116.001"/>
 <node id="3" lat="40.0" lon="116.001"/><node id="4" lat="40.001" lon="116.0"/>
 <node id="5" lat="40.002" lon="116.002"/><node id="6" lat="40.002" lon="116.003"/>
 <node id="7" lat="40.003" lon="116.003"/><node id="8" lat="40.003" lon="116.002"/>
 <node id="20" lat="40.01" lon="116.01"><tag k="shop" v="bakery"/></node>
 <node id="21" lat="40.01" lon="116.01"><tag k="amenity" v="bench"/><tag k="name" v="B"/></node>
 <node id="22" lat="40.01" lon="116.01"><tag k="shop" v="vacant"/><tag k="name" v="V"/></node>
 <node id="23" lat="40.01" lon="116.01"><tag k="amenity" v="restaurant"/>
  <tag k="name:zh" v="老北京炸酱面"/><tag k="addr:province" v="北京市"/>
  <tag k="addr:city" v="北京市"/><tag k="addr:district" v="朝阳区"/>
  <tag k="addr:street" v="望京街"/><tag k="addr:housenumber" v="10"/></node>
 <node id="24" lat="40.01" lon="116.01"><tag k="building" v="yes"/></node>
 <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/>
  <tag k="building" v="yes"/><tag k="building:levels" v="5;6"/></way>
 <way id="11"><nd ref="5"/><nd ref="6"/><nd ref="7"/><nd ref="8"/><nd ref="5"/>
  <tag k="building" v="retail"/><tag k="shop" v="mall"/><tag k="name" v="Mall"/>
  <tag k="building:levels" v="2.5"/><tag k="height" v="12 m"/></way>
 <way id="12"><nd ref="5"/><nd ref="6"/><nd ref="99"/><nd ref="5"/><tag k="building" v="yes"/></way>
 <way id="13"><nd ref="5"/><nd ref="6"/><nd ref="7"/><tag k="building" v="yes"/></way>
 <way id="14"><nd ref="1"/><nd ref="3"/><nd ref="2"/><nd ref="1"/><tag k="building" v="no"/></way>
 <way id="15"><nd ref="1"/><nd ref="5"/><tag k="highway" v="footway"/><tag k="name" v="F"/></way>
 <way id="16"><nd ref="1"/><nd ref="7"/><tag k="highway" v="proposed"/></way>
 <way id="17"><nd ref="1"/><nd ref="2"/><nd ref="3"/></way>
 <way id="18"><nd ref="5"/><nd ref="6"/><nd ref="7"/><nd ref="8"/><nd ref="5"/></way>
 <relation id="30"><member type="way" ref="18" role="outer"/>
  <tag k="type" v="multipolygon"/><tag k="building" v="yes"/></relation>
 <relation id="31"><member type="way" ref="999" role="outer"/>
  <tag k="type" v="multipolygon"/><tag k="building" v="yes"/></relation>
 <relation id="32"><member type="way" ref="17" role="outer"/>
  <tag k="type" v="multipolygon"/><tag k="building" v="yes"/></relation>
 <relation id="40"><member type="way" ref="18" role="outer"/>
  <tag k="type" v="boundary"/><tag k="boundary" v="administrative"/>
  <tag k="admin_level" v="8"/><tag k="name" v="望京街道"/>
  <tag k="ref:admin:CN:nbs" v="110105026000"/><tag k="ref" v="X1"/></relation>
 <relation id="41"><member type="way" ref="18" role="outer"/>
  <tag k="type" v="boundary"/><tag k="boundary" v="administrative"/>
  <tag k="admin_level" v="10"/><tag k="name" v="No code"/></relation>
</osm>
"""


def test_edge_cases_of_an_extract(tmp_path: Path) -> None:
    path = tmp_path / "edges.osm"
    path.write_text(EDGES, encoding="utf-8")
    features, summary = read(path)
    got = {(f.kind, f.key): f for f in features}
    assert summary.as_json()["kinds"]["buildings"] == {
        "read": 5, "inserted": 0, "updated": 0, "unchanged": 0, "repaired": 0,
        "rejected": 1 + 1, "incomplete": 2, "outside": 0,
    }  # fmt: skip
    # A bow tie comes through as drawn (the loader repairs it); levels "5;6" are dropped, warned.
    bow = got["buildings", "osm:w10"]
    assert not shapely.from_wkb(bow.wkb).is_valid and bow.fields["levels"] is None
    assert summary.warnings == [
        "edges.osm: 1 buildings with a building:levels that is not a number of levels from 1 to"
        " 200, kept without it (e.g. way 10: '5;6')",
        "edges.osm: 1 shops or offices without a name, counted as incomplete, not imported (e.g."
        " node 20)",
    ]
    mall = got["buildings", "osm:w11"].fields
    assert (mall["levels"], mall["height"], mall["building"]) == (3, 12.0, "retail")
    assert shapely.from_wkb(got["buildings", "osm:r30"].wkb).geom_type == "MultiPolygon"
    # A way with a node missing and a relation with a way missing: incomplete, not problems.
    assert ("buildings", "osm:w12") not in got and ("buildings", "osm:r31") not in got
    assert sorted(str(p) for p in summary.problems) == [
        "edges.osm relation 32: the multipolygon's ways do not form closed rings",
        "edges.osm way 13: the outline does not close",
    ]
    # Merchants: the mall on its building's surface, the restaurant by its Chinese name.
    assert {k for kind, k in got if kind == "merchants"} == {"osm:w11", "osm:n23"}
    mall_point = shapely.from_wkb(got["merchants", "osm:w11"].wkb)
    assert shapely.from_wkb(got["buildings", "osm:w11"].wkb).contains(mall_point)
    assert got["merchants", "osm:n23"].fields == {
        "name": "老北京炸酱面",
        "category": "amenity=restaurant",
        "address": "北京市朝阳区望京街10号",
    }
    # Streets: the footway, not the proposed road.
    assert [k for kind, k in got if kind == "streets"] == ["osm:w15"]
    assert got["streets", "osm:w15"].fields == {"highway": "footway", "name": "F"}
    # Boundaries are read with their code, or none: the loader decides what is valid.
    assert got["boundaries", "osm:r40"].fields == {
        "code": "110105026000", "code_tag": "ref:admin:CN:nbs", "name": "望京街道",
        "admin_level": 8,
    }  # fmt: skip
    assert got["boundaries", "osm:r41"].fields["code"] is None


def test_a_truncated_file_is_refused_by_name(tmp_path: Path) -> None:
    data = HELSINKI.read_bytes()
    half = tmp_path / "half.osm.pbf"
    half.write_bytes(data[: len(data) // 2])
    for kinds in (OSM_KINDS, ("streets",)):
        with pytest.raises(BadInput, match=r"half\.osm\.pbf: not a readable OpenStreetMap file"):
            read(half, kinds=kinds)
    with pytest.raises(BadInput, match=r"half\.osm\.pbf"):
        read_streets(half)


BOMB = """<?xml version="1.0"?>
<!DOCTYPE osm [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"> <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"> <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"> <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
 <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"> <!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
 <!ENTITY x SYSTEM "file:///etc/passwd">
]>
<osm version="0.6"><node id="1" lat="0" lon="0"><tag k="shop" v="x"/><tag k="name" v="&i;&x;"/>
</node></osm>
"""


def test_xml_entities_are_refused_before_they_expand(tmp_path: Path) -> None:
    """A billion laughs (and an external entity): libosmium refuses any entity declaration."""
    bomb = tmp_path / "bomb.osm"
    bomb.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(BadInput, match=r"bomb\.osm: .*XML entities are not supported"):
        read(bomb)
    assert time.monotonic() - started < 5


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nothere\.osm\.pbf: no such file"):
        read_osm(tmp_path / "nothere.osm.pbf", Summary())  # at the call, not the first feature
    (tmp_path / "empty.osm").write_bytes(b"")
    with pytest.raises(BadInput, match=r"empty\.osm: the file is empty"):
        read_osm(tmp_path / "empty.osm", Summary())
    (tmp_path / "table.osm").write_text("id,name\n1,shop\n")
    with pytest.raises(BadInput, match=r"table\.osm: not an OpenStreetMap file"):
        read_osm(tmp_path / "table.osm", Summary())
    # An upload's temporary name: the content tells the format.
    upload = tmp_path / "upload-7f3a"
    upload.write_bytes(KOTKA.read_bytes())
    assert len(read(upload)[0]) == len(read(KOTKA)[0])
