"""The demo district: deterministic, the right size, cleanly nested, consistent, refusing to
overwrite real data, growing the way a city grows.

Each test loads into empty migrated databases of its own (see ``scratch``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
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
from geo import jobs
from geo.access import Caller, Role
from geo.db import make_engine, scoped_session
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
    # Every unit of the catalogue is staffed (version 6 added U-GREEN and U-POLICE).
    assert units == {u for (u,) in _rows(url, "SELECT code FROM unit")}
    assert {u for u, _ in demo.DEPARTMENT_UNITS} < units
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


def _shift_hours(shifts: list[str]) -> int:
    return sum(jobs.SHIFT_HOURS[s] for s in shifts)


def test_merchants_hire_on_the_commercial_street(url: str) -> None:
    merchants = _rows(url, "SELECT code, category, contact, opening_hours FROM merchant")
    for _, _, contact, hours in merchants:
        assert re.fullmatch(r"021-6\d{7}|1[3-9]\d{9}", contact), contact
        assert re.fullmatch(r"([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d", hours), hours
    assert sum(c.startswith("021-") for _, _, c, _ in merchants) > len(merchants) // 2
    today = _today()
    openings = _rows(
        url,
        "SELECT o.code, m.code, m.category, m.address, o.title, o.skills, o.shifts,"
        " o.weekly_hours, o.wage, o.headcount, o.valid_from, o.valid_until, o.created_by"
        " FROM job_opening o JOIN merchant m ON m.id = o.merchant_id ORDER BY o.code",
    )
    assert len(demo.JOB_SKILLS) == len(set(demo.JOB_SKILLS)) == 30
    per_merchant: dict[str, list[str]] = {}
    for code, merchant, category, address, title, skills, shifts, hours, *rest in openings:
        wage, headcount, start, until, by = rest
        per_merchant.setdefault(merchant, []).append(code)
        assert address.startswith("天目西路")
        job = next(j for j in demo.JOBS[category] if j[0] == title)
        assert set(skills) <= set(job[1]) and skills[:1] == list(job[1][:1])
        assert shifts and set(shifts) <= set(jobs.SHIFTS)
        assert 1 <= hours <= _shift_hours(shifts), code
        assert 20 <= wage <= 45 and 1 <= headcount <= 4
        assert start < today and (until is None or until > today)
        assert re.fullmatch(r"JA015-WG-\d{4}", by)
    assert 0.6 * len(merchants) <= len(per_merchant) <= 0.95 * len(merchants)
    for merchant, codes in per_merchant.items():
        assert codes == [f"{merchant}-J{k:02d}" for k in range(1, len(codes) + 1)]
        assert len(codes) <= 3
    assert len({o[4] for o in openings}) >= 10 and len({o[1] for o in openings}) > 60
    assert {o[11] is None for o in openings} == {True, False}
    offers = _rows(url, "SELECT title, description, radius_meters, valid_from FROM offer")
    assert len(offers) == demo.OFFERS_PER_SUBDISTRICT
    for title, description, radius, start in offers:
        assert re.search(r"[\u4e00-\u9fff]", title) and description
        assert 300 <= radius <= 1500 and start <= today


def test_job_seekers_are_residents_who_agreed(url: str) -> None:
    seekers = _rows(
        url,
        "SELECT js.person_id, p.seeking_work, js.household_id = p.household_id,"
        " js.household_code = h.code, js.consent, js.skills, js.shifts, js.weekly_hours,"
        " js.min_wage, js.max_walk_meters, js.consent_at < now(),"
        " EXISTS (SELECT 1 FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
        "  JOIN grid g ON g.id = wg.grid_id WHERE w.code = js.updated_by"
        "  AND w.role = 'GRID_WORKER' AND g.code = left(h.code, 15))"
        " FROM job_seeker js JOIN person p ON p.id = js.person_id"
        " JOIN household h ON h.id = p.household_id",
    )
    flagged = _one(url, "SELECT count(*) FROM person WHERE seeking_work")
    # Most of those flagged seeking work agreed to be matched: they, and nobody else, are seekers.
    assert 0.75 * flagged <= len(seekers) <= 0.95 * flagged
    for _, seeking, same_household, same_code, consent, skills, shifts, hours, *rest in seekers:
        wage, walk, consented_before, registered_by_grid_worker = rest
        assert seeking and same_household and same_code and consent
        assert 2 <= len(skills) <= 4 and set(skills) <= set(demo.JOB_SKILLS)
        assert shifts and set(shifts) <= set(jobs.SHIFTS)
        assert 1 <= hours <= _shift_hours(shifts)
        assert 18 <= wage <= 35 and 500 <= walk <= 2000
        assert consented_before and registered_by_grid_worker
    # Most of them in the one or two grids where many look for work.
    per_grid = sorted(
        (
            n
            for (n,) in _rows(
                url, "SELECT count(*) FROM job_seeker GROUP BY left(household_code, 15)"
            )
        ),
        reverse=True,
    )
    assert sum(per_grid[:2]) > len(seekers) / 2


def _app_url(owner_url: str) -> str:
    """The app role's URL of the same database: row-level security applies to it."""
    database = make_url(owner_url).database
    return (
        make_url(Settings().database_url)
        .set(database=database)
        .render_as_string(hide_password=False)
    )


def test_job_candidates_in_a_hot_grid(url: str) -> None:
    """The grid center of the demo finds residents of a grid where many seek work and
    openings within walking distance that fit them, and an assignment of them."""
    hot = _one(
        url,
        "SELECT left(household_code, 15) FROM job_seeker GROUP BY 1 ORDER BY count(*) DESC, 1"
        " LIMIT 1",
    )
    engine = make_engine(_app_url(url), pool_size=1)
    caller = Caller(Role.GRID_CENTER, areas=(demo.HOME_SUBDISTRICT,))
    try:
        with scoped_session(engine, caller.settings()) as session:
            found, slots = jobs.candidates(
                session=session, scope=hot, max_distance=1500, today=_today()
            )
            chosen = jobs.assign(found, slots)
    finally:
        engine.dispose()
    assert len(found) >= 20 and len({c.opening_id for c in found}) >= 10
    facts = {
        (str(s), str(o)): rest
        for s, o, *rest in _rows(
            url,
            "SELECT js.id, o.id, js.household_code, ST_Distance(h.location::geography,"
            " m.geom::geography), js.max_walk_meters, js.min_wage, o.wage, js.skills, o.skills"
            " FROM job_seeker js JOIN household h ON h.id = js.household_id"
            " CROSS JOIN job_opening o JOIN merchant m ON m.id = o.merchant_id",
        )
    }
    for c in found:
        code, distance, walk, min_wage, wage, offered, wanted = facts[
            (str(c.seeker_id), str(c.opening_id))
        ]
        assert code.startswith(hot)
        assert abs(c.distance_meters - distance) < 0.01 and distance <= min(walk, 1500)
        assert wage >= min_wage and (not wanted or set(wanted) & set(offered))
    assert chosen and len({c.seeker_id for c in chosen}) == len(chosen)
    for opening, places in slots.items():
        assert sum(c.opening_id == opening for c in chosen) <= places


def test_job_match_history(url: str) -> None:
    """Matches in every state, some hired, each a feasible pair with its events in order, by
    the grid's own worker, within the last two months; one match per seeker, no opening
    over its headcount."""
    matches = _rows(
        url,
        "SELECT m.id, m.state, m.household_code = js.household_code, m.created_at,"
        " m.updated_at, m.created_by, m.opening_id, o.headcount, o.created_at,"
        " abs(m.distance_meters - ST_Distance(h.location::geography, g.geom::geography)) < 0.01,"
        " m.distance_meters <= js.max_walk_meters AND o.wage >= js.min_wage"
        "  AND o.weekly_hours <= js.weekly_hours"
        "  AND (cardinality(o.skills) = 0 OR o.skills && js.skills),"
        " js.shifts, o.shifts, o.weekly_hours, m.seeker_id"
        " FROM job_match m JOIN job_seeker js ON js.id = m.seeker_id"
        " JOIN household h ON h.id = js.household_id"
        " JOIN job_opening o ON o.id = m.opening_id JOIN merchant g ON g.id = o.merchant_id",
    )
    states = [m[1] for m in matches]
    assert {s: states.count(s) for s in set(states)} == demo.MATCH_HISTORY
    assert len({m[14] for m in matches}) == len(matches)  # one match per seeker
    taken: dict[Any, int] = {}
    for m in matches:
        if m[1] != "DECLINED":
            taken[m[6]] = taken.get(m[6], 0) + 1
            assert taken[m[6]] <= m[7]
        assert m[2] and m[9] and m[10]
        assert _shift_hours(sorted(set(m[11]) & set(m[12]))) >= m[13]
    events: dict[Any, list[tuple[Any, ...]]] = {}
    for row in _rows(
        url,
        "SELECT e.match_id, e.from_state, e.to_state, e.at, e.note,"
        " EXISTS (SELECT 1 FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
        "  JOIN grid g ON g.id = wg.grid_id WHERE w.code = e.worker_code"
        "  AND w.role = 'GRID_WORKER' AND g.code = left(e.household_code, 15)),"
        " e.worker_code FROM job_match_event e ORDER BY e.match_id, e.at",
    ):
        events.setdefault(row[0], []).append(row[1:])
    now = dt.datetime.now(dt.UTC)
    oldest = now - dt.timedelta(days=demo.MATCH_HISTORY_DAYS + 1)
    for mid, state, _, created, updated, by, _, _, published, *_ in matches:
        steps = events[mid]
        assert steps[0][:2] == (None, "PROPOSED") and steps[-1][1] == state
        for (_, old, _, _, _, _), (new_from, new, _, _, _, _) in itertools.pairwise(steps):
            assert new_from == old and new in jobs.NEXT[old]
        times = [s[2] for s in steps]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert (created, updated) == (times[0], times[-1])
        assert published < created and oldest < created and updated < now
        assert all(s[3] and s[4] and s[5] == by for s in steps)
    engine = make_engine(_app_url(url), pool_size=1)
    caller = Caller(Role.GRID_CENTER, areas=(demo.HOME_SUBDISTRICT,))
    try:
        with scoped_session(engine, caller.settings()) as session:
            placed = jobs.placements(
                session=session, scope=demo.HOME_SUBDISTRICT, since=oldest, until=now
            )
    finally:
        engine.dispose()
    assert sum(p["hired"] for p in placed) == demo.MATCH_HISTORY["HIRED"]


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
    "merchant": "id, code, name, ST_AsEWKB(geom), contact, opening_hours",
    # The history: the same on the same day (these tests load their demos on one day).
    "visit": "id, household_code, worker_id, visited_at, mode, night, weekend, tasks, notes",
    "demand": "id, visit_id, text, category, resolution, answer, raised_at, closed_at",
    "talent": "id, person_id, skills, willingness, notes, visit_id, found_at",
    # Version 4: the jobs; the match history (dates) the same on the same day too.
    "job_opening": (
        "id, code, merchant_id, title, skills, shifts, weekly_hours, wage, headcount,"
        " valid_from, valid_until, created_at, created_by"
    ),
    "job_seeker": (
        "id, person_id, household_code, skills, shifts, weekly_hours, min_wage,"
        " max_walk_meters, consent_at, updated_by"
    ),
    "offer": "id, merchant_id, title, description, radius_meters, valid_from, valid_until",
    "job_match": "id, seeker_id, opening_id, state, score, distance_meters, created_at, updated_at",
    "job_match_event": "id, match_id, from_state, to_state, at, worker_code, note",
    "walk_edge": "id, source, target, highway, round(length_m::numeric, 6), ST_AsEWKB(geom)",
    "walk_entrance": "code, vertex, ST_AsEWKB(geom)",
    # Version 6: the cases and their steps, the same on the same day.
    "grid_case": (
        "id, number, source, category_code, source_category, description, ST_AsEWKB(location),"
        " grid_code, micro_grid_code, reporter_code, reporter_name, reporter_phone, unit_code,"
        " priority, state, reported_at, dispatched_at, deadline, handled_at, closed_at,"
        " returned_count, merged_into, visit_id, demand_id, external_id, version"
    ),
    "case_event": (
        "id, case_id, at, action, from_state, to_state, worker_code, role, unit_code, note"
    ),
}


DUMP_BY_CODE = ("subdistrict", "community", "grid", "micro_grid", "building", "household",
                "person", "worker", "merchant", "job_opening", "walk_entrance")  # fmt: skip


def _digest(url: str, tables: tuple[str, ...] = tuple(DUMP)) -> dict[str, str]:
    out = {}
    for table in tables:
        columns = DUMP[table]
        h = hashlib.sha256()
        order = "code" if table in DUMP_BY_CODE else "id"
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
    assert demo_info(url=target)["version"] == DEMO_VERSION
    assert _rows(target, schema) == before
    fresh, upgraded = _digest(url), _digest(target)
    for table in ("household", *demo.HISTORY_TABLES):
        assert upgraded[table] == fresh[table], table


def test_a_version_3_demo_gains_the_jobs(
    url: str, scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading writes the merchants' contacts, openings, seekers, offers and match history
    that a fresh load writes (same seed, same day)."""
    target = scratch("v3")
    monkeypatch.setattr(demo, "DEMO_VERSION", 3)
    monkeypatch.setattr(demo, "STEPS", demo.STEPS[:3])
    load_demo(secret_key=KEY, url=target, progress=False)
    monkeypatch.undo()
    assert all(_one(target, f"SELECT count(*) FROM {t}") == 0 for t in demo.JOB_TABLES)
    assert _one(target, "SELECT count(*) FROM merchant WHERE contact IS NOT NULL") == 0
    summary = load_demo(secret_key=KEY, url=target, progress=False)
    assert summary.status == "upgraded" and demo_info(url=target)["version"] == DEMO_VERSION
    assert summary.counts["job_opening"] > 60 and summary.counts["job_match"] > 0
    tables = ("merchant", *demo.JOB_TABLES)
    fresh, upgraded = _digest(url, tables), _digest(target, tables)
    for table in tables:
        assert upgraded[table] == fresh[table], table


def test_a_version_4_demo_gains_the_walking_network(
    url: str, scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same network as a fresh load, every building and office with its entrance."""
    target = scratch("v4")
    monkeypatch.setattr(demo, "DEMO_VERSION", 4)
    monkeypatch.setattr(demo, "STEPS", demo.STEPS[:4])
    load_demo(secret_key=KEY, url=target, progress=False)
    monkeypatch.undo()
    assert _one(target, "SELECT count(*) FROM walk_edge") == 0
    summary = load_demo(secret_key=KEY, url=target, progress=False)
    assert summary.status == "upgraded" and summary.counts["walk_edge"] > 500
    assert summary.counts["walk_entrance"] == summary.counts["building"] + summary.counts[
        "community"
    ]
    tables = ("walk_edge", "walk_entrance")
    assert _digest(target, tables) == _digest(url, tables)


def test_a_version_5_demo_gains_the_cases(
    url: str, scratch: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cases, their events and the case counter a fresh load writes (same seed, same day),
    and the department staff for the units version 1 left without."""
    target = scratch("v5")
    monkeypatch.setattr(demo, "DEMO_VERSION", 5)
    monkeypatch.setattr(demo, "STEPS", demo.STEPS[:5])
    load_demo(secret_key=KEY, url=target, progress=False)
    monkeypatch.undo()
    assert all(_one(target, f"SELECT count(*) FROM {t}") == 0 for t in demo.CASE_TABLES)
    staffed = "SELECT count(*) FROM worker WHERE unit_code IN ('U-GREEN', 'U-POLICE')"
    assert _one(target, staffed) == 0
    summary = load_demo(secret_key=KEY, url=target, progress=False)
    assert summary.status == "upgraded" and demo_info(url=target)["version"] == DEMO_VERSION
    assert summary.counts["grid_case"] > 2000
    assert summary.counts["case_event"] > 5 * summary.counts["grid_case"]
    assert _one(target, staffed) == 4
    tables = ("worker", "grid_case", "case_event")
    assert _digest(target, tables) == _digest(url, tables)
    counter = "SELECT year, last FROM case_counter ORDER BY year"
    assert _rows(target, counter) == _rows(url, counter)


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


# --------------------------------------------------------------------------------------------
# Version 6: twelve months of cases
# --------------------------------------------------------------------------------------------

CASE_OPEN = ("REPORTED", "ACCEPTED", "DISPATCHED", "HANDLED", "RETURNED", "VERIFIED")
# Every step a case may take: the app's loop (geo.cases), its report, and a merge of an open one.
CASE_STEPS = {
    ("REPORT", None, "REPORTED"),
    ("ACCEPT", "REPORTED", "ACCEPTED"),
    ("REJECT", "REPORTED", "REJECTED"),
    ("DISPATCH", "ACCEPTED", "DISPATCHED"),
    ("HANDLE", "DISPATCHED", "HANDLED"),
    ("VERIFY", "HANDLED", "VERIFIED"),
    ("RETURN", "HANDLED", "RETURNED"),
    ("HANDLE", "RETURNED", "HANDLED"),
    ("CLOSE", "VERIFIED", "CLOSED"),
    ("MERGE", "REPORTED", "CLOSED"),
    ("MERGE", "ACCEPTED", "CLOSED"),
}


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), ZONE)


def _month_of(day: dt.date, months: list[dt.date]) -> int:
    """Which of the twelve months (0 the oldest) a local day falls in."""
    return sum(day >= m for m in months[1:-1])


def test_a_year_of_cases_hotline_falling_whistles_rising(url: str) -> None:
    today = _today()
    months = demo.case_months(today)
    assert len(months) == 13 and months[-1] == today and 365 <= (today - months[0]).days <= 366
    rows = _rows(url, "SELECT source, reported_at, category_code FROM grid_case")
    days = [at.astimezone(ZONE).date() for _, at, _ in rows]
    assert months[0] <= min(days) <= months[0] + dt.timedelta(days=2) and max(days) < today
    assert _one(url, "SELECT max(at) FROM case_event") < _midnight(today)
    per_month = {s: [0] * 12 for s in ("HOTLINE_12345", "GRID_WHISTLE", "RESIDENT_ONLINE", "VISIT")}
    for (source, _, _), day in zip(rows, days, strict=True):
        per_month[source][_month_of(day, months)] += 1
    hotline, whistles = per_month["HOTLINE_12345"], per_month["GRID_WHISTLE"]
    assert sum(hotline[:3]) / 3 > 2 * sum(hotline[-3:]) / 3, hotline
    assert sum(whistles[-3:]) / 3 > 2 * sum(whistles[:3]) / 3, whistles
    assert all(per_month["RESIDENT_ONLINE"]), per_month["RESIDENT_ONLINE"]
    # Escalated demands come from the six months of visits.
    assert not any(per_month["VISIT"][:5]) and all(per_month["VISIT"][7:])
    # A few hundred cases a month for 5,000 households.
    for k in range(12):
        assert 150 <= sum(counts[k] for counts in per_month.values()) <= 400, k
    # Realistic frequencies: the usual complaints first, mosquitoes in summer only.
    by_category: dict[str, int] = {}
    for _, _, category in rows:
        by_category[category] = by_category.get(category, 0) + 1
    catalogue = {c for (c,) in _rows(url, "SELECT code FROM case_category")}
    assert set(by_category) == catalogue
    top = sorted(by_category, key=by_category.get, reverse=True)  # type: ignore[arg-type]
    assert {"FACILITY_REPAIR", "ILLEGAL_PARKING"} <= set(top[:4])
    assert by_category["EMERGENCY"] < by_category["NOISE"] / 3
    mosquitoes = [d.month for (_, _, c), d in zip(rows, days, strict=True) if c == "MOSQUITOES"]
    summer = sum(m in (6, 7, 8) for m in mosquitoes)
    assert summer > 40 and sum(m in (12, 1, 2) for m in mosquitoes) <= summer / 20


def test_cases_lie_in_their_grid_and_micro_grid(url: str) -> None:
    for table, column in (("grid", "grid_code"), ("micro_grid", "micro_grid_code")):
        outside = _one(
            url,
            f"SELECT count(*) FROM grid_case c WHERE c.{column} IS NULL OR NOT EXISTS ("
            f" SELECT 1 FROM {table} a WHERE a.code = c.{column}"
            " AND ST_Covers(a.geom, c.location))",
        )
        assert outside == 0, table
        # And no other covers it: no case on a shared edge.
        shared = _one(
            url,
            f"SELECT count(*) FROM grid_case c WHERE EXISTS (SELECT 1 FROM {table} a"
            f" WHERE a.code <> c.{column} AND ST_Covers(a.geom, c.location))",
        )
        assert shared == 0, table
    # Whistles are blown by the case's own grid workers and micro-grid leaders.
    strangers = _one(
        url,
        "SELECT count(*) FROM grid_case c WHERE c.source = 'GRID_WHISTLE' AND NOT EXISTS ("
        " SELECT 1 FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
        " JOIN grid g ON g.id = wg.grid_id WHERE w.code = c.reporter_code AND g.code = c.grid_code"
        " AND w.role IN ('GRID_WORKER', 'MICRO_GRID_LEADER'))",
    )
    assert strangers == 0
    residents = _rows(
        url,
        "SELECT source, reporter_name, reporter_phone, external_id FROM grid_case"
        " WHERE source IN ('HOTLINE_12345', 'RESIDENT_ONLINE')",
    )
    for source, name, phone, external in residents:
        assert re.fullmatch(r"1[3-9]\d{9}", phone), phone
        assert name is None or re.fullmatch(r"[\u4e00-\u9fff]{2,4}", name), name
        assert (external is not None) == (source == "HOTLINE_12345")
    assert sum(name is None for _, name, _, _ in residents) < 0.15 * len(residents)
    assert sum(str(name).endswith(("先生", "女士")) for _, name, _, _ in residents) > 100
    externals = [e for *_, e in residents if e]
    assert len(set(externals)) == len(externals)
    assert all(re.fullmatch(r"12345-\d{8}-\d{6}", e) for e in externals)
    descriptions = [d for (d,) in _rows(url, "SELECT description FROM grid_case")]
    assert all(re.search(r"[\u4e00-\u9fff]{4}", d) for d in descriptions)
    assert len(set(descriptions)) > len(descriptions) / 3


def _deadline(dispatched: dt.datetime, limit: int, unit: str) -> dt.datetime:
    """The catalogue's limit from dispatch (no holidays in these databases)."""
    if unit == "HOURS":
        return dispatched + dt.timedelta(hours=limit)
    day = dispatched.astimezone(ZONE).date()
    while limit:
        day += dt.timedelta(days=1)
        limit -= day.weekday() < 5
    return _midnight(day + dt.timedelta(days=1))


def test_case_timelines(url: str) -> None:
    """Every case went through the loop one step after another, each step taken by whoever
    takes it (the office, the unit's department, the grid's worker), its fields as the steps
    left them; most closed, some rejected, returned, merged, closed late, the recent ones open
    in every state."""
    from geo import cases as app

    app_steps = {(a, f, t) for (f, t), (a, _) in app.TRANSITIONS.items()}
    assert CASE_STEPS - {s for s in CASE_STEPS if s[0] in ("REPORT", "MERGE")} == app_steps
    assert _one(url, "SELECT count(*) FROM holiday") == 0
    limits = {c: (u, n, k) for c, u, n, k in _rows(
        url, "SELECT code, default_unit, time_limit, time_unit FROM case_category")}  # fmt: skip
    workers = {
        code: (role.lower(), unit, sub, comm, set(grids))
        for code, role, unit, sub, comm, grids in _rows(
            url,
            "SELECT w.code, w.role::text, w.unit_code, s.code, c.code,"
            " array_remove(array_agg(g.code), NULL) FROM worker w"
            " JOIN subdistrict s ON s.id = w.subdistrict_id"
            " LEFT JOIN community c ON c.id = w.community_id"
            " LEFT JOIN worker_grid wg ON wg.worker_id = w.id LEFT JOIN grid g ON g.id = wg.grid_id"
            " GROUP BY 1, 2, 3, 4, 5",
        )
    }
    events: dict[Any, list[tuple[Any, ...]]] = {}
    for case_id, *rest in _rows(
        url,
        "SELECT case_id, at, action, from_state, to_state, worker_code, role, unit_code, note"
        " FROM case_event ORDER BY case_id, at",
    ):
        events.setdefault(case_id, []).append(tuple(rest))
    rows = _rows(
        url,
        "SELECT c.id, c.source, c.category_code, c.grid_code, c.unit_code, c.priority, c.state,"
        " c.reported_at, c.dispatched_at, c.deadline, c.handled_at, c.closed_at,"
        " c.returned_count, c.merged_into, c.version, c.reporter_code,"
        " m.reported_at, m.closed_at, m.category_code, ST_Distance(c.location::geography,"
        " m.location::geography) FROM grid_case c LEFT JOIN grid_case m ON m.id = c.merged_into",
    )
    assert len(events) == len(rows) > 2000
    now = dt.datetime.now(dt.UTC)
    states: dict[str, int] = {}
    late = overdue = 0
    for cid, source, category, grid, unit, priority, state, reported, *rest in rows:
        dispatched, deadline, handled, closed, returned, merged, version, reporter, *into = rest
        steps = events[cid]
        states[state] = states.get(state, 0) + 1
        assert steps[0][:4] == (reported, "REPORT", None, "REPORTED")
        assert steps[-1][3] == state and version == len(steps)
        for before, after in itertools.pairwise(steps):
            assert before[0] < after[0] and before[3] == after[2], cid
        for at, action, old, new, worker, role, unit_code, note in steps:
            assert (action, old, new) in CASE_STEPS
            assert role in ("grid_center", "community", "grid_worker", "micro_grid_leader",
                            "department", "public")  # fmt: skip
            facts = workers.get(worker)
            assert (facts is None) == (role == "public") and (facts is None or facts[0] == role)
            if facts is not None:
                assert facts[2] == grid[:9]
            if action in ("ACCEPT", "REJECT", "DISPATCH", "CLOSE", "MERGE"):
                assert role == "grid_center" or (role == "community" and facts[3] == grid[:12])
            elif action == "HANDLE":
                assert role == "department" and facts[1] == unit_code == unit
            elif action in ("VERIFY", "RETURN"):
                assert role == "grid_worker" and grid in facts[4]
            elif source == "GRID_WHISTLE":  # the report
                assert worker == reporter and grid in facts[4]
            elif source == "HOTLINE_12345":
                assert role == "grid_center" and worker == reporter
            assert (unit_code is not None) == (action in ("DISPATCH", "HANDLE"))
            assert action != "DISPATCH" or (unit_code == unit and at == dispatched)
            assert note or action == "REPORT"
        actions = [s[1] for s in steps]
        assert (state == "CLOSED") == (closed is not None)
        assert closed is None or (closed == steps[-1][0] and closed >= reported)
        assert (dispatched is None) == ("DISPATCH" not in actions) == (unit is None)
        assert (dispatched is None) == (deadline is None)
        if dispatched is not None:
            assert unit == limits[category][0]
            assert deadline == _deadline(dispatched, *limits[category][1:]) > dispatched
            late += closed is not None and closed > deadline
            overdue += state in ("DISPATCHED", "RETURNED") and deadline < now
        assert handled == max((s[0] for s in steps if s[1] == "HANDLE"), default=None)
        assert returned == actions.count("RETURN")
        assert (merged is not None) == ("MERGE" in actions)
        if merged is not None:
            # Merged into an open case of the same category reported before it, nearby.
            first_reported, first_closed, first_category, distance = into
            assert first_reported < reported and first_category == category
            assert first_closed is None or first_closed > closed
            assert distance < app.DUPLICATE_RADIUS_M
        assert priority == "URGENT" or category != "EMERGENCY"
    n = len(rows)
    assert states["CLOSED"] > 0.8 * n
    assert 0.02 * n < states["REJECTED"] < 0.08 * n
    assert all(states.get(s, 0) > 0 for s in CASE_OPEN), states  # the recent ones, and some stuck
    handled_ones = [r for r in rows if r[10] is not None]
    assert 0.04 < sum(r[12] > 0 for r in handled_ones) / len(handled_ones) < 0.12
    assert sum(r[12] == 2 for r in rows) > 0
    assert sum(r[13] is not None for r in rows) > 0.01 * n
    assert 0.03 * n < sum(r[5] == "URGENT" for r in rows) < 0.1 * n
    assert 0.05 * n < late < 0.3 * n
    assert 0 < overdue < 0.05 * n


def test_escalated_demands_became_cases(url: str) -> None:
    """Each demand a visit escalated is a case, as the app would have opened it: at the
    household's home, by the visitor, at the visit's time; closed when the demand was."""
    demands = _rows(
        url,
        "SELECT d.id, d.text, d.category, d.raised_at, d.closed_at, d.visit_id, v.recorded_by,"
        " h.code, ST_AsEWKB(h.location), c.id, c.source, c.visit_id, c.description,"
        " c.category_code, c.source_category, c.reported_at, c.state, c.closed_at,"
        " c.reporter_code, ST_AsEWKB(c.location), c.grid_code, c.micro_grid_code,"
        " (SELECT e.at FROM case_event e WHERE e.case_id = c.id AND e.action = 'REJECT')"
        " FROM demand d JOIN visit v ON v.id = d.visit_id"
        " JOIN household h ON h.id = d.household_id"
        " LEFT JOIN grid_case c ON c.demand_id = d.id WHERE d.resolution = 'ESCALATED'",
    )
    assert len(demands) > 50
    assert _one(url, "SELECT count(*) FROM grid_case WHERE source = 'VISIT'") == len(demands)
    catalogue = {c for (c,) in _rows(url, "SELECT code FROM case_category")}
    others = 0
    for did, text, category, raised, closed, vid, visitor, hcode, home, *case in demands:
        cid, source, case_vid, description, code, source_category, reported, state, *rest = case
        case_closed, reporter, location, grid, micro, rejected_at = rest
        assert cid is not None, did
        assert (source, case_vid, description, reported) == ("VISIT", vid, text, raised)
        assert (reporter, bytes(location), grid, micro) == (
            visitor, bytes(home), hcode[:15], hcode[:18])  # fmt: skip
        assert code in catalogue
        if code == "OTHER":
            others += 1
            assert source_category == category
        else:
            assert source_category is None
            assert code == demo.DEMAND_CATEGORY_CODES.get(category, category)
        if closed is None:
            assert state in CASE_OPEN
        elif state == "CLOSED":
            assert case_closed == closed
        else:
            assert state == "REJECTED" and rejected_at == closed
    assert 0 < others < len(demands) / 2


def test_case_numbers_run_per_year_in_reported_order(url: str) -> None:
    rows = _rows(url, "SELECT number, reported_at FROM grid_case ORDER BY reported_at, number")
    per_year: dict[int, list[str]] = {}
    for number, reported in rows:
        per_year.setdefault(reported.astimezone(ZONE).year, []).append(number)
    assert len(per_year) in (1, 2)
    for year, numbers in per_year.items():
        assert numbers == [f"{year}-{k:06d}" for k in range(1, len(numbers) + 1)]
    counter = dict(_rows(url, "SELECT year, last FROM case_counter"))
    assert counter == {year: len(numbers) for year, numbers in per_year.items()}
    # A case reported now continues the demo's numbers.
    conn = psycopg2.connect(_dsn(url))
    try:
        with conn.cursor() as cur:
            year = max(per_year)
            cur.execute("SELECT next_case_number(%s)", (year,))
            assert cur.fetchone()[0] == f"{year}-{len(per_year[year]) + 1:06d}"
        conn.rollback()
    finally:
        conn.close()


def test_planted_hotspots_are_found(url: str) -> None:
    """Each planted hotspot's cell (100 m squares in UTM zone 51 N) is the densest of its
    category and a hot spot at 99 % (Gi*, queen neighbours), where case_hotspots says."""
    import numpy as np

    from geo import hotspots

    with _cursor(url) as cur:
        spots = demo.case_hotspots(cur, 2026)
    assert {s.category for s in spots} == set(demo.HOTSPOTS)
    assert {s.subdistrict for s in spots} == {demo.HOME_SUBDISTRICT}
    size = 100.0
    x0, x1, y0, y1 = _rows(
        url,
        "SELECT ST_XMin(g), ST_XMax(g), ST_YMin(g), ST_YMax(g)"
        " FROM (SELECT ST_Transform(geom, 32651) g FROM subdistrict) s",
    )[0]
    nx, ny = int((x1 - x0) // size) + 1, int((y1 - y0) // size) + 1
    neighbours = [
        [(j + b) * nx + i + a for b in (-1, 0, 1) for a in (-1, 0, 1)
         if (a or b) and 0 <= i + a < nx and 0 <= j + b < ny]
        for j in range(ny) for i in range(nx)
    ]  # fmt: skip
    for spot in spots:
        points = _rows(
            url,
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(location, 32651) p FROM grid_case"
            f" WHERE category_code = '{spot.category}') c",
        )
        counts = np.zeros(nx * ny)
        for x, y in points:
            counts[int((y - y0) // size) * nx + int((x - x0) // size)] += 1
        px, py = _rows(
            url,
            "SELECT ST_X(p), ST_Y(p) FROM ST_Transform(ST_SetSRID(ST_MakePoint("
            f"{spot.lon}, {spot.lat}), 4326), 32651) p",
        )[0]
        densest = int(np.argmax(counts))
        cx, cy = x0 + (densest % nx + 0.5) * size, y0 + (densest // nx + 0.5) * size
        assert math.hypot(cx - px, cy - py) < 1.5 * size, spot
        stats = hotspots.hotspot_stats(counts, neighbours)
        assert stats.confidence[densest] == "HOT_99", spot
        far = [
            c for k, c in enumerate(counts)
            if math.hypot(x0 + (k % nx + 0.5) * size - px, y0 + (k // nx + 0.5) * size - py) > 300
        ]  # fmt: skip
        assert counts[densest] > 4 * max(far), spot
        named = _one(
            url,
            f"SELECT count(*) FROM grid_case WHERE description LIKE '{spot.place}%'"
            f" AND category_code = '{spot.category}'",
        )
        assert named > 10, spot
