"""Job matching: candidates with their explanations, the optimal assignment (checked against
brute force), the match workflow, offers, and bad input that writes nothing."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, ok
from starlette.testclient import TestClient
from test_family_files import owner

from api.app import create_app
from api.schema.relay import global_id
from geo.jobs import Candidate, assign

# --------------------------------------------------------------------------------------------
# The assignment is optimal
# --------------------------------------------------------------------------------------------


def brute_force(pairs: list[Candidate], slots: dict[uuid.UUID, int]) -> float:
    best = 0.0
    for size in range(len(pairs) + 1):
        for chosen in itertools.combinations(pairs, size):
            seekers = [c.seeker_id for c in chosen]
            taken: dict[uuid.UUID, int] = {}
            for c in chosen:
                taken[c.opening_id] = taken.get(c.opening_id, 0) + 1
            if len(set(seekers)) == len(seekers) and all(
                n <= slots[o] for o, n in taken.items()
            ):
                best = max(best, sum(c.score for c in chosen))
    return best


def test_the_assignment_is_optimal_on_random_instances() -> None:
    rng = random.Random(8)
    for _ in range(300):
        seekers = [uuid.uuid4() for _ in range(rng.randint(1, 5))]
        openings = [uuid.uuid4() for _ in range(rng.randint(1, 4))]
        slots = {o: rng.randint(0, 2) for o in openings}
        pairs = [
            Candidate(s, o, 0.0, (), 0, True, round(rng.uniform(1, 100), 2), "", "", 8, 30, 20)
            for s in seekers for o in openings if rng.random() < 0.6
        ][:10]  # fmt: skip
        chosen = assign(pairs, slots)
        assert len({c.seeker_id for c in chosen}) == len(chosen)
        assert all(sum(c.opening_id == o for c in chosen) <= n for o, n in slots.items())
        assert all(any(c is p for p in pairs) for c in chosen)
        assert sum(c.score for c in chosen) == pytest.approx(brute_force(pairs, slots), abs=1e-6)


# --------------------------------------------------------------------------------------------
# Through the API
# --------------------------------------------------------------------------------------------


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


def setting(db: ScratchDB, tokens: dict[str, Any]) -> dict[str, Any]:
    """A member of a household of the demo grid worker's first grid, and a merchant 100 to 800
    metres from that home (with its distance)."""
    (grid,) = owner(
        db,
        "SELECT min(g.code) FROM grid g JOIN worker_grid wg ON wg.grid_id = g.id"
        " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s",
        tokens["grid_worker"]["worker"],
    )[0]
    person, household, merchant, meters = owner(
        db,
        "SELECT p.id, h.code, m.id, ST_Distance(m.geom::geography, h.location::geography)"
        " FROM household h JOIN person p ON p.household_id = h.id, merchant m"
        " WHERE left(h.code, 15) = %s AND NOT EXISTS (SELECT 1 FROM job_seeker j"
        "  WHERE j.household_id = h.id)"
        " AND ST_DWithin(m.geom::geography, h.location::geography, 800)"
        " AND NOT ST_DWithin(m.geom::geography, h.location::geography, 100)"
        " ORDER BY h.code, p.code, m.code LIMIT 1",
        grid,
    )[0]
    return {"grid": grid, "person": person, "household": household, "merchant": merchant,
            "meters": meters}  # fmt: skip


OPENING = """mutation($i: JobOpeningInput!) { createJobOpening(input: $i) {
  id code openSlots headcount merchant { code } } }"""
SEEKER = """mutation($i: JobSeekerInput!) { registerJobSeeker(input: $i) {
  id skills shifts person { code } } }"""
CANDIDATES = """query($s: String!, $seeker: ID) { jobCandidates(scope: $s, seekerId: $seeker) {
  totalCount edges { node { score distanceMeters seeker { id } opening { id code }
  explanation { distanceMeters skillsMatched hoursOverlap wageOk text } } } } }"""


def opening_input(where: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {
        "merchantId": global_id("Merchant", where["merchant"]), "title": "收银员",
        "skills": ["收银", "普通话"], "shifts": ["WEEKDAY_EVENING", "WEEKEND_DAYTIME"],
        "weeklyHours": 20, "wage": 30, "headcount": 1, "validFrom": "2026-01-01", **change,
    }  # fmt: skip


def seeker_input(where: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {
        "memberId": global_id("Person", where["person"]), "skills": ["收银", "电脑"],
        "shifts": ["WEEKDAY_EVENING", "WEEKEND_DAYTIME", "WEEKEND_EVENING"], "weeklyHours": 30,
        "minWage": 25, "maxWalkMeters": 2000, "consent": True, **change,
    }  # fmt: skip


def test_a_seeker_and_an_opening_near_each_other_match(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    where = setting(fresh_db, tokens)
    opening = ok(worker, OPENING, i=opening_input(where))["createJobOpening"]
    assert opening["openSlots"] == 1 and "-J" in opening["code"]
    seeker = ok(worker, SEEKER, i=seeker_input(where))["registerJobSeeker"]
    assert seeker["skills"] == ["收银", "电脑"]
    found = ok(worker, CANDIDATES, s=where["grid"], seeker=seeker["id"])["jobCandidates"]
    (pair,) = [e["node"] for e in found["edges"] if e["node"]["opening"]["id"] == opening["id"]]
    assert pair["distanceMeters"] == pytest.approx(where["meters"], abs=0.01)
    assert pair["explanation"]["skillsMatched"] == ["收银"]
    assert pair["explanation"]["hoursOverlap"] == 31  # weekday evenings 15 + weekend days 16
    assert pair["explanation"]["wageOk"] is True and "收银" in pair["explanation"]["text"]
    assert 0 < pair["score"] <= 100
    # Out of reach: too far for the seeker, or paying less than they need.
    far = ok(worker, SEEKER, i=seeker_input(where, maxWalkMeters=int(where["meters"]) - 1))
    assert far["registerJobSeeker"]["id"] == seeker["id"]  # the same resident, updated
    none = ok(worker, CANDIDATES, s=where["grid"], seeker=seeker["id"])["jobCandidates"]
    assert opening["id"] not in [e["node"]["opening"]["id"] for e in none["edges"]]
    ok(worker, SEEKER, i=seeker_input(where, minWage=31))
    none = ok(worker, CANDIDATES, s=where["grid"], seeker=seeker["id"])["jobCandidates"]
    assert opening["id"] not in [e["node"]["opening"]["id"] for e in none["edges"]]


def test_proposals_follow_their_workflow(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    where = setting(fresh_db, tokens)
    opening = ok(worker, OPENING, i=opening_input(where))["createJobOpening"]
    seeker = ok(worker, SEEKER, i=seeker_input(where))["registerJobSeeker"]
    propose = """mutation($i: ProposeJobMatchInput!) { proposeJobMatch(input: $i) {
      id state opening { openSlots } } }"""
    pair = {"seekerId": seeker["id"], "openingId": opening["id"]}
    match = ok(worker, propose, i=pair)["proposeJobMatch"]
    assert match["state"] == "PROPOSED" and match["opening"]["openSlots"] == 0
    err = error(worker, propose, i=pair)  # one live proposal per seeker
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    move = """mutation($i: SetJobMatchStateInput!) { setJobMatchState(input: $i) {
      state events { fromState toState workerCode note } } }"""
    err = error(worker, move, i={"matchId": match["id"], "to": "HIRED"})
    assert err["extensions"] == {"code": "CONFLICT", "argument": "input.to"}
    for state in ("CONTACTED", "INTERVIEWED", "HIRED"):
        done = ok(worker, move, i={"matchId": match["id"], "to": state, "note": "面试通过"})
    events = done["setJobMatchState"]["events"]
    assert [e["toState"] for e in events] == ["PROPOSED", "CONTACTED", "INTERVIEWED", "HIRED"]
    assert {e["workerCode"] for e in events} == {tokens["grid_worker"]["worker"]}
    err = error(worker, move, i={"matchId": match["id"], "to": "DECLINED"})
    assert "final" in err["message"]
    placed = ok(
        worker,
        'query($s: String!) { placements(scope: $s, from: "2026-01-01", to: "2099-01-01")'
        " { gridCode hired } }",
        s=where["grid"],
    )["placements"]
    assert {"gridCode": where["grid"], "hired": 1} in placed


def test_the_best_proposals_for_a_scope(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    where = setting(fresh_db, tokens)
    ok(worker, OPENING, i=opening_input(where, headcount=1))
    ok(worker, SEEKER, i=seeker_input(where))
    query = """query($s: String!) { jobMatches(scope: $s) { score seeker { id }
      opening { id openSlots } } }"""
    best = ok(worker, query, s=where["grid"])["jobMatches"]
    assert best and len({m["seeker"]["id"] for m in best}) == len(best)
    per_opening: dict[str, int] = {}
    for m in best:
        per_opening[m["opening"]["id"]] = per_opening.get(m["opening"]["id"], 0) + 1
        assert per_opening[m["opening"]["id"]] <= m["opening"]["openSlots"]
    proposed = ok(
        worker,
        "mutation($i: ProposeJobMatchesInput!) { proposeJobMatches(input: $i) { state score } }",
        i={"scope": where["grid"]},
    )["proposeJobMatches"]
    assert sorted(m["score"] for m in proposed) == sorted(m["score"] for m in best)
    assert ok(worker, query, s=where["grid"])["jobMatches"] == []  # all proposed now


@pytest.mark.parametrize(
    ("kind", "change", "argument"),
    [
        ("opening", {"headcount": -1}, "input.headcount"),
        ("opening", {"wage": 0}, "input.wage"),
        ("opening", {"validUntil": "2025-12-31"}, "input.validUntil"),
        ("opening", {"shifts": []}, "input.shifts"),
        ("seeker", {"consent": False}, "input.consent"),
        ("seeker", {"maxWalkMeters": -5}, "input.maxWalkMeters"),
        ("seeker", {"minWage": -1}, "input.minWage"),
    ],
)
def test_bad_input_writes_nothing(
    app: tuple[TestClient, Any], fresh_db: ScratchDB, kind: str, change: dict, argument: str
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    where = setting(fresh_db, tokens)
    counts = "SELECT (SELECT count(*) FROM job_opening), (SELECT count(*) FROM job_seeker)"
    before = owner(fresh_db, counts)
    if kind == "opening":
        err = error(worker, OPENING, i=opening_input(where, **change))
    else:
        err = error(worker, SEEKER, i=seeker_input(where, **change))
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert owner(fresh_db, counts) == before
    far = 'query($s: String!) { jobMatches(scope: $s, maxDistanceMeters: -1) { score } }'
    bad = error(worker, far, s=where["grid"])
    assert bad["extensions"] == {"code": "BAD_USER_INPUT", "argument": "maxDistanceMeters"}


def test_seekers_are_personal(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    where = setting(fresh_db, tokens)
    seeker = ok(worker, SEEKER, i=seeker_input(where))["registerJobSeeker"]
    assert error(public, CANDIDATES, s=where["grid"], seeker=None)["extensions"]["code"] == (
        "FORBIDDEN"
    )
    node = "query($id: ID!) { node(id: $id) { ... on JobSeeker { skills } } }"
    assert ok(worker, node, id=seeker["id"])["node"]["skills"] == ["收银", "电脑"]
    assert ok(public, node, id=seeker["id"])["node"] is None
    (other,) = owner(
        fresh_db,
        "SELECT code FROM grid WHERE code <> %s AND left(code, 12) = left(%s, 12) LIMIT 1",
        where["grid"], where["grid"],
    )[0]  # fmt: skip
    seekers = "query($s: String!) { jobSeekers(scope: $s) { totalCount } }"
    community = as_role(public, tokens, "community")
    assert ok(community, seekers, s=where["grid"])["jobSeekers"]["totalCount"] >= 1
    mine = ok(worker, seekers, s=other)["jobSeekers"]["totalCount"]
    assert mine == 0 or other in owner(
        fresh_db,
        "SELECT g.code FROM grid g JOIN worker_grid wg ON wg.grid_id = g.id"
        " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s",
        tokens["grid_worker"]["worker"],
    )[0]
    entries = owner(
        fresh_db, "SELECT action FROM audit_entry WHERE household_code = %s", where["household"]
    )
    assert ("update",) in entries


def test_offers_reach_the_places_within_their_radius(
    app: tuple[TestClient, Any], fresh_db: ScratchDB
) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    where = setting(fresh_db, tokens)
    create = """mutation($i: OfferInput!) { createOffer(input: $i) { id title radiusMeters } }"""
    near = int(where["meters"]) + 50
    ok(worker, create, i={"merchantId": global_id("Merchant", where["merchant"]),
                          "title": "社区居民九折", "radiusMeters": near,
                          "validFrom": "2026-01-01"})  # fmt: skip
    ok(worker, create, i={"merchantId": global_id("Merchant", where["merchant"]),
                          "title": "过期的优惠", "radiusMeters": near,
                          "validFrom": "2025-01-01", "validUntil": "2025-02-01"})  # fmt: skip
    query = "query($s: String!) { offers(scope: $s) { title merchant { code } } }"
    home = [o["title"] for o in ok(worker, query, s=where["household"])["offers"]]
    assert "社区居民九折" in home and "过期的优惠" not in home
    assert "社区居民九折" in [o["title"] for o in ok(public, query, s=where["grid"])["offers"]]


# The pairs as plain PostGIS finds them (geography distance), to hold the arrays to.
REFERENCE = """
WITH s AS MATERIALIZED (
    SELECT js.*, h.location FROM job_seeker js JOIN household h ON h.id = js.household_id
    WHERE js.household_code LIKE %(scope)s || '%%' AND h.moved_out IS NULL
      AND NOT EXISTS (SELECT 1 FROM job_match m
                      WHERE m.seeker_id = js.id AND m.state <> 'DECLINED')
), o AS MATERIALIZED (
    SELECT o.*, m.geom, o.headcount - job_opening_taken(o.id) AS open_slots
    FROM job_opening o JOIN merchant m ON m.id = o.merchant_id
    WHERE o.valid_from <= %(today)s AND (o.valid_until IS NULL OR o.valid_until >= %(today)s)
)
SELECT s.id, o.id, ST_Distance(s.location::geography, o.geom::geography), s.shifts, o.shifts,
       o.weekly_hours
FROM s JOIN o ON ST_DWithin(o.geom::geography, s.location::geography,
                            least(s.max_walk_meters, %(max)s))
WHERE o.open_slots > 0 AND o.wage >= s.min_wage AND o.weekly_hours <= s.weekly_hours
  AND (cardinality(o.skills) = 0 OR o.skills && s.skills)
"""


def test_candidates_are_the_pairs_postgis_finds(demo_db: ScratchDB) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from geo.access import Caller, Role
    from geo.db import make_engine, scoped_session
    from geo.jobs import SHIFT_HOURS, candidates

    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    scope = "310106015"
    expected = {}
    for seeker, opening, meters, s_shifts, o_shifts, hours in _reference(demo_db, scope, today):
        if sum(SHIFT_HOURS[s] for s in set(s_shifts) & set(o_shifts)) >= hours:
            expected[(uuid.UUID(seeker), uuid.UUID(opening))] = meters
    engine = make_engine(demo_db.app_url)
    try:
        with scoped_session(engine, Caller(Role.GRID_CENTER, areas=(scope,)).settings()) as s:
            found, _ = candidates(session=s, scope=scope, max_distance=1500, today=today)
    finally:
        engine.dispose()
    assert len(expected) > 100
    assert {(c.seeker_id, c.opening_id) for c in found} == set(expected)
    assert max(abs(c.distance_meters - expected[(c.seeker_id, c.opening_id)]) for c in found) < 1e-3


def _reference(db: ScratchDB, scope: str, today: Any) -> list[tuple[Any, ...]]:
    import psycopg2
    from sqlalchemy.engine import make_url

    dsn = make_url(db.owner_url).set(drivername="postgresql").render_as_string(False)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(REFERENCE, {"scope": scope, "today": today, "max": 1500})
            return cur.fetchall()
    finally:
        conn.close()


def test_candidates_page_by_cursor(client: TestClient) -> None:
    query = """query($after: String) { jobCandidates(scope: "310106015", first: 100,
      after: $after) { totalCount pageInfo { hasNextPage endCursor }
      edges { node { score seeker { id } opening { id } } } } }"""
    seen: list[tuple[str, str]] = []
    scores: list[float] = []
    after = None
    while True:
        page = ok(client, query, after=after)["jobCandidates"]
        seen += [(e["node"]["seeker"]["id"], e["node"]["opening"]["id"]) for e in page["edges"]]
        scores += [e["node"]["score"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == page["totalCount"] > 100
    assert scores == sorted(scores, reverse=True)
