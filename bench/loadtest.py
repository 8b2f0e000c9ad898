"""The load test issue 11 asks for: 50 clients for 60 s doing what real users do, against a real
server, and afterwards a check that nothing acknowledged was lost or doubled.

    .venv/bin/python bench/loadtest.py                          # 50 clients, 60 s
    .venv/bin/python bench/loadtest.py --clients 20 --duration 10 --no-write
    .venv/bin/python bench/loadtest.py --think 0 --profile      # saturation, with py-spy

The server is `gridmap serve` in a subprocess on a free loopback port, with the worker count it
uses by default (one per core), ``GRIDMAP_ENV=production``, default rate limits, over the
database ``gridmap_loadtest`` (the 5,000-household demo, created and loaded on the first run as
the other benches do, then reused: the writes of earlier runs stay in it).

Each client is a demo worker with a token of its own, as a phone or a desk would be (two clients
share a worker only where a role has too few: 6 grid-center clients, 4 grid-center workers):

- field (60 %): grid workers and micro-grid leaders. Read the grid's overdue list, record a visit
  to one of those households with a fresh idempotency key; a fifth of the visits are sent again
  with the same key after the answer came (a phone that lost it), one in twenty twice at once;
  a transport error is retried with the same key, as a phone would. Now and then report a case
  in their grid (a whistle), or (grid workers) verify a handled case of their grid.
- office (16 %): community staff. Accept reported cases of their community, dispatch accepted
  ones to the category's unit, close verified ones.
- department (12 %): one worker per unit. Handle the cases dispatched or returned to the unit.
- center (12 %): grid-center staff refreshing the dashboards: coverage by grid (with outlines)
  and by micro-grid, case hotspots on hexagons, the sub-district's overdue list, overdue cases.

Each client waits ``--think`` seconds on average (exponentially distributed) between two
actions; 0 makes a closed loop with no pause (what the machine can take, not what users do).
The first ``--warmup`` seconds are not measured (their writes are checked all the same).

Counted: latency per operation (p50/p95/p99), reads and writes apart and together; server errors
(HTTP 5xx, a transport error or timeout, a GraphQL error coded INTERNAL_SERVER_ERROR, tracebacks
in the server's log); every other error by its code (CONFLICT: two staff took the same case at
once, which the loop refuses as it should). Targets: 0 server errors, p99 under 300 ms for reads
and for writes. The exit status is 1 when a target is missed.

Afterwards, as the tables' owner: every acknowledged visit is found exactly once by its
idempotency key with the id the client was given (and no key sent is there twice), every
acknowledged case exactly once by its number and by its unique description, and every
acknowledged step of a case exactly once in its event log. Results: printed, in
``bench/out/loadtest-*/result.json``, and in the section between the markers below in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import httpx2  # noqa: E402
import side_by_side as sbs  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from api.auth import issue_token  # noqa: E402
from api.schema.relay import global_id  # noqa: E402
from api.settings import Settings  # noqa: E402
from geo.workers import worker_by_code  # noqa: E402

BEGIN = "<!-- bench/loadtest.py: begin -->"
END = "<!-- bench/loadtest.py: end -->"
TARGET_P99_MS = 300.0
ZONE = ZoneInfo("Asia/Shanghai")
TIMEOUT_S = 10.0
SHARES = {"field": 0.60, "office": 0.16, "department": 0.12, "center": 0.12}
MARK = "loadtest"

# --- the operations -----------------------------------------------------------------------------

OVERDUE = """query Overdue($scope: String!, $first: Int!) {
  overdueHouseholds(scope: $scope, first: $first) { totalCount
    edges { node { daysOverdue householdClass household { id code } } } } }"""
RECORD = """mutation Record($input: RecordVisitInput!) {
  recordVisit(input: $input) { replayed warnings visit { id } } }"""
REPORT = """mutation Report($input: ReportCaseInput!) {
  reportCase(input: $input) { case { id number state } duplicates { number } } }"""
CASES = """query Cases($filter: CaseFilter, $first: Int!) {
  cases(filter: $filter, first: $first) { totalCount
    edges { node { id number state category unitCode overdue } } } }"""
MOVE = """mutation Move($input: TransitionCaseInput!) {
  transitionCase(input: $input) { case { id number state unitCode } } }"""
COVERAGE_GRID = """query CoverageByGrid($scope: String!) {
  coverage(scope: $scope, level: GRID) { code name households contacted ratio geometry
    overdue { a b c total } } }"""
COVERAGE_MICRO = """query CoverageByMicroGrid($scope: String!) {
  coverage(scope: $scope, level: MICRO_GRID) { code households contacted ratio
    overdue { total } } }"""
HOTSPOTS = """query Hotspots($scope: String!) {
  caseHotspots(scope: $scope) { cells { code count zScore confidence emerging geometry } } }"""

# Operation → read or write, in the order of the table.
KINDS = {
    "overdue list (grid)": "read",
    "case list": "read",
    "coverage by grid": "read",
    "coverage by micro-grid": "read",
    "case hotspots": "read",
    "overdue list (sub-district)": "read",
    "recordVisit": "write",
    "recordVisit (retry)": "write",
    "reportCase": "write",
    **{
        f"transitionCase {step}": "write"
        for step in ("ACCEPTED", "DISPATCHED", "HANDLED", "VERIFIED", "CLOSED")
    },
}
STEP_ACTIONS = {
    "ACCEPTED": "ACCEPT",
    "DISPATCHED": "DISPATCH",
    "HANDLED": "HANDLE",
    "VERIFIED": "VERIFY",
    "CLOSED": "CLOSE",
}


# --- who --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    code: str
    role: str
    worker_id: str  # global ID
    areas: tuple[str, ...]
    unit: str | None
    token: str


@dataclass
class World:
    """What the clients need to know of the database: who they are, where their grids are."""

    identities: dict[str, list[Identity]]  # kind of client → identities, in order
    points: dict[str, list[tuple[float, float]]]  # grid → points inside it
    households: dict[str, list[str]]  # grid → household global IDs (when nothing is overdue)
    categories: list[str]  # those whose unit has a department client
    subdistrict: str


def load_world(db: sbs.Database, settings: Settings, clients: int, seed: int) -> World:
    """Identities for ``clients`` clients by the shares above, each a worker of its own while
    there are workers enough, with a token signed with the server's key."""
    counts = {k: max(1, round(clients * share)) for k, share in SHARES.items()}
    counts["field"] = max(1, clients - sum(v for k, v in counts.items() if k != "field"))
    engine = create_engine(db.owner_url)
    rng = random.Random(seed)
    try:
        with engine.connect() as c:
            rows = (
                c.execute(
                    text(
                        "SELECT w.code, w.role::text AS role, w.unit_code, m.code AS community,"
                        " (SELECT count(*) FROM case_category k WHERE k.default_unit = w.unit_code"
                        "  AND k.active) AS categories"
                        " FROM worker w LEFT JOIN community m ON m.id = w.community_id"
                        " ORDER BY w.code"
                    )
                )
                .mappings()
                .all()
            )
            by_role: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                by_role[r["role"]].append(dict(r))
            # Field: grid workers first, then micro-grid leaders across the grids.
            field_rows = by_role["GRID_WORKER"] + by_role["MICRO_GRID_LEADER"]
            # Departments: one worker per unit, the units with the most categories first.
            units: dict[str, dict[str, Any]] = {}
            for r in sorted(by_role["DEPARTMENT"], key=lambda r: (-r["categories"], r["code"])):
                units.setdefault(r["unit_code"], r)
            chosen = {
                "field": _take(field_rows, counts["field"]),
                "office": _take(_spread(by_role["COMMUNITY"]), counts["office"]),
                "department": _take(list(units.values()), counts["department"]),
                "center": _take(by_role["GRID_CENTER"], counts["center"]),
            }
            identities: dict[str, list[Identity]] = {}
            for kind, picked in chosen.items():
                identities[kind] = []
                for r in picked:
                    worker = worker_by_code(connection=c, code=r["code"])
                    token = issue_token(settings, worker, ttl=dt.timedelta(hours=6))
                    identities[kind].append(
                        Identity(
                            r["code"],
                            r["role"],
                            global_id("Worker", worker["id"]),
                            tuple(worker["areas"]),
                            worker["unit_code"],
                            token,
                        )
                    )
            dept_units = sorted({i.unit for i in identities["department"] if i.unit})
            categories = list(
                c.execute(
                    text(
                        "SELECT code FROM case_category WHERE active AND default_unit = ANY(:u)"
                        " ORDER BY code"
                    ),
                    {"u": dept_units},
                ).scalars()
            )
            points: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for grid, lon, lat in c.execute(
                text(
                    "SELECT g.code, ST_X(p.geom), ST_Y(p.geom) FROM grid g,"
                    " LATERAL ST_Dump(ST_GeneratePoints(g.geom, 40, :seed)) p ORDER BY g.code"
                ),
                {"seed": seed},
            ):
                points[grid].append((lon, lat))
            households: dict[str, list[str]] = defaultdict(list)
            for grid, hid in c.execute(
                text(
                    "SELECT left(code, 15), id FROM household WHERE moved_out IS NULL ORDER BY code"
                )
            ):
                households[grid].append(global_id("Household", hid))
            subdistrict = c.execute(text("SELECT min(code) FROM subdistrict")).scalar_one()
    finally:
        engine.dispose()
    for grid_households in households.values():
        rng.shuffle(grid_households)
    return World(identities, dict(points), dict(households), categories, subdistrict)


def _take(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` rows, reusing them in turn when there are fewer (then clients share a worker)."""
    return [rows[i % len(rows)] for i in range(n)] if rows else []


def _spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Community staff taken round-robin over the communities, so that each has some."""
    by_community: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_community[r["community"]].append(r)
    queues = list(by_community.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the server acknowledged, to be found in the database afterwards; and what went wrong."""

    started: dt.datetime
    measure_from: float
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    visit_keys_sent: set[str] = field(default_factory=set)
    visits: dict[str, str] = field(default_factory=dict)  # idempotency key → visit ID
    visit_retries: int = 0
    replay_mismatches: list[str] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)  # description → number
    case_ids: dict[str, str] = field(default_factory=dict)  # number → global ID
    steps: Counter[tuple[str, str]] = field(default_factory=Counter)  # (case ID, to) → acks

    def record(self, op: str, started: float, ms: float, outcome: str) -> None:
        if started >= self.measure_from:
            self.samples[op].append(ms)
            self.outcomes[op][outcome] += 1


@dataclass
class Answer:
    data: dict[str, Any] | None
    outcome: str  # "ok", an error code, or "server error"


class Api:
    """One client's connection to the server, timing and classifying every request."""

    def __init__(self, http: httpx2.AsyncClient, url: str, token: str, ledger: Ledger) -> None:
        self.http = http
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ledger = ledger

    async def call(self, op: str, query: str, variables: dict[str, Any]) -> Answer:
        body = {"query": query, "variables": variables}
        started = time.monotonic()
        try:
            response = await self.http.post(self.url, json=body, headers=self.headers)
        except httpx2.HTTPError as exc:
            ms = (time.monotonic() - started) * 1000
            self._server_error(op, f"{type(exc).__name__}: {exc}", ms)
            self.ledger.record(op, started, ms, "server error")
            return Answer(None, "transport error")
        ms = (time.monotonic() - started) * 1000
        self.ledger.requests += 1
        self.ledger.statuses[response.status_code] += 1
        outcome, data = "ok", None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 500 or not isinstance(payload, dict):
            outcome = "server error"
            self._server_error(op, f"HTTP {response.status_code}: {response.text[:300]}", ms)
        else:
            data = payload.get("data")
            errors = payload.get("errors") or []
            codes = [(e.get("extensions") or {}).get("code", "no code") for e in errors]
            if "INTERNAL_SERVER_ERROR" in codes:
                outcome = "server error"
                self._server_error(op, json.dumps(errors, ensure_ascii=False)[:300], ms)
            elif codes:
                outcome = codes[0]
        self.ledger.record(op, started, ms, outcome)
        return Answer(data if outcome == "ok" else None, outcome)

    def _server_error(self, op: str, what: str, ms: float) -> None:
        self.ledger.server_errors.append({"op": op, "what": what, "ms": round(ms, 1)})


# --- the clients ------------------------------------------------------------------------------


@dataclass
class Run:
    world: World
    ledger: Ledger
    deadline: float
    think: float
    retry_share: float = 0.2
    twin_share: float = 0.05
    case_share: float = 0.15
    verify_share: float = 0.15

    async def pause(self, rng: random.Random) -> None:
        if self.think > 0:
            await asyncio.sleep(rng.expovariate(1 / self.think))

    async def loop(self, step: Callable[[], Awaitable[None]], rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, min(1.0, self.think or 0.2)))  # not all at once
        while time.monotonic() < self.deadline:
            await step()
            await self.pause(rng)


async def field_client(run: Run, api: Api, me: Identity, rng: random.Random) -> None:
    grid = me.areas[0]
    points = run.world.points[grid]
    fallback = run.world.households.get(grid, [])

    async def step() -> None:
        page = await api.call("overdue list (grid)", OVERDUE, {"scope": grid, "first": 20})
        edges = (page.data or {}).get("overdueHouseholds", {}).get("edges", [])
        if edges:
            node = rng.choice(edges)["node"]
            household, cls = node["household"]["id"], node["householdClass"]
        elif fallback:
            household, cls = rng.choice(fallback), None
        else:
            return
        await record_visit(run, api, me, rng, household, cls)
        roll = rng.random()
        if roll < run.case_share:
            await report_case(run, api, rng, points)
        elif roll < run.case_share + run.verify_share and me.role == "GRID_WORKER":
            # Micro-grid leaders do not verify: the grid's worker or the community does.
            await move_one(run, api, rng, {"scope": grid, "states": ["HANDLED"]}, "VERIFIED")

    await run.loop(step, rng)


async def record_visit(
    run: Run, api: Api, me: Identity, rng: random.Random, household: str, cls: str | None
) -> None:
    at = dt.datetime.now(ZONE).replace(microsecond=0) - dt.timedelta(minutes=rng.randint(1, 120))
    key = str(uuid.uuid4())
    visit = {
        "householdId": household,
        "workerId": me.worker_id,
        "visitedAt": at.isoformat(),
        "mode": "PHONE" if cls == "A" else "DOOR",
        "idempotencyKey": key,
        "tasks": ["SHOW_IDENTITY", "KNOW_FAMILY"],
        "notes": f"{MARK} {key[:8]}",
    }
    variables = {"input": visit}
    run.ledger.visit_keys_sent.add(key)
    roll = rng.random()
    if roll < run.twin_share:  # the same visit sent twice at once (a double tap, two networks)
        answers = await asyncio.gather(
            api.call("recordVisit", RECORD, variables),
            api.call("recordVisit (retry)", RECORD, variables),
        )
        run.ledger.visit_retries += 1
    else:
        answers = [await api.call("recordVisit", RECORD, variables)]
        # A phone that lost the answer sends the same visit again.
        if answers[0].outcome == "transport error" or roll < run.twin_share + run.retry_share:
            answers.append(await api.call("recordVisit (retry)", RECORD, variables))
            run.ledger.visit_retries += 1
    ids = {a.data["recordVisit"]["visit"]["id"] for a in answers if a.data}
    if len(ids) > 1:
        run.ledger.replay_mismatches.append(f"{key}: {sorted(ids)}")
    if ids:
        run.ledger.visits[key] = min(ids)


async def report_case(run: Run, api: Api, rng: random.Random, points: list[Any]) -> None:
    lon, lat = rng.choice(points)
    description = f"{MARK} {uuid.uuid4()}: 垃圾堆放在楼道口"
    answer = await api.call(
        "reportCase",
        REPORT,
        {
            "input": {
                "category": rng.choice(run.world.categories),
                "description": description,
                "lon": lon,
                "lat": lat,
                "priority": "URGENT" if rng.random() < 0.1 else "NORMAL",
            }
        },
    )
    if answer.data:
        case = answer.data["reportCase"]["case"]
        run.ledger.cases[description] = case["number"]
        run.ledger.case_ids[case["number"]] = case["id"]


async def move_one(
    run: Run, api: Api, rng: random.Random, filter_: dict[str, Any], to: str
) -> None:
    """Take one case of the list and move it on (a random one of the page, as people pick)."""
    page = await api.call("case list", CASES, {"filter": filter_, "first": 20})
    edges = (page.data or {}).get("cases", {}).get("edges", [])
    if not edges:
        return
    case = rng.choice(edges)["node"]
    answer = await api.call(
        f"transitionCase {to}", MOVE, {"input": {"caseId": case["id"], "to": to}}
    )
    if answer.data:
        run.ledger.steps[case["id"], to] += 1


async def office_client(run: Run, api: Api, me: Identity, rng: random.Random) -> None:
    scope = me.areas[0]
    moves = (("REPORTED", "ACCEPTED"), ("ACCEPTED", "DISPATCHED"), ("VERIFIED", "CLOSED"))

    async def step() -> None:
        state, to = rng.choice(moves)
        await move_one(run, api, rng, {"scope": scope, "states": [state]}, to)

    await run.loop(step, rng)


async def department_client(run: Run, api: Api, me: Identity, rng: random.Random) -> None:
    async def step() -> None:
        await move_one(run, api, rng, {"states": ["DISPATCHED", "RETURNED"]}, "HANDLED")

    await run.loop(step, rng)


async def center_client(run: Run, api: Api, me: Identity, rng: random.Random) -> None:
    scope = run.world.subdistrict
    reads = (
        ("coverage by grid", COVERAGE_GRID, {"scope": scope}),
        ("coverage by micro-grid", COVERAGE_MICRO, {"scope": scope}),
        ("case hotspots", HOTSPOTS, {"scope": scope}),
        ("overdue list (sub-district)", OVERDUE, {"scope": scope, "first": 50}),
        ("case list", CASES, {"filter": {"scope": scope, "overdue": True}, "first": 50}),
    )

    async def step() -> None:
        op, query, variables = rng.choice(reads)
        await api.call(op, query, variables)

    await run.loop(step, rng)


CLIENTS = {
    "field": field_client,
    "office": office_client,
    "department": department_client,
    "center": center_client,
}


async def drive(url: str, world: World, args: argparse.Namespace) -> Ledger:
    start = time.monotonic()
    ledger = Ledger(started=dt.datetime.now(dt.UTC), measure_from=start + args.warmup)
    run = Run(world, ledger, deadline=start + args.warmup + args.duration, think=args.think)
    limits = httpx2.Limits(max_connections=args.clients * 2, max_keepalive_connections=None)
    async with httpx2.AsyncClient(timeout=TIMEOUT_S, limits=limits) as http:
        tasks = []
        n = 0
        for kind, identities in world.identities.items():
            for me in identities:
                rng = random.Random(f"{args.seed}-{n}")
                api = Api(http, url, me.token, ledger)
                tasks.append(asyncio.create_task(CLIENTS[kind](run, api, me, rng)))
                n += 1
        await asyncio.gather(*tasks)
    return ledger


# --- afterwards -------------------------------------------------------------------------------


def check_database(db: sbs.Database, ledger: Ledger) -> dict[str, Any]:
    """Find every acknowledged write once, as the owner (row-level security does not apply)."""
    engine = create_engine(db.owner_url)
    problems: list[str] = list(f"replay gave another visit: {m}" for m in ledger.replay_mismatches)
    try:
        with engine.connect() as c:
            found = {
                key: (count, global_id("Visit", first))
                for key, count, first in c.execute(
                    text(
                        "SELECT idempotency_key, count(*), min(id::text)::uuid FROM visit"
                        " WHERE idempotency_key = ANY(:keys) GROUP BY 1"
                    ),
                    {"keys": sorted(ledger.visit_keys_sent)},
                )
            }
            for key, visit_id in ledger.visits.items():
                count, got = found.get(key, (0, None))
                if count != 1 or got != visit_id:
                    problems.append(f"visit {key}: {count} rows (acknowledged as {visit_id})")
            doubled = [k for k, (count, _) in found.items() if count > 1]
            problems += [f"visit key {k} is there more than once" for k in doubled]
            unacknowledged = len(set(found) - set(ledger.visits))

            by_description = {
                d: (count, number)
                for d, count, number in c.execute(
                    text(
                        "SELECT description, count(*), min(number) FROM grid_case"
                        " WHERE description = ANY(:d) GROUP BY 1"
                    ),
                    {"d": list(ledger.cases)},
                )
            }
            by_number = dict(
                c.execute(
                    text(
                        "SELECT number, count(*) FROM grid_case WHERE number = ANY(:n) GROUP BY 1"
                    ),
                    {"n": list(ledger.cases.values())},
                ).all()
            )
            for description, number in ledger.cases.items():
                count, got = by_description.get(description, (0, None))
                if count != 1 or got != number or by_number.get(number) != 1:
                    problems.append(
                        f"case {number}: {count} rows by description, "
                        f"{by_number.get(number, 0)} by number"
                    )
            reported = dict(
                c.execute(
                    text(
                        "SELECT c.number, count(*) FROM case_event e"
                        " JOIN grid_case c ON c.id = e.case_id"
                        " WHERE c.number = ANY(:n) AND e.action = 'REPORT' GROUP BY 1"
                    ),
                    {"n": list(ledger.cases.values())},
                ).all()
            )
            for number in ledger.cases.values():
                if reported.get(number) != 1:
                    problems.append(f"case {number}: {reported.get(number, 0)} REPORT events")

            from api.schema.relay import parse_global_id

            ids = {
                case_id: str(parse_global_id(case_id, argument="id")[1])
                for case_id, _ in ledger.steps
            }
            events = Counter(
                {
                    (case_id, to): count
                    for case_id, to, count in c.execute(
                        text(
                            "SELECT case_id::text, to_state::text, count(*) FROM case_event"
                            " WHERE at >= :since AND action = ANY(:actions)"
                            " AND case_id::text = ANY(:ids) GROUP BY 1, 2"
                        ),
                        {
                            "since": ledger.started,
                            "actions": list(STEP_ACTIONS.values()),
                            "ids": sorted(set(ids.values())),
                        },
                    )
                }
            )
            for (case_id, to), acks in ledger.steps.items():
                got = events.get((ids[case_id], to), 0)
                if got != acks:
                    problems.append(
                        f"case {ids[case_id]} → {to}: acknowledged {acks}, {got} events"
                    )
    finally:
        engine.dispose()
    return {
        "visits_acknowledged": len(ledger.visits),
        "visit_keys_sent": len(ledger.visit_keys_sent),
        "visit_rows_found": sum(1 for k in ledger.visits if found.get(k, (0,))[0] == 1),
        "visits_retried": ledger.visit_retries,
        "visits_unacknowledged_but_stored": unacknowledged,
        "cases_acknowledged": len(ledger.cases),
        "case_rows_found": sum(1 for d in ledger.cases if by_description.get(d, (0,))[0] == 1),
        "steps_acknowledged": sum(ledger.steps.values()),
        "step_events_found": sum(
            min(events.get((ids[k], to), 0), n) for (k, to), n in ledger.steps.items()
        ),
        "problems": problems,
    }


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (no interpolation: p99 is a latency some request had)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def summarize(ledger: Ledger, seconds: float) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "rps": len(values) / seconds,
            "p50_ms": percentile(values, 50),
            "p95_ms": percentile(values, 95),
            "p99_ms": percentile(values, 99),
            "max_ms": max(values),
            "mean_ms": statistics.fmean(values),
        }

    rows = {}
    for op in KINDS:
        values = ledger.samples.get(op, [])
        outcomes = ledger.outcomes.get(op, Counter())
        rows[op] = {**stats(values), "kind": KINDS[op], "outcomes": dict(outcomes)}
    groups = {
        kind: stats([v for op, vs in ledger.samples.items() if KINDS[op] == kind for v in vs])
        for kind in ("read", "write")
    }
    groups["all"] = stats([v for vs in ledger.samples.values() for v in vs])
    outcomes: Counter[str] = Counter()
    for counter in ledger.outcomes.values():
        outcomes.update(counter)
    return {"operations": rows, "groups": groups, "outcomes": dict(outcomes)}


def server_log_errors(log: Path) -> list[str]:
    text_ = log.read_text(errors="replace") if log.exists() else ""
    return [
        line
        for line in text_.splitlines()
        if "Traceback" in line or " 500 " in line or line.startswith("ERROR")
    ]


# --- the server -------------------------------------------------------------------------------


def start_server(db: sbs.Database, settings: Settings, out: Path, workers: int | None) -> Any:
    port = sbs.free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDMAP_", "PG"))}
    base.pop("DATABASE_URL", None)
    env = {
        **base,
        "GRIDMAP_ENV": "production",
        "GRIDMAP_DATABASE_URL": db.app_url,
        "GRIDMAP_OWNER_DATABASE_URL": db.owner_url,
        "GRIDMAP_SECRET_KEY": settings.secret_key,
    }
    command = [
        str(Path(sys.executable).with_name("gridmap")),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers:
        command += ["--workers", str(workers)]
    server = sbs.Server("gridmap", command, env, port, out / "server.log")
    server.start()
    sbs.wait_ready({"gridmap": server})
    return server


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of the server's processes so far: uvicorn's workers are its
    children. What a request costs the server, whatever else the machine is doing."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [
        pid,
        *map(
            int,
            subprocess.run(
                ["pgrep", "-P", str(pid)], capture_output=True, text=True
            ).stdout.split(),
        ),
    ]
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def start_profiler(server: Any, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy is missing: pip install -e '.[bench]'", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(server.process.pid),
            "--subprocesses",
            "--rate",
            "200",
            "--format",
            "raw",
            "--duration",
            str(int(seconds)),
            "--output",
            str(out / "profile.txt"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


# --- reporting --------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    s = result["summary"]
    print(
        f"\n{'operation':30} {'kind':5} {'n':>6} {'req/s':>6} {'p50':>7} {'p95':>7} {'p99':>7}"
        f" {'max':>7}  outcomes"
    )
    for op, r in s["operations"].items():
        if not r["n"]:
            continue
        print(
            f"{op:30} {r['kind']:5} {r['n']:>6} {r['rps']:>6.1f} {r['p50_ms']:>7.1f}"
            f" {r['p95_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['max_ms']:>7.1f}  {r['outcomes']}"
        )
    for name, g in s["groups"].items():
        if g["n"]:
            print(
                f"{name + ' (all)':30} {'':5} {g['n']:>6} {g['rps']:>6.1f} {g['p50_ms']:>7.1f}"
                f" {g['p95_ms']:>7.1f} {g['p99_ms']:>7.1f} {g['max_ms']:>7.1f}"
            )
    print(
        f"\nserver CPU: {result['server_cpu_ms_per_request']:.1f} ms per request "
        f"({result['requests']:,} requests, warm-up included)"
    )
    print(
        f"server errors: {len(result['server_errors'])} from the clients, "
        f"{len(result['server_log_errors'])} lines in the server's log"
    )
    for e in result["server_errors"][:10]:
        print(f"  {e}")
    c = result["checked"]
    print(
        f"checked as the owner: {c['visit_rows_found']:,} of {c['visits_acknowledged']:,} "
        f"acknowledged visits found once by idempotency key ({c['visits_retried']:,} sent "
        f"twice; {c['visit_keys_sent']:,} keys sent, {c['visits_unacknowledged_but_stored']} "
        f"stored without an acknowledgement); {c['case_rows_found']:,} of "
        f"{c['cases_acknowledged']:,} acknowledged cases found once by number and description; "
        f"{c['step_events_found']:,} of {c['steps_acknowledged']:,} acknowledged steps found "
        "once in the case events"
    )
    for p in c["problems"][:20]:
        print(f"  PROBLEM: {p}")
    for name, ok in result["verdicts"].items():
        print(f"{name}: {'met' if ok else 'MISSED'}")


def verdicts(result: dict[str, Any]) -> dict[str, bool]:
    g = result["summary"]["groups"]
    return {
        "0 server errors": not result["server_errors"] and not result["server_log_errors"],
        f"reads p99 < {TARGET_P99_MS:.0f} ms": g["read"].get("p99_ms", 0) < TARGET_P99_MS,
        f"writes p99 < {TARGET_P99_MS:.0f} ms": g["write"].get("p99_ms", 0) < TARGET_P99_MS,
        "every acknowledged write found once": not result["checked"]["problems"],
    }


def markdown(result: dict[str, Any]) -> str:
    m, cfg, s, c = result["machine"], result["config"], result["summary"], result["checked"]
    ops = s["operations"]
    workers = len({code for codes in cfg["identities"].values() for code in codes})
    think = (
        f"{cfg['think']:g} s on average between two actions (exponential)"
        if cfg["think"]
        else "no pause between actions (a closed loop: what the machine can take)"
    )
    lines = [
        f"Measured {result['when']} UTC by `make loadtest` (`bench/loadtest.py`) on "
        f"{m['nproc']} cores ({m['cpu']}, {m['memory_gib']} GiB, {m['os']}), load average "
        f"{result['load_before']:.2f} before and {result['load_after']:.2f} after; the load "
        "generator, the server and PostgreSQL share the machine. Server: `gridmap serve` with "
        f"its default {cfg['workers']} workers (one per core), production settings and rate "
        f"limits, over `{cfg['database']}` ({result['scale']['households']:,} households, "
        f"{result['scale']['grids']} grids). {cfg['clients']} clients "
        f"({', '.join(f'{len(v)} {k}' for k, v in cfg['identities'].items())}) as {workers} "
        "demo workers, each with a token of its own (two clients share a worker only where a "
        f"role has too few), {think}; {cfg['duration']:g} s measured after "
        f"{cfg['warmup']:g} s of warm-up; "
        f"{s['groups']['all']['n']:,} requests measured, {s['groups']['all']['rps']:.0f}/s; the "
        f"server's processes used {result['server_cpu_ms_per_request']:.1f} ms of CPU per "
        "request (user and system, warm-up included; PostgreSQL not counted).",
        "",
        "| operation | kind | requests | req/s | p50 | p95 | p99 | max | answers |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for op, r in ops.items():
        if not r["n"]:
            continue
        answers = ", ".join(
            f"{k} {v:,}" for k, v in sorted(r["outcomes"].items(), key=lambda kv: -kv[1])
        )
        lines.append(
            f"| {op} | {r['kind']} | {r['n']:,} | {r['rps']:.1f} | {r['p50_ms']:.0f} ms"
            f" | {r['p95_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['max_ms']:.0f} ms"
            f" | {answers} |"
        )
    for name in ("read", "write", "all"):
        g = s["groups"][name]
        if g["n"]:
            lines.append(
                f"| **{name}s**".replace("alls", "all") + f" | | **{g['n']:,}** | "
                f"{g['rps']:.1f} | {g['p50_ms']:.0f} ms | {g['p95_ms']:.0f} ms | "
                f"**{g['p99_ms']:.0f} ms** | {g['max_ms']:.0f} ms | |"
            )
    problems = f" — **{len(c['problems'])} problems**" if c["problems"] else ""
    verdict = "; ".join(
        f"{k}: {'met' if v else '**missed**'}" for k, v in result["verdicts"].items()
    )
    lines += [
        "",
        f"Server errors: {len(result['server_errors'])} seen by the clients (HTTP 5xx, transport "
        f"errors, INTERNAL_SERVER_ERROR), {len(result['server_log_errors'])} in the server's log. "
        "CONFLICT is two staff taking the same case at once: the loop lets one through.",
        "",
        f"Checked afterwards as the owner: {c['visit_rows_found']:,} of "
        f"{c['visits_acknowledged']:,} acknowledged visits found exactly once by idempotency key "
        f"with the id given ({c['visits_retried']:,} of them sent twice, "
        f"{c['visits_unacknowledged_but_stored']} keys stored without an acknowledgement); "
        f"{c['case_rows_found']:,} of {c['cases_acknowledged']:,} acknowledged cases exactly "
        f"once by number and description, with one REPORT event; {c['step_events_found']:,} of "
        f"{c['steps_acknowledged']:,} acknowledged steps exactly once in the case events"
        f"{problems}.",
        "",
        f"Targets: {verdict}.",
    ]
    return "\n".join(lines)


def update_benchmarks(section: str) -> None:
    sbs.write_section(BEGIN, END, f"{BEGIN}\n{section}\n{END}",
                      "Load test (issue 11, `make loadtest`)")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so that the server is stopped on the way out


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean seconds between a client's actions (0: no pause)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server workers (default: gridmap serve's own, one per core)",
    )
    parser.add_argument("--database", default="gridmap_loadtest", help="a local database name")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server while measuring (bench/out/loadtest-*/profile.txt)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=300,
        help="seconds to wait for the machine to be quiet (load average < 1)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.think < 0 or args.warmup < 0:
        parser.error(
            "--clients must be at least 1, --duration positive, --think and --warmup not negative"
        )

    settings = Settings()
    db = sbs.resolve_database(args.database, settings)
    scale = sbs.prepare_database(db, None, settings.secret_key)
    world = load_world(db, settings, args.clients, args.seed)
    out = BENCH / "out" / f"loadtest-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True)
    load_before = sbs.wait_quiet(patience_s=args.patience)
    server = start_server(db, settings, out, args.workers)
    signal.signal(signal.SIGTERM, _interrupt)
    profiler = None
    try:
        workers = args.workers or os.cpu_count() or 1  # gridmap serve's default
        url = f"http://127.0.0.1:{server.port}/graphql"
        print(
            f"{args.clients} clients for {args.duration:g} s (+{args.warmup:g} s warm-up) "
            f"against {url} ({workers} workers), think {args.think:g} s"
        )
        if args.profile:
            profiler = start_profiler(server, out, args.warmup + args.duration)
        cpu_before = server_cpu_seconds(server.process.pid)
        ledger = asyncio.run(drive(url, world, args))
        cpu = server_cpu_seconds(server.process.pid) - cpu_before
        load_after = os.getloadavg()[0]
    finally:
        if profiler is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(30)
        server.stop()
    checked = check_database(db, ledger)
    result: dict[str, Any] = {
        "when": f"{ledger.started:%Y-%m-%d %H:%M}",
        "machine": sbs.machine(),
        "load_before": load_before,
        "load_after": load_after,
        "scale": scale,
        "versions": {
            "python": sys.version.split()[0],
            "strawberry": metadata.version("strawberry-graphql"),
            "uvicorn": metadata.version("uvicorn"),
            "postgresql": scale["postgresql"].split()[0],
        },
        "config": {
            "clients": args.clients,
            "duration": args.duration,
            "warmup": args.warmup,
            "think": args.think,
            "workers": workers,
            "database": db.name,
            "seed": args.seed,
            "identities": {k: [i.code for i in v] for k, v in world.identities.items()},
        },
        "summary": summarize(ledger, args.duration),
        "statuses": dict(ledger.statuses),
        "requests": ledger.requests,
        "server_cpu_ms_per_request": 1000 * cpu / max(1, ledger.requests),
        "server_errors": ledger.server_errors,
        "server_log_errors": server_log_errors(out / "server.log"),
        "checked": checked,
    }
    result["verdicts"] = verdicts(result)
    (out / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    print_report(result)
    print(f"figures in {out.relative_to(ROOT)}/result.json")
    if profiler is not None:
        print(f"profile (py-spy, collapsed stacks) in {out.relative_to(ROOT)}/profile.txt")
    if not args.no_write:
        update_benchmarks(markdown(result))
    return 0 if all(result["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
