"""caseStats: figures hand-computed from a dozen cases of our own in 2031 (a year the demo
never reaches), in total and by every grouping, days and months counted in Asia/Shanghai, and
what row-level security lets each role count."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Databases, ScratchDB, as_role, demo_tokens
from gq import error, ok
from sqlalchemy import create_engine
from starlette.testclient import TestClient
from test_family_files import owner

from api.app import create_app
from api.auth import issue_token
from geo.workers import worker_by_code

SUB = "310106015"
G1 = "310106015001001"  # the demo grid worker's (JA015-WG-0001)
G2 = "310106015001002"  # JA015-WG-0002's
G1_MICRO = "310106015001001001"
W1, W2 = "JA015-WG-0001", "JA015-WG-0002"
OTHER_GRID_WORKER = "JA015-WG-0004"  # grid 310106015002001: none of our cases

# letter: grid, micro-grid, source, reporter code, category, unit, state, returned, merged into,
# reported, deadline, closed (local times, +08:00).
CASES = {
    "A": (G1, G1_MICRO, "GRID_WHISTLE", W1, "EXPOSED_GARBAGE", "U-SANITATION", "CLOSED", 0, None,
          "2031-01-05 09:00", "2031-01-14 18:00", "2031-01-10 09:00"),  # on time, 120 h
    "B": (G1, None, "GRID_WHISTLE", W1, "ILLEGAL_PARKING", "U-URBAN", "CLOSED", 1, None,
          "2031-01-20 10:00", "2031-01-29 18:00", "2031-02-03 10:00"),  # late, reworked, 336 h
    "C": (G2, None, "GRID_WHISTLE", W2, "FACILITY_REPAIR", "U-HOUSING", "DISPATCHED", 0, None,
          "2031-02-10 08:00", "2031-02-20 18:00", None),  # due in February, open
    "D": (G2, None, "HOTLINE_12345", None, "FACILITY_REPAIR", "U-HOUSING", "CLOSED", 2, None,
          "2031-03-01 09:00", "2031-03-10 18:00", "2031-03-31 23:30"),  # late, 734.5 h; 15:30 UTC
    "E": (G1, None, "HOTLINE_12345", None, "NOISE", None, "REJECTED", 0, None,
          "2031-03-05 12:00", None, None),  # reported, never due
    "F": (G2, None, "GRID_WHISTLE", W2, "EXPOSED_GARBAGE", None, "CLOSED", 0, "A",
          "2031-01-06 10:00", None, "2031-01-06 12:00"),  # a duplicate merged into A
    "G": (G1, None, "GRID_WHISTLE", W1, "OTHER", None, "CLOSED", 0, None,
          "2031-02-15 10:00", None, "2031-02-15 12:00"),  # settled on the spot: no deadline, 2 h
    "H": (G1, None, "HOTLINE_12345", None, "FOOD_SAFETY", "U-MARKET", "CLOSED", 0, None,
          "2030-12-20 10:00", "2031-01-03 18:00", "2030-12-30 10:00"),  # closed before the period
    "I": (G2, None, "HOTLINE_12345", None, "NOISE", "U-URBAN", "HANDLED", 0, None,
          "2030-12-28 10:00", "2031-01-08 18:00", None),  # due in January, open
    "J": (G1, None, "GRID_WHISTLE", W1, "EXPOSED_GARBAGE", "U-SANITATION", "REPORTED", 0, None,
          "2031-04-01 00:30", None, None),  # April locally, 31 March in UTC
    "K": (G1, None, "HOTLINE_12345", "resident-0001", "OTHER", None, "ACCEPTED", 0, None,
          "2031-01-01 07:00", None, None),  # 1 January locally, 31 December in UTC
}  # fmt: skip

FIGURES = (
    "reported dueToClose closed closedOnTime reworked closureRate onTimeClosureRate reworkRate"
    " medianHoursToClose whistles gridWorkers whistlesPerWorker"
)
STATS = f"""query($s: String!, $from: Date!, $to: Date!, $g: CaseStatsGroupBy) {{
  caseStats(scope: $s, from: $from, to: $to, groupBy: $g) {{
    totals {{ {FIGURES} }} groups {{ key name {FIGURES} }} }} }}"""
Q1 = {"from": "2031-01-01", "to": "2031-03-31"}


def insert_cases(db: ScratchDB) -> None:
    ids = {letter: str(uuid.uuid4()) for letter in CASES}
    for n, (letter, row) in enumerate(CASES.items()):
        grid, micro, source, reporter, category, unit, state, returned, merged, *times = row
        reported, deadline, closed = (t and t + "+08" for t in times)
        dispatched = reported if unit else None  # a case has a unit from its dispatch on
        owner(
            db,
            "INSERT INTO grid_case (id, number, source, category_code, description, location,"
            " grid_code, micro_grid_code, reporter_code, reporter_name, reporter_phone, unit_code,"
            " state, reported_at, dispatched_at, deadline, closed_at, returned_count, merged_into)"
            " SELECT %s, %s, %s, %s, %s, ST_PointOnSurface(g.geom), g.code, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s FROM grid g WHERE g.code = %s",
            ids[letter], f"2031-{900000 + n}", source, category, f"测试案件 {letter}", micro,
            reporter, reporter and "张三", reporter and "13800000000", unit, state, reported,
            dispatched, deadline, closed, returned, merged and ids[merged], grid,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cases_db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    """The demo with our cases (read only by these tests)."""
    db = databases.make(f"cs{uuid.uuid4().hex[:8]}", template=template_db.name)
    insert_cases(db)
    yield db
    databases.drop(db.name)


@pytest.fixture(scope="module")
def app(cases_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(cases_db.settings())) as public:
        yield public, demo_tokens(cases_db)


def signed_in(db: ScratchDB, public: TestClient, code: str) -> TestClient:
    """The app called by the worker with staff number ``code``."""
    engine = create_engine(db.owner_url)
    try:
        with engine.connect() as connection:
            token = issue_token(db.settings(), worker_by_code(connection=connection, code=code))
    finally:
        engine.dispose()
    return as_role(public, {"them": {"token": token}}, "them")


def grid_workers(db: ScratchDB, prefix: str) -> int:
    return owner(
        db,
        "SELECT count(DISTINCT w.id) FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
        " JOIN grid g ON g.id = wg.grid_id WHERE w.role = 'GRID_WORKER' AND g.code LIKE %s",
        prefix + "%",
    )[0][0]


def figures(
    reported: int, due: int, closed: int, on_time: int, reworked: int,
    median: float | None, whistles: int, workers: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What caseStats answers for these counts: the rates computed here from them."""
    return {
        "reported": reported, "dueToClose": due, "closed": closed, "closedOnTime": on_time,
        "reworked": reworked, "closureRate": closed / due if due else None,
        "onTimeClosureRate": on_time / due if due else None,
        "reworkRate": reworked / closed if closed else None, "medianHoursToClose": median,
        "whistles": whistles, "gridWorkers": workers,
        "whistlesPerWorker": whistles / workers if workers else None,
    }  # fmt: skip


ZERO = figures(0, 0, 0, 0, 0, None, 0)


def stats(client: TestClient, scope: str = SUB, group_by: str | None = None, **period: str) -> Any:
    return ok(client, STATS, s=scope, g=group_by, **{**Q1, **period})["caseStats"]


def groups(answer: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {g.pop("key"): g for g in answer["groups"]}


def test_totals_of_the_first_quarter(app: tuple[TestClient, Any], cases_db: ScratchDB) -> None:
    public, tokens = app
    center = as_role(public, tokens, "grid_center")
    everyone = grid_workers(cases_db, SUB)
    answer = stats(center)
    # Reported: A B C D E F G K (H and I in December, J on 1 April local time). Closed: A B D G
    # (F is merged, H closed in December). Due: those four, C and I (deadlines in the quarter,
    # open); not H (closed before the quarter), E (rejected), F (merged). On time: A, and G
    # (no deadline). Reworked: B, D. Hours: G 2, A 120, B 336, D 734.5. Whistles: A B C F G.
    assert answer["totals"] == figures(8, 6, 4, 2, 2, 228.0, 5, everyone)
    assert answer["groups"] == []
    assert stats(center, **{"from": "2031-04-01", "to": "2031-04-01"})["totals"] == figures(
        1, 0, 0, 0, 0, None, 1, everyone
    )  # J, reported at 16:30 UTC on 31 March
    assert stats(center, **{"from": "2030-12-31", "to": "2030-12-31"})["totals"] == figures(
        0, 0, 0, 0, 0, None, 0, everyone
    )  # K was reported at 23:00 UTC on 31 December: 1 January in Shanghai
    # A micro-grid counts its own cases only: A.
    micro = stats(center, G1_MICRO)["totals"]
    assert micro == figures(1, 1, 1, 1, 0, 120.0, 1, grid_workers(cases_db, G1))


def test_by_month_each_month_is_a_period(app: tuple[TestClient, Any]) -> None:
    public, tokens = app
    answer = stats(as_role(public, tokens, "grid_center"), group_by="MONTH")
    by_month = groups(answer)
    assert list(by_month) == ["2031-01", "2031-02", "2031-03"]
    workers = answer["totals"]["gridWorkers"]
    # January: reported A B F K; due A (closed), B (deadline 29 Jan, closed 3 Feb), I (open).
    assert by_month["2031-01"] == {"name": None, **figures(4, 3, 1, 1, 0, 120.0, 3, workers)}
    # February: reported C G; closed B (late, reworked) and G; due B G C.
    assert by_month["2031-02"] == {"name": None, **figures(2, 3, 2, 1, 1, 169.0, 2, workers)}
    # March: reported D E; D closed at 23:30 on 31 March in Shanghai (15:30 UTC).
    assert by_month["2031-03"] == {"name": None, **figures(2, 1, 1, 0, 1, 734.5, 0, workers)}
    # B is due in January and in February, once in the quarter.
    assert sum(m["dueToClose"] for m in by_month.values()) == answer["totals"]["dueToClose"] + 1
    # A period cut mid-month: its months are clipped to it. 8..31 Jan: B reported; A closed
    # (10 Jan); due A, B (deadline 29 Jan) and I (deadline 8 Jan). 1..3 Feb: B closed.
    clipped = groups(stats(as_role(public, tokens, "grid_center"), group_by="MONTH",
                           **{"from": "2031-01-08", "to": "2031-02-03"}))  # fmt: skip
    assert clipped["2031-01"] == {"name": None, **figures(1, 3, 1, 1, 0, 120.0, 1, workers)}
    assert clipped["2031-02"] == {"name": None, **figures(0, 1, 1, 0, 1, 336.0, 0, workers)}


def test_by_grid_every_grid_is_listed(app: tuple[TestClient, Any], cases_db: ScratchDB) -> None:
    public, tokens = app
    by_grid = groups(stats(as_role(public, tokens, "grid_center"), group_by="GRID"))
    names = dict(owner(cases_db, "SELECT code, name FROM grid WHERE code LIKE %s", SUB + "%"))
    assert set(by_grid) == set(names)
    assert {k: g.pop("name") for k, g in by_grid.items()} == names
    one, two = grid_workers(cases_db, G1), grid_workers(cases_db, G2)
    # G1: reported A B E G K, closed and due A B G; G2: reported C D F, closed D, due C D I.
    assert by_grid.pop(G1) == figures(5, 3, 3, 2, 1, 120.0, 3, one)
    assert by_grid.pop(G2) == figures(3, 3, 1, 0, 1, 734.5, 2, two)
    for code, rest in by_grid.items():
        assert rest == figures(0, 0, 0, 0, 0, None, 0, grid_workers(cases_db, code))


def test_by_worker_every_grid_worker_is_listed(
    app: tuple[TestClient, Any], cases_db: ScratchDB
) -> None:
    public, tokens = app
    answer = stats(as_role(public, tokens, "grid_center"), group_by="WORKER")
    keys = [g["key"] for g in answer["groups"]]
    assert keys[-1] is None and keys[:-1] == sorted(keys[:-1])
    by_worker = groups(answer)
    listed = owner(
        cases_db,
        "SELECT DISTINCT w.code, w.name FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
        " JOIN grid g ON g.id = wg.grid_id WHERE w.role = 'GRID_WORKER' AND g.code LIKE %s",
        SUB + "%",
    )
    assert set(by_worker) == {code for code, _ in listed} | {None}
    assert by_worker.pop(W1) == {"name": dict(listed)[W1], **figures(3, 3, 3, 2, 1, 120.0, 3)}
    assert by_worker.pop(W2) == {"name": dict(listed)[W2], **figures(2, 1, 0, 0, 0, None, 2)}
    # Hotline cases: no reporter worker, and no resident's code or name shown.
    assert by_worker.pop(None) == {"name": None, **figures(3, 2, 1, 0, 1, 734.5, 0)}
    for code, rest in by_worker.items():
        assert rest == {"name": dict(listed)[code], **ZERO}, code


def test_by_unit_and_category(app: tuple[TestClient, Any]) -> None:
    public, tokens = app
    center = as_role(public, tokens, "grid_center")
    by_unit = stats(center, group_by="UNIT")["groups"]
    assert [(g.pop("key"), g.pop("name")) for g in by_unit] == [
        ("U-HOUSING", "房管办"), ("U-SANITATION", "市容环卫所"), ("U-URBAN", "城管中队"),
        (None, None),
    ]  # fmt: skip
    assert by_unit == [
        figures(2, 2, 1, 0, 1, 734.5, 1),  # C D
        figures(1, 1, 1, 1, 0, 120.0, 1),  # A
        figures(1, 2, 1, 0, 1, 336.0, 1),  # B reported and closed, I due
        figures(4, 1, 1, 1, 0, 2.0, 2),  # not dispatched: E F G K, G closed
    ]
    by_category = stats(center, group_by="CATEGORY")["groups"]
    assert [(g.pop("key"), g.pop("name")) for g in by_category] == [
        ("EXPOSED_GARBAGE", "暴露垃圾"), ("FACILITY_REPAIR", "设施报修"),
        ("ILLEGAL_PARKING", "违章停车"), ("NOISE", "噪声扰民"), ("OTHER", "其他"),
    ]  # fmt: skip
    assert by_category == [
        figures(2, 1, 1, 1, 0, 120.0, 2),  # A F
        figures(2, 2, 1, 0, 1, 734.5, 1),  # C D
        figures(1, 1, 1, 0, 1, 336.0, 1),  # B
        figures(1, 1, 0, 0, 0, None, 0),  # E reported, I due
        figures(2, 1, 1, 1, 0, 2.0, 1),  # G K
    ]


def test_each_role_counts_the_cases_it_sees(
    app: tuple[TestClient, Any], cases_db: ScratchDB
) -> None:
    public, tokens = app
    # The demo grid worker covers G1 only: A B E G K, and its own grid's workers.
    worker = stats(as_role(public, tokens, "grid_worker"))
    assert worker["totals"] == figures(5, 3, 3, 2, 1, 120.0, 3, grid_workers(cases_db, G1))
    assert [g["key"] for g in stats(as_role(public, tokens, "grid_worker"), group_by="GRID")[
        "groups"]] == [G1]  # fmt: skip
    # A grid worker of another grid sees none of them.
    other = signed_in(cases_db, public, OTHER_GRID_WORKER)
    assert stats(other)["totals"] == figures(
        0, 0, 0, 0, 0, None, 0, grid_workers(cases_db, "310106015002001")
    )
    err = error(other, STATS, s=G1, **Q1)
    assert err["extensions"] == {"code": "FORBIDDEN", "argument": "scope"}
    # The housing office: the cases dispatched to it, C and D, wherever they are.
    housing = stats(as_role(public, tokens, "department"))
    assert housing["totals"] == figures(2, 2, 1, 0, 1, 734.5, 1, grid_workers(cases_db, SUB))
    assert error(public, STATS, s=SUB, **Q1)["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("variables", "argument", "code"),
    [
        ({"s": SUB, "from": "2031-02-01", "to": "2031-01-31"}, "from", "BAD_USER_INPUT"),
        ({"s": "310106015999", **Q1}, "scope", "NOT_FOUND"),
        ({"s": "31010601", **Q1}, "scope", "BAD_USER_INPUT"),
        ({"s": SUB, "from": "2001-01-01", "to": "2031-01-01", "g": "MONTH"}, "to",
         "BAD_USER_INPUT"),
    ],
)  # fmt: skip
def test_bad_questions(
    app: tuple[TestClient, Any], variables: dict[str, Any], argument: str, code: str
) -> None:
    public, tokens = app
    err = error(as_role(public, tokens, "grid_center"), STATS, **variables)
    assert err["extensions"] == {"code": code, "argument": argument}
    if argument == "from":
        assert err["message"].startswith("from: 2031-02-01 is after to (2031-01-31)")
