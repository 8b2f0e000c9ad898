"""Side by side: gridmap against PostGraphile 4 (with PostGIS) and the raw floor, on one database.

    make bench                                            # installs what is missing, then this
    .venv/bin/python bench/side_by_side.py                # the default demo (5,000 households)
    .venv/bin/python bench/side_by_side.py --database gridmap_bench_1m --households 1000000 \\
        --duration 5                                      # 1,000,000 households (~1 min to load)
    .venv/bin/python bench/side_by_side.py --queries 1 --clients 16 --rounds 1 --duration 3
    .venv/bin/python bench/side_by_side.py --keep-going   # a failing cell does not stop the rest

Needs ``wrk`` and ``bench/peers/node_modules`` (``make bench`` installs both) and the ``bench``
extra (matplotlib). ``--database`` names a database of the local cluster (or is the owner's URL
of one): created, migrated and loaded with the demo when it does not exist (``--households``,
5,000 by default). Not the development database by default: gridmap writes one audit row per
household whose class or members it returns, into an append-only table.

What it does, in order:

1. Runs ``bench/peers/functions.sql`` as the tables' owner: the SQL functions PostGraphile's users
   would add for these queries (``bench.buildings_near`` and two computed columns, which
   PostGraphile only picks up in the table's own schema, so those two are in ``public`` and are
   dropped again at the end).
2. Starts three servers on free loopback ports: gridmap (uvicorn, ``--workers``, access log off,
   as the app role ``gridmap_app`` with a grid-center Bearer token: row-level security, masking
   and the audit log all on; only its per-caller rate limit is raised out of reach, since one
   token makes every request), PostGraphile (``bench/peers``, as the tables' owner, as a default
   install connects; query log off) and the floor (``bench/floor.py``: one SQL statement per
   answer, as the owner).
3. Checks that the three answer each query with the same data (codes in the same order, counts,
   classes, names, distances, geometries within 1e-6°), and stops with the difference otherwise.
4. For each query, client count and round, runs ``wrk`` (``bench/post.lua``) against each server
   in turn (the order rotates each round) after a short warm-up of each. A run in which fewer
   than 3 answers per client came back is repeated longer (up to 120 s): a closed loop counts
   the answers still under way at the end as never given. Any socket error, timeout (30 s),
   non-2xx answer or answer with GraphQL errors stops the run (with ``--keep-going``: marks that
   cell FAILED, measures the rest, and exits 1 at the end).
5. Prints a table, writes the figures as JSON under ``bench/out/`` (gitignored), replaces this
   scale's section in ``BENCHMARKS.md`` and redraws ``bench/results.png``.

CPU share: the machine's cores are not divided. All three servers run all the time but only one
is under load at a time, so each has the whole machine in turn, shared with wrk and PostgreSQL,
everything at the same niceness and without pinning; each server is one process (unless
``--workers``) with a pool of 10 PostgreSQL connections (gridmap: 10 per worker for compiled
reads, and a pool of 10 that may overflow to 20 for the rest).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import URL, make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from api.auth import issue_token  # noqa: E402
from api.settings import Settings  # noqa: E402
from geo.demo import demo_logins_of, load_demo  # noqa: E402
from geo.migrate import upgrade  # noqa: E402

QUERIES = BENCH / "queries"
PEERS = BENCH / "peers"
OUT = BENCH / "out"
BENCHMARKS = ROOT / "BENCHMARKS.md"
PLOT = BENCH / "results.png"
LUA = BENCH / "post.lua"

SERVERS = ("gridmap", "postgraphile", "floor")
LABELS = {"gridmap": "gridmap", "postgraphile": "PostGraphile", "floor": "floor"}
QUERY_TITLES = {
    1: "grid → 10 micro-grids → buildings → 20 households each, GeoJSON and counts",
    2: "buildings within 300 m of a point, nearest first, with the distance",
    3: "a 500-row page of households with their members",
    4: "every grid of a sub-district with geometry and household count",
}
PLUGINS = (
    "@graphile/postgis",
    "postgraphile-plugin-connection-filter",
    "postgraphile-plugin-connection-filter-postgis",
)
# The computed columns of bench/peers/functions.sql that have to live in public.
PUBLIC_FUNCTIONS = ("grid_household_count(grid)", "micro_grid_household_count(micro_grid)")
WARMUP_S = 3
MIN_ANSWERS_PER_CLIENT = 3
MAX_SECONDS = 120
RATE_LIMIT = 1_000_000  # gridmap's per-caller requests/s and burst while measuring
STARTUP_TIMEOUT_S = 90
TOLERANCE = 1e-6  # degrees (about 10 cm) and metres: GeoJSON digits differ between the sides

BEGIN = "<!-- bench/side_by_side.py: begin -->"
END = "<!-- bench/side_by_side.py: end -->"


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


class LoadFailure(BenchError):
    """A server failed under load (errors, non-2xx, timeouts); ``short`` says how in one line."""

    def __init__(self, message: str, short: str) -> None:
        super().__init__(message)
        self.short = short


# --- the database -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    name: str
    owner_url: str  # SQLAlchemy URL of the tables' owner
    app_url: str  # SQLAlchemy URL of the app role

    @property
    def owner_dsn(self) -> str:
        return _libpq(self.owner_url)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def resolve_database(spec: str, settings: Settings) -> Database:
    """A database name of the local cluster, or the owner's URL of a database on the same server
    as the settings' app role (which then connects to it too)."""
    settings.require_database()
    assert settings.owner_database_url and settings.database_url
    if "://" in spec:
        owner = make_url(spec)
        if not owner.database:
            raise BenchError(f"--database {spec!r}: the URL names no database")
        app = make_url(settings.database_url).set(
            host=owner.host, port=owner.port, database=owner.database
        )
    else:
        owner = make_url(settings.owner_database_url).set(database=spec)
        app = make_url(settings.database_url).set(database=spec)
    return Database(
        name=str(owner.database),
        owner_url=_render(owner),
        app_url=_render(app),
    )


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def prepare_database(db: Database, households: int | None, secret_key: str) -> dict[str, Any]:
    """Create, migrate and load the demo when needed; the scale of what is there."""
    admin = psycopg2.connect(_libpq(_render(make_url(db.owner_url).set(database="postgres"))))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.name,))
            exists = cur.fetchone() is not None
            if not exists:
                print(f"creating database {db.name}")
                cur.execute(f'CREATE DATABASE "{db.name}"')
    finally:
        admin.close()
    upgrade(db.owner_url, secret_key=secret_key)
    loaded = _demo_households(db)
    if loaded is None:
        size = households or 5000
        print(f"loading the demo ({size:,} households) into {db.name}")
        print(load_demo(url=db.owner_url, secret_key=secret_key, households=size, progress=True))
    elif households is not None and households != loaded:
        raise BenchError(
            f"database {db.name} holds the {loaded:,}-household demo, not {households:,}: "
            f"leave out --households or name another --database"
        )
    with _owner(db) as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM household), (SELECT count(*) FROM person),"
            " (SELECT count(*) FROM building), (SELECT count(*) FROM grid),"
            " (SELECT count(*) FROM subdistrict), current_setting('server_version'),"
            " postgis_lib_version()"
        )
        row = cur.fetchone()
        assert row is not None
    return {
        "database": db.name,
        "households": row[0],
        "persons": row[1],
        "buildings": row[2],
        "grids": row[3],
        "subdistricts": row[4],
        "postgresql": row[5],
        "postgis": row[6],
    }


def _demo_households(db: Database) -> int | None:
    with _owner(db) as cur:
        cur.execute("SELECT households FROM demo_info WHERE id = 1")
        row = cur.fetchone()
    return None if row is None else int(row[0])


@contextlib.contextmanager
def _owner(db: Database) -> Iterator[Any]:
    conn = psycopg2.connect(db.owner_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def install_peer_functions(db: Database) -> None:
    with _owner(db) as cur:
        cur.execute((PEERS / "functions.sql").read_text(encoding="utf-8"))


def drop_peer_functions(db: Database) -> None:
    with _owner(db) as cur:
        for fn in PUBLIC_FUNCTIONS:
            cur.execute(f"DROP FUNCTION IF EXISTS public.{fn}")


def grid_center_token(db: Database, settings: Settings) -> tuple[str, str]:
    from sqlalchemy import create_engine

    from geo.workers import worker_by_code

    code = demo_logins_of(db.owner_url).get("GRID_CENTER")
    if code is None:
        raise BenchError(f"database {db.name} has no demo grid-center worker")
    engine = create_engine(db.owner_url)
    try:
        with engine.connect() as connection:
            worker = worker_by_code(connection=connection, code=code)
    finally:
        engine.dispose()
    return code, issue_token(settings, worker, ttl=dt.timedelta(hours=24))


# --- the servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None

    def url(self, query: int) -> str:
        path = f"/q{query}" if self.name == "floor" else "/graphql"
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        with self.log.open("wb") as log:
            # A session of its own: stopping it ends its children (uvicorn's workers) too.
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        p = self.process
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_quiet(limit: float = 1.0, patience_s: int = 300) -> float:
    """Wait (up to ``patience_s``) for the 1-minute load average to fall below ``limit``: other
    work on the machine would be measured too. Returns the load average measuring starts at."""
    deadline = time.monotonic() + patience_s
    load = os.getloadavg()[0]
    if load >= limit:
        print(f"the machine is busy (load average {load:.2f}): waiting up to {patience_s} s")
    while load >= limit and time.monotonic() < deadline:
        time.sleep(10)
        load = os.getloadavg()[0]
    if load >= limit:
        print(f"WARNING: measuring on a busy machine (load average {load:.2f})", file=sys.stderr)
    return load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_servers(db: Database, workers: int, logs: Path) -> dict[str, Server]:
    python = sys.executable
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDMAP_", "PG"))}
    base.pop("DATABASE_URL", None)
    owner = make_url(db.owner_url)
    gridmap_env = {
        **base,
        "GRIDMAP_DATABASE_URL": db.app_url,
        "GRIDMAP_OWNER_DATABASE_URL": db.owner_url,
        "GRIDMAP_SECRET_KEY": Settings().secret_key,
        # One token makes every request: the per-caller rate limit (50/s by default) would
        # measure itself. It still runs, with a ceiling out of reach.
        "GRIDMAP_RATE_LIMIT_PER_SECOND": str(RATE_LIMIT),
        "GRIDMAP_RATE_LIMIT_BURST": str(RATE_LIMIT),
    }
    # libpq's variables keep the password out of the process list.
    pg_env = {
        **base,
        "PGHOST": str(owner.host or "127.0.0.1"),
        "PGPORT": str(owner.port or 5432),
        "PGUSER": str(owner.username),
        "PGPASSWORD": str(owner.password or ""),
        "PGDATABASE": db.name,
    }
    ports = {name: free_port() for name in SERVERS}
    return {
        "gridmap": Server(
            "gridmap",
            [
                python,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["gridmap"]),
                "--workers",
                str(workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            gridmap_env,
            ports["gridmap"],
            logs / "gridmap.log",
        ),
        "postgraphile": Server(
            "postgraphile",
            [
                str(PEERS / "node_modules" / ".bin" / "postgraphile"),
                "--schema",
                "public,bench",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["postgraphile"]),
                # ONE comma-separated list: a space-separated one silently drops plugins.
                "--append-plugins",
                ",".join(PLUGINS),
                "--dynamic-json",
                "--no-setof-functions-contain-nulls",
                "--disable-query-log",
            ],
            {**pg_env, "NODE_ENV": "production"},
            ports["postgraphile"],
            logs / "postgraphile.log",
            cwd=PEERS,
        ),
        "floor": Server(
            "floor",
            [python, str(BENCH / "floor.py"), "--port", str(ports["floor"])],
            pg_env,
            ports["floor"],
            logs / "floor.log",
        ),
    }


def post(url: str, body: bytes, token: str | None = None, timeout: float = 60) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(servers: dict[str, Server]) -> None:
    probes: dict[str, Callable[[], object]] = {
        "gridmap": lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{servers['gridmap'].port}/healthz", timeout=5
        ).read(),
        "postgraphile": lambda: post(servers["postgraphile"].url(1), b'{"query":"{__typename}"}'),
        "floor": lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{servers['floor'].port}/healthz", timeout=5
        ).read(),
    }
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    pending = set(servers)
    while pending:
        for name in sorted(pending):
            server = servers[name]
            assert server.process is not None
            if server.process.poll() is not None:
                raise BenchError(
                    f"{name} exited ({server.process.returncode}) while starting; its log "
                    f"({server.log}):\n{server.log_tail()}"
                )
            try:
                probes[name]()
            except (OSError, ValueError):
                continue
            pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise BenchError(f"not ready after {STARTUP_TIMEOUT_S} s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.3)


# --- the queries and their answers --------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    number: int
    variables: dict[str, Any]
    bodies: dict[str, Path]  # server → the request body's file


def _graphql(path: Path) -> str:
    """The query without its comment lines (they would only cost parsing)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#")).strip()


def load_queries(numbers: list[int], out: Path) -> dict[int, Query]:
    queries = {}
    for n in numbers:
        variables = json.loads((QUERIES / "variables" / f"q{n}.json").read_text(encoding="utf-8"))
        gridmap_body = {
            "query": _graphql(QUERIES / "gridmap" / f"q{n}.graphql"),
            "variables": variables,
        }
        bodies = {
            "gridmap": gridmap_body,
            "postgraphile": {
                "query": _graphql(QUERIES / "postgraphile" / f"q{n}.graphql"),
                "variables": variables,
            },
            # The floor gets gridmap's very request and reads only its variables.
            "floor": gridmap_body,
        }
        files = {}
        for server, body in bodies.items():
            path = out / "bodies" / f"q{n}.{server}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
            files[server] = path
        queries[n] = Query(n, variables, files)
    return queries


def _edges(connection: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in connection["edges"]]


def normalize(query: int, server: str, answer: dict[str, Any]) -> Any:
    """The data of an answer in one shape for all three sides (gridmap's and the floor's are the
    same; PostGraphile names things its own way)."""
    if answer.get("errors"):
        raise BenchError(f"q{query}: {server} answered with errors: {answer['errors']}")
    data = answer.get("data")
    if data is None:
        raise BenchError(f"q{query}: {server} answered without data: {answer}")
    pg = server == "postgraphile"
    if query == 1:
        grid = data["gridByCode" if pg else "grid"]
        if grid is None:
            raise BenchError(f"q1: {server} found no grid {data}")
        return _grid_tree(grid, pg)
    if query == 2:
        rows = data["buildingsNear"]["nodes"] if pg else _edges(data["buildings"])
        return [
            {
                "code": r["code"],
                "distanceMeters": r["distanceMeters"],
                "geometry": r["geom"]["geojson"] if pg else r["geometry"],
            }
            for r in rows
        ]
    if query == 3:
        rows = data["allHouseholds"]["nodes"] if pg else _edges(data["households"])
        return [
            {
                "code": r["code"],
                "householdClass": r["householdClass"],
                "members": r["peopleByHouseholdId"]["nodes"] if pg else r["members"],
            }
            for r in rows
        ]
    if query == 4:
        rows = data["allGrids"]["nodes"] if pg else _edges(data["grids"])
        return [
            {
                "code": r["code"],
                "householdCount": r["householdCount"],
                "geometry": r["geom"]["geojson"] if pg else r["geometry"],
            }
            for r in rows
        ]
    raise BenchError(f"no query {query}")


def _grid_tree(grid: dict[str, Any], pg: bool) -> dict[str, Any]:
    def geometry(row: dict[str, Any]) -> Any:
        return row["geom"]["geojson"] if pg else row["geometry"]

    def households(b: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        if pg:
            conn = b["householdsByBuildingId"]
            return conn["totalCount"], conn["nodes"]
        return b["householdCount"], _edges(b["households"])

    def building(b: dict[str, Any]) -> dict[str, Any]:
        count, rows = households(b)
        return {
            "code": b["code"],
            "householdCount": count,
            "geometry": geometry(b),
            "households": rows,
        }

    def micro_grid(m: dict[str, Any]) -> dict[str, Any]:
        rows = m["buildingsByMicroGridId"]["nodes"] if pg else _edges(m["buildings"])
        return {
            "code": m["code"],
            "householdCount": m["householdCount"],
            "geometry": geometry(m),
            "buildings": [building(b) for b in rows],
        }

    rows = grid["microGridsByGridId"]["nodes"] if pg else _edges(grid["microGrids"])
    return {
        "code": grid["code"],
        "householdCount": grid["householdCount"],
        "geometry": geometry(grid),
        "microGrids": [micro_grid(m) for m in rows],
    }


def difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two normalized answers differ (None if nowhere); numbers within TOLERANCE."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path or '.'}: fields {sorted(a)} != {sorted(b)}"
        for key in a:
            found = difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if math.isclose(a, b, rel_tol=1e-9, abs_tol=TOLERANCE):
            return None
        return f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def describe(query: int, data: Any) -> str:
    if query == 1:
        buildings = [b for m in data["microGrids"] for b in m["buildings"]]
        households = sum(len(b["households"]) for b in buildings)
        return (
            f"grid {data['code']}: {len(data['microGrids'])} micro-grids, "
            f"{len(buildings)} buildings, {households} households"
        )
    if query == 3:
        members = sum(len(h["members"]) for h in data)
        return f"{len(data)} households, {members} members"
    return f"{len(data)} rows"


def verify(queries: dict[int, Query], servers: dict[str, Server], token: str, out: Path) -> None:
    """Stop unless the three sides give the same data for every query."""
    for n, query in queries.items():
        answers = {}
        for name, server in servers.items():
            body = query.bodies[name].read_bytes()
            try:
                raw = post(server.url(n), body, token if name == "gridmap" else None)
            except urllib.error.HTTPError as exc:
                raise BenchError(
                    f"q{n}: {name} answered HTTP {exc.code}: {exc.read()[:500]!r}"
                ) from None
            (out / "answers").mkdir(exist_ok=True)
            (out / "answers" / f"q{n}.{name}.json").write_text(
                json.dumps(raw, ensure_ascii=False, indent=1), encoding="utf-8"
            )
            answers[name] = normalize(n, name, raw)
        if not answers["gridmap"] or (n == 1 and not answers["gridmap"]["microGrids"]):
            raise BenchError(f"q{n}: the answer is empty: check bench/queries/variables/q{n}.json")
        for other in ("postgraphile", "floor"):
            found = difference(answers["gridmap"], answers[other])
            if found:
                raise BenchError(
                    f"q{n}: gridmap and {other} give different answers at {found} "
                    f"(answers in {out / 'answers'}): a benchmark of different answers is "
                    "worthless"
                )
        print(f"  q{n}: same answer from all three ({describe(n, answers['gridmap'])})")


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Run:
    query: int
    clients: int
    round: int
    server: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    bytes_per_answer: float
    seconds: int
    errors: dict[str, int] = field(default_factory=dict)
    failure: str | None = None  # how the server failed under load (--keep-going)


def wrk(server: Server, query: Query, clients: int, seconds: int, token: str) -> dict[str, Any]:
    threads = min(clients, 2)
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(clients),
        "-d",
        f"{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        server.url(query.number),
    ]
    env = {
        **os.environ,
        "BENCH_BODY": str(query.bodies[server.name]),
        "BENCH_TOKEN": token if server.name == "gridmap" else "",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(
            f"wrk failed against {server.name} (q{query.number}, {clients} clients): "
            f"{done.stdout[-1000:]}{done.stderr[-1000:]}"
        )
    return json.loads(line.removeprefix("BENCH_JSON "))


def check_errors(
    figures: dict[str, Any], what: str, server: Server, *, warmup: bool = False
) -> dict[str, int]:
    errors = {
        k: int(figures[k])
        for k in (
            "connect_errors",
            "read_errors",
            "write_errors",
            "status_errors",
            "timeouts",
            "graphql_errors",
        )
    }
    bad = {k: v for k, v in errors.items() if v}
    if bad or (figures["requests"] == 0 and not warmup):
        short = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in bad.items())
        short = f"{short or 'no answer'} of {figures['requests']} answers"
        raise LoadFailure(
            f"{what}: {server.name} failed under load: {short} (status errors: non-2xx answers; "
            "graphql errors: answers carrying errors; timeouts: no answer within 30 s). "
            f"Its log ({server.log}):\n{server.log_tail()}",
            short,
        )
    return errors


def measure_one(
    server: Server, query: Query, clients: int, seconds: int, token: str, what: str
) -> Run:
    """One wrk run. A closed loop whose answers take longer than a good part of the run would
    count the answers still under way at its end as never given: while fewer than
    MIN_ANSWERS_PER_CLIENT answers per client came back, the run is repeated longer (up to
    MAX_SECONDS)."""
    while True:
        figures = wrk(server, query, clients, seconds, token)
        check_errors(figures, what, server, warmup=True)  # errors fail at once, even here
        requests = int(figures["requests"])
        if requests >= MIN_ANSWERS_PER_CLIENT * clients or seconds >= MAX_SECONDS:
            break
        wanted = seconds * MIN_ANSWERS_PER_CLIENT * clients / max(requests, 1)
        seconds = min(MAX_SECONDS, max(2 * seconds, math.ceil(wanted * 1.2)))
        print(
            f"    ({server.name}: {requests} answers for {clients} clients: again for {seconds} s)"
        )
    errors = check_errors(figures, what, server)
    return Run(
        query=query.number,
        clients=clients,
        round=0,
        server=server.name,
        rps=requests / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        requests=requests,
        bytes_per_answer=figures["bytes"] / requests,
        seconds=seconds,
        errors=errors,
    )


def measure(
    queries: dict[int, Query],
    servers: dict[str, Server],
    clients: list[int],
    rounds: int,
    seconds: int,
    token: str,
    runs: list[Run],
    keep_going: bool = False,
) -> None:
    total = len(queries) * (
        len(SERVERS) * WARMUP_S + len(clients) * rounds * len(SERVERS) * (seconds + 1)
    )
    print(f"measuring: about {total / 60:.0f} min")
    for n, query in queries.items():
        for name in SERVERS:  # warm-up: caches, prepared statements, V8's JIT
            figures = wrk(servers[name], query, 16, min(WARMUP_S, seconds), token)
            check_errors(figures, f"q{n} warm-up", servers[name], warmup=True)
        for c in clients:
            for r in range(rounds):
                order = SERVERS[r % len(SERVERS) :] + SERVERS[: r % len(SERVERS)]
                for name in order:
                    if any(
                        x.failure for x in runs if (x.query, x.clients, x.server) == (n, c, name)
                    ):
                        continue  # failed once in this cell: not again
                    what = f"q{n}, {c} clients, round {r + 1}"
                    try:
                        run = measure_one(servers[name], query, c, seconds, token, what)
                    except LoadFailure as exc:
                        if not keep_going:
                            raise
                        print(f"  FAILED: {exc}", file=sys.stderr)
                        run = Run(n, c, r + 1, name, 0, 0, 0, 0, 0, 0, 0, failure=exc.short)
                        runs.append(run)
                        continue
                    run.round = r + 1
                    runs.append(run)
                    print(
                        f"  q{n} c={c:<3} round {r + 1} {name:<13} {run.rps:9.1f} req/s  "
                        f"p50 {run.p50_ms:8.2f} ms  p99 {run.p99_ms:8.2f} ms"
                    )
                    time.sleep(1)


# --- the report ---------------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, Any]:
    """Medians over the rounds: {"q1": {"16": {"gridmap": {...}}}}."""
    cells: dict[tuple[int, int, str], list[Run]] = {}
    for run in runs:
        cells.setdefault((run.query, run.clients, run.server), []).append(run)
    summary: dict[str, Any] = {}
    for (q, c, s), group in sorted(cells.items()):
        failed = next((r.failure for r in group if r.failure), None)
        if failed:
            summary.setdefault(f"q{q}", {}).setdefault(str(c), {})[s] = {"failed": failed}
            continue
        summary.setdefault(f"q{q}", {}).setdefault(str(c), {})[s] = {
            "rps": statistics.median(r.rps for r in group),
            "rps_min": min(r.rps for r in group),
            "rps_max": max(r.rps for r in group),
            "p50_ms": statistics.median(r.p50_ms for r in group),
            "p99_ms": statistics.median(r.p99_ms for r in group),
            "bytes_per_answer": statistics.median(r.bytes_per_answer for r in group),
            "rounds": len(group),
        }
    return summary


def verdicts(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per query: gridmap/PostGraphile at 16 clients (target ≥ 1.0) and gridmap p50/floor p50 at
    one client (target ≤ 3)."""

    def ratio(cell: dict[str, Any], key: str, other: str) -> float | None:
        a, b = cell.get("gridmap", {}).get(key), cell.get(other, {}).get(key)
        return None if a is None or not b else a / b

    def met(cell: dict[str, Any], value: float | None, ok: Callable[[float], bool]) -> bool | None:
        if "failed" in cell.get("gridmap", {}):
            return False
        return None if value is None else ok(value)

    out = {}
    for q, by_clients in summary.items():
        at16, at1 = by_clients.get("16", {}), by_clients.get("1", {})
        v: dict[str, Any] = {
            "vs_postgraphile_16": ratio(at16, "rps", "postgraphile"),
            "vs_floor_rps_16": ratio(at16, "rps", "floor"),
            "vs_floor_p50_1": ratio(at1, "p50_ms", "floor"),
        }
        v["throughput_met"] = met(at16, v["vs_postgraphile_16"], lambda x: x >= 1.0)
        v["latency_met"] = met(at1, v["vs_floor_p50_1"], lambda x: x <= 3.0)
        out[q] = v
    return out


def _cell(cell: dict[str, Any] | None, rps: str, ms: str) -> list[str]:
    """A cell's requests/s, p50 and p99 as text; FAILED with how, or - when not measured."""
    if cell is None:
        return ["-", "-", "-"]
    if "failed" in cell:
        return ["FAILED", cell["failed"], ""]
    return [format(cell["rps"], rps), format(cell["p50_ms"], ms), format(cell["p99_ms"], ms)]


def machine() -> dict[str, Any]:
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 2**20
    debian = ""
    with contextlib.suppress(OSError):
        debian = Path("/etc/debian_version").read_text().strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(memory, 1),
        "os": f"Debian {debian}" if debian else platform.platform(),
    }


def versions(scale: dict[str, Any]) -> dict[str, str]:
    def package(name: str) -> str:
        path = PEERS / "node_modules" / name / "package.json"
        return json.loads(path.read_text())["version"] if path.exists() else "?"

    def output(*command: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (done.stdout or done.stderr).strip().splitlines()[0]

    wrk_version = output("wrk", "-v")
    found = re.search(r"wrk (\S+)", wrk_version)
    return {
        "postgresql": scale["postgresql"].split()[0],
        "postgis": scale["postgis"],
        "postgraphile": package("postgraphile"),
        **{plugin: package(plugin) for plugin in PLUGINS},
        "node": output("node", "--version").lstrip("v"),
        "python": platform.python_version(),
        "strawberry": metadata.version("strawberry-graphql"),
        "uvicorn": metadata.version("uvicorn"),
        "wrk": found.group(1) if found else wrk_version,
    }


def print_table(summary: dict[str, Any], judged: dict[str, dict[str, Any]]) -> None:
    print()
    print(
        f"{'query':<6}{'clients':>8}  "
        + "".join(f"{LABELS[s]:>14} req/s {'p50':>8} {'p99':>8}" for s in SERVERS)
    )
    for q, by_clients in summary.items():
        for c, cell in by_clients.items():
            texts = [_cell(cell.get(s), ".1f", ".2f") for s in SERVERS]
            print(f"{q:<6}{c:>8}  " + "".join(f"{r:>20} {a:>8} {b:>8}" for r, a, b in texts))
    print()
    for q, v in judged.items():
        print(
            f"{q}: gridmap/PostGraphile at 16 clients {_ratio(v['vs_postgraphile_16'])} "
            f"(target ≥ 1.0: {_met(v['throughput_met'])}); gridmap p50/floor p50 at 1 client "
            f"{_ratio(v['vs_floor_p50_1'])} (target ≤ 3: {_met(v['latency_met'])})"
        )


def _short_number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("met" if value else "NOT met")


def markdown(result: dict[str, Any]) -> str:
    """This scale's section of BENCHMARKS.md."""
    m, v, s, cfg = result["machine"], result["versions"], result["scale"], result["config"]
    clients = cfg["clients"]
    lines = [
        f"### {s['households']:,} households",
        "",
        f"{result['date']} — {m['nproc']} cores ({m['cpu']}), {m['memory_gib']:.0f} GiB, "
        f"{m['os']}; PostgreSQL {v['postgresql']}, PostGIS {v['postgis']}; PostGraphile "
        f"{v['postgraphile']} (@graphile/postgis {v['@graphile/postgis']}, connection-filter "
        f"{v['postgraphile-plugin-connection-filter']}, filter-postgis "
        f"{v['postgraphile-plugin-connection-filter-postgis']}) on Node {v['node']}; Python "
        f"{v['python']}, strawberry {v['strawberry']}, uvicorn {v['uvicorn']}; wrk {v['wrk']}.",
        "",
        f"Database `{s['database']}`: {_plural(s['subdistricts'], 'sub-district')}, "
        f"{_plural(s['grids'], 'grid')}, {s['buildings']:,} buildings, {s['households']:,} "
        f"households, {s['persons']:,} persons. gridmap: "
        f"{_plural(cfg['workers'], 'uvicorn worker')}, access log off, the grid center's "
        f"token ({cfg['worker']}); its per-caller rate limit "
        "(one token makes every request) raised out of reach, the limiter still running. "
        f"{_plural(cfg['rounds'], 'round')} of {cfg['duration']} s per server, query and client "
        f"count, the servers in turn (order rotating each round), after a {WARMUP_S} s warm-up of "
        f"each; a run in which fewer than {MIN_ANSWERS_PER_CLIENT} answers per client came back "
        f"is repeated longer (up to {MAX_SECONDS} s), so that answers still under way at its end "
        "do not count for nothing; any error, non-2xx answer, answer with GraphQL errors or "
        "timeout (30 s) marks the cell FAILED. Figures are the medians of the rounds "
        f"(requests/s, latency in ms). Load average when measuring began: "
        f"{result['load_average_at_start']:.2f}. CPU share: {result['cpu_share']}",
        "",
    ]
    judged = result["verdicts"]
    for q, by_clients in result["summary"].items():
        n = int(q[1:])
        lines += [f"**Query {n}**: {QUERY_TITLES[n]}.", ""]
        head = (
            "| server | "
            + " | ".join(f"{c} client{'s' if c != 1 else ''}: req/s | p50 | p99" for c in clients)
            + " | bytes/answer |"
        )
        lines += [head, "|---|" + "---:|" * (3 * len(clients) + 1)]
        for server in SERVERS:
            cells = []
            for c in clients:
                cells += _cell(by_clients.get(str(c), {}).get(server), ",.0f", ".2f")
            sizes = [
                x[server]["bytes_per_answer"]
                for x in by_clients.values()
                if "bytes_per_answer" in x.get(server, {})
            ]
            size = f"{sizes[0]:,.0f}" if sizes else "-"
            lines.append(f"| {LABELS[server]} | " + " | ".join(cells) + f" | {size} |")
        lines.append("")
    lines += [
        "| query | gridmap / PostGraphile, req/s at 16 clients (target ≥ 1.0) "
        "| gridmap / floor, req/s at 16 clients "
        "| gridmap p50 / floor p50 at 1 client (target ≤ 3) |",
        "|---|---:|---:|---:|",
    ]
    for q, verdict in judged.items():
        lines.append(
            f"| {q} | {_ratio(verdict['vs_postgraphile_16'])} {_met(verdict['throughput_met'])} "
            f"| {_ratio(verdict.get('vs_floor_rps_16'))} "
            f"| {_ratio(verdict['vs_floor_p50_1'])} {_met(verdict['latency_met'])} |"
        )
    lines.append("")
    return "\n".join(lines)


INTRO = """## Side by side: gridmap, PostGraphile, the floor (`make bench`, `bench/side_by_side.py`)

The same four questions asked of gridmap, of PostGraphile 4 with `@graphile/postgis` and the
connection filters (PostGraphile as a default install runs it: connected as the tables' owner, no
row-level security, no audit) and of the raw floor (`bench/floor.py`: one SQL statement building
the whole JSON answer, psycopg2, a bare Starlette route). The queries are written out for each
side in `bench/queries/`; the runner checks that the three give the same data before it measures.
gridmap serves the demo's grid center with security on: row-level security, masking and the
audit of every household whose class or members an answer shows, written before the answer
leaves. Targets: at 16 clients gridmap's throughput at least PostGraphile's on every query;
gridmap's single-client median latency within 3× of the floor's. `bench/results.png` plots the
requests/s at 16 clients and the single-client median latency.
"""


def write_section(begin: str, end: str, section: str, heading: str) -> None:
    """Put ``section`` (its markers included) in BENCHMARKS.md where the text between ``begin``
    and ``end`` was, or at the end under ``## heading`` the first time: each bench script keeps
    its own section and leaves the rest of the file as it is."""
    text = BENCHMARKS.read_text(encoding="utf-8")
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    BENCHMARKS.write_text(text, encoding="utf-8")
    print(f"wrote {BENCHMARKS.relative_to(ROOT)}")


def update_benchmarks(result: dict[str, Any]) -> None:
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{INTRO}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    scale = result["scale"]["households"]
    blocks = dict(re.findall(r"<!-- scale (\d+) -->\n(.*?)<!-- /scale \1 -->\n", body, re.S))
    blocks[str(scale)] = markdown(result)
    intro = re.sub(r"<!-- scale (\d+) -->\n.*?<!-- /scale \1 -->\n", "", body, flags=re.S)
    intro = intro.strip("\n") + "\n"
    ordered = "".join(
        f"<!-- scale {k} -->\n{blocks[k]}<!-- /scale {k} -->\n" for k in sorted(blocks, key=int)
    )
    BENCHMARKS.write_text(f"{head}{BEGIN}\n{intro}\n{ordered}{END}{tail}", encoding="utf-8")


def plot(out_dir: Path) -> Path | None:
    """bench/results.png from the latest run at each scale (bench/out/latest-*.json)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return None
    results = [json.loads(p.read_text()) for p in out_dir.glob("latest-*.json")]
    results.sort(key=lambda r: r["scale"]["households"])
    if not results:
        return None
    colours = {"gridmap": "#d62728", "postgraphile": "#1f77b4", "floor": "#7f7f7f"}
    fig, axes = plt.subplots(len(results), 2, figsize=(12, 4.2 * len(results)), squeeze=False)
    for row, result in zip(axes, results, strict=True):
        summary = result["summary"]
        queries = list(summary)
        scale = f"{result['scale']['households']:,} households"
        for ax, (clients, key, title, unit) in zip(
            row,
            (
                ("16", "rps", "requests/s at 16 clients (higher is better)", "requests/s"),
                ("1", "p50_ms", "median latency at 1 client (lower is better)", "ms"),
            ),
            strict=True,
        ):
            width = 0.8 / len(SERVERS)
            for i, server in enumerate(SERVERS):
                cells = [summary[q].get(clients, {}).get(server, {}) for q in queries]
                values = [c.get(key, math.nan) for c in cells]
                xs = [j + (i - 1) * width for j in range(len(queries))]
                bars = ax.bar(xs, values, width, label=LABELS[server], color=colours[server])
                labels = [
                    "failed" if "failed" in c else "" if math.isnan(v) else _short_number(v)
                    for c, v in zip(cells, values, strict=True)
                ]
                ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
            ax.set_xticks(range(len(queries)), [q.upper() for q in queries])
            ax.set_yscale("log")
            ax.set_ylabel(unit)
            ax.set_title(f"{scale}: {title}", fontsize=10)
            ax.legend(fontsize=8)
    fig.suptitle(f"gridmap, PostGraphile and the floor — {results[-1]['date']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return PLOT


# --- the command --------------------------------------------------------------------------------


def _ints(value: str) -> list[int]:
    try:
        items = [int(x.replace("_", "")) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected numbers separated by commas"
        ) from None
    if not items or any(x < 1 for x in items):
        raise argparse.ArgumentTypeError(f"{value!r}: expected positive numbers")
    return items


def _check_tools() -> None:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    if not (PEERS / "node_modules" / ".bin" / "postgraphile").exists():
        raise BenchError(f"PostGraphile is not installed: run `npm ci` in {PEERS} (`make bench`)")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database",
        default="gridmap_bench",
        help="database name in the local cluster, or the owner's URL "
        "(default: %(default)s, created when missing)",
    )
    parser.add_argument(
        "--households",
        type=int,
        default=None,
        help="demo size when the database is created (default 5000)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--clients", type=_ints, default=[1, 16, 64])
    parser.add_argument("--queries", type=_ints, default=[1, 2, 3, 4])
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="gridmap's uvicorn workers (default: one per core, as `gridmap serve` runs)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON results go")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="when a server fails under load, mark that cell FAILED and measure the rest "
        "(the run still exits 1)",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="leave BENCHMARKS.md and bench/results.png alone"
    )
    args = parser.parse_args(argv)
    if bad := [q for q in args.queries if q not in QUERY_TITLES]:
        parser.error(f"--queries: no query {bad}; there are {sorted(QUERY_TITLES)}")

    signal.signal(signal.SIGTERM, _raise_interrupt)
    stamp = dt.datetime.now(dt.UTC)
    servers: dict[str, Server] = {}
    db: Database | None = None
    runs: list[Run] = []
    run_dir = args.out / f"{stamp:%Y%m%dT%H%M%SZ}"
    try:
        _check_tools()
        settings = Settings()
        db = resolve_database(args.database, settings)
        scale = prepare_database(db, args.households, settings.secret_key)
        print(
            f"database {db.name}: {scale['households']:,} households, "
            f"{scale['buildings']:,} buildings, {scale['grids']:,} grids"
        )
        install_peer_functions(db)
        worker, token = grid_center_token(
            db, Settings(database_url=db.app_url, owner_database_url=db.owner_url)
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        queries = load_queries(args.queries, run_dir)
        load = wait_quiet()
        servers = make_servers(db, args.workers, run_dir)
        for server in servers.values():
            server.start()
        wait_ready(servers)
        print("servers: " + ", ".join(f"{s.name} on :{s.port}" for s in servers.values()))
        print("checking that the three sides give the same answers")
        verify(queries, servers, token, run_dir)
        measure(
            queries,
            servers,
            args.clients,
            args.rounds,
            args.duration,
            token,
            runs,
            keep_going=args.keep_going,
        )
        summary = summarize(runs)
        judged = verdicts(summary)
        result = {
            "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
            "machine": machine(),
            "versions": versions(scale),
            "scale": scale,
            "config": {
                "rounds": args.rounds,
                "duration": args.duration,
                "clients": args.clients,
                "queries": args.queries,
                "workers": args.workers,
                "worker": worker,
                "wrk_threads": "min(clients, 2)",
                "warmup_s": WARMUP_S,
            },
            "cpu_share": (
                "no pinning and no division of cores: the three servers run all the time but only "
                "one is under load at a time, so each in turn has the whole machine, shared with "
                "wrk (min(clients, 2) threads) and PostgreSQL, everything at the same niceness; "
                "each server is one process (gridmap: uvicorn with the workers above; "
                "PostGraphile: one Node process; the floor: one uvicorn process) with a pool of "
                "10 PostgreSQL connections (gridmap: 10 per worker for compiled reads, and a pool "
                "of 10 that may overflow to 20 for the rest)."
            ),
            "load_average_at_start": round(load, 2),
            "summary": summary,
            "verdicts": judged,
            "runs": [asdict(r) for r in runs],
        }
        print_table(summary, judged)
        latest = [] if args.no_report else [args.out / f"latest-{scale['households']}.json"]
        for path in (run_dir / "results.json", *latest):
            path.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"\nresults: {run_dir / 'results.json'}")
        if not args.no_report:
            update_benchmarks(result)
            print(f"updated {BENCHMARKS.relative_to(ROOT)}")
            if (png := plot(args.out)) is not None:
                print(f"plot: {png.relative_to(ROOT)}")
        failures = [r for r in runs if r.failure]
        for r in failures:
            print(
                f"FAILED under load: q{r.query}, {r.clients} clients, {r.server}: {r.failure}",
                file=sys.stderr,
            )
        return 1 if failures else 0
    except BenchError as exc:
        print(f"\nbenchmark FAILED: {exc}", file=sys.stderr)
        if runs:
            run_dir.mkdir(parents=True, exist_ok=True)
            partial = run_dir / "partial-runs.json"
            partial.write_text(json.dumps([asdict(r) for r in runs], indent=1), encoding="utf-8")
            print(f"runs measured before the failure: {partial}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers.values():
            server.stop()
        if db is not None:
            with contextlib.suppress(psycopg2.Error):
                drop_peer_functions(db)


if __name__ == "__main__":
    raise SystemExit(main())
