"""Cases: the closed loop from whistle to closure, each step by the role the loop gives it, with
its deadline in working days, its events, photos, duplicates and merges; escalated demands of
visits become cases; and nothing is written on a wrong step."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, ok
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from test_family_files import owner
from test_visits import RECORD, visit_input

from api.app import create_app
from api.schema.relay import parse_global_id
from geo.cases import deadline, working_day_end

SHANGHAI = ZoneInfo("Asia/Shanghai")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
CASE = "id number state category unitCode deadline overdue returnedCount closedAt reporterCode"
REPORT = f"""mutation($input: ReportCaseInput!) {{ reportCase(input: $input) {{
  case {{ {CASE} grid {{ code }} microGrid {{ code }} location photos {{ stage url }} }}
  duplicates {{ number }} }} }}"""
MOVE = f"""mutation($input: TransitionCaseInput!) {{ transitionCase(input: $input) {{
  case {{ {CASE} }} }} }}"""
READ = f"""query($n: String!) {{ caseByNumber(number: $n) {{ {CASE}
  events {{ action fromState toState workerCode role unitCode note }} }} }}"""


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


def a_point_in(db: ScratchDB, grid_code: str) -> dict[str, float]:
    """``{"lon": …, "lat": …}`` of a point inside the grid."""
    lon, lat = owner(
        db, "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid"
        " WHERE code = %s) x", grid_code,
    )[0]  # fmt: skip
    return {"lon": lon, "lat": lat}


def grid_of(db: ScratchDB, worker: str) -> str:
    return owner(
        db, "SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id"
        " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s ORDER BY g.code LIMIT 1", worker,
    )[0][0]  # fmt: skip


def unit_of(db: ScratchDB, worker: str) -> str:
    return owner(db, "SELECT unit_code FROM worker WHERE code = %s", worker)[0][0]


def move(client: TestClient, case_id: str, to: str, **extra: Any) -> dict[str, Any]:
    return ok(client, MOVE, input={"caseId": case_id, "to": to, **extra})["transitionCase"]["case"]


def test_the_closed_loop(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker, community = as_role(public, tokens, "grid_worker"), as_role(public, tokens, "community")
    center, department = (
        as_role(public, tokens, "grid_center"),
        as_role(public, tokens, "department"),
    )
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    unit = unit_of(fresh_db, tokens["department"]["worker"])
    report = {
        "category": "EXPOSED_GARBAGE", "description": "楼下垃圾堆了三天没人清运",
        **a_point_in(fresh_db, grid),
        "photos": [{"stage": "REPORT", "contentType": "image/png",
                    "dataBase64": base64.b64encode(PNG).decode()}],
    }  # fmt: skip
    made = ok(worker, REPORT, input=report)["reportCase"]
    case = made["case"]
    assert case["state"] == "REPORTED" and case["grid"] == {"code": grid}
    assert case["microGrid"]["code"].startswith(grid) and case["unitCode"] is None
    assert case["number"].startswith(f"{dt.datetime.now(SHANGHAI).year}-")
    assert case["reporterCode"] == tokens["grid_worker"]["worker"]
    # The photo is served to whoever may see the case, and to nobody else.
    url = case["photos"][0]["url"]
    got = worker.get(url)
    assert (
        got.status_code == 200
        and got.content == PNG
        and got.headers["content-type"] == ("image/png")
    )
    assert public.get(url).status_code == 404  # as if it did not exist
    # The same problem reported again nearby: the first is a possible duplicate.
    again = ok(worker, REPORT, input={**report, "photos": None})["reportCase"]
    assert case["number"] in [d["number"] for d in again["duplicates"]]

    cid = case["id"]
    # Only the office accepts; a wrong step is refused and changes nothing.
    assert (
        error(worker, MOVE, input={"caseId": cid, "to": "ACCEPTED"})["extensions"]["code"]
        == "FORBIDDEN"
    )
    err = error(community, MOVE, input={"caseId": cid, "to": "CLOSED"})
    assert err["extensions"]["code"] == "CONFLICT" and "ACCEPTED or REJECTED" in err["message"]
    assert move(community, cid, "ACCEPTED")["state"] == "ACCEPTED"
    # Dispatched to the department's unit: the clock starts, 7 working days.
    dispatched = move(community, cid, "DISPATCHED", unitCode=unit)
    assert dispatched["unitCode"] == unit
    deadline = dt.datetime.fromisoformat(dispatched["deadline"]).astimezone(SHANGHAI)
    today = dt.datetime.now(SHANGHAI).date()
    assert deadline == working_day_end(today, 7, {}, SHANGHAI)
    assert deadline.time() == dt.time(0, 0) and deadline.date().isoweekday() in (2, 3, 4, 5, 6)
    # Only the department of that unit handles it.
    assert (
        error(worker, MOVE, input={"caseId": cid, "to": "HANDLED"})["extensions"]["code"]
        == "FORBIDDEN"
    )
    assert move(department, cid, "HANDLED")["state"] == "HANDLED"
    # Returned needs a reason; then handled again, verified, closed.
    err = error(worker, MOVE, input={"caseId": cid, "to": "RETURNED"})
    assert err["extensions"]["argument"] == "input.note"
    assert move(worker, cid, "RETURNED", note="还有一袋没清走")["returnedCount"] == 1
    assert move(department, cid, "HANDLED")["state"] == "HANDLED"
    assert move(worker, cid, "VERIFIED")["state"] == "VERIFIED"
    closed = move(center, cid, "CLOSED")
    assert closed["state"] == "CLOSED" and closed["closedAt"]
    events = ok(worker, READ, n=case["number"])["caseByNumber"]["events"]
    assert [e["action"] for e in events] == [
        "REPORT", "ACCEPT", "DISPATCH", "HANDLE", "RETURN", "HANDLE", "VERIFY", "CLOSE"
    ]  # fmt: skip
    assert [e["toState"] for e in events][-1] == "CLOSED"
    assert events[4]["note"] == "还有一袋没清走" and events[3]["role"] == "department"
    # The event log is append-only, even for the tables' owner.
    with pytest.raises(Exception, match="append-only"):
        owner(fresh_db, "UPDATE case_event SET note = 'x'")
    # A duplicate cannot be merged into a closed case.
    merge = "mutation($i: MergeCaseInput!) { mergeCase(input: $i) { state } }"
    err = error(community, merge, i={"caseId": again["case"]["id"], "intoId": cid})
    assert err["extensions"]["code"] == "CONFLICT" and err["extensions"]["argument"] == (
        "input.intoId"
    )


def test_merging_a_duplicate(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker, community = as_role(public, tokens, "grid_worker"), as_role(public, tokens, "community")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    report = {
        "category": "NOISE",
        "description": "夜里装修噪音",
        **a_point_in(fresh_db, grid),
    }
    first = ok(worker, REPORT, input=report)["reportCase"]["case"]
    second = ok(worker, REPORT, input=report)["reportCase"]["case"]
    merge = "mutation($i: MergeCaseInput!) { mergeCase(input: $i) { state mergedInto { number } } }"
    assert (
        error(worker, merge, i={"caseId": second["id"], "intoId": first["id"]})["extensions"][
            "code"
        ]
        == "FORBIDDEN"
    )
    merged = ok(community, merge, i={"caseId": second["id"], "intoId": first["id"]})["mergeCase"]
    assert merged == {"state": "CLOSED", "mergedInto": {"number": first["number"]}}
    err = error(community, merge, i={"caseId": second["id"], "intoId": first["id"]})
    assert err["extensions"]["code"] == "CONFLICT"


def test_a_retried_report_lands_once(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker, center = as_role(public, tokens, "grid_worker"), as_role(public, tokens, "grid_center")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    report = {"category": "NOISE", "description": "楼下酒吧噪音", "idempotencyKey": "phone-7-0001",
              **a_point_in(fresh_db, grid)}  # fmt: skip
    count = "SELECT count(*) FROM grid_case WHERE idempotency_key = 'phone-7-0001'"
    first = ok(worker, REPORT, input=report)["reportCase"]["case"]
    again = ok(worker, REPORT, input=report)["reportCase"]["case"]
    assert again["number"] == first["number"]
    assert owner(fresh_db, count)[0][0] == 1
    # The same key for another report, or by someone else: a conflict, nothing written.
    other = error(worker, REPORT, input={**report, "description": "另一件事"})
    assert other["extensions"]["code"] == "CONFLICT"
    assert other["extensions"]["argument"] == "input.idempotencyKey"
    assert error(center, REPORT, input=report)["extensions"]["code"] == "CONFLICT"
    assert error(worker, REPORT, input={**report, "idempotencyKey": "short"})["extensions"][
        "argument"] == "input.idempotencyKey"  # fmt: skip
    assert owner(fresh_db, count)[0][0] == 1


def test_bad_reports_write_nothing(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    before = owner(fresh_db, "SELECT count(*) FROM grid_case")[0][0]
    good = {"category": "NOISE", "description": "噪音", **a_point_in(fresh_db, grid)}
    for bad, argument in (
        ({"category": "NOT_A_CATEGORY"}, "input.category"),
        ({"lon": 0.0, "lat": 0.0}, "input.lon"),
        ({"lon": 500.0, "lat": 0.0}, "input.lon"),
        ({"description": "   "}, "input.description"),
        ({"photos": [{"stage": "REPORT", "contentType": "image/png",
                      "dataBase64": base64.b64encode(b"GIF89a").decode()}]},
         "input.photos[0].dataBase64"),
    ):  # fmt: skip
        err = error(worker, REPORT, input={**good, **bad})
        assert err["extensions"]["argument"] == argument, (bad, err)
    # A grid outside the worker's areas: its own staff report it.
    other = owner(
        fresh_db, "SELECT code FROM grid WHERE code <> %s ORDER BY code DESC LIMIT 1", grid
    )
    err = error(worker, REPORT, input={**good, **a_point_in(fresh_db, other[0][0])})
    assert err["extensions"]["code"] == "FORBIDDEN"
    assert error(public, REPORT, input=good)["extensions"]["code"] == "FORBIDDEN"
    assert owner(fresh_db, "SELECT count(*) FROM grid_case")[0][0] == before


def test_who_sees_which_case(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    made = ok(worker, REPORT, input={
        "category": "FACILITY_REPAIR", "description": "路灯不亮",
        **a_point_in(fresh_db, grid)})["reportCase"]["case"]  # fmt: skip
    listed = ok(worker, "query($s: String!) { cases(filter: {scope: $s}, first: 50) { totalCount"
                " edges { node { number } } } }", s=grid)["cases"]  # fmt: skip
    assert made["number"] in [e["node"]["number"] for e in listed["edges"]]
    # The department sees it once it is dispatched to its unit, not before.
    department = as_role(public, tokens, "department")
    assert ok(department, READ, n=made["number"])["caseByNumber"] is None
    assert error(public, READ, n=made["number"])["extensions"]["code"] == "FORBIDDEN"
    node = "query($id: ID!) { node(id: $id) { ... on Case { number } } }"
    assert ok(worker, node, id=made["id"])["node"] == {"number": made["number"]}


def test_an_escalated_demand_becomes_a_case_and_closes_with_it(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker, community = as_role(public, tokens, "grid_worker"), as_role(public, tokens, "community")
    visit = visit_input(
        fresh_db, tokens, tasks=["ASK_DEMANDS"],
        demands=[{"text": "楼道灯坏了", "resolution": "ESCALATED", "category": "FACILITY_REPAIR"}],
    )  # fmt: skip
    recorded = ok(worker, RECORD, input=visit)["recordVisit"]["visit"]
    (number, demand, source) = owner(
        fresh_db, "SELECT c.number, c.demand_id, c.source FROM grid_case c"
        " JOIN visit v ON v.id = c.visit_id WHERE v.idempotency_key = %s", visit["idempotencyKey"],
    )[0]  # fmt: skip
    assert source == "VISIT" and demand
    read = "query($n: String!) { caseByNumber(number: $n) { id category visit { id } } }"
    case = ok(worker, read, n=number)["caseByNumber"]
    assert case["category"] == "FACILITY_REPAIR" and case["visit"]["id"] == recorded["id"]
    unknown = visit_input(
        fresh_db, tokens,
        demands=[{"text": "x", "resolution": "ESCALATED", "category": "facility_repair"}],
    )  # fmt: skip
    err = error(worker, RECORD, input=unknown)
    assert err["extensions"]["argument"] == "input.demands[0].category"
    # Rejected (with a reason): the demand is closed too.
    move(community, case["id"], "REJECTED", note="已由物业当场处理")
    assert owner(fresh_db, "SELECT closed_at IS NOT NULL FROM demand WHERE id = %s", demand)[0][0]


def test_working_days_skip_weekends_and_holidays() -> None:
    friday = dt.date(2031, 9, 26)
    assert working_day_end(friday, 1, {}, SHANGHAI) == dt.datetime(2031, 9, 30, tzinfo=SHANGHAI)
    # National Day week off, with a make-up working Sunday before it.
    holidays = {dt.date(2031, 9, 28): True} | {dt.date(2031, 10, d): False for d in range(1, 8)}
    # Sun 28 (worked), Mon 29, Tue 30, then the week off, then Wed 8: ends at 24:00 on the 8th.
    assert working_day_end(friday, 4, holidays, SHANGHAI) == dt.datetime(
        2031, 10, 9, tzinfo=SHANGHAI
    )
    assert working_day_end(friday, 2, holidays, SHANGHAI).date() == dt.date(2031, 9, 30)


def test_the_grid_center_keeps_the_catalogue_and_the_calendar(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    center, community = as_role(public, tokens, "grid_center"), as_role(public, tokens, "community")
    category = """mutation($i: CaseCategoryInput!) { setCaseCategory(input: $i) {
      code defaultUnit timeLimit timeUnit active } }"""
    new = {"code": "shared_bikes", "name": "共享单车乱停", "nameEn": "shared bikes left about",
           "publicName": "Shared bikes", "defaultUnit": "U-URBAN", "timeLimit": 3,
           "timeUnit": "WORKING_DAYS"}  # fmt: skip
    assert error(community, category, i=new)["extensions"]["code"] == "FORBIDDEN"
    made = ok(center, category, i=new)["setCaseCategory"]
    assert made == {"code": "SHARED_BIKES", "defaultUnit": "U-URBAN", "timeLimit": 3,
                    "timeUnit": "WORKING_DAYS", "active": True}  # fmt: skip
    for bad, argument in (
        ({"defaultUnit": "U-NOWHERE"}, "input.defaultUnit"),
        ({"timeUnit": "WEEKS"}, "input.timeUnit"),
        ({"timeLimit": 0}, "input.timeLimit"),
        ({"code": "OTHER", "active": False}, "input.active"),
    ):
        assert error(center, category, i={**new, **bad})["extensions"]["argument"] == argument
    listed = ok(center, "{ caseCategories { code } }")["caseCategories"]
    assert {"code": "SHARED_BIKES"} in listed and {"code": "OTHER"} in listed

    # A week off from the next Monday: a case dispatched the Friday before is due after it.
    year = dt.datetime.now(SHANGHAI).year + 1
    monday = dt.date(year, 3, 2) + dt.timedelta(days=(7 - dt.date(year, 3, 2).weekday()) % 7)
    week = [{"day": (monday + dt.timedelta(days=d)).isoformat(), "name": "测试假期"}
            for d in range(5)]  # fmt: skip
    calendar = """mutation($i: SetHolidaysInput!) { setHolidays(input: $i) { day working } }"""
    assert len(ok(center, calendar, i={"year": year, "days": week})["setHolidays"]) == 5
    bad = [{"day": (monday - dt.timedelta(days=2)).isoformat(), "name": "周六"}]
    err = error(center, calendar, i={"year": year, "days": bad})
    assert err["extensions"]["argument"] == "input.days[0].working"
    assert (
        len(ok(center, "query($y: Int!) { holidays(year: $y) { day } }", y=year)["holidays"]) == 5
    )


    engine = create_engine(fresh_db.owner_url)
    try:
        with Session(engine) as session:
            friday = dt.datetime.combine(monday - dt.timedelta(days=3), dt.time(10), SHANGHAI)
            due = deadline(session, {"category_code": "SHARED_BIKES", "timezone": "Asia/Shanghai"},
                           friday)  # fmt: skip
    finally:
        engine.dispose()
    # Three working days after Friday, the week off skipped: Mon, Tue, Wed of the week after.
    assert due == dt.datetime.combine(monday + dt.timedelta(days=10), dt.time(), SHANGHAI)


def test_every_change_to_a_case_is_audited(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker, community = as_role(public, tokens, "grid_worker"), as_role(public, tokens, "community")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    report = {"category": "NOISE", "description": "广场舞音响太响", **a_point_in(fresh_db, grid)}
    case = ok(worker, REPORT, input=report)["reportCase"]["case"]
    move(community, case["id"], "ACCEPTED")
    rows = owner(
        fresh_db, "SELECT worker_code, action, detail->>'to' FROM audit_log"
        " WHERE 'case' = ANY(fields) AND detail->>'case' = %s ORDER BY at",
        str(parse_global_id(case["id"], argument="id")[1]),
    )  # fmt: skip
    assert rows == [
        (tokens["grid_worker"]["worker"], "create", None),
        (tokens["community"]["worker"], "update", "ACCEPTED"),
    ]


def test_a_year_out_of_range_is_bad_input(client: TestClient) -> None:
    err = error(client, "{ holidays(year: -1000000) { day } }")
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "argument": "year"}


def test_the_case_list_filters(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    point = a_point_in(fresh_db, grid)
    made = ok(worker, REPORT, input={"category": "MOSQUITOES", "description": "积水孳生蚊虫",
                                     "source": "RESIDENT_ONLINE", **point})  # fmt: skip
    number = made["reportCase"]["case"]["number"]
    listing = """query($f: CaseFilter) { cases(filter: $f, first: 100) { totalCount
      edges { node { number } } } }"""

    def numbers(**criteria: Any) -> list[str]:
        found = ok(worker, listing, f={"scope": grid, **criteria})["cases"]
        assert found["totalCount"] == len(found["edges"]) or found["totalCount"] > 100
        return [e["node"]["number"] for e in found["edges"]]

    today = dt.datetime.now(SHANGHAI).date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    square = {"type": "Polygon", "coordinates": [[
        [point["lon"] - 1e-4, point["lat"] - 1e-4], [point["lon"] + 1e-4, point["lat"] - 1e-4],
        [point["lon"] + 1e-4, point["lat"] + 1e-4], [point["lon"] - 1e-4, point["lat"] + 1e-4],
        [point["lon"] - 1e-4, point["lat"] - 1e-4]]]}  # fmt: skip
    assert number in numbers(sources=["RESIDENT_ONLINE"], categories=["MOSQUITOES"])
    assert number not in numbers(sources=["HOTLINE_12345"])
    assert number in numbers(**{"from": today.isoformat(), "to": today.isoformat()})
    assert number not in numbers(to=yesterday)
    assert number in numbers(within=square, states=["REPORTED"], overdue=False)
    assert number in numbers(near={**point, "meters": 5})
    far = {"lon": point["lon"] + 0.01, "lat": point["lat"], "meters": 50}
    assert number not in numbers(near=far)
    err = error(worker, listing, f={"from": today.isoformat(), "to": yesterday})
    assert err["extensions"]["argument"] == "filter.from"
