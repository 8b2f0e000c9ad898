"""Walking routes on the demo's network: the households due, inside their visit times and the
worker's shifts, walked in an order on the streets; saved plans; who may plan; and clear answers
when there is nothing to walk to."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, ok
from starlette.testclient import TestClient
from test_family_files import owner

from api.app import create_app
from api.schema.relay import global_id, parse_global_id

SHANGHAI = ZoneInfo("Asia/Shanghai")

ROUTE = """query($w: ID!, $d: Date!, $n: Int, $start: String) {
  walkingRoute(workerId: $w, date: $d, maxStops: $n, start: $start) {
    date start maxStops reason plannedAt returnMeters totalMeters path
    worker { code }
    stops { order arrivalAt legMeters household { id code householdClass } }
    calls { channel household { code } }
    skipped { reason household { id code householdClass } } } }"""

PLAN = """mutation($input: PlanRouteInput!) { planRoute(input: $input) { route {
  plannedAt totalMeters stops { order arrivalAt household { code } } skipped { reason } } } }"""


def next_weekday(isoweekday: int) -> dt.date:
    """The next such day after today in Shanghai (never today: a plan for today may start in
    the past hours)."""
    today = dt.datetime.now(SHANGHAI).date()
    return today + dt.timedelta(days=(isoweekday - today.isoweekday() - 1) % 7 + 1)


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


def wid(db: ScratchDB, code: str) -> str:
    return global_id("Worker", owner(db, "SELECT id FROM worker WHERE code = %s", code)[0][0])


def local(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at).astimezone(SHANGHAI)


def test_the_demo_network_reaches_every_building_and_office(demo_db: ScratchDB) -> None:
    (buildings, offices, entrances, components) = owner(
        demo_db,
        "SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM community),"
        " (SELECT count(*) FROM walk_entrance),"
        " (SELECT count(DISTINCT component) FROM pgr_connectedComponents("
        "  'SELECT id, source, target, length_m AS cost FROM walk_edge'))",
    )[0]
    assert entrances == buildings + offices
    assert components == 1


def test_a_block_heads_day(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    code = tokens["grid_worker"]["worker"]
    day = next_weekday(3)  # a Wednesday: the default week has its evening shift then
    route = ok(worker, ROUTE, w=wid(fresh_db, code), d=day.isoformat(), n=15)["walkingRoute"]
    assert route["worker"]["code"] == code and route["reason"] is None
    assert route["plannedAt"] is None  # computed, not saved
    (community,) = owner(
        fresh_db, "SELECT c.code FROM worker w JOIN community c ON c.id = w.community_id"
        " WHERE w.code = %s", code,
    )[0]  # fmt: skip
    assert route["start"] == community  # the committee office
    stops = route["stops"]
    assert [s["order"] for s in stops] == list(range(1, len(stops) + 1))
    assert 10 <= len(stops) <= 15
    # Nobody of class A is walked to; they are listed with the channel to use instead.
    assert all(s["household"]["householdClass"] != "A" for s in stops)
    class_a = [s for s in route["skipped"] if s["household"]["householdClass"] == "A"]
    assert class_a and all("preferred channel" in s["reason"] for s in class_a)
    channels = dict(owner(
        fresh_db, "SELECT code, contact_preference FROM household WHERE code = ANY(%s)",
        [s["household"]["code"] for s in class_a],
    ))  # fmt: skip
    assert {c["household"]["code"]: c["channel"] for c in route["calls"]} == channels
    # The most due first: nobody left out for the stop limit is more due than one walked to.
    due = {
        c: (cls != "C", -days)
        for c, cls, days in owner(
            fresh_db,
            "SELECT s.code, s.household_class, s.days_overdue"
            " FROM household_contact_status(%s, %s) s WHERE NOT s.contacted",
            community,
            day,
        )
    }
    walked = [due[s["household"]["code"]] for s in stops]
    for s in route["skipped"]:
        if "maxStops" in s["reason"]:
            assert due[s["household"]["code"]] >= max(walked)
    # Arrivals in order, on that day, inside the shifts (09–12, 13–17, 18:30–20:30), and the
    # evening-only families only in the evening.
    arrivals = [local(s["arrivalAt"]) for s in stops]
    assert arrivals == sorted(arrivals) and {a.date() for a in arrivals} == {day}
    for a in arrivals:
        minute = a.hour * 60 + a.minute
        assert 540 <= minute < 720 or 780 <= minute < 1020 or 1110 <= minute < 1230, a
    times = dict(owner(
        fresh_db, "SELECT code, visit_times FROM household WHERE code = ANY(%s)",
        [s["household"]["code"] for s in stops],
    ))  # fmt: skip
    for s, a in zip(stops, arrivals, strict=True):
        if times[s["household"]["code"]] == ["WEEKDAY_EVENING"]:
            assert a.hour >= 18, s
    # Metres: walked on the network (never shorter than the straight line), adding up.
    assert route["totalMeters"] == pytest.approx(
        sum(s["legMeters"] for s in stops) + route["returnMeters"]
    )
    first = stops[0]["household"]["code"]
    straight, on_network = owner(
        fresh_db,
        "SELECT ST_Distance(a.geom::geography, b.geom::geography),"
        " (SELECT agg_cost FROM pgr_dijkstraCost("
        "   'SELECT id, source, target, length_m AS cost FROM walk_edge', a.vertex, b.vertex,"
        "   false))"
        " FROM walk_entrance a, walk_entrance b WHERE a.code = %s AND b.code = %s",
        community, first[:21],
    )[0]  # fmt: skip
    assert stops[0]["legMeters"] == pytest.approx(on_network, abs=0.01)
    assert on_network >= straight
    # The path: a LineString along the streets from the office and back to it.
    path = route["path"]
    assert path["type"] == "LineString" and len(path["coordinates"]) > len(stops)
    (office,) = owner(
        fresh_db, "SELECT ST_AsGeoJSON(geom) FROM walk_entrance WHERE code = %s", community
    )[0]
    ox, oy = json.loads(office)["coordinates"]
    for x, y in (path["coordinates"][0], path["coordinates"][-1]):
        assert math.dist((x, y), (ox, oy)) < 1e-6
    (walked_m,) = owner(
        fresh_db, "SELECT ST_Length(ST_GeomFromGeoJSON(%s)::geography)", json.dumps(path)
    )[0]
    assert walked_m == pytest.approx(route["totalMeters"], rel=0.01)


def test_a_saved_plan_is_what_every_later_answer_shows(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    community = as_role(public, tokens, "community")
    w = wid(fresh_db, tokens["grid_worker"]["worker"])
    day = next_weekday(2).isoformat()
    # The community plans for its block head; the block head reads the same plan.
    planned = ok(community, PLAN, input={"workerId": w, "date": day, "maxStops": 8})
    plan = planned["planRoute"]["route"]
    assert plan["plannedAt"] and 1 <= len(plan["stops"]) <= 8
    read = ok(worker, ROUTE, w=w, d=day, n=3)["walkingRoute"]  # maxStops: the plan's, not 3
    assert read["plannedAt"] == plan["plannedAt"] and read["maxStops"] == 8
    assert [s["household"]["code"] for s in read["stops"]] == [
        s["household"]["code"] for s in plan["stops"]
    ]
    assert [s["arrivalAt"] for s in read["stops"]] == [s["arrivalAt"] for s in plan["stops"]]
    assert read["totalMeters"] == pytest.approx(plan["totalMeters"])
    # Planning again replaces the day's plan; each planned stop is in the audit log.
    again = ok(worker, PLAN, input={"workerId": w, "date": day, "maxStops": 4})
    assert len(again["planRoute"]["route"]["stops"]) <= 4
    assert owner(fresh_db, "SELECT count(*) FROM route_plan")[0][0] == 1
    logged = owner(
        fresh_db, "SELECT count(*) FROM audit_log WHERE action = 'create'"
        " AND 'route_stop' = ANY(fields)",
    )[0][0]  # fmt: skip
    assert logged == len(plan["stops"]) + len(again["planRoute"]["route"]["stops"])
    # Someone else's block head, and the public, see no plan.
    other = owner(
        fresh_db, "SELECT code FROM worker WHERE role = 'GRID_WORKER' AND code <> %s"
        " ORDER BY code LIMIT 1", tokens["grid_worker"]["worker"],
    )[0][0]  # fmt: skip
    assert error(worker, ROUTE, w=wid(fresh_db, other), d=day)["extensions"]["code"] == "FORBIDDEN"
    assert error(public, ROUTE, w=w, d=day)["extensions"]["code"] == "FORBIDDEN"


def test_the_workers_week_decides_when_routes_run(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    w = wid(fresh_db, tokens["grid_worker"]["worker"])
    saturday = next_weekday(6).isoformat()
    off = ok(worker, ROUTE, w=w, d=saturday)["walkingRoute"]
    assert off["stops"] == [] and "can be walked to" in off["reason"]
    assert any("no shift on SATURDAY" in s["reason"] for s in off["skipped"])
    week = """mutation($input: SetWorkerScheduleInput!) { setWorkerSchedule(input: $input) {
      shifts { weekday starts ends } } }"""
    shifts = [{"weekday": "SATURDAY", "starts": "09:30:00", "ends": "11:30:00"}]
    done = ok(worker, week, input={"workerId": w, "shifts": shifts})["setWorkerSchedule"]
    assert done["shifts"] == shifts
    on = ok(worker, ROUTE, w=w, d=saturday)["walkingRoute"]
    assert on["stops"] and all(
        dt.time(9, 30) <= local(s["arrivalAt"]).time() < dt.time(11, 30) for s in on["stops"]
    )
    query = "query($c: String!) { worker(code: $c) { schedule { weekday starts ends } } }"
    code = tokens["grid_worker"]["worker"]
    assert ok(worker, query, c=code)["worker"]["schedule"] == shifts
    overlapping = [*shifts, {"weekday": "SATURDAY", "starts": "11:00:00", "ends": "12:00:00"}]
    err = error(worker, week, input={"workerId": w, "shifts": overlapping})
    assert err["extensions"]["argument"] == "input.shifts[1]" and "overlaps" in err["message"]
    assert ok(worker, query, c=code)["worker"]["schedule"] == shifts  # unchanged
    reset = ok(worker, week, input={"workerId": w, "shifts": []})["setWorkerSchedule"]
    assert len(reset["shifts"]) == 11  # the default week back


def test_clear_answers_when_there_is_nothing_to_walk(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    center = as_role(public, tokens, "grid_center")
    worker = as_role(public, tokens, "grid_worker")
    code = tokens["grid_worker"]["worker"]
    w = wid(fresh_db, code)
    day = next_weekday(1).isoformat()
    # Bad arguments name themselves.
    past = (dt.datetime.now(SHANGHAI).date() - dt.timedelta(days=1)).isoformat()
    assert error(worker, ROUTE, w=w, d=past)["extensions"]["argument"] == "date"
    assert error(worker, ROUTE, w=w, d=day, n=0)["extensions"]["argument"] == "maxStops"
    err = error(worker, ROUTE, w=w, d=day, start="310106015001001")
    assert err["extensions"]["argument"] == "start" and "no entrance" in err["message"]
    assert (
        error(worker, ROUTE, w=w, d=day, start="310106015999")["extensions"]["code"] == "NOT_FOUND"
    )
    # A building of the route cut off from the streets: its households are named, not walked.
    route = ok(worker, ROUTE, w=w, d=day, n=5)["walkingRoute"]
    first = route["stops"][0]["household"]["code"]
    cut = first[:21]
    owner(
        fresh_db, "DELETE FROM walk_edge WHERE highway = 'entrance' AND (source, target) IN"
        " (SELECT e.source, e.target FROM walk_edge e JOIN walk_entrance n"
        "  ON n.vertex IN (e.source, e.target) WHERE n.code = %s)", cut,
    )  # fmt: skip
    route = ok(worker, ROUTE, w=w, d=day, n=5)["walkingRoute"]
    assert all(not s["household"]["code"].startswith(cut) for s in route["stops"])
    # (its other households may be left out for other reasons first: not at home, class A …)
    reasons = {s["household"]["code"]: s["reason"] for s in route["skipped"]}
    assert "not reachable" in reasons[first]
    # Nobody due: every household of the grid was just visited.
    grid = _grid(fresh_db, code)
    owner(
        fresh_db, "UPDATE household SET last_contact_at = now(), last_preferred_contact_at = now()"
        " WHERE code >= %s AND code < %s || chr(1114111)", grid, grid,
    )  # fmt: skip
    route = ok(worker, ROUTE, w=w, d=day)["walkingRoute"]
    assert route["stops"] == [] and route["skipped"] == [] and "nobody is due" in route["reason"]
    # A block head with no grid.
    owner(fresh_db, "DELETE FROM worker_grid WHERE worker_id = %s",
          str(parse_global_id(w, argument="w")[1]))  # fmt: skip
    route = ok(center, ROUTE, w=w, d=day)["walkingRoute"]
    assert route["stops"] == [] and "has no grid" in route["reason"]
    saved = ok(center, PLAN, input={"workerId": w, "date": day})["planRoute"]["route"]
    assert saved["plannedAt"] and saved["stops"] == []
    err = error(center, PLAN, input={"workerId": w, "date": past})
    assert err["extensions"]["argument"] == "input.date"


def _grid(db: ScratchDB, worker_code: str) -> str:
    return owner(
        db, "SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id"
        " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s", worker_code,
    )[0][0]  # fmt: skip
