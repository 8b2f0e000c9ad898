"""Case hotspots: cells, counts and Gi* checked against an independent computation from the
planted cases, the hexagon layout against PostGIS's ST_HexagonGrid, the trend labels, what the
public and each role get, bad input, and the map (served and written to a file, drawn by
headless Chromium with no network: tests/offline.py).

The cases are planted in 2031 (nobody else's period) in a copy of the demo of this module's
own, as the owner: a thin background in every grid, a tight cluster that appears only in the
last window (NOISE), one that is there in every window (STREET_VENDING), three neighbouring
grids full of cases (ILLEGAL_PARKING), and cases that must not count (rejected, merged, a day
outside the window in local time).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from conftest import Databases, ScratchDB, as_role, demo_tokens
from gq import error, gql, ok
from offline import chromium, open_offline, serve
from playwright.sync_api import Browser, Page
from shapely.geometry import Point, Polygon, shape
from starlette.testclient import TestClient
from test_family_files import owner

from api.app import create_app
from geo import case_hotspots
from geo.hotspots import gi_star, parse_hex_code, queen_neighbours

SCOPE = "310106015"  # the demo subdistrict: 10 grids, 300 micro-grids
COMMUNITY = "310106015003"
SHANGHAI = ZoneInfo("Asia/Shanghai")
FROM, TO = dt.date(2031, 3, 1), dt.date(2031, 3, 30)  # 30 days; before: 3 windows of 30
DAYS = 30
FIRST = FROM - dt.timedelta(days=3 * DAYS)
BACKGROUND = "EXPOSED_GARBAGE"
NEW, PERSISTENT, GRIDS = "NOISE", "STREET_VENDING", "ILLEGAL_PARKING"
GRID_CLUSTER = ("310106015002002", "310106015002003", "310106015003004")
CASE_NUMBER = re.compile(r"2031-9\d{6}")
REMOTE_LINK = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")
CELL = "path.hotspot-cell"

QUERY = """query($s: String!, $f: Date, $t: Date, $c: [String!], $k: HotspotCellKind!,
                 $m: Float! = 150) {
  caseHotspots(scope: $s, from: $f, to: $t, categories: $c, cell: $k, hexMeters: $m) {
    scope cell srid hexMeters window { from to } previousWindows { from to }
    cells { code name geometry count zScore pValue qValue confidence emerging suppressed } } }"""


def hotspots(client: TestClient, categories: list[str] | None, cell: str = "HEX",
             scope: str = SCOPE, **more: Any) -> dict[str, Any]:  # fmt: skip
    variables = {"s": scope, "f": str(FROM), "t": str(TO), "c": categories, "k": cell, **more}
    return ok(client, QUERY, **variables)["caseHotspots"]


# --------------------------------------------------------------------------------------------
# The planted cases
# --------------------------------------------------------------------------------------------


def _local(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    """A random time of a local day, 07:00 to 21:00."""
    minutes = int(rng.integers(7 * 60, 21 * 60))
    return dt.datetime.combine(day, dt.time(), SHANGHAI) + dt.timedelta(minutes=minutes)


def _in_window(k: int, rng: np.random.Generator) -> dt.datetime:
    """A random time in window k (0: FROM–TO, 1: the one before …)."""
    first = FROM - dt.timedelta(days=k * DAYS)
    return _local(first + dt.timedelta(days=int(rng.integers(0, DAYS))), rng)


def _inside(polygon: Any, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    west, south, east, north = polygon.bounds
    points: list[tuple[float, float]] = []
    while len(points) < n:
        lon, lat = float(rng.uniform(west, east)), float(rng.uniform(south, north))
        if polygon.contains(Point(lon, lat)):
            points.append((lon, lat))
    return points


def _around(centre: Any, metres: float, n: int, rng: np.random.Generator) -> list[tuple]:
    r = metres * np.sqrt(rng.uniform(0, 1, n))
    a = rng.uniform(0, 2 * math.pi, n)
    dlat = r * np.sin(a) / 111_320
    dlon = r * np.cos(a) / (111_320 * math.cos(math.radians(centre.y)))
    return [(centre.x + float(x), centre.y + float(y)) for x, y in zip(dlon, dlat, strict=True)]


def plant(db: ScratchDB) -> dict[str, Any]:
    rng = np.random.default_rng(20310301)
    grids = {
        code: shape(json.loads(geometry))
        for code, geometry in owner(
            db, "SELECT code, ST_AsGeoJSON(geom) FROM grid WHERE code LIKE %s ORDER BY code",
            SCOPE + "%",
        )
    }  # fmt: skip
    rows: list[tuple[str, float, float, dt.datetime, str]] = []  # category, lon, lat, at, state
    for k in range(4):
        for polygon in grids.values():
            rows += [(BACKGROUND, x, y, _in_window(k, rng), "REPORTED")
                     for x, y in _inside(polygon, 3, rng)]  # fmt: skip
    new_at = grids["310106015003002"].representative_point()
    rows += [(NEW, x, y, _in_window(0, rng), "REPORTED") for x, y in _around(new_at, 200, 150, rng)]
    persistent_at = grids["310106015001001"].representative_point()
    for k in range(4):
        rows += [(PERSISTENT, x, y, _in_window(k, rng), "CLOSED")
                 for x, y in _around(persistent_at, 200, 60, rng)]  # fmt: skip
    for code in GRID_CLUSTER:
        rows += [(GRIDS, x, y, _in_window(0, rng), "DISPATCHED")
                 for x, y in _inside(grids[code], 30, rng)]  # fmt: skip
    # Not counted: rejected, merged into another case, the day after the window (local time).
    x, y = new_at.x, new_at.y
    rows += [(NEW, x, y, _in_window(0, rng), "REJECTED") for _ in range(5)]
    merged = len(rows)
    rows += [(NEW, x, y, _in_window(0, rng), "CLOSED") for _ in range(5)]
    late = dt.datetime.combine(TO + dt.timedelta(days=1), dt.time(0, 30), SHANGHAI)
    early = dt.datetime.combine(FROM, dt.time(0, 10), SHANGHAI)  # 16:10 UTC the day before
    rows += [(NEW, x, y, late, "REPORTED"), (NEW, x, y, early, "REPORTED")]

    numbers = [f"2031-{9_000_000 + n}" for n in range(len(rows))]
    owner(
        db,
        """INSERT INTO grid_case (number, source, category_code, description, location, grid_code,
                                  micro_grid_code, state, reported_at, closed_at)
           SELECT v.number, 'GRID_WHISTLE', v.category, '测试 planted', p.pt, g.code, m.code,
                  v.state, v.at, CASE WHEN v.state = 'CLOSED' THEN v.at + interval '1 day' END
           FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::timestamptz[],
                       %s::text[]) AS v(number, category, lon, lat, at, state)
           CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326) AS pt) p
           JOIN grid g ON ST_Contains(g.geom, p.pt)
           LEFT JOIN micro_grid m ON ST_Contains(m.geom, p.pt)""",
        numbers, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
        [r[3] for r in rows], [r[4] for r in rows],
    )  # fmt: skip
    owner(
        db,
        "UPDATE grid_case SET merged_into = (SELECT id FROM grid_case WHERE number = %s)"
        " WHERE number = ANY(%s)",
        numbers[0], numbers[merged : merged + 5],
    )  # fmt: skip
    return {"new_at": new_at, "persistent_at": persistent_at}


@pytest.fixture(scope="module")
def planted_db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    db = databases.make("hotspots", template=template_db.name)
    db_points[db.name] = plant(db)
    yield db
    databases.drop(db.name)


db_points: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def places(planted_db: ScratchDB) -> dict[str, Any]:
    return db_points[planted_db.name]


@pytest.fixture(scope="module")
def cases(planted_db: ScratchDB) -> list[dict[str, Any]]:
    """Every planted case as stored, with its point in UTM zone 51 N (the demo's projection)."""
    rows = owner(
        planted_db,
        "SELECT number, category_code, grid_code, micro_grid_code, state, merged_into IS NOT NULL,"
        " reported_at, ST_X(ST_Transform(location, 32651)), ST_Y(ST_Transform(location, 32651))"
        " FROM grid_case WHERE number LIKE '2031-9%%'",
    )
    keys = ("number", "category", "grid", "micro_grid", "state", "merged", "at", "x", "y")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def counted(cases: list[dict[str, Any]], categories: list[str] | None, window: int = 0) -> list:
    """The cases a window counts, by this test's own reading of the rules."""
    first = FROM - dt.timedelta(days=window * DAYS)
    last = TO - dt.timedelta(days=window * DAYS)
    return [
        c for c in cases
        if (categories is None or c["category"] in categories) and not c["merged"]
        and c["state"] != "REJECTED" and first <= c["at"].astimezone(SHANGHAI).date() <= last
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tokens(planted_db: ScratchDB) -> dict[str, dict[str, str]]:
    return demo_tokens(planted_db)


@pytest.fixture(scope="module")
def public(planted_db: ScratchDB) -> Iterator[TestClient]:
    with TestClient(create_app(planted_db.settings())) as c:
        yield c


@pytest.fixture(scope="module")
def staff(public: TestClient, tokens: dict[str, dict[str, str]]) -> TestClient:
    return as_role(public, tokens, "grid_center")


# --------------------------------------------------------------------------------------------
# Hexagons: ST_HexagonGrid's layout, written out
# --------------------------------------------------------------------------------------------


def hexagon(i: int, j: int, edge: float) -> Polygon:
    """ST_HexagonGrid's hexagon (i, j): flat-topped, centre (1.5 e i, √3 e (j + ½ (|i| mod 2)))."""
    h = math.sqrt(3) * edge
    cx, cy = 1.5 * edge * i, h * (j + 0.5 * (abs(i) % 2))
    return Polygon([(cx + edge * math.cos(a), cy + edge * math.sin(a))
                    for a in np.radians(np.arange(0, 360, 60))])  # fmt: skip


def utm_of(db: ScratchDB, sql: str, *params: Any) -> Any:
    return shapely.from_wkt(owner(db, sql, *params)[0][0])


def test_the_layout_is_st_hexagongrids(planted_db: ScratchDB) -> None:
    for edge in (150.0, 37.5):
        rows = owner(
            planted_db,
            "SELECT h.i, h.j, ST_AsText(h.geom) FROM ST_HexagonGrid(%s,"
            " ST_MakeEnvelope(350000, 3455000, 352000, 3457000, 32651)) h",
            edge,
        )
        assert len(rows) > 20
        for i, j, wkt in rows:
            got = shapely.from_wkt(wkt)
            assert got.symmetric_difference(hexagon(i, j, edge)).area < 1e-6, (i, j)


def test_every_hexagon_of_the_scope_is_returned_empty_ones_too(
    staff: TestClient, planted_db: ScratchDB
) -> None:
    found = hotspots(staff, None)
    assert found["srid"] == 32651 and found["hexMeters"] == 150 and found["cell"] == "HEX"
    area = utm_of(planted_db, "SELECT ST_AsText(ST_Transform(geom, 32651)) FROM subdistrict"
                  " WHERE code = %s", SCOPE)  # fmt: skip
    west, south, east, north = area.bounds
    expected = {
        (i, j)
        for i in range(math.floor(west / 225) - 1, math.ceil(east / 225) + 2)
        for j in range(math.floor(south / (150 * math.sqrt(3))) - 2,
                       math.ceil(north / (150 * math.sqrt(3))) + 2)
        if hexagon(i, j, 150).intersects(area)
    }  # fmt: skip
    got = {parse_hex_code(c["code"])[:2] for c in found["cells"]}
    assert got == expected
    assert sum(c["count"] == 0 for c in found["cells"]) > 10  # empty cells are there
    assert [c["code"] for c in found["cells"]] == sorted(
        (c["code"] for c in found["cells"]), key=lambda code: parse_hex_code(code)[:2]
    )


def test_hexagon_neighbours_are_queen_contiguity(staff: TestClient) -> None:
    cells = hotspots(staff, None)["cells"]
    ij = [parse_hex_code(c["code"])[:2] for c in cells]
    exact = queen_neighbours([hexagon(i, j, 150) for i, j in ij])
    assert case_hotspots.hex_neighbours(ij) == exact
    assert max(len(n) for n in exact) == 6
    # The returned geometries say the same (to a centimetre: they are rounded to 7 digits).
    assert queen_neighbours([shape(c["geometry"]).buffer(2e-7) for c in cells]) == exact


@pytest.mark.parametrize("categories", [None, [NEW, BACKGROUND], [PERSISTENT]])
def test_hexagon_counts_and_gi_star_agree_with_the_cases(
    staff: TestClient, cases: list[dict[str, Any]], categories: list[str] | None
) -> None:
    cells = hotspots(staff, categories)["cells"]
    hexagons = [hexagon(*parse_hex_code(c["code"])[:2], 150) for c in cells]
    tree = shapely.STRtree(hexagons)
    expected = Counter()
    for c in counted(cases, categories):
        hits = tree.query(Point(c["x"], c["y"]), predicate="within")
        assert len(hits) == 1
        expected[int(hits[0])] += 1
    assert [c["count"] for c in cells] == [expected[n] for n in range(len(cells))]
    neighbours = queen_neighbours([shape(c["geometry"]).buffer(2e-7) for c in cells])
    z = gi_star([c["count"] for c in cells], neighbours)
    assert np.allclose([c["zScore"] for c in cells], z, atol=1e-9)
    for c in cells:
        assert c["pValue"] == pytest.approx(math.erfc(abs(c["zScore"]) / math.sqrt(2)))
        assert c["pValue"] <= c["qValue"] <= 1


@pytest.mark.parametrize("cell", ["GRID", "MICRO_GRID"])
def test_area_counts_and_gi_star_agree_with_the_cases(
    staff: TestClient, cases: list[dict[str, Any]], cell: str
) -> None:
    cells = hotspots(staff, None, cell)["cells"]
    key = "grid" if cell == "GRID" else "micro_grid"
    expected = Counter(c[key] for c in counted(cases, None))
    assert len(cells) == (10 if cell == "GRID" else 300)
    assert {c["code"]: c["count"] for c in cells} == {c["code"]: expected[c["code"]] for c in cells}
    assert all(c["name"] for c in cells)
    neighbours = queen_neighbours([shape(c["geometry"]).buffer(2e-7) for c in cells])
    z = gi_star([c["count"] for c in cells], neighbours)
    assert np.allclose([c["zScore"] for c in cells], z, atol=1e-9)


# --------------------------------------------------------------------------------------------
# What the planted clusters come out as
# --------------------------------------------------------------------------------------------


def cell_at(cells: list[dict[str, Any]], point: Point) -> dict[str, Any]:
    (found,) = [c for c in cells if shape(c["geometry"]).contains(point)]
    return found


def test_a_new_cluster_is_hot_99_and_new(staff: TestClient, places: dict[str, Any]) -> None:
    for cell in ("HEX", "MICRO_GRID"):
        cells = hotspots(staff, [NEW, BACKGROUND], cell)["cells"]
        hot = cell_at(cells, places["new_at"])
        assert hot["count"] >= 15 and hot["confidence"] == "HOT_99", (cell, hot)
        assert hot["emerging"] == "NEW"
        # Only the cluster and cells next to it are hot.
        for c in cells:
            if c["confidence"].startswith("HOT"):
                assert shape(c["geometry"]).distance(places["new_at"]) < 0.005, c["code"]
            assert c["emerging"] == "NONE" or c["confidence"].startswith("HOT")


def test_a_cluster_in_every_window_is_persistent(staff: TestClient, places: dict[str, Any]) -> None:
    cells = hotspots(staff, [PERSISTENT, BACKGROUND])["cells"]
    hot = cell_at(cells, places["persistent_at"])
    assert hot["confidence"] == "HOT_99" and hot["emerging"] == "PERSISTENT"
    assert not any(c["emerging"] == "NEW" for c in cells)


def test_neighbouring_grids_full_of_cases_make_a_grid_hot(staff: TestClient) -> None:
    """With 10 cells, Gi* is at most √(n − 1) = 3 (a cell whose neighbourhood holds all the
    cases, and nothing else), p = 0.0027, and a single such cell's q = 10 p: HOT_95 is the most
    ten grids can give. 310106015002003's neighbourhood is the three planted grids."""
    cells = hotspots(staff, [GRIDS, BACKGROUND], "GRID")["cells"]
    by_code = {c["code"]: c for c in cells}
    hot = by_code["310106015002003"]
    assert 2.8 < hot["zScore"] <= 3 and hot["confidence"] == "HOT_95"
    assert hot["emerging"] == "NEW"
    assert {c["code"] for c in cells if c["confidence"] != "NOT_SIGNIFICANT"} <= set(GRID_CLUSTER)


def test_categories_filter_the_counts(staff: TestClient, cases: list[dict[str, Any]]) -> None:
    cells = hotspots(staff, [PERSISTENT], "GRID")["cells"]
    assert sum(c["count"] for c in cells) == len(counted(cases, [PERSISTENT])) > 40


def test_hexagon_codes_are_stable(staff: TestClient) -> None:
    first = {c["code"]: c["geometry"] for c in hotspots(staff, None)["cells"]}
    again = {c["code"]: c["geometry"] for c in hotspots(staff, [NEW], f=None, t=None)["cells"]}
    assert again == first
    community = {c["code"]: c["geometry"] for c in hotspots(staff, None, scope=COMMUNITY)["cells"]}
    assert community and all(first[code] == g for code, g in community.items())
    small = hotspots(staff, None, m=75.5)
    assert small["cells"][0]["code"].startswith("H75.5-c")
    assert len(small["cells"]) > 3 * len(first)


def test_windows(staff: TestClient) -> None:
    found = hotspots(staff, None, "GRID")
    assert found["window"] == {"from": str(FROM), "to": str(TO)}
    assert found["previousWindows"] == [
        {"from": str(FIRST + dt.timedelta(days=k * DAYS)),
         "to": str(FIRST + dt.timedelta(days=(k + 1) * DAYS - 1))}
        for k in range(3)
    ]  # fmt: skip
    today = dt.datetime.now(SHANGHAI).date()
    found = ok(staff, '{ caseHotspots(scope: "310106015", cell: GRID) { window { from to } } }')
    assert found["caseHotspots"]["window"] == {
        "from": str(today - dt.timedelta(days=29)),
        "to": str(today),
    }


# --------------------------------------------------------------------------------------------
# Who gets what
# --------------------------------------------------------------------------------------------


def test_the_public_gets_no_small_count(public: TestClient, staff: TestClient) -> None:
    for cell in ("HEX", "GRID"):
        seen = hotspots(public, None, cell)["cells"]
        full = hotspots(staff, None, cell)["cells"]
        assert [c["code"] for c in seen] == [c["code"] for c in full]
        for p, s in zip(seen, full, strict=True):
            assert p["zScore"] == s["zScore"] and p["confidence"] == s["confidence"]
            if s["count"] < 10:
                assert p["count"] is None and p["suppressed"] is True
            else:
                assert p["count"] == s["count"] and p["suppressed"] is False
        assert any(c["suppressed"] for c in seen) and any(not c["suppressed"] for c in seen)
        assert not any(c["suppressed"] for c in full)


def test_hotspots_are_the_same_for_every_role(
    public: TestClient, staff: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    """Aggregates: a grid worker's or a department's hotspots of the subdistrict are the grid
    center's, though row-level security shows them only their grids' or unit's cases."""
    full = hotspots(staff, None)
    for role in ("grid_worker", "community", "department"):
        assert hotspots(as_role(public, tokens, role), None) == full, role


def test_the_app_role_counts_but_reads_no_case(planted_db: ScratchDB) -> None:
    import psycopg2
    from sqlalchemy.engine import make_url

    dsn = make_url(planted_db.app_url).set(drivername="postgresql").render_as_string(False)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT set_config('gridmap.role', 'public', true)")
            cur.execute("SELECT count(*) FROM grid_case")
            assert cur.fetchone() == (0,)
            cur.execute("SELECT sum(cases) FROM case_area_counts(%s, 15, %s, %s, 0, NULL)",
                        (SCOPE, FROM, TO))  # fmt: skip
            assert cur.fetchone()[0] > 100
        for sql in (
            "SELECT * FROM case_hex_counts('310106015', 32651, 10, '2031-03-01', '2031-03-30', 0,"
            " NULL)",
            "SELECT * FROM case_hex_counts('310106015', 3857, 150, '2031-03-01', '2031-03-30', 0,"
            " NULL)",
            "SELECT * FROM case_area_counts('310106015', 21, '2031-03-01', '2031-03-30', 0, NULL)",
        ):
            with pytest.raises(psycopg2.errors.RaiseException), conn, conn.cursor() as cur:
                cur.execute(sql)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"f": "2031-04-01"}, "from"),
        ({"m": 10.0}, "hexMeters"),
        ({"m": 2500.0}, "hexMeters"),
        ({"s": "310106099"}, "scope"),
        ({"s": "31010601"}, "scope"),
        ({"c": ["NOISE", "NO_SUCH_THING"]}, "categories"),
        ({"c": []}, "categories"),
        ({"k": "GRID", "s": "310106015001001001"}, "cell"),
    ],
)
def test_bad_input_names_the_argument(
    public: TestClient, variables: dict[str, Any], argument: str
) -> None:
    base = {"s": SCOPE, "f": str(FROM), "t": str(TO), "c": None, "k": "HEX"}
    got = error(public, QUERY, **(base | variables))
    assert got["extensions"]["argument"] == argument, got
    assert got["message"].startswith(f"{argument}:")
    assert got["extensions"]["code"] in ("BAD_USER_INPUT", "NOT_FOUND")


def test_too_many_hexagons(public: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(case_hotspots, "MAX_HEXAGONS", 40)
    got = error(public, QUERY, s=SCOPE, f=str(FROM), t=str(TO), c=None, k="HEX", m=150.0)
    assert got["extensions"]["argument"] == "hexMeters"
    suggested = int(re.search(r"hexMeters of (\d+) or more", got["message"]).group(1))
    assert suggested > 150
    ok(public, QUERY, s=SCOPE, f=str(FROM), t=str(TO), c=None, k="HEX", m=float(suggested))
    assert gql(public, QUERY, s=SCOPE, k="TRIANGLE")["errors"]  # not a cell kind


# --------------------------------------------------------------------------------------------
# The map
# --------------------------------------------------------------------------------------------

PARAMS = {"scope": SCOPE, "from": str(FROM), "to": str(TO)}


def hotspot_map(client: TestClient, **params: str) -> Any:
    return client.get("/maps/hotspots", params=PARAMS | params)


def numbers_in(html: str) -> set[str]:
    return set(CASE_NUMBER.findall(html))


def test_staff_map_has_heat_and_markers_the_public_map_none(
    staff: TestClient, public: TestClient, cases: list[dict[str, Any]]
) -> None:
    page = hotspot_map(staff)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert not REMOTE_LINK.search(html), "a link leaves the machine"
    for asset in ("leaflet.heat/dist/leaflet-heat.js",
                  "leaflet.markercluster/dist/leaflet.markercluster.js",
                  "leaflet.markercluster/dist/MarkerCluster.Default.css"):  # fmt: skip
        assert f"/maps/assets/{asset}" in html
        assert staff.get(f"/maps/assets/{asset}").status_code == 200
    assert html.index("leaflet/dist/leaflet.js") < html.index("leaflet-heat.js")
    assert "L.heatLayer" in html and "L.markerClusterGroup" in html
    assert numbers_in(html) == {c["number"] for c in counted(cases, None)}
    assert "hotspot-legend" in html

    html = hotspot_map(public).text
    assert not numbers_in(html) and "L.heatLayer" not in html
    assert "L.markerClusterGroup" not in html and "leaflet-heat.js" not in html
    assert "hotspot-legend" in html and "not public" in html


def test_a_grid_worker_sees_the_cases_of_its_grids_only(
    public: TestClient, tokens: dict[str, dict[str, str]], planted_db: ScratchDB,
    cases: list[dict[str, Any]],
) -> None:  # fmt: skip
    grids = {
        code for (code,) in owner(
            planted_db,
            "SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id"
            " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s",
            tokens["grid_worker"]["worker"],
        )
    }  # fmt: skip
    mine = {c["number"] for c in counted(cases, None) if c["grid"] in grids}
    assert mine
    html = hotspot_map(as_role(public, tokens, "grid_worker")).text
    assert numbers_in(html) == mine
    html = hotspot_map(as_role(public, tokens, "department")).text  # no case of its unit
    assert not numbers_in(html) and "L.heatLayer" not in html


@pytest.mark.parametrize(
    ("params", "argument"),
    [
        ({"scope": ""}, "scope"),
        ({"scope": "310106099"}, "scope"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2031-02-30"}, "to"),
        ({"from": "2031-04-01"}, "from"),
        ({"cell": "TRIANGLE"}, "cell"),
        ({"hexMeters": "big"}, "hexMeters"),
        ({"hexMeters": "5"}, "hexMeters"),
        ({"categories": "NOISE,NOPE"}, "categories"),
    ],
)
def test_map_bad_input_is_a_400_naming_the_parameter(
    public: TestClient, params: dict[str, str], argument: str
) -> None:
    page = hotspot_map(public, **params)
    assert page.status_code == 400, page.text
    assert f"{argument}:" in page.text


def run_cli(*args: str, db: ScratchDB) -> subprocess.CompletedProcess[str]:
    return db.gridmap("map", "hotspots", *args)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def live_server(planted_db: ScratchDB) -> Iterator[str]:
    with serve(planted_db.settings()) as url:
        yield url


def check_drawn(page: Page, cells: int, *, staff: bool) -> None:
    assert page.evaluate("typeof L") == "object"
    assert page.locator(CELL).count() == cells
    legend = page.locator(".hotspot-legend")
    assert legend.count() == 1 and "热点 hot spot, 99 %" in legend.inner_text()
    overlays = page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    assert len(overlays) == (3 if staff else 1), overlays
    heat = page.locator("canvas.leaflet-heatmap-layer").count()
    markers = page.locator(".marker-cluster, .case-marker").count()
    if staff:
        assert heat == 1 and markers > 0
        page.locator(".marker-cluster, .case-marker").first.click()
        page.wait_for_timeout(600)  # a cluster zooms in, a marker opens its popup
    else:
        assert heat == 0 and markers == 0


def test_served_map_renders_offline(
    browser: Browser, live_server: str, tokens: dict[str, dict[str, str]], staff: TestClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    cells = len(hotspots(staff, None)["cells"])
    query = f"scope={SCOPE}&from={FROM}&to={TO}"
    auth = {"Authorization": f"Bearer {tokens['grid_center']['token']}"}
    page = open_offline(browser, f"{live_server}/maps/hotspots?{query}", auth, ready=CELL)
    page.screenshot(path=tmp_path / "hotspots-grid-center.png")
    print(f"screenshot: {tmp_path / 'hotspots-grid-center.png'}")
    check_drawn(page, cells, staff=True)

    seen = open_offline(browser, f"{live_server}/maps/hotspots?{query}", ready=CELL)
    check_drawn(seen, cells, staff=False)
    seen.screenshot(path=tmp_path / "hotspots-public.png")


def test_cli_file_renders_offline_from_disk(
    browser: Browser, planted_db: ScratchDB, tokens: dict[str, dict[str, str]], tmp_path: Path,
    cases: list[dict[str, Any]],
) -> None:  # fmt: skip
    out = tmp_path / "hotspots.html"
    done = run_cli("--scope", SCOPE, "-o", str(out), "--from", str(FROM), "--to", str(TO),
                   "--cell", "grid", "--worker", tokens["grid_center"]["worker"],
                   db=planted_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert "<script src=" not in html and '<link rel="stylesheet"' not in html
    assert numbers_in(html) == {c["number"] for c in counted(cases, None)}
    page = open_offline(browser, out.as_uri(), ready=CELL)
    check_drawn(page, 10, staff=True)
    page.screenshot(path=tmp_path / "hotspots-file.png")
    print(f"screenshot: {tmp_path / 'hotspots-file.png'}")

    public = tmp_path / "public.html"
    done = run_cli("--scope", SCOPE, "-o", str(public), "--from", str(FROM), "--to", str(TO),
                   "--category", "noise", db=planted_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not numbers_in(public.read_text(encoding="utf-8"))

    done = run_cli("--scope", SCOPE, "-o", str(tmp_path / "x.html"), "--hex-meters", "5",
                   db=planted_db)  # fmt: skip
    assert done.returncode != 0 and "hexMeters:" in done.stderr
    assert not (tmp_path / "x.html").exists()
