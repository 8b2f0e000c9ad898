"""Visit coverage and the overdue list, checked against a plain computation from the raw visits:
today (read from the households' last contacts) and a past day (read from the visits)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, ok
from starlette.testclient import TestClient
from test_family_files import owner

from api.app import create_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
SUBDISTRICT = "310106015"
DAYS = {"A": 182, "B": 182, "C": 30}

COVERAGE = """query($s: String!, $l: CoverageLevel!, $d: Date) {
  coverage(scope: $s, level: $l, asOf: $d) {
    code households contacted ratio suppressed overdue { a b c total } geometry } }"""


def today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def expected(db: ScratchDB, as_of: dt.date, width: int, days: dict[str, int] = DAYS) -> dict:
    """Per cell: (households, contacted, overdue by class), computed from the raw rows."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), SHANGHAI)
    visits: dict[Any, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for hid, at, mode in owner(db, "SELECT household_id, visited_at, mode FROM visit"):
        visits[hid].append((at, mode))
    cells: dict[str, list[Any]] = {}
    for hid, code, cls, pref, moved_in, moved_out in owner(
        db,
        "SELECT id, code, household_class, contact_preference, moved_in, moved_out"
        " FROM household WHERE code LIKE %s",
        SUBDISTRICT + "%",
    ):
        if (moved_in and moved_in > as_of) or (moved_out and moved_out <= as_of):
            continue
        seen = [at for at, mode in visits[hid] if at < end and (cls != "A" or mode == pref)]
        contacted = bool(seen) and max(seen).astimezone(SHANGHAI).date() + dt.timedelta(
            days=days[cls]
        ) >= as_of
        cell = cells.setdefault(code[:width], [0, 0, Counter()])
        cell[0] += 1
        cell[1] += contacted
        if not contacted:
            cell[2][cls] += 1
    return {k: (h, c, (o["A"], o["B"], o["C"])) for k, (h, c, o) in cells.items()}


def got(cells: list[dict[str, Any]]) -> dict:
    return {
        c["code"]: (c["households"], c["contacted"],
                    (c["overdue"]["a"], c["overdue"]["b"], c["overdue"]["c"]))
        for c in cells if c["households"]
    }  # fmt: skip


@pytest.mark.parametrize("days_ago", [0, 45])
def test_coverage_agrees_with_the_visits(
    client: TestClient, demo_db: ScratchDB, days_ago: int
) -> None:
    as_of = today() - dt.timedelta(days=days_ago)
    cells = ok(client, COVERAGE, s=SUBDISTRICT, l="GRID", d=str(as_of))["coverage"]
    assert got(cells) == expected(demo_db, as_of, 15)
    assert all(c["geometry"]["type"] == "MultiPolygon" for c in cells)
    ratios = [c["ratio"] for c in cells if c["households"]]
    assert ratios == [c["contacted"] / c["households"] for c in cells if c["households"]]
    if days_ago == 0:  # the demo's history is uneven, so the map means something
        assert min(ratios) < 0.5 < 0.8 < max(ratios)
        assert sum(c["overdue"]["c"] for c in cells) > 0


def test_levels_and_cells(client: TestClient, demo_db: ScratchDB) -> None:
    grid = ok(client, COVERAGE, s=SUBDISTRICT, l="GRID")["coverage"][0]["code"]
    (one,) = ok(client, COVERAGE, s=grid, l="GRID")["coverage"]
    assert one["code"] == grid
    micro = ok(client, COVERAGE, s=grid, l="MICRO_GRID")["coverage"]
    buildings = ok(client, COVERAGE, s=grid, l="BUILDING")["coverage"]
    assert len(micro) > 1 and len(buildings) >= len(micro)
    assert {c["code"][:15] for c in micro} == {grid}
    assert sum(c["households"] for c in micro) == one["households"]
    assert sum(c["households"] for c in buildings) == one["households"]
    assert got(buildings) == {
        k: v for k, v in expected(demo_db, today(), 21).items() if k.startswith(grid)
    }


@pytest.mark.parametrize(
    ("variables", "argument", "code"),
    [
        ({"s": "310106015999", "l": "GRID"}, "scope", "NOT_FOUND"),
        ({"s": "31010601", "l": "GRID"}, "scope", "BAD_USER_INPUT"),
        ({"s": "310106015001001001", "l": "GRID"}, "level", "BAD_USER_INPUT"),
        ({"s": SUBDISTRICT, "l": "GRID", "d": "2999-01-01"}, "asOf", "BAD_USER_INPUT"),
    ],
)
def test_bad_coverage_questions(
    client: TestClient, variables: dict[str, Any], argument: str, code: str
) -> None:
    err = error(client, COVERAGE, **variables)
    assert err["extensions"] == {"code": code, "argument": argument}


def test_the_public_sees_large_cells_only(
    client: TestClient, app_client: TestClient, demo_db: ScratchDB
) -> None:
    grid = ok(client, COVERAGE, s=SUBDISTRICT, l="GRID")["coverage"][0]["code"]
    full = {c["code"]: c for c in ok(client, COVERAGE, s=grid, l="BUILDING")["coverage"]}
    public = ok(app_client, COVERAGE, s=grid, l="BUILDING")["coverage"]
    small = [c for c in public if full[c["code"]]["households"] < 10]
    large = [c for c in public if full[c["code"]]["households"] >= 10]
    assert small and large
    assert all(c["suppressed"] and c["households"] is None and c["overdue"] is None for c in small)
    assert all(not c["suppressed"] and c["households"] == full[c["code"]]["households"]
               for c in large)  # fmt: skip


OVERDUE = """query($s: String!, $after: String, $cls: HouseholdClass) {
  overdueHouseholds(scope: $s, first: 100, after: $after, householdClass: $cls) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { householdClass daysOverdue dueOn lastContactAt household { code } } } } }"""


def all_overdue(client: TestClient, scope: str, **kw: Any) -> tuple[list[dict], int]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = ok(client, OVERDUE, s=scope, after=after, **kw)["overdueHouseholds"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes, page["totalCount"]
        after = page["pageInfo"]["endCursor"]


def test_the_overdue_list(
    client: TestClient, app_client: TestClient, tokens: dict[str, Any], demo_db: ScratchDB
) -> None:
    grid = ok(client, COVERAGE, s=SUBDISTRICT, l="GRID")["coverage"][0]
    nodes, total = all_overdue(client, grid["code"])
    assert total == len(nodes) == grid["overdue"]["total"]
    assert len({n["household"]["code"] for n in nodes}) == len(nodes)
    order = [(n["householdClass"] != "C", -n["daysOverdue"], n["household"]["code"]) for n in nodes]
    assert order == sorted(order)  # class C first, then the most overdue
    assert Counter(n["householdClass"] for n in nodes)["C"] == grid["overdue"]["c"]
    for n in nodes:
        assert dt.date.fromisoformat(n["dueOn"]) + dt.timedelta(n["daysOverdue"]) == today()
    only_c, total_c = all_overdue(client, grid["code"], cls="C")
    assert total_c == grid["overdue"]["c"] == len(only_c)
    # A block head sees the households of its own grids only; the public, none at all.
    worker = as_role(client, tokens, "grid_worker")
    mine, _ = all_overdue(worker, SUBDISTRICT)
    (grids,) = owner(
        demo_db,
        "SELECT array_agg(g.code) FROM grid g JOIN worker_grid wg ON wg.grid_id = g.id"
        " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s",
        tokens["grid_worker"]["worker"],
    )[0]
    assert mine and {n["household"]["code"][:15] for n in mine} <= set(grids)
    assert error(app_client, OVERDUE, s=SUBDISTRICT)["extensions"]["code"] == "FORBIDDEN"


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


POLICY = """mutation($i: SetCadencePolicyInput!) { setCadencePolicy(input: $i) {
  subdistrictCode classADays classBDays classCDays startsOn updatedBy } }"""


def test_the_grid_center_sets_the_cadence(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    center = as_role(public, tokens, "grid_center")
    read = "query($s: String!) { cadencePolicy(scope: $s) { classADays classBDays classCDays } }"
    assert ok(public, read, s=SUBDISTRICT + "001")["cadencePolicy"] == {
        "classADays": 182, "classBDays": 182, "classCDays": 30
    }  # fmt: skip
    before = ok(center, COVERAGE, s=SUBDISTRICT, l="GRID")["coverage"]
    policy = ok(center, POLICY, i={"scope": SUBDISTRICT, "classCDays": 90})["setCadencePolicy"]
    assert policy["classCDays"] == 90 and policy["classADays"] == 182
    assert policy["updatedBy"] == tokens["grid_center"]["worker"]
    after = ok(center, COVERAGE, s=SUBDISTRICT, l="GRID")["coverage"]
    assert got(after) == expected(fresh_db, today(), 15, {**DAYS, "C": 90})
    assert sum(c["contacted"] for c in after) > sum(c["contacted"] for c in before)
    for role in ("grid_worker", "community"):
        err = error(as_role(public, tokens, role), POLICY, i={"scope": SUBDISTRICT,
                                                             "classCDays": 7})  # fmt: skip
        assert err["extensions"]["code"] == "FORBIDDEN"
    err = error(center, POLICY, i={"scope": SUBDISTRICT, "classBDays": 0})
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "argument": "input.classBDays"}
    assert ok(public, read, s=SUBDISTRICT)["cadencePolicy"]["classCDays"] == 90


def test_never_contacted_is_overdue_from_moving_in_or_the_policy_start(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    center = as_role(public, tokens, "grid_center")
    # Cases keep their history: they only lose their link to the visits forgotten here.
    owner(fresh_db, "UPDATE grid_case SET visit_id = NULL, demand_id = NULL;"
                    " DELETE FROM demand; DELETE FROM talent; DELETE FROM visit;"
                    " UPDATE household SET last_contact_at = NULL,"
                    " last_preferred_contact_at = NULL")  # fmt: skip
    start = today() - dt.timedelta(days=100)
    ok(center, POLICY, i={"scope": SUBDISTRICT, "startsOn": str(start)})
    nodes, total = all_overdue(center, SUBDISTRICT + "001001")
    moved = dict(owner(fresh_db, "SELECT code, moved_in FROM household"))
    assert total == len(nodes) > 0
    for n in nodes:
        since = max(d for d in (moved[n["household"]["code"]], start) if d is not None)
        assert n["lastContactAt"] is None and n["daysOverdue"] == (today() - since).days
