"""The demo district: deterministic, the right size, cleanly nested, consistent, refusing to
overwrite real data, growing the way a city grows.

Each test loads into empty migrated databases of its own (see ``scratch``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from sqlalchemy.engine import make_url

import geo.demo as demo
from api.settings import Settings
from geo.demo import DEMO_VERSION, DemoError, demo_info, load_demo
from geo.migrate import upgrade
from geo.pii import Vault, mask_id
from geo.visits import door_to_class_a

KEY = Settings().secret_key


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def scratch(databases: Any) -> Callable[[str], str]:
    """Makes a migrated, empty database of this suite's own; dropped when the suite ends."""

    def make(name: str) -> str:
        db = databases.make(f"demo_{name}")
        upgrade(db.owner_url)
        return db.owner_url

    return make


@contextmanager
def _cursor(url: str) -> Iterator[Any]:
    conn = psycopg2.connect(_dsn(url))
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with _cursor(url) as cur:
        cur.execute(sql)
        return cur.fetchall()


def _one(url: str, sql: str) -> Any:
    return _rows(url, sql)[0][0]


@pytest.fixture(scope="module")
def default(scratch: Callable[[str], str]) -> tuple[str, demo.DemoSummary]:
    url = scratch("default")
    return url, load_demo(secret_key=KEY, url=url, progress=False)


@pytest.fixture(scope="module")
def url(default: tuple[str, demo.DemoSummary]) -> str:
    return default[0]


def test_default_size(default: tuple[str, demo.DemoSummary]) -> None:
    url, summary = default
    assert summary.status == "loaded"
    assert summary.counts["grid"] == 10
    assert summary.counts["building"] == summary.counts["micro_grid"] == 300
    assert summary.counts["household"] == 5000
    assert summary.counts["merchant"] == 100
    assert summary.counts == {t: _one(url, f"SELECT count(*) FROM {t}") for t in demo.TABLES}
    assert _rows(url, "SELECT code, name FROM district") == [("310106", "静安区")]
    assert _rows(url, "SELECT code, name FROM subdistrict") == [("310106015", "天目西路街道")]
    communities = _rows(url, "SELECT code, name, office IS NOT NULL FROM community ORDER BY code")
    assert len(communities) >= 3
    assert communities[0] == ("310106015001", "蕃瓜弄居委会", True)
    assert all(has_office for _, _, has_office in communities)
    # The real communities, in code order.
    assert [c[0] for c in communities] == [
        f"310106015{k:03d}" for k in range(1, 1 + len(communities))
    ]
    members = _one(url, "SELECT count(*)::float / (SELECT count(*) FROM household) FROM person")
    assert 2.3 <= members <= 2.8
    assert (
        _one(url, "SELECT max(n) FROM (SELECT count(*) n FROM person GROUP BY household_id) x") <= 6
    )


def test_default_is_centred_on_tianmu_west_road(url: str) -> None:
    lon, lat = _rows(
        url, "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM subdistrict) x"
    )[0]
    assert abs(lon - 121.452) < 0.003 and abs(lat - 31.248) < 0.003


def test_subdistrict_area_is_the_real_ones(url: str) -> None:
    km2 = _one(url, "SELECT ST_Area(geom::geography) / 1e6 FROM subdistrict")
    assert 1.5 <= km2 <= 2.2


NESTING = [
    ("building", "geom", "micro_grid", "micro_grid_id"),
    ("micro_grid", "geom", "grid", "grid_id"),
    ("grid", "geom", "community", "community_id"),
    ("community", "geom", "subdistrict", "subdistrict_id"),
    ("community", "office", "subdistrict", "subdistrict_id"),
    ("subdistrict", "geom", "district", "district_id"),
    ("household", "location", "building", "building_id"),
    ("merchant", "geom", "building", "building_id"),
]


def test_geometries_valid_and_nested(url: str) -> None:
    for table in ("district", "subdistrict", "community", "grid", "micro_grid", "building"):
        assert _one(url, f"SELECT count(*) FROM {table} WHERE NOT ST_IsValid(geom)") == 0, table
    for child, column, parent, key in NESTING:
        outside = _one(
            url,
            f"SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{key}"
            f" WHERE NOT ST_CoveredBy(c.{column}, ST_Buffer(p.geom, 1e-8))",
        )
        assert outside == 0, f"{child}.{column} outside its {parent}"
    assert _one(url, "SELECT count(*) FROM community WHERE NOT ST_Contains(geom, office)") == 0


def test_each_level_is_tiled_by_the_level_below(url: str) -> None:
    """Micro-grids tile their grid (no gaps, no overlaps), and so on up: unions are neat."""
    for child, parent, key in (
        ("micro_grid", "grid", "grid_id"),
        ("grid", "community", "community_id"),
        ("community", "subdistrict", "subdistrict_id"),
        ("subdistrict", "district", "district_id"),
    ):
        gaps = _one(
            url,
            f"SELECT count(*) FROM {parent} p WHERE abs(ST_Area(p.geom)"
            f" - (SELECT sum(ST_Area(c.geom)) FROM {child} c WHERE c.{key} = p.id)) > 1e-10",
        )
        assert gaps == 0, f"{child}s do not tile their {parent}"
    overlaps = _one(
        url,
        "SELECT count(*) FROM micro_grid a JOIN micro_grid b ON a.id < b.id"
        " AND ST_Intersects(a.geom, b.geom) WHERE ST_Area(ST_Intersection(a.geom, b.geom)) > 1e-12",
    )
    assert overlaps == 0
    assert _one(url, "SELECT max(ST_NumGeometries(geom)) FROM grid") == 1  # contiguous


def test_buildings_are_believable(url: str) -> None:
    low, high = _rows(
        url,
        "SELECT min(ST_Area(geom::geography)), max(ST_Area(geom::geography)) FROM building",
    )[0]
    assert low >= 60 and high <= 80 * 40
    # Every side 10-80 m (rotated rectangles).
    sides = _rows(
        url,
        "SELECT min(d), max(d) FROM (SELECT ST_Distance("
        " ST_PointN(ST_ExteriorRing(geom), i)::geography,"
        " ST_PointN(ST_ExteriorRing(geom), i + 1)::geography) d FROM building,"
        " generate_series(1, 2) i) x",
    )[0]
    assert sides[0] >= 9.5 and sides[1] <= 80.5
    per_building = _one(url, "SELECT count(*)::float / count(DISTINCT building_id) FROM household")
    assert 15 <= per_building <= 18


def test_codes_extend_their_parents(url: str) -> None:
    for child, parent, key, pattern in (
        ("subdistrict", "district", "district_id", r"^\d{9}$"),
        ("community", "subdistrict", "subdistrict_id", r"^\d{12}$"),
        ("grid", "community", "community_id", r"^\d{15}$"),
        ("micro_grid", "grid", "grid_id", r"^\d{18}$"),
        ("building", "micro_grid", "micro_grid_id", r"^\d{18}001$"),
        ("household", "building", "building_id", r"^\d{21}-\d+-\d{4}$"),
        ("person", "household", "household_id", r"^\d{21}-\d+-\d{4}-\d{2}$"),
    ):
        separator = "-" if child in ("household", "person") else ""
        bad = _one(
            url,
            f"SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{key}"
            f" WHERE NOT starts_with(c.code, p.code || '{separator}') OR c.code !~ '{pattern}'",
        )
        assert bad == 0, child
    bad = _one(
        url,
        "SELECT count(*) FROM household WHERE code <> '' || split_part(code, '-', 1)"
        " || '-' || unit || '-' || room",
    )
    assert bad == 0
    assert _rows(url, "SELECT code FROM grid ORDER BY code LIMIT 1") == [("310106015001001",)]


def test_class_c_households_have_flagged_members(url: str) -> None:
    flagged = (
        "EXISTS (SELECT 1 FROM person p WHERE p.household_id = h.id AND (p.elderly_living_alone"
        " OR p.childless_elderly OR p.bereaved OR p.low_income OR p.disabled OR p.entitled_group))"
    )
    assert (
        _one(url, f"SELECT count(*) FROM household h WHERE (household_class = 'C') <> {flagged}")
        == 0
    )
    # Elderly living alone: a one-person household aged 65 or more, and every such one flagged.
    wrong = _one(
        url,
        "SELECT count(*) FROM household h JOIN LATERAL (SELECT count(*) n,"
        " bool_or(elderly_living_alone) f, min(birth_year) y"
        " FROM person p WHERE p.household_id = h.id) m ON true"
        f" WHERE m.f <> (m.n = 1 AND {demo.REF_YEAR} - m.y >= 65)",
    )
    assert wrong == 0
    shares = dict(
        _rows(url, "SELECT household_class, count(*)::float / 5000 FROM household GROUP BY 1")
    )
    assert 0.10 <= shares["A"] <= 0.20
    assert 0.60 <= shares["B"] <= 0.80
    assert 0.10 <= shares["C"] <= 0.20


def test_people_are_consistent(url: str) -> None:
    # Relations and ages agree: children at least 18 years younger than the head, parents older.
    assert (
        _one(
            url,
            "SELECT count(*) FROM person c JOIN person h ON h.household_id = c.household_id"
            " AND h.relation = '户主'"
            " WHERE (c.relation = '子女' AND c.birth_year < h.birth_year + 18)"
            " OR (c.relation = '父母' AND c.birth_year > h.birth_year - 18)"
            " OR (c.relation = '孙子女' AND c.birth_year < h.birth_year + 36)",
        )
        == 0
    )
    assert (
        _one(
            url,
            "SELECT count(*) FROM household WHERE NOT EXISTS (SELECT 1 FROM person p"
            " WHERE p.household_id = household.id AND p.relation = '户主')",
        )
        == 0
    )
    assert _one(url, "SELECT count(*) FROM person WHERE phone !~ '^1[3-9][0-9]{9}$'") == 0
    seeking = _rows(
        url,
        "SELECT m.grid_id, avg(p.seeking_work::int) FROM person p"
        " JOIN household h ON h.id = p.household_id"
        " JOIN building b ON b.id = h.building_id JOIN micro_grid m ON m.id = b.micro_grid_id"
        " GROUP BY 1 ORDER BY 2 DESC",
    )
    overall = _one(url, "SELECT avg(seeking_work::int) FROM person")
    assert 0.01 <= overall <= 0.06
    assert seeking[0][1] > 3 * seeking[-1][1]  # concentrated in one or two grids


def _id_check(first17: str) -> str:
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights, strict=True)) % 11]


def test_id_numbers(url: str) -> None:
    vault = Vault(KEY)
    sealed = _rows(
        url,
        "SELECT id_number_sealed, id_number_digest, id_number_masked, birth_year, gender"
        " FROM person",
    )
    rows = []
    for cipher, digest, masked, year, gender in sealed:
        number = vault.open(bytes(cipher))
        assert number.encode() not in bytes(cipher)  # a dump alone does not reveal it
        assert bytes(digest) == vault.digest(number) and masked == mask_id(number)
        rows.append((number, year, gender))
    assert len({r[0] for r in rows}) == len(rows)
    for number, year, gender in rows:
        assert re.fullmatch(r"310106\d{11}[0-9X]", number), number
        assert int(number[6:10]) == year
        assert number[17] == _id_check(number[:17]), number
        assert int(number[16]) % 2 == (1 if gender == "M" else 0)
    assert demo.id_check_digit("11010519491231002") == "X"  # GB 11643's own example


def test_workers(url: str) -> None:
    roles = dict(_rows(url, "SELECT role::text, count(*) FROM worker GROUP BY 1"))
    assert set(roles) == {
        "GRID_CENTER",
        "COMMUNITY",
        "GRID_WORKER",
        "MICRO_GRID_LEADER",
        "DEPARTMENT",
    }
    uncovered = _one(
        url,
        "SELECT count(*) FROM grid g WHERE NOT EXISTS (SELECT 1 FROM worker_grid wg JOIN worker w"
        " ON w.id = wg.worker_id WHERE wg.grid_id = g.id AND w.role = 'GRID_WORKER')",
    )
    assert uncovered == 0
    assert (
        _one(
            url,
            "SELECT count(*) FROM worker WHERE role = 'GRID_CENTER' AND community_id IS NOT NULL",
        )
        == 0
    )
    assert (
        _one(url, "SELECT count(*) FROM worker WHERE role = 'COMMUNITY' AND community_id IS NULL")
        == 0
    )
    units = {
        r[0] for r in _rows(url, "SELECT DISTINCT unit_code FROM worker WHERE role = 'DEPARTMENT'")
    }
    assert 4 <= len(units) <= 6
    codes = [r[0] for r in _rows(url, "SELECT code FROM worker")]
    assert all(re.fullmatch(r"JA015-(GC|SQ|WG|WL|BM)-\d{4}", c) for c in codes)


def test_merchants_line_the_commercial_street(url: str) -> None:
    rows = _rows(url, "SELECT code, category, building_id IS NOT NULL, address FROM merchant")
    assert len(rows) == 100
    assert len({r[1] for r in rows}) >= 8
    assert sum(r[2] for r in rows) >= 50  # most are shops on the ground floor of a building
    assert all(r[3].startswith("天目西路") for r in rows)
    for code, *_ in rows:
        assert re.fullmatch(r"9[12]310106[0-9A-HJ-NPQRTUWXY]{10}", code), code
        assert code[17] == demo.uscc_check(code[:17])
    # All along one street: their latitudes fall in a band ~60 m wide.
    spread = _one(
        url,
        "SELECT ST_Distance(ST_MakePoint(0, min(ST_Y(geom)))::geography,"
        " ST_MakePoint(0, max(ST_Y(geom)))::geography) FROM merchant",
    )
    assert spread < 80


ZONE = ZoneInfo("Asia/Shanghai")


def _today() -> dt.date:
    return dt.datetime.now(ZONE).date()


def test_six_months_of_visits_up_to_today(url: str) -> None:
    span = (
        "SELECT min(visited_at), max(visited_at), count(*) FILTER (WHERE visited_at > now()),"
        " count(*) FROM visit"
    )
    first, last, future, n = _rows(url, span)[0]
    today = _today()
    assert future == 0 and n > 5000
    assert first.astimezone(ZONE).date() == today - dt.timedelta(days=demo.HISTORY_DAYS)
    assert today - dt.timedelta(days=3) <= last.astimezone(ZONE).date() < today
    # Every visit in its worker's day, or in the evening when working families are in.
    for (at,) in _rows(url, "SELECT visited_at FROM visit"):
        local = at.astimezone(ZONE).time()
        assert dt.time(9) <= local <= dt.time(17) or dt.time(18, 30) <= local <= dt.time(20, 30)
    assert _rows(
        url,
        "SELECT class_a_days, class_b_days, class_c_days, starts_on FROM cadence_policy"
        " JOIN subdistrict s ON s.id = subdistrict_id",
    ) == [(182, 182, 30, today - dt.timedelta(days=demo.HISTORY_DAYS))]
    assert _one(url, "SELECT count(DISTINCT idempotency_key) FROM visit") == n


def test_visitors_are_assigned_to_the_households_grid(url: str) -> None:
    strangers = _one(
        url,
        "SELECT count(*) FROM visit v WHERE NOT EXISTS (SELECT 1 FROM worker_grid wg"
        " JOIN grid g ON g.id = wg.grid_id WHERE wg.worker_id = v.worker_id"
        " AND g.code = left(v.household_code, 15))",
    )
    assert strangers == 0
    mislabelled = (
        "SELECT count(*) FROM visit v JOIN household h ON h.id = v.household_id"
        " WHERE h.code <> v.household_code"
    )
    assert _one(url, mislabelled) == 0
    roles = dict(
        _rows(
            url,
            "SELECT w.role::text, count(*) FROM visit v JOIN worker w ON w.id = v.worker_id"
            " GROUP BY 1",
        )
    )
    assert set(roles) == {"GRID_WORKER", "MICRO_GRID_LEADER"}
    assert roles["GRID_WORKER"] > 2 * roles["MICRO_GRID_LEADER"]


def test_coverage_differs_from_grid_to_grid(url: str) -> None:
    cells = _rows(
        url,
        "SELECT cell, households, contacted, overdue_c"
        f" FROM coverage_counts('310106015', 15, '{_today()}')",
    )
    assert len(cells) == 10
    ratios = sorted(contacted / households for _, households, contacted, _ in cells)
    assert ratios[-1] >= 0.8 and ratios[0] <= 0.5
    # Class C households are overdue somewhere in most grids, even the well covered ones.
    assert sum(1 for *_, overdue_c in cells if overdue_c) >= len(cells) // 2
    # Class C: about monthly where the team keeps up.
    per_c = _one(
        url,
        "SELECT count(*)::float / count(DISTINCT h.id) FROM visit v"
        " JOIN household h ON h.id = v.household_id WHERE h.household_class = 'C'",
    )
    assert 3 <= per_c <= 6


def test_class_a_is_contacted_through_its_preferred_channel(url: str) -> None:
    preferences = dict(
        _rows(
            url,
            "SELECT household_class, array_agg(DISTINCT contact_preference) FROM household"
            " GROUP BY 1",
        )
    )
    assert "DOOR" not in preferences["A"] and len(preferences["A"]) >= 3
    assert preferences["B"] == preferences["C"] == ["DOOR"]
    visits = _rows(
        url,
        "SELECT v.mode, h.contact_preference, v.warnings, h.code FROM visit v"
        " JOIN household h ON h.id = v.household_id WHERE h.household_class = 'A'",
    )
    preferred = [mode == pref for mode, pref, _, _ in visits]
    assert sum(preferred) >= 0.9 * len(visits)
    for mode, pref, warnings, code in visits:
        if mode != pref:  # a knock at the door anyway: recorded, with the app's warning
            assert mode == "DOOR" and warnings == [door_to_class_a(code, pref)]
    assert _one(url, "SELECT count(*) FROM visit WHERE cardinality(warnings) > 0") == sum(
        not p for p in preferred
    )


def test_night_and_weekend_flags_follow_local_time(url: str) -> None:
    rows = _rows(url, "SELECT visited_at, night, weekend FROM visit")
    for at, night, weekend in rows:
        local = at.astimezone(ZONE)
        assert night == (local.hour >= 18 or local.hour < 6), at
        assert weekend == (local.weekday() >= 5), at
    assert 0.05 <= sum(r[1] for r in rows) / len(rows) <= 0.4
    assert 0.05 <= sum(r[2] for r in rows) / len(rows) <= 0.4


def test_family_files_and_last_contacts(url: str) -> None:
    """Working families are in on evenings and weekends, the elderly by day; the last contacts
    are what the visit trigger would have kept."""
    times = _rows(
        url,
        f"SELECT {demo.REF_YEAR} - p.birth_year < 60, h.visit_times FROM household h"
        " JOIN person p ON p.household_id = h.id AND p.relation = '户主'",
    )
    working = [t for young, t in times if young]
    elderly = [t for young, t in times if not young]
    assert sum("WEEKDAY_DAYTIME" not in t and bool(t) for t in working) >= 0.8 * len(working)
    assert sum("WEEKDAY_DAYTIME" in t for t in elderly) >= 0.8 * len(elderly)
    notes = [n for (n,) in _rows(url, "SELECT notes FROM household WHERE notes IS NOT NULL")]
    assert 0.01 * 5000 <= len(notes) <= 0.1 * 5000
    assert all(re.search(r"[\u4e00-\u9fff]", n) for n in notes)
    wrong = _one(
        url,
        "SELECT count(*) FROM household h LEFT JOIN LATERAL (SELECT max(v.visited_at) AS last,"
        " max(v.visited_at) FILTER (WHERE v.mode = h.contact_preference) AS preferred"
        " FROM visit v WHERE v.household_id = h.id) l ON true"
        " WHERE h.last_contact_at IS DISTINCT FROM l.last"
        " OR h.last_preferred_contact_at IS DISTINCT FROM l.preferred",
    )
    assert wrong == 0
    assert _one(url, "SELECT count(*) FROM household WHERE last_contact_at IS NOT NULL") > 2000
    triggers = _rows(
        url,
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgname IN"
        " ('visit_touches_household', 'household_preference_changed') ORDER BY 1",
    )
    assert triggers == [("household_preference_changed", "O"), ("visit_touches_household", "O")]


def test_demands_and_talents(url: str) -> None:
    visits = _one(url, "SELECT count(*) FROM visit")
    demands = _rows(
        url,
        "SELECT d.text, d.category, d.resolution, d.answer, d.raised_at = v.visited_at,"
        " d.closed_at, 'ASK_DEMANDS' = ANY(v.tasks) FROM demand d JOIN visit v ON v.id = d.visit_id"
        " WHERE d.household_id = v.household_id",
    )
    assert 0.05 * visits <= len(demands) <= 0.12 * visits
    assert _one(url, "SELECT count(*) FROM demand") == len(demands)
    answered = [d for d in demands if d[2] == "ANSWERED"]
    escalated = [d for d in demands if d[2] == "ESCALATED"]
    assert len(answered) > len(escalated) > 0
    assert all(d[3] and d[5] is not None for d in answered)
    assert all(d[1] for d in escalated)
    assert 0 < sum(d[5] is not None for d in escalated) < len(escalated)
    assert all(d[4] and d[6] for d in demands)
    assert {"楼道灯坏了", "希望增加老年助餐点"} <= {d[0] for d in demands}
    assert _one(url, "SELECT count(*) FROM demand WHERE closed_at > now()") == 0
    talents = _rows(
        url,
        "SELECT t.skills, t.willingness, 'FIND_TALENT' = ANY(v.tasks) FROM talent t"
        " JOIN person p ON p.id = t.person_id AND p.household_id = t.household_id"
        " JOIN visit v ON v.id = t.visit_id AND v.household_id = t.household_id",
    )
    assert 0.004 * 5000 <= len(talents) <= 0.02 * 5000
    assert all(skills and found for skills, _, found in talents)
    assert len({w for _, w, _ in talents}) >= 3


def test_second_load_is_current(url: str) -> None:
    info = demo_info(url=url)
    assert info is not None
    assert (info["version"], info["households"], info["seed"]) == (DEMO_VERSION, 5000, 2026)
    again = load_demo(secret_key=KEY, url=url, progress=False)
    assert again.status == "current"
    assert again.counts["household"] == 5000
    assert demo_info(url=url)["loaded_at"] == info["loaded_at"]
    with pytest.raises(DemoError, match="reset"):
        load_demo(secret_key=KEY, url=url, households=6000, progress=False)


DUMP = {
    "subdistrict": "id, code, ST_AsEWKB(geom)",
    "community": "id, code, name, ST_AsEWKB(geom), ST_AsEWKB(office)",
    "grid": "id, code, ST_AsEWKB(geom)",
    "micro_grid": "id, code, ST_AsEWKB(geom)",
    "building": "id, code, name, address, levels, ST_AsEWKB(geom)",
    "household": (
        "id, code, household_class, moved_in, ST_AsEWKB(location), contact_preference,"
        " visit_times, notes, last_contact_at, last_preferred_contact_at"
    ),
    "person": "id, code, name, gender, birth_year, phone, id_number_digest, seeking_work",
    "worker": "id, code, name, role, unit_code",
    "merchant": "id, code, name, ST_AsEWKB(geom)",
    # The history: the same on the same day (these tests load their demos on one day).
    "visit": "id, household_code, worker_id, visited_at, mode, night, weekend, tasks, notes",
    "demand": "id, visit_id, text, category, resolution, answer, raised_at, closed_at",
    "talent": "id, person_id, skills, willingness, notes, visit_id, found_at",
}


def _digest(url: str) -> dict[str, str]:
    out = {}
    for table, columns in DUMP.items():
        h = hashlib.sha256()
        order = "code" if table not in demo.HISTORY_TABLES else "id"
        for row in _rows(url, f"SELECT {columns} FROM {table} ORDER BY {order}"):
            h.update(repr([bytes(v) if isinstance(v, memoryview) else v for v in row]).encode())
        out[table] = h.hexdigest()
    return out


def test_deterministic(url: str, scratch: Callable[[str], str]) -> None:
    twin = scratch("twin")
    load_demo(secret_key=KEY, url=twin, progress=False)
    assert _digest(twin) == _digest(url)
    other = scratch("other_seed")
    load_demo(secret_key=KEY, url=other, seed=7, progress=False)
    different = _digest(other)
    assert all(different[t] != d for t, d in _digest(url).items())


def test_refuses_to_load_over_real_data(scratch: Callable[[str], str]) -> None:
    target = scratch("real")
    with _cursor(target) as cur:
        cur.execute(
            "INSERT INTO district (code, name, geom) VALUES ('310106', '静安区',"
            " ST_Multi(ST_MakeEnvelope(121.4, 31.2, 121.5, 31.3, 4326)))"
        )
    with pytest.raises(DemoError, match="not the demo"):
        load_demo(secret_key=KEY, url=target, progress=False)
    assert _one(target, "SELECT count(*) FROM district") == 1
    assert _one(target, "SELECT count(*) FROM subdistrict") == 0
    assert demo_info(url=target) is None
    summary = load_demo(secret_key=KEY, url=target, reset=True, progress=False)
    assert summary.status == "reloaded"
    assert _one(target, "SELECT count(*) FROM district") == 1
    assert _one(target, "SELECT count(*) FROM household") == 5000


def test_failure_leaves_the_database_as_it_was(
    scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = scratch("failure")
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    constraints = (
        "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1"
    )
    before = _rows(target, indexes), _rows(target, constraints)

    def broken(plan: Any) -> list[str]:
        raise RuntimeError("merchants exploded")

    monkeypatch.setattr(demo, "_merchants", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        load_demo(secret_key=KEY, url=target, progress=False)
    assert all(_one(target, f"SELECT count(*) FROM {t}") == 0 for t in demo.TABLES)
    assert demo_info(url=target) is None
    assert (_rows(target, indexes), _rows(target, constraints)) == before
    # A load that succeeds rebuilds the indexes and keys it set aside, exactly.
    monkeypatch.undo()
    load_demo(secret_key=KEY, url=target, progress=False)
    assert (_rows(target, indexes), _rows(target, constraints)) == before
    assert _one(target, "SELECT count(*) FROM pg_constraint WHERE NOT convalidated") == 0


def test_a_version_1_demo_gains_the_demo_logins(
    scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = scratch("v1")
    monkeypatch.setattr(demo, "DEMO_VERSION", 1)
    monkeypatch.setattr(demo, "STEPS", demo.STEPS[:1])
    load_demo(secret_key=KEY, url=target, progress=False)
    assert _one(target, "SELECT count(*) FROM worker WHERE password_hash IS NOT NULL") == 0
    monkeypatch.undo()
    assert load_demo(secret_key=KEY, url=target, progress=False).status == "upgraded"
    with_password = _rows(
        target, "SELECT role::text, code FROM worker WHERE password_hash IS NOT NULL ORDER BY 1"
    )
    assert [r[0] for r in with_password] == sorted(demo.DEMO_ROLES)


def _as_version_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEMO_VERSION", 2)
    monkeypatch.setattr(demo, "STEPS", demo.STEPS[:2])


def test_a_version_2_demo_gains_the_visit_history(
    url: str, scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upgrade writes the history a fresh load writes (same seed, same day), and a failure
    half-way leaves the version 2 demo as it was: no visits, triggers and indexes in place."""
    target = scratch("v2")
    _as_version_2(monkeypatch)
    load_demo(secret_key=KEY, url=target, progress=False)
    monkeypatch.undo()
    assert _one(target, "SELECT count(*) FROM visit") == 0
    assert _one(target, "SELECT count(*) FROM household WHERE last_contact_at IS NOT NULL") == 0
    schema = (
        "SELECT tgname::text, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal"
        " UNION ALL SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " UNION ALL SELECT conname::text, convalidated::text FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
    )
    before = _rows(target, schema)
    calls: list[int] = []
    chunk = demo._History.chunk

    def fails_on_the_third_chunk(self: Any, rows: Any) -> Any:
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("history exploded")
        return chunk(self, rows)

    monkeypatch.setattr(demo, "CHUNK_HOUSEHOLDS", 1000)
    monkeypatch.setattr(demo._History, "chunk", fails_on_the_third_chunk)
    with pytest.raises(RuntimeError, match="exploded"):
        load_demo(secret_key=KEY, url=target, progress=False)
    monkeypatch.undo()
    assert _rows(target, schema) == before
    assert demo_info(url=target)["version"] == 2
    assert _one(target, "SELECT count(*) FROM visit") == 0

    summary = load_demo(secret_key=KEY, url=target, progress=False)
    assert summary.status == "upgraded"
    assert summary.counts["visit"] > 5000 and summary.counts["cadence_policy"] == 1
    assert demo_info(url=target)["version"] == DEMO_VERSION == 3
    assert _rows(target, schema) == before
    fresh, upgraded = _digest(url), _digest(target)
    for table in ("household", *demo.HISTORY_TABLES):
        assert upgraded[table] == fresh[table], table


def test_an_older_demo_is_brought_up_to_date(
    scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = scratch("upgrade")
    load_demo(secret_key=KEY, url=target, progress=False)
    added: list[int] = []

    def next_version(ctx: Any) -> None:
        added.append(ctx.plan.households)

    newer = demo.DEMO_VERSION + 1
    monkeypatch.setattr(demo, "DEMO_VERSION", newer)
    monkeypatch.setattr(demo, "STEPS", [*demo.STEPS, (newer, next_version)])
    summary = load_demo(secret_key=KEY, url=target, progress=False)
    assert (summary.status, added) == ("upgraded", [5000])
    assert summary.counts["household"] == 5000
    assert demo_info(url=target)["version"] == newer
    assert load_demo(secret_key=KEY, url=target, progress=False).status == "current"
    assert added == [5000]


def test_scaling(scratch: Callable[[str], str]) -> None:
    target = scratch("scaled")
    summary = load_demo(secret_key=KEY, url=target, households=50_000, progress=False)
    counts = summary.counts
    assert counts["household"] == 50_000
    assert 90 <= counts["grid"] <= 110
    assert 2500 <= counts["building"] <= 3500
    assert counts["micro_grid"] == counts["building"]
    low, high = _rows(
        target,
        "SELECT min(n), max(n) FROM (SELECT count(*) n FROM household h"
        " JOIN building b ON b.id = h.building_id JOIN micro_grid m ON m.id = b.micro_grid_id"
        " GROUP BY m.grid_id) x",
    )[0]
    assert low >= 200 and high <= 900  # grids still of a few hundred households
    subdistricts = _rows(target, "SELECT code, name FROM subdistrict ORDER BY code")
    assert ("310106015", "天目西路街道") in subdistricts and len(subdistricts) >= 2
    # Real communities of each subdistrict, more grids per community than at the default size.
    assert _one(target, "SELECT count(*) FROM community WHERE name LIKE '%生成%'") == 0
    assert _one(target, "SELECT count(*)::float / (SELECT count(*) FROM community) FROM grid") > 4
    # Subdistricts side by side: they do not overlap, and each is in one piece.
    assert (
        _one(
            target,
            "SELECT count(*) FROM subdistrict a JOIN subdistrict b ON a.id < b.id"
            " WHERE ST_Area(ST_Intersection(a.geom, b.geom)) > 1e-12",
        )
        == 0
    )
    assert _one(target, "SELECT max(ST_NumGeometries(geom)) FROM subdistrict") == 1
    assert _one(target, "SELECT count(DISTINCT left(code, 5)) FROM worker") == len(subdistricts)
    assert _one(target, "SELECT count(*) FROM merchant") == 100 * len(subdistricts)
