"""Faults (issue 11): PostgreSQL stopped and started under a serving app, and the app killed in
the middle of writes. Nothing acknowledged is lost or doubled; a write sent again with its
idempotency key lands once.

Both run `gridmap serve` in a process of its own (as in production: a kill is a real kill) on a
cluster made for this module (tests/clusters.py): the shared local cluster is never stopped.
The figures are printed (pytest -s) for BENCHMARKS.md."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg2
import pytest
from clusters import Cluster, free_port, throwaway_cluster
from conftest import GRIDMAP, ScratchDB, as_role, demo_tokens
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.testclient import TestClient
from test_family_files import owner

import api.database
from api.app import create_app
from api.errors import unavailable
from api.schema.relay import global_id, parse_global_id
from api.settings import Settings
from geo.demo import load_demo
from geo.migrate import upgrade

HOUSEHOLDS = 300  # a small demo: the faults do not depend on its size
ANSWER_WITHIN = 5.0  # seconds: no request waits longer, database up or down
RECOVER_WITHIN = 5.0  # seconds after the database is back
HOUSEHOLDS_Q = "{ households(first: 5) { totalCount edges { node { code } } } }"  # one SQL
CASES_Q = "{ cases(first: 5) { totalCount edges { node { number state } } } }"  # resolvers
RECORD = """mutation($input: RecordVisitInput!) { recordVisit(input: $input) {
  visit { id demands { resolution } } replayed } }"""
REPORT = """mutation($input: ReportCaseInput!) { reportCase(input: $input) {
  case { id number photos { stage } } } }"""
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class World:
    cluster: Cluster
    db: ScratchDB
    tokens: dict[str, dict[str, str]]
    households: list[str]  # global ids of class B households in the grid worker's grids
    worker: str  # the grid worker's global id
    point: dict[str, float]  # inside the grid worker's first grid
    logs: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo on a cluster of this module's own."""
    with throwaway_cluster() as cluster:
        cluster.add_app_database()
        key = Settings().secret_key
        upgrade(cluster.owner, secret_key=key)
        load_demo(url=cluster.owner, secret_key=key, households=HOUSEHOLDS, progress=False)
        db = ScratchDB("gridmap", cluster.owner, cluster.app)
        tokens = demo_tokens(db)
        code = tokens["grid_worker"]["worker"]
        mine = owner(db,
            "SELECT h.id FROM household h JOIN worker_grid wg ON left(h.code, 15) = "
            "(SELECT g.code FROM grid g WHERE g.id = wg.grid_id) JOIN worker w ON "
            "w.id = wg.worker_id WHERE w.code = %s AND h.household_class = 'B' "
            "ORDER BY h.code LIMIT 8",
            code,
        )
        ((worker_id,),) = owner(db, "SELECT id FROM worker WHERE code = %s", code)
        ((lon, lat),) = owner(db,
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(g.geom) p FROM grid g"
            " JOIN worker_grid wg ON wg.grid_id = g.id JOIN worker w ON w.id = wg.worker_id"
            " WHERE w.code = %s ORDER BY g.code LIMIT 1) x",
            code,
        )
        assert len(mine) == 8
        yield World(
            cluster, db, tokens,
            households=[global_id("Household", h) for (h,) in mine],
            worker=global_id("Worker", worker_id),
            point={"lon": lon, "lat": lat},
            logs=tmp_path_factory.mktemp("faults"),
        )  # fmt: skip


class Server:
    """`gridmap serve` with one worker process on the world's database; its output in a log."""

    def __init__(self, world: World, name: str) -> None:
        self.log = world.logs / f"{name}.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "GRIDMAP_DATABASE_URL": world.db.app_url,
            "GRIDMAP_OWNER_DATABASE_URL": world.db.owner_url,
            "GRIDMAP_SECRET_KEY": Settings().secret_key,
            "GRIDMAP_ENV": "test",
            # The load here is a few clients sharing two logins: not what the limits are for.
            "GRIDMAP_RATE_LIMIT_PER_SECOND": "100000",
            "GRIDMAP_RATE_LIMIT_BURST": "100000",
        }
        port = self.url.rsplit(":", 1)[1]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [GRIDMAP, "serve", "--workers", "1", "--port", port],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"gridmap serve did not come up within 30 s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no shutdown, no cleanup
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Server]:
    """One app for the module (starting one takes seconds): the database restarts under it,
    then the last test kills it."""
    app = Server(world, "app")
    yield app
    app.stop()


@dataclass
class Call:
    what: str  # "households", "cases", "visit" or "case"
    sent: float  # time.monotonic()
    took: float
    status: int | None  # None: no answer (the connection failed or timed out)
    code: str | None = None  # the first error's extensions.code
    body: dict[str, Any] | None = None


def post(client: httpx.Client, what: str, query: str, **variables: Any) -> Call:
    sent = time.monotonic()
    try:
        response = client.post("/graphql", json={"query": query, "variables": variables})
    except httpx.TransportError:
        return Call(what, sent, time.monotonic() - sent, None)
    took = time.monotonic() - sent
    try:
        body = response.json()
    except ValueError:
        return Call(what, sent, took, response.status_code, "NOT_JSON", {"text": response.text})
    errors = body.get("errors") if isinstance(body, dict) else None
    code = errors[0].get("extensions", {}).get("code") if errors else None
    return Call(what, sent, took, response.status_code, code, body)


def client(server: Server, world: World, role: str) -> httpx.Client:
    token = world.tokens[role]["token"]
    return httpx.Client(
        base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    )


def visit_id(body: dict[str, Any]) -> str:
    return str(body["data"]["recordVisit"]["visit"]["id"])


def a_visit(world: World, n: int) -> dict[str, Any]:
    """A visit with one escalated demand: a visit, a demand, a case and its event, or none."""
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1, seconds=n)
    return {
        "householdId": world.households[n % len(world.households)],
        "workerId": world.worker,
        "visitedAt": at.isoformat(),
        "mode": "DOOR",
        "idempotencyKey": str(uuid.uuid4()),
        "demands": [{"text": f"楼道灯坏了 #{n}", "resolution": "ESCALATED",
                     "category": "FACILITY_REPAIR"}],
    }  # fmt: skip


@dataclass
class Load:
    """Readers and phones recording visits, each a thread. A phone sends a visit until it is
    acknowledged (the same key every time), then the next one, as the app on a phone does."""

    server: Server
    world: World
    calls: list[Call] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key → visit id
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → input
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: Iterator[int] = field(default_factory=lambda: iter(range(1_000_000)))

    def start(self, readers: int = 2, phones: int = 2) -> None:
        for i in range(readers):
            self.threads.append(threading.Thread(target=self._read, args=(i,)))
        for _ in range(phones):
            self.threads.append(threading.Thread(target=self._phone))
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def _read(self, i: int) -> None:
        with client(self.server, self.world, "grid_center") as c:
            while not self.stopping.is_set():
                what, query = [("households", HOUSEHOLDS_Q), ("cases", CASES_Q)][i % 2]
                self._record(post(c, what, query))
                i += 1
                time.sleep(0.02)

    def _phone(self) -> None:
        with client(self.server, self.world, "grid_worker") as c:
            visit = None
            while not self.stopping.is_set():
                if visit is None:
                    visit = a_visit(self.world, next(self.numbers))
                    self.sent[visit["idempotencyKey"]] = visit
                call = post(c, "visit", RECORD, input=visit)
                self._record(call)
                if call.status == 200 and call.code is None and call.body:
                    self.acked[visit["idempotencyKey"]] = visit_id(call.body)
                    visit = None
                time.sleep(0.02)

    def wait_for_acks(self, count: int, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"{len(self.acked)} visits acknowledged"
            time.sleep(0.02)


def visits_by_key(world: World, keys: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Key → (visit id, demands, cases, case events) of every visit recorded with it, read as
    the owner (row-level security does not hide any)."""
    found: dict[str, list[tuple[Any, ...]]] = {key: [] for key in keys}
    for key, *rest in owner(world.db,
        "SELECT v.idempotency_key, v.id,"
        " (SELECT count(*) FROM demand d WHERE d.visit_id = v.id),"
        " (SELECT count(*) FROM grid_case c WHERE c.visit_id = v.id),"
        " (SELECT count(*) FROM case_event e JOIN grid_case c ON c.id = e.case_id"
        "  WHERE c.visit_id = v.id)"
        " FROM visit v WHERE v.idempotency_key = ANY(%s)",
        keys,
    ):
        found[key].append(tuple(rest))
    return found


class Watcher:
    """What the app does in the database, seen as the superuser (one connection, kept)."""

    def __init__(self, world: World) -> None:
        dsn = make_url(world.cluster.admin).set(drivername="postgresql")
        self.conn = psycopg2.connect(dsn.render_as_string(hide_password=False))
        self.conn.autocommit = True

    def sessions(self, *, in_transaction: bool = False) -> int:
        """The app's sessions; ``in_transaction``: those in the middle of a transaction."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'gridmap_app'"
                " AND (NOT %s OR (xact_start IS NOT NULL AND state <> 'idle'))",
                (in_transaction,),
            )
            return int(cur.fetchone()[0])

    def wait_for_transaction(self, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while not self.sessions(in_transaction=True):
            assert time.monotonic() < deadline, "no transaction of the app seen"

    def close(self) -> None:
        self.conn.close()


def assert_whole(key: str, visit: tuple[Any, ...]) -> None:
    _, demands, cases, events = visit
    assert (demands, cases) == (1, 1) and events >= 1, (key, visit)


def stats(calls: list[Call]) -> str:
    counts: dict[str, int] = {}
    for c in calls:
        label = f"{c.status}" + (f" {c.code}" if c.code else "")
        counts[label] = counts.get(label, 0) + 1
    worst = max((c.took for c in calls), default=0)
    return f"{len(calls)} requests {dict(sorted(counts.items()))}, slowest {worst:.3f} s"


# --- PostgreSQL stopped and started under the app ---


def page_calls(server: Server, world: World) -> dict[str, httpx.Response]:
    """Every kind of route other than /graphql that reads the database."""
    token = world.tokens["grid_center"]["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        login_form = c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_form.text)
        assert csrf, login_form.text
        got = {
            "GET /healthz": c.get("/healthz"),
            "GET /maps/coverage": c.get("/maps/coverage?scope=310106&level=GRID", headers=auth),
            "GET /cases/…/photos/…": c.get(f"/cases/2026-000001/photos/{uuid.uuid4()}",
                                           headers=auth),
            "GET /open311/v2/services.json": c.get("/open311/v2/services.json"),
            "GET /open311/v2/requests.xml": c.get("/open311/v2/requests.xml"),
            "POST /login": c.post("/login", data={"code": world.tokens["grid_worker"]["worker"],
                                                  "password": "x", "csrf_token": csrf[1]}),
            "GET /graphql (a query)": c.get("/graphql", params={"query": CASES_Q}, headers=auth),
        }  # fmt: skip
    return got


# fast: a restart (sessions ended, a checkpoint); immediate: as if the server crashed.
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_restart_is_answered_503_and_loses_no_acknowledged_visit(
    world: World, server: Server, mode: str
) -> None:
    load = Load(server, world)
    load.start()
    running = True
    try:
        load.wait_for_acks(10)
        stopping = time.monotonic()
        running = False
        world.cluster.stop(mode)
        down = time.monotonic()
        time.sleep(0.3)
        pages = page_calls(server, world)
        time.sleep(1.2)
        starting = time.monotonic()
        world.cluster.start()
        running = True
        up = time.monotonic()
        # Back by itself: the first answer after the database came back, then more load.
        probe = client(server, world, "grid_center")
        while (first := post(probe, "cases", CASES_Q)).status != 200:
            assert time.monotonic() - up < RECOVER_WITHIN, first
            time.sleep(0.05)
        probe.close()
        recovered = first.sent + first.took - up
        acked_before = len(load.acked)
        load.wait_for_acks(acked_before + 10, within=RECOVER_WITHIN)
        time.sleep(0.5)
    finally:
        load.stop()
        if not running:  # for the tests after this one
            world.cluster.start()

    calls = sorted(load.calls, key=lambda c: c.sent)
    outage = [c for c in calls if down <= c.sent and c.sent + c.took <= starting]
    cut = [c for c in calls if c.sent < down and c.sent + c.took > stopping]  # in flight
    after = [c for c in calls if c.sent >= up]
    # Never a hang, never a 500, never an answer that is not JSON.
    assert all(c.status is not None and c.took < ANSWER_WITHIN for c in calls), stats(calls)
    assert all(c.status in (200, 503) for c in calls), [c for c in calls if c.status != 200]
    assert all(c.code == "UNAVAILABLE" for c in calls if c.status == 503)
    for c in calls:
        if c.status == 503:
            assert c.body and c.body.get("data") is None and len(c.body["errors"]) == 1, c.body
    # While the database is down, every request is refused at once, and clearly.
    assert len(outage) >= 20 and {c.status for c in outage} == {503}, stats(outage)
    assert {c.what for c in outage} == {"households", "cases", "visit"}
    # Back by itself within seconds; whatever failed after it came back failed early on.
    late = [c for c in after if c.status != 200]
    assert all(c.sent - up < RECOVER_WITHIN for c in late), late
    assert recovered < RECOVER_WITHIN
    assert sum(c.status == 200 for c in after) >= 20
    # Pages, files, Open311 and login: a 503 with a plain message, not a 500.
    for name, response in pages.items():
        assert response.status_code == 503, (name, response.status_code, response.text)
        assert "Traceback" not in response.text and "psycopg2" not in response.text, name
        if "graphql" not in name and "healthz" not in name:
            assert "not available just now" in response.text, (name, response.text)
            assert response.headers["retry-after"] == "5"
    # Every visit sent: the phone's last one is sent until it is acknowledged, then each lands
    # exactly once and whole.
    retried = 0
    with client(server, world, "grid_worker") as c:
        for key, visit in load.sent.items():
            if key not in load.acked:
                again = post(c, "visit", RECORD, input=visit)
                assert again.status == 200 and again.code is None, again
                load.acked[key] = visit_id(again.body or {})
                retried += 1
    keys = list(load.sent)
    found = visits_by_key(world, keys)
    for key in keys:
        assert len(found[key]) == 1, (key, found[key])
        assert_whole(key, found[key][0])
        assert str(found[key][0][0]) == str(parse_global_id(load.acked[key], argument="id")[1])
    sent_again = sum(1 for c in calls if c.what == "visit" and c.status != 200)
    page_statuses = {name: response.status_code for name, response in pages.items()}
    assert "Traceback" not in server.output()
    print(
        f"\nrestart ({mode}): {stats(calls)}; the database stopped in {down - stopping:.2f} s, "
        f"started in {up - starting:.2f} s\n  in flight at the stop: {stats(cut)}"
        f"\n  while down ({starting - down:.1f} s): {stats(outage)}"
        f"\n  pages while down: {page_statuses}"
        f"\n  first answer {recovered:.3f} s after the database was back; sent after it: "
        f"{stats(after)}\n  visits: {len(keys)} sent, {len(keys)} in the database exactly once "
        f"and whole (visit, demand, case, event: {4 * len(keys)} rows checked); "
        f"{sent_again} refused sends retried with the same key, {retried} more after the load"
    )


# --- the app killed in the middle of writes ---


def test_the_app_killed_mid_write_loses_nothing_acknowledged_and_a_retry_lands_once(
    world: World, server: Server
) -> None:
    visits: dict[str, dict[str, Any]] = {}
    acked: dict[str, str] = {}
    cases_acked: list[str] = []
    in_flight: dict[int, float] = {}
    answers: list[Call] = []
    lock = threading.Lock()
    tag = uuid.uuid4().hex[:8]  # marks this test's reported cases
    numbers = iter(range(100_000, 1_000_000))

    def phone() -> None:
        me = threading.get_ident()
        with client(server, world, "grid_worker") as c:
            while True:
                visit = a_visit(world, next(numbers))
                with lock:
                    visits[visit["idempotencyKey"]] = visit
                    in_flight[me] = time.monotonic()
                call = post(c, "visit", RECORD, input=visit)
                with lock:
                    in_flight.pop(me)
                    answers.append(call)
                if call.status != 200 or call.code or not call.body:
                    return  # the app is gone: the phone keeps the visit to send again
                acked[visit["idempotencyKey"]] = visit_id(call.body)

    def reporter() -> None:
        photo = {"stage": "REPORT", "contentType": "image/png",
                 "dataBase64": base64.b64encode(PNG).decode()}  # fmt: skip
        with client(server, world, "grid_worker") as c:
            while True:
                case = {"category": "EXPOSED_GARBAGE", "description": f"垃圾 {tag}",
                        **world.point, "photos": [photo]}  # fmt: skip
                call = post(c, "case", REPORT, input=case)
                with lock:
                    answers.append(call)
                if call.status != 200 or call.code or not call.body:
                    return
                cases_acked.append(call.body["data"]["reportCase"]["case"]["number"])

    threads = [threading.Thread(target=phone) for _ in range(6)]
    threads.append(threading.Thread(target=reporter))
    for thread in threads:
        thread.start()
    watcher = Watcher(world)
    try:
        deadline = time.monotonic() + 20
        while len(acked) < 30:
            assert time.monotonic() < deadline, len(acked)
            time.sleep(0.01)
        watcher.wait_for_transaction()  # a write half done in the database
        with lock:
            server.kill()
            cut = len(in_flight)
        killed = time.monotonic()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        # The database notices the app gone and rolls back what it left open.
        while watcher.sessions():
            assert time.monotonic() - killed < 5, "the killed app's sessions linger"
            time.sleep(0.01)
        ended = time.monotonic() - killed
    finally:
        watcher.close()
    assert all(c.status in (200, None) for c in answers), [c for c in answers if c.status != 200]

    # Before any retry: every acknowledged visit is there once; the rest at most once; all
    # whole. A case reported is there with its event and photo, or not at all.
    keys = list(visits)
    unacked = [k for k in keys if k not in acked]
    found = visits_by_key(world, keys)
    for key in keys:
        assert len(found[key]) in ((1,) if key in acked else (0, 1)), (key, found[key])
        for visit in found[key]:
            assert_whole(key, visit)
    committed_unacked = [k for k in unacked if found[k]]
    reported = owner(world.db,
        "SELECT c.number, (SELECT count(*) FROM case_event e WHERE e.case_id = c.id"
        " AND e.action = 'REPORT'), (SELECT count(*) FROM case_photo p WHERE p.case_id = c.id)"
        " FROM grid_case c WHERE c.description = %s",
        f"垃圾 {tag}",
    )
    assert all(events == 1 and photos == 1 for _, events, photos in reported), reported
    assert set(cases_acked) <= {number for number, _, _ in reported}
    assert len({number for number, _, _ in reported}) == len(reported)

    # The phones send their unacknowledged visits again, to the app started anew.
    again = Server(world, "restarted")
    replayed = 0
    try:
        with client(again, world, "grid_worker") as c:
            for key in unacked:
                call = post(c, "visit", RECORD, input=visits[key])
                assert call.status == 200 and call.code is None and call.body, call
                payload = call.body["data"]["recordVisit"]
                assert payload["replayed"] == bool(found[key]), (key, payload)
                replayed += payload["replayed"]
                acked[key] = payload["visit"]["id"]
    finally:
        again.stop()
    assert "Traceback" not in again.output()
    found = visits_by_key(world, keys)
    for key in keys:
        assert len(found[key]) == 1, (key, found[key])
        assert_whole(key, found[key][0])
        assert str(found[key][0][0]) == str(parse_global_id(acked[key], argument="id")[1])
    print(
        f"\nkill: SIGKILL with {cut} visits in flight (its database sessions gone "
        f"{ended:.2f} s later); {len(keys)} visits sent, "
        f"{len(keys) - len(unacked)} acknowledged, all there once; {len(unacked)} not "
        f"acknowledged, of which {len(committed_unacked)} committed whole, none in part; "
        f"sent again: {len(unacked)} landed, {replayed} as the visit already recorded; "
        f"{len(keys)} visits × (visit, demand, case, event) checked; {len(reported)} cases "
        f"reported ({len(cases_acked)} acknowledged), each with its event and photo"
    )


# --- what counts as the database being away, and a commit whose answer is lost ---


def test_only_the_database_being_away_is_unavailable(world: World) -> None:
    """Errors the server raises: a statement over its time limit is (the database is too busy
    to answer in time), a mistake in a statement or a lock refused is not (a bug: a 500)."""
    engine = create_engine(world.db.owner_url)

    def error_of(*statements: str) -> DBAPIError:
        with pytest.raises(DBAPIError) as caught, engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
        return caught.value

    try:
        timeout = error_of("SET LOCAL statement_timeout = 1", "SELECT pg_sleep(1)")
        assert timeout.orig.pgcode == "57014" and unavailable(timeout)
        assert not unavailable(error_of("SELEC 1"))
        assert not unavailable(error_of("SELECT 1 / 0"))
        with engine.begin() as holder:
            holder.execute(text("SELECT 1 FROM worker LIMIT 1 FOR UPDATE"))
            refused = error_of("SELECT 1 FROM worker LIMIT 1 FOR UPDATE NOWAIT")
        assert refused.orig.pgcode == "55P03" and not unavailable(refused)
    finally:
        engine.dispose()
    gone = create_engine(f"postgresql+psycopg2://nobody:x@127.0.0.1:{free_port()}/nobody")
    try:
        with pytest.raises(OperationalError) as refused_connection:
            gone.connect()
        assert unavailable(refused_connection.value)
    finally:
        gone.dispose()


def test_a_commit_whose_answer_is_lost_is_unavailable_and_its_retry_lands_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit reached the database but its answer did not come back (the connection broke
    just then): the client cannot be told the visit was recorded, so it is told to retry; the
    retry with the same key finds the visit and records nothing more. In a batch, the others'
    answers stand: a 503 is only for a request of which nothing was done."""
    finish = api.database._finish
    commits: list[bool] = []  # whether each commit's answer is lost

    def commit_and_maybe_lose_the_answer(session: Any, commit: bool) -> None:
        finish(session, commit)
        if commit and commits.pop(0):
            lost = psycopg2.OperationalError("server closed the connection unexpectedly")
            raise OperationalError("COMMIT", {}, lost)

    def send(worker: TestClient, *visits: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        one = [{"query": RECORD, "variables": {"input": v}} for v in visits]
        response = worker.post("/graphql", json=one if len(one) > 1 else one[0])
        body = response.json()
        if response.status_code == 503:
            assert response.headers["retry-after"] == "5"
        return response.status_code, body if isinstance(body, list) else [body]

    first, second, third = (a_visit(world, 999_990 + i) for i in range(3))
    monkeypatch.setattr(api.database, "_finish", commit_and_maybe_lose_the_answer)
    with TestClient(create_app(world.db.settings())) as app:
        worker = as_role(app, world.tokens, "grid_worker")
        commits[:] = [True]
        status, [body] = send(worker, first)
        assert status == 503 and body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"]
        commits[:] = [False, True]
        status, [done, lost] = send(worker, second, third)
        assert status == 200 and "errors" not in done and lost["data"] is None
        assert lost["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        commits[:] = [False, False]
        for visit in (first, third):
            status, [again] = send(worker, visit)
            assert status == 200 and again["data"]["recordVisit"]["replayed"] is True
    keys = [v["idempotencyKey"] for v in (first, second, third)]
    found = visits_by_key(world, keys)
    for key in keys:
        assert len(found[key]) == 1, (key, found[key])
        assert_whole(key, found[key][0])


def test_an_app_whose_database_is_down_from_the_start_answers_503(world: World) -> None:
    """Started while its database is down (or pointed at a wrong port): it starts, and every
    route that needs the database answers 503 at once, the credentials' check included."""
    dead = f"postgresql+psycopg2://gridmap_app:x@127.0.0.1:{free_port()}/gridmap"
    token = world.tokens["grid_center"]["token"]
    with TestClient(create_app(ScratchDB("gone", dead, dead).settings())) as app:
        public = TestClient(app.app)
        center = as_role(app, world.tokens, "grid_center")
        grids = {"query": "{ grids(first: 3) { edges { node { code } } } }"}
        households = {"query": HOUSEHOLDS_Q}
        answers = {
            "the public's query": public.post("/graphql", json=grids),
            "a worker's query": center.post("/graphql", json={"query": CASES_Q}),
            "a batch": public.post("/graphql", json=[grids, households]),
            "a GET query": public.get("/graphql", params=households),
        }
        for name, response in answers.items():
            assert response.status_code == 503, (name, response.text)
            body = response.json()
            for answer in body if isinstance(body, list) else [body]:
                assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAVAILABLE"]
        pages = {
            "/maps/coverage?scope=310106&level=GRID": {"Authorization": f"Bearer {token}"},
            "/open311/v2/services.json": {},
            "/healthz": {},
        }
        for path, headers in pages.items():
            response = public.get(path, headers=headers)
            assert response.status_code == 503, (path, response.text)
