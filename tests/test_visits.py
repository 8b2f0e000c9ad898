"""Recording visits: once however often a phone retries, rejected when wrong, warned when odd,
with night and weekend read in local time; demands and talents kept with the visit."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, gql, ok
from starlette.testclient import TestClient
from test_family_files import owner, worker_household

from api.app import create_app
from api.schema.relay import global_id

SHANGHAI = ZoneInfo("Asia/Shanghai")

RECORD = """mutation($input: RecordVisitInput!) { recordVisit(input: $input) {
  visit { id visitedAt mode night weekend tasks notes warnings
          worker { code } household { code } demands { text resolution category answer } }
  warnings replayed } }"""


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


def worker_id(db: ScratchDB, code: str) -> str:
    (wid,) = owner(db, "SELECT id FROM worker WHERE code = %s", code)[0]
    return global_id("Worker", wid)


def visit_input(db: ScratchDB, tokens: dict[str, Any], cls: str = "B", **extra: Any) -> dict:
    hid, _ = worker_household(db, tokens, cls)
    at = dt.datetime.now(SHANGHAI).replace(microsecond=0) - dt.timedelta(hours=1)
    return {
        "householdId": global_id("Household", hid),
        "workerId": worker_id(db, tokens["grid_worker"]["worker"]),
        "visitedAt": at.isoformat(),
        "mode": "DOOR",
        "idempotencyKey": str(uuid.uuid4()),
        **extra,
    }


def test_a_visit_is_recorded_once_however_often_it_is_sent(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    visit = visit_input(
        fresh_db, tokens, tasks=["SHOW_IDENTITY", "ASK_DEMANDS"], notes="老人身体还好",
        demands=[{"text": "楼道灯坏了", "resolution": "ESCALATED", "category": "FACILITY_REPAIR"},
                 {"text": "想了解助餐点", "resolution": "ANSWERED", "answer": "在社区中心二楼"}],
    )  # fmt: skip
    first = ok(worker, RECORD, input=visit)["recordVisit"]
    assert first["replayed"] is False and first["warnings"] == []
    assert first["visit"]["worker"]["code"] == tokens["grid_worker"]["worker"]
    assert sorted(d["resolution"] for d in first["visit"]["demands"]) == ["ANSWERED", "ESCALATED"]
    again = ok(worker, RECORD, input=visit)["recordVisit"]
    assert again["replayed"] is True and again["visit"]["id"] == first["visit"]["id"]
    node = "query($id: ID!) { node(id: $id) { id ... on Visit { mode household { code } } } }"
    found = ok(worker, node, id=first["visit"]["id"])["node"]
    assert found["mode"] == "DOOR" and found["household"] == first["visit"]["household"]
    assert ok(public, node, id=first["visit"]["id"])["node"] is None
    # Concurrent retries too land on one visit.
    results: list[dict[str, Any]] = []
    retry = {**visit, "idempotencyKey": str(uuid.uuid4()), "demands": None}
    barrier = threading.Barrier(4)

    def send() -> None:
        client = as_role(public, tokens, "grid_worker")
        barrier.wait()
        results.append(gql(client, RECORD, input=retry))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("errors" not in r for r in results), results
    assert len({r["data"]["recordVisit"]["visit"]["id"] for r in results}) == 1
    (count,) = owner(
        fresh_db, "SELECT count(*) FROM visit WHERE idempotency_key = ANY(%s)",
        [visit["idempotencyKey"], retry["idempotencyKey"]],
    )[0]  # fmt: skip
    assert count == 2
    # The escalated demand is open in the household's file; the answered one is not.
    file = ok(
        worker,
        "query($id: ID!) { familyFile(householdId: $id) { openDemands { text category } } }",
        id=visit["householdId"],
    )["familyFile"]
    assert file["openDemands"] == [{"text": "楼道灯坏了", "category": "FACILITY_REPAIR"}]
    # The household's last contact moved.
    (last,) = owner(
        fresh_db, "SELECT last_contact_at FROM household WHERE id = %s",
        _key(visit["householdId"]),
    )[0]  # fmt: skip
    assert last == dt.datetime.fromisoformat(visit["visitedAt"])


def _key(gid: str) -> str:
    from api.schema.relay import parse_global_id

    return str(parse_global_id(gid, argument="id")[1])


def test_a_key_reused_for_another_visit_is_a_conflict(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    visit = visit_input(fresh_db, tokens)
    ok(worker, RECORD, input=visit)
    other = visit_input(fresh_db, tokens, "C", idempotencyKey=visit["idempotencyKey"])
    err = error(worker, RECORD, input=other)
    assert err["extensions"] == {"code": "CONFLICT", "argument": "input.idempotencyKey"}


def test_night_and_weekend_follow_local_time(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    today = dt.datetime.now(SHANGHAI).date()
    saturday = today - dt.timedelta(days=(today.weekday() - 5) % 7 or 7)
    tuesday = saturday - dt.timedelta(days=4)
    cases = [
        # 20:30 in Shanghai is 12:30 UTC: a night visit, though noon in UTC.
        (dt.datetime.combine(tuesday, dt.time(12, 30), dt.UTC), True, False),
        (dt.datetime.combine(tuesday, dt.time(10, 0), SHANGHAI), False, False),
        (dt.datetime.combine(saturday, dt.time(10, 0), SHANGHAI), False, True),
        # Friday 23:30 UTC is Saturday 07:30 in Shanghai.
        (dt.datetime.combine(saturday - dt.timedelta(days=1), dt.time(23, 30), dt.UTC),
         False, True),
    ]  # fmt: skip
    for at, night, weekend in cases:
        visit = visit_input(fresh_db, tokens, visitedAt=at.isoformat())
        got = ok(worker, RECORD, input=visit)["recordVisit"]["visit"]
        assert (got["night"], got["weekend"]) == (night, weekend), at


def test_a_door_visit_to_class_a_is_recorded_with_a_warning(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    visit = visit_input(fresh_db, tokens, "A")
    owner(
        fresh_db, "UPDATE household SET contact_preference = 'WECHAT' WHERE id = %s",
        _key(visit["householdId"]),
    )  # fmt: skip
    got = ok(worker, RECORD, input=visit)["recordVisit"]
    assert len(got["warnings"]) == 1 and "WECHAT" in got["warnings"][0]
    assert got["visit"]["warnings"] == got["warnings"]
    # A door visit is not the contact class A asked for: the household is still not contacted.
    (preferred,) = owner(
        fresh_db, "SELECT last_preferred_contact_at FROM household WHERE id = %s",
        _key(visit["householdId"]),
    )[0]  # fmt: skip
    assert preferred is None
    wechat = {**visit, "mode": "WECHAT", "idempotencyKey": str(uuid.uuid4())}
    assert ok(worker, RECORD, input=wechat)["recordVisit"]["warnings"] == []
    (preferred,) = owner(
        fresh_db, "SELECT last_preferred_contact_at FROM household WHERE id = %s",
        _key(visit["householdId"]),
    )[0]  # fmt: skip
    assert preferred is not None


def test_bad_visits_are_rejected_and_write_nothing(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    base = visit_input(fresh_db, tokens)
    counts = "SELECT (SELECT count(*) FROM visit), (SELECT count(*) FROM demand)"
    before = owner(fresh_db, counts)
    future = (dt.datetime.now(SHANGHAI) + dt.timedelta(hours=2)).isoformat()
    (other_worker,) = owner(
        fresh_db,
        "SELECT w.id FROM worker w WHERE w.role = 'GRID_WORKER' AND NOT EXISTS ("
        " SELECT 1 FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id"
        " WHERE wg.worker_id = w.id AND g.code = left(%s, 15)) LIMIT 1",
        worker_household(fresh_db, tokens)[1],
    )[0]
    cases = [
        ({"visitedAt": future}, "BAD_USER_INPUT", "input.visitedAt"),
        ({"visitedAt": "2026-01-05T10:00:00"}, "BAD_USER_INPUT", "input.visitedAt"),
        ({"householdId": global_id("Household", uuid.uuid4())}, "NOT_FOUND",
         "input.householdId"),
        ({"workerId": global_id("Worker", uuid.uuid4())}, "NOT_FOUND", "input.workerId"),
        ({"workerId": global_id("Household", uuid.uuid4())}, "BAD_USER_INPUT", "input.workerId"),
        ({"idempotencyKey": "x"}, "BAD_USER_INPUT", "input.idempotencyKey"),
        ({"demands": [{"text": "问题", "resolution": "ANSWERED"}]}, "BAD_USER_INPUT",
         "input.demands[0].answer"),
    ]  # fmt: skip
    for change, code, argument in cases:
        err = error(worker, RECORD, input={**base, **change})
        assert (err["extensions"]["code"], err["extensions"].get("argument")) == (
            code, argument
        ), (change, err)  # fmt: skip
    # Another grid's worker: the grid center may record on behalf, but not for a stranger.
    center = as_role(public, tokens, "grid_center")
    err = error(center, RECORD, input={**base, "workerId": global_id("Worker", other_worker)})
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "argument": "input.workerId"}
    assert "not assigned" in err["message"]
    assert owner(fresh_db, counts) == before


def test_the_community_records_for_its_worker_and_it_is_audited(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    community = as_role(public, tokens, "community")
    got = ok(community, RECORD, input=visit_input(fresh_db, tokens))["recordVisit"]
    assert got["visit"]["worker"]["code"] == tokens["grid_worker"]["worker"]
    actions = {a for (a,) in owner(fresh_db, "SELECT action FROM audit_entry")}
    assert actions == {"create", "act_for"}
    # A grid worker may not record as another worker.
    other = owner(
        fresh_db, "SELECT id FROM worker WHERE role = 'GRID_WORKER' AND code <> %s LIMIT 1",
        tokens["grid_worker"]["worker"],
    )[0][0]  # fmt: skip
    worker = as_role(public, tokens, "grid_worker")
    visit = visit_input(fresh_db, tokens, workerId=global_id("Worker", other))
    assert error(worker, RECORD, input=visit)["extensions"]["code"] in ("FORBIDDEN",
                                                                        "BAD_USER_INPUT")


def test_talents_found_on_visits(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    visit = visit_input(fresh_db, tokens, tasks=["FIND_TALENT"])
    (member,) = owner(
        fresh_db, "SELECT id FROM person p WHERE household_id = %s AND NOT EXISTS ("
        " SELECT 1 FROM talent t WHERE t.person_id = p.id) ORDER BY code LIMIT 1",
        _key(visit["householdId"]),
    )[0]  # fmt: skip
    visit["talents"] = [{"memberId": global_id("Person", member), "skills": ["维修", "电脑"],
                         "willingness": "VOLUNTEER"}]  # fmt: skip
    grid = worker_household(fresh_db, tokens)[1][:15]
    query = """query($s: String!) { talents(scope: $s, first: 500) { totalCount edges { node {
                 skills willingness person { id name } } } } }"""
    before = ok(worker, query, s=grid)["talents"]["totalCount"]
    ok(worker, RECORD, input=visit)
    found = ok(worker, query, s=grid)["talents"]
    assert found["totalCount"] == before + 1
    mine = global_id("Person", member)
    (node,) = [e["node"] for e in found["edges"] if e["node"]["person"]["id"] == mine]
    assert node["skills"] == ["电脑", "维修"] and node["willingness"] == "VOLUNTEER"
    assert node["person"]["name"]
    assert error(public, "{ talents(scope: \"310106015\") { totalCount } }")["extensions"][
        "code"
    ] == "FORBIDDEN"
