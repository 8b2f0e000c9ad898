"""The spatial model through GraphQL, as a client sees it, checked against PostGIS itself."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest
from gq import ok
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

LEVELS = ["district", "subdistrict", "community", "grid", "microGrid", "building"]


def sql(db: Any, query: str, *params: Any) -> list[tuple[Any, ...]]:
    url = make_url(db.owner_url).set(drivername="postgresql")
    conn = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_demo_is_tianmu_west_road_in_jingan(client: TestClient) -> None:
    data = ok(
        client,
        """{ districts { totalCount edges { node { code name geometry
               subdistricts { edges { node { code name timezone } } } } } } }""",
    )
    district = data["districts"]["edges"][0]["node"]
    assert (district["code"], district["name"]) == ("310106", "静安区")
    assert district["geometry"]["type"] == "MultiPolygon"
    subs = {e["node"]["code"]: e["node"] for e in district["subdistricts"]["edges"]}
    assert subs["310106015"]["name"] == "天目西路街道"
    assert subs["310106015"]["timezone"] == "Asia/Shanghai"
    lon, lat = district["geometry"]["coordinates"][0][0][0]
    assert 121.3 < lon < 121.6 and 31.1 < lat < 31.4  # where it belongs on a base map


def test_lookups_and_parents_follow_the_codes(client: TestClient) -> None:
    data = ok(
        client,
        """{ buildings(first: 1) { edges { node { code
              microGrid { code grid { code community { code name office
                subdistrict { code district { code } } } } } } } } }""",
    )
    b = data["buildings"]["edges"][0]["node"]
    mg = b["microGrid"]
    grid = mg["grid"]
    community = grid["community"]
    assert b["code"].startswith(mg["code"]) and len(b["code"]) == 21
    assert mg["code"][:15] == grid["code"] and grid["code"][:12] == community["code"]
    assert community["code"][:9] == community["subdistrict"]["code"]
    assert community["subdistrict"]["district"]["code"] == "310106"
    assert community["name"].endswith("居委会")
    assert community["office"]["type"] == "Point"
    for field, code in [
        ("district", "310106"),
        ("subdistrict", community["subdistrict"]["code"]),
        ("community", community["code"]),
        ("grid", grid["code"]),
        ("microGrid", mg["code"]),
        ("building", b["code"]),
    ]:
        found = ok(client, f"query($c: String!) {{ {field}(code: $c) {{ code }} }}", c=code)
        assert found[field]["code"] == code


def test_counts_agree_with_the_database(client: TestClient, demo_db: Any) -> None:
    data = ok(
        client,
        """{ subdistrict(code: "310106015") { householdCount residentCount
              communities(first: 50) { edges { node { code householdCount residentCount
                grids(first: 50) { edges { node { code householdCount } } } } } } } }""",
    )
    sub = data["subdistrict"]
    households, residents = sql(
        demo_db,
        """SELECT count(DISTINCT h.id), count(p.id) FROM household h
           JOIN building b ON b.id = h.building_id JOIN micro_grid m ON m.id = b.micro_grid_id
           JOIN grid g ON g.id = m.grid_id JOIN community c ON c.id = g.community_id
           JOIN subdistrict s ON s.id = c.subdistrict_id LEFT JOIN person p ON p.household_id = h.id
           WHERE s.code = '310106015'""",
    )[0]
    assert (sub["householdCount"], sub["residentCount"]) == (households, residents)
    communities = [e["node"] for e in sub["communities"]["edges"]]
    assert len(communities) >= 3
    assert sum(c["householdCount"] for c in communities) == households
    assert sum(c["residentCount"] for c in communities) == residents
    for c in communities:
        grids = [e["node"]["householdCount"] for e in c["grids"]["edges"]]
        assert sum(grids) == c["householdCount"]
        assert all(100 <= n <= 1000 for n in grids), grids  # a few hundred households a grid


def test_household_members_and_building_counts(client: TestClient) -> None:
    data = ok(
        client,
        """{ buildings(first: 3) { edges { node { code householdCount residentCount
              households(first: 500) { totalCount edges { node { code householdClass
                building { code } geometry residentCount
                members { code name phone idNumber birthYear seekingWork disabled }
              } } } } } } }""",
    )
    for edge in data["buildings"]["edges"]:
        b = edge["node"]
        households = [e["node"] for e in b["households"]["edges"]]
        assert b["householdCount"] == b["households"]["totalCount"] == len(households) > 0
        assert b["residentCount"] == sum(len(h["members"]) for h in households)
        for h in households:
            assert h["code"].startswith(b["code"] + "-")
            assert h["building"]["code"] == b["code"]
            assert h["householdClass"] in {"A", "B", "C"}
            assert h["geometry"]["type"] == "Point"
            assert h["residentCount"] == len(h["members"]) >= 1
            for m in h["members"]:
                assert m["code"].startswith(h["code"] + "-")
                assert len(m["idNumber"]) == 18 and 1900 < m["birthYear"] < 2027


def test_pages_walk_the_whole_list_once(client: TestClient) -> None:
    seen: list[str] = []
    after = None
    total = None
    while True:
        data = ok(
            client,
            """query($after: String) { microGrids(first: 37, after: $after) { totalCount
                 pageInfo { hasNextPage endCursor } edges { cursor node { code } } } }""",
            after=after,
        )["microGrids"]
        total = data["totalCount"]
        seen += [e["node"]["code"] for e in data["edges"]]
        assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == total
    default = ok(client, "{ households { edges { node { code } } } }")["households"]["edges"]
    assert len(default) == 50


def test_node_returns_each_type_by_global_id(client: TestClient) -> None:
    data = ok(
        client,
        """{ households(first: 1) { edges { node { id code members { id code }
              building { id code microGrid { id code grid { id code workers { id code }
              community { id code subdistrict { id code district { id code } } } } } } } } }
            merchants(first: 1) { edges { node { id code } } } }""",
    )
    h = data["households"]["edges"][0]["node"]
    b = h["building"]
    g = b["microGrid"]["grid"]
    things = [
        ("Household", h),
        ("Person", h["members"][0]),
        ("Building", b),
        ("MicroGrid", b["microGrid"]),
        ("Grid", g),
        ("Worker", g["workers"][0]),
        ("Community", g["community"]),
        ("Subdistrict", g["community"]["subdistrict"]),
        ("District", g["community"]["subdistrict"]["district"]),
        ("Merchant", data["merchants"]["edges"][0]["node"]),
    ]
    for type_name, thing in things:
        found = ok(
            client,
            "query($id: ID!) { node(id: $id) { __typename id ... on Area { code }"
            " ... on Household { code } ... on Person { code } ... on Building { code }"
            " ... on Worker { code } ... on Merchant { code } } }",
            id=thing["id"],
        )["node"]
        assert found == {"__typename": type_name, "id": thing["id"], "code": thing["code"]}


def test_workers_of_every_role_serve_the_grids(client: TestClient) -> None:
    data = ok(
        client,
        """{ workers(first: 500) { totalCount edges { node { code name role unitCode
              grids { code } community { code } subdistrict { code } } } }
            grids(first: 500) { edges { node { code workers { code role } } } } }""",
    )
    workers = [e["node"] for e in data["workers"]["edges"]]
    roles = {w["role"] for w in workers}
    assert roles == {"GRID_CENTER", "COMMUNITY", "GRID_WORKER", "MICRO_GRID_LEADER", "DEPARTMENT"}
    for w in workers:
        assert (w["unitCode"] is not None) == (w["role"] == "DEPARTMENT")
        if w["role"] == "GRID_WORKER":
            assert w["grids"]
    for edge in data["grids"]["edges"]:
        grid = edge["node"]
        assert "GRID_WORKER" in {w["role"] for w in grid["workers"]}, grid["code"]


@pytest.mark.parametrize("field", ["buildings", "merchants", "households"])
def test_near_is_ordered_by_true_distance_and_complete(
    client: TestClient, demo_db: Any, field: str
) -> None:
    lon, lat, meters = 121.452, 31.248, 300
    data = ok(
        client,
        f"""query($near: NearInput!) {{ {field}(first: 500, near: $near) {{ totalCount
              edges {{ node {{ code distanceMeters }} }} }} }}""",
        near={"lon": lon, "lat": lat, "meters": meters},
    )[field]
    got = [(e["node"]["code"], e["node"]["distanceMeters"]) for e in data["edges"]]
    assert got, "the demo has things near its centre"
    distances = [d for _, d in got]
    assert distances == sorted(distances) and distances[-1] <= meters
    column = {"buildings": "geom", "merchants": "geom", "households": "location"}[field]
    table = {"buildings": "building", "merchants": "merchant", "households": "household"}[field]
    expected = sql(
        demo_db,
        f"""SELECT code, ST_Distance({column}::geography,
                   ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) d FROM {table}
            WHERE ST_DWithin({column}::geography,
                   ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s) ORDER BY d, code""",
        lon, lat, lon, lat, meters,
    )  # fmt: skip
    assert data["totalCount"] == len(expected)
    assert [c for c, _ in got] == [c for c, _ in expected][:500]
    for (_, d), (_, e) in zip(got, expected, strict=False):
        assert d == pytest.approx(e, abs=1e-6)


def test_near_pages_continue_where_they_stopped(client: TestClient) -> None:
    query = """query($after: String) { buildings(first: 7, after: $after,
                 near: {lon: 121.452, lat: 31.248, meters: 400}) {
                 pageInfo { hasNextPage endCursor } edges { node { code distanceMeters } } } }"""
    whole = ok(
        client,
        """{ buildings(first: 500, near: {lon: 121.452, lat: 31.248, meters: 400}) {
             edges { node { code } } } }""",
    )["buildings"]["edges"]
    seen: list[str] = []
    after = None
    while True:
        data = ok(client, query, after=after)["buildings"]
        seen += [e["node"]["code"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == [e["node"]["code"] for e in whole]


def test_within_and_intersects_take_geojson(client: TestClient, demo_db: Any) -> None:
    grid = ok(client, "{ grids(first: 1) { edges { node { code geometry } } } }")["grids"]
    grid = grid["edges"][0]["node"]
    inside = ok(
        client,
        "query($g: GeoJSON!) { buildings(first: 500, within: $g) { totalCount"
        " edges { node { code } } } }",
        g=grid["geometry"],
    )["buildings"]
    codes = {e["node"]["code"] for e in inside["edges"]}
    assert codes and all(c.startswith(grid["code"]) for c in codes)
    expected = sql(
        demo_db,
        "SELECT count(*) FROM building b, grid g WHERE g.code = %s AND ST_Within(b.geom, g.geom)",
        grid["code"],
    )[0][0]
    assert inside["totalCount"] == expected
    # An inline literal: a small box around the demo's centre.
    box = ok(
        client,
        """{ grids(intersects: {type: "Polygon", coordinates: [[[121.451, 31.247],
             [121.453, 31.247], [121.453, 31.249], [121.451, 31.249], [121.451, 31.247]]]}) {
             totalCount } }""",
    )
    assert box["grids"]["totalCount"] >= 1


def test_scope_narrows_a_list_to_an_area(client: TestClient) -> None:
    grid = ok(client, "{ grids(first: 1) { edges { node { code householdCount } } } }")
    grid = grid["grids"]["edges"][0]["node"]
    data = ok(
        client,
        "query($s: String!) { households(scope: $s, first: 1) { totalCount }"
        ' merchants(scope: "310106015", first: 1) { totalCount } }',
        s=grid["code"],
    )
    assert data["households"]["totalCount"] == grid["householdCount"]
    assert data["merchants"]["totalCount"] >= 1


def test_place_at_finds_the_areas_around_a_point(client: TestClient) -> None:
    h = ok(
        client,
        """{ households(first: 1) { edges { node { geometry building { code
              microGrid { code grid { code community { code } } } } } } } }""",
    )["households"]["edges"][0]["node"]
    lon, lat = h["geometry"]["coordinates"]
    place = ok(
        client,
        "query($lon: Float!, $lat: Float!) { placeAt(lon: $lon, lat: $lat) {"
        " community { code } grid { code } microGrid { code } building { code } } }",
        lon=lon,
        lat=lat,
    )["placeAt"]
    b = h["building"]
    assert place["building"]["code"] == b["code"]
    assert place["microGrid"]["code"] == b["microGrid"]["code"]
    assert place["grid"]["code"] == b["microGrid"]["grid"]["code"]
    assert place["community"]["code"] == b["microGrid"]["grid"]["community"]["code"]
    nowhere = ok(client, "{ placeAt(lon: 0, lat: 0) { community { code } building { code } } }")
    assert nowhere["placeAt"] == {"community": None, "building": None}
