"""Family files: edits with a version check, a history of every change, the file as of a day,
and nothing written when an edit fails."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import ScratchDB, as_role, demo_tokens, query
from gq import error, gql, ok
from starlette.testclient import TestClient

from api.app import create_app
from api.schema.relay import global_id


def owner(db: ScratchDB, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return query(db.owner_url, sql, params)


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


def worker_household(db: ScratchDB, tokens: dict[str, Any], cls: str = "B") -> tuple[Any, ...]:
    """(id, code) of a household of class ``cls`` in the demo grid worker's grids."""
    return owner(
        db,
        "SELECT h.id, h.code FROM household h JOIN worker_grid wg ON true"
        " JOIN grid g ON g.id = wg.grid_id JOIN worker w ON w.id = wg.worker_id"
        " WHERE w.code = %s AND left(h.code, 15) = g.code AND h.household_class = %s"
        " ORDER BY h.code LIMIT 1",
        tokens["grid_worker"]["worker"],
        cls,
    )[0]


FILE = """query($id: ID!, $asOf: Date) { familyFile(householdId: $id, asOf: $asOf) {
  version asOf householdClass contactPreference visitTimes notes movedIn movedOut
  members { code name phone } history { version action workerCode reason at } } }"""

UPDATE = """mutation($input: UpdateFamilyFileInput!) { updateFamilyFile(input: $input) {
  familyFile { version householdClass contactPreference visitTimes notes } } }"""


def test_an_edit_bumps_the_version_and_keeps_history(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    hid, code = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    before = ok(worker, FILE, id=gid)["familyFile"]
    assert before["version"] == 1 and before["history"] == [] and before["members"]
    changed = ok(
        worker, UPDATE,
        input={"householdId": gid, "version": 1, "householdClass": "A",
               "contactPreference": "WECHAT", "visitTimes": ["WEEKEND", "WEEKDAY_EVENING"],
               "notes": "夫妻二人白天上班"},
    )["updateFamilyFile"]["familyFile"]  # fmt: skip
    assert changed == {
        "version": 2, "householdClass": "A", "contactPreference": "WECHAT",
        "visitTimes": ["WEEKEND", "WEEKDAY_EVENING"], "notes": "夫妻二人白天上班",
    }  # fmt: skip
    after = ok(worker, FILE, id=gid)["familyFile"]
    assert [(h["version"], h["action"]) for h in after["history"]] == [
        (1, "BASELINE"), (2, "UPDATE_FILE")
    ]  # fmt: skip
    assert after["history"][1]["workerCode"] == tokens["grid_worker"]["worker"]
    assert after["history"][1]["at"] is not None and after["history"][0]["at"] is None
    # The change is audited, by household and field.
    (fields,) = owner(
        fresh_db, "SELECT fields FROM audit_log WHERE action = 'update' AND household_code = %s",
        code,
    )[0]  # fmt: skip
    assert {"household_class", "contact_preference", "notes"} <= set(fields)


def test_a_stale_version_is_refused_and_changes_nothing(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    community = as_role(public, tokens, "community")
    hid, _ = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    ok(community, UPDATE, input={"householdId": gid, "version": 1, "notes": "社区先改"})
    err = error(worker, UPDATE, input={"householdId": gid, "version": 1, "notes": "我后改"})
    assert err["extensions"] == {"code": "CONFLICT", "argument": "input.version"}
    assert "version 2, not 1" in err["message"]
    file = ok(worker, FILE, id=gid)["familyFile"]
    assert file["notes"] == "社区先改" and file["version"] == 2


def test_two_writers_at_once_one_wins(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    hid, _ = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(2)

    def write(role: str) -> None:
        client = as_role(public, tokens, role)
        start.wait()
        answers.append(gql(client, UPDATE, input={"householdId": gid, "version": 1,
                                                  "notes": role}))  # fmt: skip

    threads = [threading.Thread(target=write, args=(r,)) for r in ("grid_worker", "community")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a["errors"][0]["extensions"]["code"] if "errors" in a else "OK" for a in answers)
    assert codes == ["CONFLICT", "OK"]
    (notes, version), = owner(fresh_db, "SELECT notes, version FROM household WHERE id = %s", hid)
    winner = next(a for a in answers if "errors" not in a)
    assert version == 2 and notes == winner["data"]["updateFamilyFile"]["familyFile"]["notes"]


MEMBERS = """
mutation($add: AddMemberInput!) { addMember(input: $add) {
  familyFile { version members { id code name } } member { id code name idNumber phone } } }"""


def test_members_come_and_go_and_the_file_remembers(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    hid, code = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    before = ok(worker, FILE, id=gid)["familyFile"]
    added = ok(
        worker, MEMBERS,
        add={"householdId": gid, "version": 1, "member": {
            "name": "王小明", "gender": "M", "relation": "子女", "birthYear": 2001,
            "phone": "13912345678", "idNumber": "11010519491231002X", "seekingWork": True}},
    )["addMember"]  # fmt: skip
    member = added["member"]
    assert member["name"] == "王小明" and member["idNumber"] == "11010519491231002X"
    assert member["code"] == f"{code}-{len(before['members']) + 1:02d}"
    assert added["familyFile"]["version"] == 2
    changed = ok(
        worker,
        """mutation($i: UpdateMemberInput!) { updateMember(input: $i) {
             member { name phone birthYear } familyFile { version } } }""",
        i={"memberId": member["id"], "version": 2, "member": {"phone": "13800000000"}},
    )["updateMember"]
    assert changed["member"] == {"name": "王小明", "phone": "13800000000", "birthYear": 2001}
    removed = ok(
        worker,
        """mutation($i: RemoveMemberInput!) { removeMember(input: $i) {
             familyFile { version members { code } } } }""",
        i={"memberId": member["id"], "version": 3, "reason": "MOVED_OUT", "note": "去外地工作"},
    )["removeMember"]["familyFile"]
    assert removed["version"] == 4 and member["code"] not in [m["code"] for m in removed["members"]]
    history = ok(worker, FILE, id=gid)["familyFile"]["history"]
    assert [h["action"] for h in history] == [
        "BASELINE", "ADD_MEMBER", "UPDATE_MEMBER", "REMOVE_MEMBER"
    ]  # fmt: skip
    assert history[-1]["reason"] == "MOVED_OUT: 去外地工作"
    # A new member never takes a code that was used before.
    again = ok(worker, MEMBERS, add={"householdId": gid, "version": 4, "member": {"name": "李四"}})
    assert again["addMember"]["member"]["code"] == f"{code}-{len(before['members']) + 2:02d}"


def test_the_file_as_of_a_day(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    hid, _ = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    ok(worker, UPDATE, input={"householdId": gid, "version": 1, "householdClass": "C"})
    # Back-date the edit by ten days, as if made then (the owner may; the app may not).
    owner(fresh_db, "ALTER TABLE family_file_history DISABLE TRIGGER USER")
    owner(
        fresh_db,
        "UPDATE family_file_history SET at = at - interval '10 days'"
        " WHERE household_id = %s AND action <> 'BASELINE'",
        hid,
    )
    then = ok(worker, FILE, id=gid, asOf=str(today - dt.timedelta(days=20)))["familyFile"]
    assert then["householdClass"] == "B" and then["version"] == 1
    assert then["asOf"].startswith(str(today - dt.timedelta(days=19)))  # the day's end
    later = ok(worker, FILE, id=gid, asOf=str(today - dt.timedelta(days=5)))["familyFile"]
    assert later["householdClass"] == "C" and later["version"] == 2
    (moved_in,) = owner(fresh_db, "SELECT moved_in FROM household WHERE id = %s", hid)[0]
    before_in = ok(worker, FILE, id=gid, asOf=str(moved_in - dt.timedelta(days=1)))
    assert before_in["familyFile"] is None  # not moved in yet
    err = error(worker, FILE, id=gid, asOf=str(today + dt.timedelta(days=1)))
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "future" in err["message"]


def test_move_out_closes_the_file(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    hid, code = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    building = code.split("-")[0]
    count = """query($c: String!) { building(code: $c) { householdCount } }"""
    before = ok(worker, count, c=building)["building"]["householdCount"]
    moved = ok(
        worker,
        """mutation($i: MoveOutInput!) { moveOut(input: $i) {
             familyFile { version movedOut members { code } } } }""",
        i={"householdId": gid, "version": 1, "reason": "迁往浦东"},
    )["moveOut"]["familyFile"]
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert moved == {"version": 2, "movedOut": str(today), "members": []}
    assert ok(worker, count, c=building)["building"]["householdCount"] == before - 1
    # The members are remembered in the history; the closed file takes no more edits.
    (members,) = owner(
        fresh_db,
        "SELECT jsonb_array_length(file -> 'members') FROM family_file_history"
        " WHERE household_id = %s AND version = 1",
        hid,
    )[0]
    assert members > 0
    err = error(worker, UPDATE, input={"householdId": gid, "version": 2, "notes": "x"})
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "moved out" in err["message"]


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"householdClass": "D"}, None),  # not an enum value: GraphQL refuses it
        ({"visitTimes": None}, "input.visitTimes"),
        ({}, "input"),
    ],
)
def test_bad_edits_are_refused_and_write_nothing(
    app: tuple[TestClient, Any], fresh_db: ScratchDB, change: dict[str, Any], argument: str | None
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    hid, _ = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    err = error(worker, UPDATE, input={"householdId": gid, "version": 1, **change})
    assert err["extensions"]["code"] in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED")
    if argument:
        assert err["extensions"]["argument"] == argument
    assert owner(fresh_db, "SELECT count(*) FROM family_file_history") == [(0,)]
    assert owner(fresh_db, "SELECT version FROM household WHERE id = %s", hid) == [(1,)]


def test_a_failed_member_edit_leaves_nothing_behind(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    hid, _ = worker_household(fresh_db, tokens)
    gid = global_id("Household", hid)
    bad = {"householdId": gid, "version": 1, "member": {"name": "赵六", "birthYear": 1700}}
    err = error(worker, MEMBERS, add=bad)
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "argument": "input.birthYear"}
    bad_id = {"householdId": gid, "version": 1, "member": {"name": "赵六",
                                                           "idNumber": "110105194912310021"}}
    err = error(worker, MEMBERS, add=bad_id)
    assert err["extensions"]["argument"] == "input.idNumber" and "check digit" in err["message"]
    assert owner(fresh_db, "SELECT count(*) FROM person WHERE name = '赵六'") == [(0,)]
    assert owner(fresh_db, "SELECT count(*) FROM family_file_history") == [(0,)]


def test_files_outside_the_callers_areas_are_not_found(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    (hid,) = owner(
        fresh_db,
        "SELECT h.id FROM household h WHERE left(h.code, 15) NOT IN (SELECT g.code FROM grid g"
        " JOIN worker_grid wg ON wg.grid_id = g.id JOIN worker w ON w.id = wg.worker_id"
        " WHERE w.code = %s) LIMIT 1",
        tokens["grid_worker"]["worker"],
    )[0]
    gid = global_id("Household", hid)
    err = error(worker, UPDATE, input={"householdId": gid, "version": 1, "notes": "x"})
    assert err["extensions"] == {"code": "NOT_FOUND", "argument": "input.householdId"}
    assert error(worker, FILE, id=gid)["extensions"]["code"] == "NOT_FOUND"
    # The public and departments keep no files: nothing to find, nothing to change.
    assert ok(public, FILE, id=gid)["familyFile"] is None
    department = as_role(public, tokens, "department")
    assert error(department, UPDATE, input={"householdId": gid, "version": 1, "notes": "x"})[
        "extensions"
    ]["code"] == "FORBIDDEN"
    assert owner(fresh_db, "SELECT notes FROM household WHERE id = %s", hid) == [(None,)]
