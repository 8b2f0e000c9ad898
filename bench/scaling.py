"""How cost grows: the side-by-side queries and the coverage, hotspot and import jobs on demo
databases of 100,000 to 5,000,000 households.

Why: the side-by-side benchmark asks one size at a time. This asks the same four questions
(``bench/queries``) and runs the same jobs at several sizes on this machine, so we can tell what
grows with the data from what grows with the answer, and plan for a province
(``docs/scaling.md``).

    make bench-scaling                                   # installs matplotlib, then this
    .venv/bin/python bench/scaling.py                    # 100,000, 1,000,000 and 5,000,000
    .venv/bin/python bench/scaling.py --scales 100000 --runs 30
    .venv/bin/python bench/scaling.py --prepare-only     # load the databases, measure later

For each size it creates (or reuses, when it holds the current demo version; an older one is
loaded again) the database ``gridmap_scale_<size>`` (``gridmap_scale_100k``, ``_1m``, ``_5m``)
in the local cluster the way ``bench/side_by_side.py`` does (its helpers: create, migrate, load
the demo), timing the demo load and recording the database size. Then, one client, requests one
after another, for each query: the floor's SQL statement (``bench/queries/floor/qN.sql``,
psycopg2 as the tables' owner) and gridmap's HTTP API (``uvicorn api.app:create_app --factory``
as the app role with the grid center's Bearer token, its per-caller rate limit raised out of
reach), median and p99 over ``--runs`` after ``--warmup``; then the shared buffers the floor
statement touches (``EXPLAIN (ANALYZE, BUFFERS)``). It checks first that the queries' places
exist at that size and that gridmap and the floor give the same answer.

Then the jobs (``--job-runs`` / ``--import-runs`` timed runs after one warm-up, fewer but at
least 3 once they took ``--job-budget`` seconds), with the functions of ``bench/coverage.py``,
``bench/hotspots.py`` and ``bench/imports.py``: visit coverage at GRID level of one grid (q1's)
today and 90 days ago, of sub-district 310106015 today and 90 days ago, and of the district today
(``geo.coverage.cells`` as the grid center, then the GraphQL ``coverage`` query over HTTP); case
hotspots over the last 30 days and the three windows before on that grid's micro-grids and on
150 m hexagons over the sub-district and the district (``geo.case_hotspots.hotspots``, then
``caseHotspots``), with the number of cases each reads; the grid's households register exported
(``importers.export``), imported again unchanged and with one household in ten reclassified and
back (``importers.sources.register``); and a fixed file of 3,000 footprints over the grid's
micro-grids imported first and again (``importers.sources.buildings``; deleted afterwards).
``--no-jobs`` leaves them out.

Results: JSON under ``bench/out/scaling/`` (gitignored), the section between
``<!-- bench/scaling.py: begin -->`` and ``<!-- bench/scaling.py: end -->`` of ``BENCHMARKS.md``
(each size from its latest run) and ``bench/scaling.png``. The databases stay for the next run;
``--drop`` removes them (only databases this script created are ever dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import http.client
import itertools
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import coverage as bench_coverage  # noqa: E402  (bench/coverage.py)
import hotspots as bench_hotspots  # noqa: E402  (bench/hotspots.py)
import imports as bench_imports  # noqa: E402  (bench/imports.py)
import side_by_side as sbs  # noqa: E402
from sqlalchemy import text  # noqa: E402

from api.settings import Settings  # noqa: E402
from geo import case_hotspots as ch  # noqa: E402
from geo import demo as geo_demo  # noqa: E402
from geo.access import Caller, Role  # noqa: E402
from geo.db import make_engine, scoped_session  # noqa: E402
from geo.migrate import upgrade  # noqa: E402

OUT = BENCH / "out"
BENCHMARKS = ROOT / "BENCHMARKS.md"
PLOT = BENCH / "scaling.png"
BEGIN = "<!-- bench/scaling.py: begin -->"
END = "<!-- bench/scaling.py: end -->"

DEFAULT_SCALES = [100_000, 1_000_000, 5_000_000]
QUERY_TITLES = sbs.QUERY_TITLES
# Where the queries' variables (bench/queries/variables) point: sub-district 310106015, the demo's
# home, sits in the middle of the demo city at every size.
SUBDISTRICT = geo_demo.HOME_SUBDISTRICT
# The jobs' grid: q1's, one grid of 310106015 (500 households or so in the demo at every size).
HOME_GRID = str(json.loads((sbs.QUERIES / "variables" / "q1.json").read_text())["code"])
MARKER = "bench/scaling.py"  # start of the comment on the databases this script creates
# Exponent bands: k = log(figure ratio) / log(household ratio).
FLAT, LINEAR_LOW, LINEAR_HIGH = 0.2, 0.9, 1.1


class ScalingError(Exception):
    """The run cannot go on; the message says why."""


# --- the databases ------------------------------------------------------------------------------


def database_name(households: int) -> str:
    if households % 1_000_000 == 0:
        return f"gridmap_scale_{households // 1_000_000}m"
    if households % 1000 == 0:
        return f"gridmap_scale_{households // 1000}k"
    return f"gridmap_scale_{households}"


@contextlib.contextmanager
def _admin(db: sbs.Database) -> Iterator[Any]:
    """The owner's connection to the maintenance database (CREATE / COMMENT / DROP DATABASE)."""
    url = make_url(db.owner_url).set(database="postgres")
    conn = psycopg2.connect(sbs._libpq(url.render_as_string(hide_password=False)))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _comment(cur: Any, name: str) -> str | None:
    """The comment on a database, or None if there is no such database ('' if no comment)."""
    cur.execute(
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database"
        " WHERE datname = %s",
        (name,),
    )
    row = cur.fetchone()
    return None if row is None else str(row[0])


def _ours(comment: str | None) -> bool:
    return comment is not None and comment.startswith(MARKER)


def _set_comment(cur: Any, name: str, load: dict[str, Any] | None) -> None:
    text = MARKER if load is None else f"{MARKER} {json.dumps(load)}"
    cur.execute(f'COMMENT ON DATABASE "{name}" IS %s', (text,))


def _load_of(comment: str | None) -> dict[str, Any] | None:
    """The demo load figures this script left in its database's comment."""
    if comment is None or not _ours(comment):
        return None
    rest = comment[len(MARKER) :].strip()
    try:
        value = json.loads(rest) if rest else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def drop_database(db: sbs.Database) -> bool:
    """Drop a database this script created; leave any other alone."""
    with _admin(db) as cur:
        comment = _comment(cur, db.name)
        if comment is None:
            return False
        if not _ours(comment):
            raise ScalingError(
                f"database {db.name} was not created by {MARKER}: not dropping it; drop it "
                "yourself or run with other --scales"
            )
        print(f"dropping database {db.name}")
        cur.execute(f'DROP DATABASE "{db.name}" WITH (FORCE)')
    return True


def _demo_info(db: sbs.Database) -> tuple[int, int] | None:
    """(households, demo version) of the demo loaded there, or None (none, or no schema yet)."""
    try:
        with sbs._owner(db) as cur:
            cur.execute("SELECT households, version FROM demo_info WHERE id = 1")
            row = cur.fetchone()
    except psycopg2.errors.UndefinedTable:
        return None
    return None if row is None else (int(row[0]), int(row[1]))


def prepare(
    db: sbs.Database, households: int, secret_key: str, *, reload: bool, patience: int
) -> dict[str, Any]:
    """Create, migrate and load (timed) the demo database of this size, or reuse it.

    A database of this script's holding an older demo version (``geo.demo.DEMO_VERSION``) is
    dropped and loaded again from empty, so the load time is always a whole current demo's (an
    in-place upgrade would time only the newer steps, and an old database may miss extensions a
    newer migration needs). Returns the load figures: ``seconds`` and ``stages`` when this run or
    an earlier run of this script loaded it (kept in the database's comment), ``timed`` false
    otherwise."""
    with _admin(db) as cur:
        comment = _comment(cur, db.name)
    if not reload and comment is not None:
        info = _demo_info(db)
        if info is not None and info[1] < geo_demo.DEMO_VERSION:
            if not _ours(comment):
                raise ScalingError(
                    f"database {db.name} holds demo version {info[1]}, older than "
                    f"{geo_demo.DEMO_VERSION}, and is not this script's: drop it"
                )
            print(
                f"{db.name} holds demo version {info[1]} (current: {geo_demo.DEMO_VERSION}): "
                "loading it again"
            )
            reload = True
    if reload:
        drop_database(db)
    with _admin(db) as cur:
        comment = _comment(cur, db.name)
        if comment is None:
            print(f"creating database {db.name}")
            cur.execute(f'CREATE DATABASE "{db.name}"')
            _set_comment(cur, db.name, None)
            comment = MARKER
    print(f"migrating {db.name}")
    upgrade(db.owner_url, secret_key=secret_key)
    info = _demo_info(db)
    loaded = None if info is None else info[0]
    if loaded is not None and loaded != households:
        raise ScalingError(
            f"database {db.name} holds the {loaded:,}-household demo, not {households:,}: "
            + ("--reload replaces it" if _ours(comment) else "it is not this script's: drop it")
        )
    if loaded is None:
        # The load time is a figure too: not while other work shares the machine.
        load_average = sbs.wait_quiet(limit=1.0, patience_s=patience)
        print(f"loading the demo ({households:,} households) into {db.name}")
        with _load_average_sampled() as during:
            summary = geo_demo.load_demo(
                url=db.owner_url, secret_key=secret_key, households=households, progress=True
            )
        print(summary)
        load = {
            "timed": True,
            "seconds": round(summary.seconds, 2),
            "stages": summary.stages,
            "demo_version": geo_demo.DEMO_VERSION,
            "counts": {
                k: v for k, v in summary.counts.items() if k in ("visit", "grid_case", "person")
            },
            "load_average_at_start": round(load_average, 2),
            "load_average_during": during,
            "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        }
        load["settle_seconds"] = round(settle(db), 1)
        with _admin(db) as cur:
            _set_comment(cur, db.name, load)
        return load
    print(f"reusing {db.name} ({loaded:,} households already loaded)")
    return _load_of(comment) or {"timed": False}


def settle(db: sbs.Database) -> float:
    """``VACUUM (ANALYZE)`` the freshly loaded database, not part of the load's time: otherwise
    autovacuum works through the new tables (visibility maps, hint bits) for many minutes at
    5,000,000 households while the queries and jobs are measured. Seconds it took."""
    print(f"vacuuming {db.name} (autovacuum would do it while we measure)")
    start = time.perf_counter()
    conn = psycopg2.connect(db.owner_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE)")
    finally:
        conn.close()
    return time.perf_counter() - start


@contextlib.contextmanager
def _load_average_sampled(every_s: float = 15) -> Iterator[dict[str, float]]:
    """The 1-minute load average every ``every_s`` seconds while the block runs: its mean and
    max, filled in at the end. The load itself keeps one to two cores busy (the loader and
    PostgreSQL); much more means other work shared the machine and the time is not clean."""
    found: dict[str, float] = {}
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every_s):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        if samples:
            found.update(mean=round(statistics.fmean(samples), 2), max=round(max(samples), 2))


def describe_database(db: sbs.Database) -> dict[str, Any]:
    """Sizes and the home sub-district's share of the data."""
    with sbs._owner(db) as cur:
        cur.execute(
            "SELECT pg_database_size(current_database()),"
            " pg_total_relation_size('household'), pg_total_relation_size('person'),"
            " pg_total_relation_size('building'), pg_total_relation_size('audit_log'),"
            " (SELECT count(*) FROM grid WHERE code >= %(s)s AND code < %(s)s || chr(1114111)),"
            " (SELECT count(*) FROM household"
            "   WHERE code >= %(s)s AND code < %(s)s || chr(1114111)),"
            " (SELECT count(*) FROM audit_log),"
            " (SELECT count(*) FROM visit), (SELECT count(*) FROM grid_case)",
            {"s": SUBDISTRICT},
        )
        row = cur.fetchone()
    assert row is not None
    return {
        "size_bytes": {
            "database": row[0],
            "household": row[1],
            "person": row[2],
            "building": row[3],
            "audit_log": row[4],
        },
        "home_grids": row[5],
        "home_households": row[6],
        "audit_rows_before": row[7],
        "visits": row[8],
        "cases": row[9],
    }


def check_places(db: sbs.Database, variables: dict[int, dict[str, Any]]) -> list[str]:
    """That the queries' variables name places of sub-district 310106015 at this size."""
    found = []
    with sbs._owner(db) as cur:
        cur.execute("SELECT 1 FROM subdistrict WHERE code = %s", (SUBDISTRICT,))
        if cur.fetchone() is None:
            raise ScalingError(f"{db.name}: no sub-district {SUBDISTRICT}")
        for n, v in variables.items():
            if "code" in v:
                cur.execute("SELECT 1 FROM grid WHERE code = %s", (v["code"],))
                if cur.fetchone() is None or not v["code"].startswith(SUBDISTRICT):
                    raise ScalingError(f"q{n}: no grid {v['code']} in {SUBDISTRICT} in {db.name}")
                found.append(f"q{n}: grid {v['code']}")
            if "scope" in v:
                if not str(v["scope"]).startswith(SUBDISTRICT):
                    raise ScalingError(f"q{n}: scope {v['scope']} is not inside {SUBDISTRICT}")
                found.append(f"q{n}: scope {v['scope']}")
            if "lon" in v:
                cur.execute(
                    "SELECT code FROM subdistrict"
                    " WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                    (v["lon"], v["lat"]),
                )
                codes = [r[0] for r in cur.fetchall()]
                if codes != [SUBDISTRICT]:
                    raise ScalingError(
                        f"q{n}: the point ({v['lon']}, {v['lat']}) is in {codes or 'no'} "
                        f"sub-district, not {SUBDISTRICT}, in {db.name}"
                    )
                found.append(f"q{n}: point in {SUBDISTRICT}")
    return found


# --- measuring ----------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98] if len(samples) > 1 else 0
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(p99 or samples[0], 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "runs": len(samples),
    }


def timed(call: Callable[[], Any], warmup: int, runs: int) -> tuple[dict[str, float], Any]:
    for _ in range(warmup):
        call()
    samples = []
    answer = None
    for _ in range(runs):
        start = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples), answer


class FloorSQL:
    """The floor's statements through one psycopg2 connection as the owner, as bench/floor.py
    runs them (autocommit, the JSON text PostgreSQL built)."""

    def __init__(self, db: sbs.Database) -> None:
        self.conn = psycopg2.connect(db.owner_dsn)
        self.conn.autocommit = True
        self.sql = {
            int(p.stem[1:]): p.read_text(encoding="utf-8")
            for p in sorted((sbs.QUERIES / "floor").glob("q*.sql"))
        }

    def answer(self, n: int, variables: dict[str, Any]) -> str:
        with self.conn.cursor() as cur:
            cur.execute(self.sql[n], variables)
            row = cur.fetchone()
        return row[0] if row else "null"

    def buffers(self, n: int, variables: dict[str, Any]) -> dict[str, Any]:
        """Shared buffers the statement touches (hits + reads, 8 KiB pages), in all and by the
        relation or index each plan node read itself."""
        with self.conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + self.sql[n], variables)
            row = cur.fetchone()
        assert row is not None
        doc = row[0] if isinstance(row[0], list) else json.loads(row[0])
        top = doc[0]
        plan = top["Plan"]
        by: dict[str, int] = {}
        _attribute(plan, by)
        planning = top.get("Planning", {})
        return {
            "shared_hit": plan.get("Shared Hit Blocks", 0),
            "shared_read": plan.get("Shared Read Blocks", 0),
            "total": _touched(plan),
            "planning": _touched(planning),
            "execution_ms": top.get("Execution Time"),
            "by_relation": dict(sorted(by.items(), key=lambda kv: -kv[1])),
        }

    def close(self) -> None:
        self.conn.close()


def _touched(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def _attribute(node: dict[str, Any], by: dict[str, int]) -> None:
    """A node's own buffers (its figure less its children's, which it includes), by the index or
    relation it scans; other nodes (detoasting geometries for GeoJSON, …) by node type."""
    children = node.get("Plans", [])
    own = max(0, _touched(node) - sum(_touched(c) for c in children))
    if own:
        relation = node.get("Relation Name")
        index = node.get("Index Name")
        if relation and index:
            name = f"{relation} ({index})"
        else:
            name = index or relation or node.get("Node Type", "?")
        by[name] = by.get(name, 0) + own
    for child in children:
        _attribute(child, by)


class GridmapHTTP:
    """gridmap's API over one kept-alive connection, as one client."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def answer(self, body: bytes) -> bytes:
        try:
            self.conn.request("POST", "/graphql", body=body, headers=self.headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            # The server closes a connection idle for a few seconds (uvicorn's keep-alive):
            # once more on a new one.
            self.conn.close()
            self.conn.request("POST", "/graphql", body=body, headers=self.headers)
            response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise ScalingError(f"gridmap answered HTTP {response.status}: {data[:500]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def describe(n: int, data: Any) -> str:
    """The answer in a few words (side_by_side's, naming what q2's and q4's rows are)."""
    text = sbs.describe(n, data)
    return text.replace("rows", {2: "buildings", 4: "grids"}.get(n, "rows"))


def load_queries(numbers: list[int]) -> dict[int, dict[str, Any]]:
    queries = {}
    for n in numbers:
        variables = json.loads(
            (sbs.QUERIES / "variables" / f"q{n}.json").read_text(encoding="utf-8")
        )
        query = sbs._graphql(sbs.QUERIES / "gridmap" / f"q{n}.graphql")
        body = {"query": query, "variables": variables}
        queries[n] = {
            "variables": variables,
            "body": json.dumps(body, ensure_ascii=False).encode(),
        }
    return queries


def _no_errors(n: int, raw: bytes) -> Any:
    answer = json.loads(raw)
    if answer.get("errors"):
        raise ScalingError(f"q{n}: gridmap answered with errors: {answer['errors']}")
    return answer


def measure_scale(
    households: int,
    args: argparse.Namespace,
    settings: Settings,
    queries: dict[int, dict[str, Any]],
    run_dir: Path,
) -> dict[str, Any]:
    name = database_name(households)
    db = sbs.resolve_database(name, settings)
    print(f"\n=== {households:,} households: database {name}")
    load = prepare(db, households, settings.secret_key, reload=args.reload, patience=args.patience)
    scale = sbs.prepare_database(db, households, settings.secret_key)
    data = describe_database(db)
    print(
        f"{name}: {scale['subdistricts']} sub-districts, {scale['grids']:,} grids, "
        f"{scale['households']:,} households, {data['size_bytes']['database'] / 2**30:.2f} GiB; "
        f"{SUBDISTRICT}: {data['home_grids']:,} grids, {data['home_households']:,} households"
    )
    places = check_places(db, {n: q["variables"] for n, q in queries.items()})
    if not args.no_jobs:
        places += check_places(db, {0: {"code": HOME_GRID}})[-1:]
    print("places: " + "; ".join(places))
    worker, token = sbs.grid_center_token(
        db, Settings(database_url=db.app_url, owner_database_url=db.owner_url)
    )
    logs = run_dir / name
    logs.mkdir(parents=True, exist_ok=True)
    server = sbs.make_servers(db, 1, logs)["gridmap"]
    floor = FloorSQL(db)
    client: GridmapHTTP | None = None
    results: dict[str, Any] = {}
    jobs: dict[str, Any] = {}
    load_average = jobs_load_average = 0.0
    try:
        server.start()
        sbs.wait_ready({"gridmap": server})
        client = GridmapHTTP(server.port, token)
        print(f"gridmap on :{server.port} as {worker}")
        for n, q in queries.items():  # the same data from both sides, or no figures at all
            ours = sbs.normalize(n, "gridmap", _no_errors(n, client.answer(q["body"])))
            floors = sbs.normalize(n, "floor", json.loads(floor.answer(n, q["variables"])))
            if not ours or (n == 1 and not ours["microGrids"]):
                raise ScalingError(f"q{n}: the answer is empty at {households:,} households")
            found = sbs.difference(ours, floors)
            if found:
                raise ScalingError(f"q{n}: gridmap and the floor differ at {found}")
            results[f"q{n}"] = {"answer": describe(n, ours)}
            print(f"  q{n}: same answer from both ({results[f'q{n}']['answer']})")
        load_average = sbs.wait_quiet(limit=1.0, patience_s=args.patience)
        for n, q in queries.items():
            variables, body = q["variables"], q["body"]
            cell = results[f"q{n}"]
            cell["floor"], text = timed(
                functools.partial(floor.answer, n, variables), args.warmup, args.runs
            )
            cell["answer_bytes"] = len(text.encode())
            # The answer is read whole inside the timing; it is parsed (checked) outside it.
            stats, raw = timed(functools.partial(client.answer, body), args.warmup, args.runs)
            _no_errors(n, raw)
            cell["gridmap"] = stats
            cell["gridmap_bytes"] = len(raw)
            cell["buffers"] = floor.buffers(n, variables)
            print(
                f"  q{n}: floor SQL p50 {cell['floor']['p50_ms']:8.2f} ms p99 "
                f"{cell['floor']['p99_ms']:8.2f} | gridmap HTTP p50 {stats['p50_ms']:8.2f} ms "
                f"p99 {stats['p99_ms']:8.2f} | {cell['buffers']['total']:,} buffers"
            )
        if not args.no_jobs:
            jobs_load_average = os.getloadavg()[0]
            print(f"jobs (load average {jobs_load_average:.2f}): coverage and hotspots")
            jobs = measure_reads_jobs(db, client, HOME_GRID, args)
    finally:
        if client is not None:
            client.close()
        floor.close()
        server.stop()
    if not args.no_jobs:
        print("jobs: the households register and a building file, out and in")
        with tempfile.TemporaryDirectory(prefix="gridmap-scaling-") as tmp:
            jobs.update(measure_import_jobs(db, HOME_GRID, args, Path(tmp)))
    return {
        "households": households,
        "database": name,
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "machine": sbs.machine(),
        "versions": {
            "postgresql": scale["postgresql"].split()[0],
            "postgis": scale["postgis"],
            "python": platform.python_version(),
            "strawberry": metadata.version("strawberry-graphql"),
            "uvicorn": metadata.version("uvicorn"),
        },
        "scale": scale,
        **data,
        "load": load,
        "config": {"runs": args.runs, "warmup": args.warmup, "worker": worker},
        "load_average_at_start": round(load_average, 2),
        "queries": results,
        "jobs_load_average_at_start": round(jobs_load_average, 2),
        "jobs": jobs,
    }


# --- the jobs: visit coverage, case hotspots, imports ---------------------------------------------

# Each job: (key, kind, question, fixed). ``fixed``: the same-sized question at every size (one
# grid: 500 households in the demo, a fixed file), so its growth is the cost of the data; the
# others ask of sub-district 310106015 or the district, which grow with the demo.
PAST_DAYS = 90  # the past day of coverage
WINDOW_DAYS = 30  # the hotspot window (and the three windows before it)
BUILDINGS = 3000  # footprints in the fixed building file (about 300 per micro-grid of the grid)
CHANGE_EVERY = 10  # the changed register: one household in ten gets a new note
JOBS: list[tuple[str, str, str, bool]] = [
    ("coverage grid today", "coverage", "coverage: one grid, today", True),
    ("coverage grid past", "coverage", f"coverage: one grid, {PAST_DAYS} days ago", True),
    ("coverage sub today", "coverage", f"coverage: sub-district {SUBDISTRICT}, today", False),
    ("coverage sub past", "coverage", f"coverage: the sub-district, {PAST_DAYS} days ago", False),
    ("coverage district today", "coverage", "coverage: the district, today", False),
    ("hotspots grid", "hotspots", "hotspots: one grid's micro-grids", True),
    ("hotspots sub", "hotspots", "hotspots: the sub-district, 150 m hexagons", False),
    ("hotspots district", "hotspots", "hotspots: the district, 150 m hexagons", False),
    ("export register", "import", "export: one grid's households register", True),
    ("import register unchanged", "import", "import: that register, unchanged", True),
    (
        "import register changed",
        "import",
        f"import: that register, 1 household in {CHANGE_EVERY} reclassified (and back)",
        True,
    ),
    ("import buildings first", "import", f"import: {BUILDINGS:,} footprints, first", True),
    ("import buildings again", "import", "import: the same footprints again, unchanged", True),
]
JOB_TITLES = {key: title for key, _, title, _ in JOBS}
FIXED_JOBS = {key for key, _, _, fixed in JOBS if fixed}


def timed_job(
    call: Callable[[], Any], runs: int, budget_s: float, warmup: int = 1
) -> tuple[dict[str, float], Any]:
    """Median etc. over ``runs`` runs after ``warmup``, or fewer (at least 3) once the timed runs
    have taken ``budget_s`` seconds: the district's jobs take seconds each at 5,000,000."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    answer = None
    spent = 0.0
    while len(samples) < runs and (len(samples) < 3 or spent < budget_s):
        start = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - start) * 1000)
        spent += samples[-1] / 1000
    return percentiles(samples), answer


def _one_value(db: sbs.Database, sql: str, params: dict[str, Any]) -> int:
    with sbs._owner(db) as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _households_in(db: sbs.Database, scope: str) -> int:
    return _one_value(
        db,
        "SELECT count(*) FROM household WHERE code >= %(s)s AND code < %(s)s || chr(1114111)"
        " AND moved_out IS NULL",
        {"s": scope},
    )


def _cases_in(engine: Any, caller: Caller, scope: str, first: dt.date, last: dt.date) -> int:
    """The cases a hotspot call counts: its window and the three before (case_hotspots.CASES)."""
    earliest = first - dt.timedelta(days=ch.PREVIOUS_WINDOWS * WINDOW_DAYS)
    with scoped_session(engine, caller.settings()) as session:
        return int(
            session.execute(
                text(ch.CASES.format(columns="count(*)", join="")),
                {"scope": scope, "first": earliest, "last": last, "cats": None},
            ).scalar_one()
        )


def _http_cells(client: GridmapHTTP, query: str, variables: dict[str, Any], field: str) -> int:
    body = json.dumps({"query": query, "variables": variables}, ensure_ascii=False).encode()
    answer = json.loads(client.answer(body))
    if answer.get("errors"):
        raise ScalingError(f"{field}: gridmap answered with errors: {answer['errors']}")
    data = answer["data"][field]
    return len(data["cells"] if isinstance(data, dict) else data)


def _cell(
    key: str, reads: int, read_what: str, answer: str, size: int, data: dict[str, float]
) -> dict[str, Any]:
    return {
        "title": JOB_TITLES[key],
        "fixed": key in FIXED_JOBS,
        "reads": reads,
        "reads_what": read_what,
        "answer": answer,
        "answer_size": size,
        "data": data,
        "http": None,
    }


def measure_reads_jobs(
    db: sbs.Database, client: GridmapHTTP, grid: str, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Coverage and hotspots: the data layer in a transaction as the grid center (its function
    in bench/coverage.py and bench/hotspots.py), then the GraphQL query over HTTP."""
    today = dt.datetime.now(bench_hotspots.ZONE).date()
    past = today - dt.timedelta(days=PAST_DAYS)
    first = today - dt.timedelta(days=WINDOW_DAYS - 1)
    center = Caller(Role.GRID_CENTER, areas=(geo_demo.DISTRICT_CODE,))
    engine = make_engine(db.app_url, pool_size=2)
    runs, budget = args.job_runs, args.job_budget
    out: dict[str, dict[str, Any]] = {}
    try:
        scopes = {"grid": grid, "sub": SUBDISTRICT, "district": geo_demo.DISTRICT_CODE}
        households = {name: _households_in(db, scope) for name, scope in scopes.items()}
        coverage_jobs = {
            "coverage grid today": ("grid", None),
            "coverage grid past": ("grid", past),
            "coverage sub today": ("sub", None),
            "coverage sub past": ("sub", past),
            "coverage district today": ("district", None),
        }
        for key, (where, as_of) in coverage_jobs.items():
            scope = scopes[where]
            stats, cells = timed_job(
                functools.partial(bench_coverage.count_cells, engine, center, scope, as_of),
                runs,
                budget,
            )
            answer = f"{cells:,} {'cell' if cells == 1 else 'cells'}"
            cell = _cell(key, households[where], "households", answer, cells, stats)
            variables = bench_coverage.variables(scope, as_of)
            cell["http"], answered = timed_job(
                functools.partial(_http_cells, client, bench_coverage.QUERY, variables, "coverage"),
                runs,
                budget,
            )
            if answered != cells:
                raise ScalingError(f"{key}: {answered} cells over HTTP, {cells} in the data layer")
            cell["as_of"] = str(as_of or today)
            out[key] = cell
            _print_job(key, cell)
        hotspot_jobs = {
            "hotspots grid": ("grid", "MICRO_GRID"),
            "hotspots sub": ("sub", "HEX"),
            "hotspots district": ("district", "HEX"),
        }
        for key, (where, kind) in hotspot_jobs.items():
            scope = scopes[where]
            cases = _cases_in(engine, center, scope, first, today)
            stats, cells = timed_job(
                functools.partial(
                    bench_hotspots.count_cells, engine, center, scope, kind, first, today
                ),
                runs,
                budget,
            )
            found = bench_hotspots.labels(engine, center, kind, first, today, scope)
            cell = _cell(key, cases, "cases", f"{cells:,} cells: {found}", cells, stats)
            variables = {"s": scope, "f": str(first), "t": str(today), "k": kind}
            cell["http"], answered = timed_job(
                functools.partial(
                    _http_cells, client, bench_hotspots.QUERY, variables, "caseHotspots"
                ),
                runs,
                budget,
            )
            if answered != cells:
                raise ScalingError(f"{key}: {answered} cells over HTTP, {cells} in the data layer")
            cell["window"] = f"{first} – {today}"
            out[key] = cell
            _print_job(key, cell)
    finally:
        engine.dispose()
    return out


def _change_register(source: Path, target: Path) -> int:
    """The register with every ``CHANGE_EVERY``-th household in another class (A and C to B, B
    to C: a reassessment), on each of its rows (the household's columns repeat on its members'
    rows); how many households changed. Not a note: a blank cell keeps what the database holds,
    so importing the original again would not take a new note back out."""
    import openpyxl

    from importers.headers import label

    book = openpyxl.load_workbook(source)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    code_at = header.index(label("households", "code"))
    class_at = header.index(label("households", "class"))
    seen: dict[str, int] = {}
    for row in sheet.iter_rows(min_row=2):
        code = row[code_at].value
        if code is None:
            continue
        n = seen.setdefault(code, len(seen))
        if n % CHANGE_EVERY == 0:
            row[class_at].value = "C" if row[class_at].value == "B" else "B"
    book.save(target)
    return sum(1 for n in seen.values() if n % CHANGE_EVERY == 0)


def _import_register(db: sbs.Database, path: Path) -> dict[str, int]:
    from importers import sources
    from importers.run import Options

    summary = sources.register(db.owner_url, path, "households", Options())
    if summary.problems or summary.conflicts:
        raise ScalingError(
            f"importing {path.name}: {len(summary.problems)} refused, "
            f"{len(summary.conflicts)} conflicts: {summary.problems[:3]} {summary.conflicts[:3]}"
        )
    return dict(summary.counts.get("households", {}))


def measure_import_jobs(
    db: sbs.Database, grid: str, args: argparse.Namespace, workdir: Path
) -> dict[str, dict[str, Any]]:
    """The register of one grid out (``importers.export``, as the tables' owner) and in again
    (``importers.sources.register``: what `gridmap export households` and `gridmap import
    households` run), unchanged and changed; a fixed building file in (bench/imports.py's
    footprints and pipeline, over the grid's micro-grids), first and again."""
    from importers import export as exporter

    runs, budget = args.import_runs, args.job_budget
    out: dict[str, dict[str, Any]] = {}
    engine = make_engine(db.owner_url, pool_size=1)
    original = workdir / "households.xlsx"
    changed = workdir / "households-changed.xlsx"
    try:

        def export() -> tuple[int, int]:
            job = exporter.Job("households", grid, original)
            rows = exporter.export(engine, job)
            return rows, len(job.households)

        stats, (rows, households) = timed_job(export, runs, budget)
        size = f"{rows:,} rows, {households:,} households"
        out["export register"] = _cell("export register", rows, "rows", size, rows, stats)
        _print_job("export register", out["export register"])
        altered = _change_register(original, changed)
        _import_register(db, original)  # its digests recorded: the file as last imported
        stats, counts = timed_job(functools.partial(_import_register, db, original), runs, budget)
        if counts.get("unchanged") != households:
            raise ScalingError(f"the unchanged register imported as {counts}")
        answer = f"{counts['unchanged']:,} unchanged"
        out["import register unchanged"] = _cell(
            "import register unchanged", rows, "rows", answer, households, stats
        )
        _print_job("import register unchanged", out["import register unchanged"])
        files = itertools.cycle((changed, original))  # there and back: the same work each time
        last = [original]

        def flip() -> dict[str, int]:
            last[0] = next(files)
            return _import_register(db, last[0])

        stats, counts = timed_job(flip, runs, budget)
        if counts.get("updated") != altered:
            raise ScalingError(f"the changed register ({altered} households) imported as {counts}")
        if last[0] == changed:  # leave the database as the demo had it
            _import_register(db, original)
        answer = f"{counts['updated']:,} updated, {counts.get('unchanged', 0):,} unchanged"
        out["import register changed"] = _cell(
            "import register changed", rows, "rows", answer, altered, stats
        )
        _print_job("import register changed", out["import register changed"])
    finally:
        engine.dispose()

    path = workdir / "buildings.gpkg"
    outlines = bench_imports.micro_grids(db, grid)
    made = bench_imports.generate(path, outlines, BUILDINGS, 0.03, seed=6)
    keys = bench_imports.file_keys(path, "key")
    fields = argparse.Namespace(
        skip_invalid=False, key_field="key", levels_field="levels", name_field="name"
    )
    firsts: list[float] = []
    agains: list[float] = []
    first_counts: dict[str, int] = {}
    again_counts: dict[str, int] = {}
    bench_imports.delete_buildings(db, keys)
    try:
        for i in range(max(3, args.import_runs // 2)):
            if i:
                bench_imports.delete_buildings(db, keys)
            first = bench_imports.pipeline(db, path, fields)
            again = bench_imports.pipeline(db, path, fields)
            firsts.append(first["seconds"]["total"] * 1000)
            agains.append(again["seconds"]["total"] * 1000)
            first_counts, again_counts = first["counts"], again["counts"]
            if first["refused"] or again["refused"]:
                raise ScalingError(f"the building file was refused: {first} {again}")
        stored = bench_imports.placed(db, keys)
    finally:
        bench_imports.delete_buildings(db, keys)
    what = (
        f"{made['features']:,} footprints ({made['invalid']} bow-ties) over the grid's "
        f"{made['grids']} micro-grids, {made['outside']} around it"
    )
    for key, samples, counts in (
        ("import buildings first", firsts, first_counts),
        ("import buildings again", agains, again_counts),
    ):
        answer = ", ".join(f"{v:,} {k}" for k, v in counts.items() if k != "read")
        cell = _cell(key, BUILDINGS, "footprints", answer, BUILDINGS, percentiles(samples))
        cell["file"] = what
        cell["stored"] = stored
        out[key] = cell
        _print_job(key, cell)
    return out


def _print_job(key: str, cell: dict[str, Any]) -> None:
    http = cell["http"]
    over = f" | GraphQL HTTP p50 {http['p50_ms']:9.1f} ms" if http else ""
    print(
        f"  {key:<26} p50 {cell['data']['p50_ms']:9.1f} ms{over} | reads {cell['reads']:,} "
        f"{cell['reads_what']} | {cell['answer']} ({cell['data']['runs']} runs)"
    )


# --- the report ---------------------------------------------------------------------------------


def exponent(a: float | None, b: float | None, n_a: int, n_b: int) -> float | None:
    """k in figure ∝ households^k between two scales."""
    if not a or not b or a <= 0 or b <= 0 or n_a == n_b:
        return None
    return math.log(b / a) / math.log(n_b / n_a)


def band(k: float | None) -> str:
    if k is None:
        return "n/a"
    if k > LINEAR_HIGH:
        return "faster than linear"
    if k >= LINEAR_LOW:
        return "about linear"
    if k >= FLAT:
        return "sublinear"
    return "flat"


def _households(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def _k(k: float | None) -> str:
    return "n/a" if k is None else f"{k:.2f}"


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _get(result: dict[str, Any], q: str, *path: str) -> Any:
    value: Any = result["queries"].get(q, {})
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# (label, path in a query's results): the per-query figures whose growth the section judges.
FIGURES: list[tuple[str, tuple[str, ...]]] = [
    ("floor SQL p50", ("floor", "p50_ms")),
    ("gridmap HTTP p50", ("gridmap", "p50_ms")),
    ("shared buffers", ("buffers", "total")),
    ("answer bytes", ("answer_bytes",)),
]


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exponents between consecutive scales: per query and figure, and for the load and size."""
    rows = []
    for a, b in itertools.pairwise(results):
        na, nb = a["households"], b["households"]
        span = f"{na:,} → {nb:,}"
        load_k = exponent(a["load"].get("seconds"), b["load"].get("seconds"), na, nb)
        size_k = exponent(a["size_bytes"]["database"], b["size_bytes"]["database"], na, nb)
        rows.append({"what": "demo load time", "type": "total", "span": span, "k": {"k": load_k}})
        rows.append({"what": "database size", "type": "total", "span": span, "k": {"k": size_k}})
        stages_a, stages_b = a["load"].get("stages") or {}, b["load"].get("stages") or {}
        for stage in [stage for stage in stages_b if stage in stages_a]:
            if stages_b[stage] >= MIN_STAGE_S:  # shorter ones are mostly noise
                stage_k = exponent(stages_a[stage], stages_b[stage], na, nb)
                rows.append(
                    {"what": f"demo load stage {stage}", "type": "stage", "span": span,
                     "k": {"k": stage_k}}
                )  # fmt: skip
        for q in sorted(set(a["queries"]) & set(b["queries"])):
            ks = {
                label: exponent(_get(a, q, *path), _get(b, q, *path), na, nb)
                for label, path in FIGURES
            }
            rows.append({"what": q, "type": "query", "span": span, "k": ks})
        jobs_a, jobs_b = a.get("jobs") or {}, b.get("jobs") or {}
        for key in [key for key, *_ in JOBS if key in jobs_a and key in jobs_b]:
            ks = {
                label: exponent(_job(a, key, *path), _job(b, key, *path), na, nb)
                for label, path in JOB_FIGURES
            }
            rows.append({"what": key, "type": "job", "span": span, "k": ks})
    return rows


MIN_STAGE_S = 10.0  # demo load stages judged: those taking this long at the larger size

# (label, path in a job's results): the per-job figures whose growth the section judges.
JOB_FIGURES: list[tuple[str, tuple[str, ...]]] = [
    ("p50", ("data", "p50_ms")),
    ("GraphQL HTTP p50", ("http", "p50_ms")),
    ("reads", ("reads",)),
    ("answer", ("answer_size",)),
]


def _job(result: dict[str, Any], key: str, *path: str) -> Any:
    value: Any = (result.get("jobs") or {}).get(key, {})
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def findings(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """What grows faster than linearly; what grows with the data rather than with the answer."""
    if len(results) < 2:
        return [
            "One size only: no exponents yet. Run the other sizes (`--scales`) to see what grows."
        ]
    faster = []
    stages = []
    for row in rows:
        for label, k in row["k"].items():
            if band(k) != "faster than linear" or label in ("reads", "answer"):
                continue
            if row["type"] == "stage":
                stages.append(f"{row['what'].rsplit(' ', 1)[1]} k = {k:.2f} ({row['span']})")
                continue
            why = ""
            answer_k = row["k"].get("answer bytes")
            if answer_k is not None and label != "answer bytes":
                why = f" (its answer: k = {answer_k:.2f})"
            reads_k = row["k"].get("reads")
            if row["type"] == "job":
                why = f" (it reads k = {_k(reads_k)}" + (
                    ", the same-sized question at every size)"
                    if row["what"] in FIXED_JOBS
                    else f", its answer k = {_k(row['k'].get('answer'))}, per item read "
                    f"k = {_k(_less(k, reads_k))})"
                )
            what = row["what"] if label == "k" else f"{_job_name(row['what'])} {label}"
            faster.append(f"{what}, {row['span']}: k = {k:.2f}{why}")
    lines = [
        "Faster than linearly (k > 1.1): "
        + ("; ".join(faster) if faster else "nothing measured here.")
    ]
    if stages:
        lines.append(
            f"Of the demo load's stages (those of {MIN_STAGE_S:.0f} s or more), faster than "
            "linearly: " + "; ".join(stages) + "."
        )
    spans = " / ".join(dict.fromkeys(row["span"] for row in rows))
    by_query: dict[str, list[dict[str, float | None]]] = {}
    for row in rows:
        if row["type"] == "query":
            by_query.setdefault(row["what"], []).append(row["k"])
    costs = ("shared buffers", "floor SQL p50", "gridmap HTTP p50")
    with_data, steady, with_answer = [], [], []
    for q, ks in by_query.items():
        text = f"{q}: " + ", ".join(
            f"{label} k = {' / '.join(_k(k.get(label)) for k in ks)}" for label in costs
        )
        answers = [k.get("answer bytes") or 0 for k in ks]
        if max(answers) >= FLAT:
            answer = " / ".join(f"{a:.2f}" for a in answers)
            with_answer.append(f"{q}: answer k = {answer}; " + text.split(": ", 1)[1])
        elif any((k.get(label) or 0) >= FLAT for k in ks for label in costs):
            with_data.append(text)
        else:
            steady.append(text)
    lines.append(
        f"Same answer at every size, growing cost (k ≥ 0.2; {spans}): "
        + ("; ".join(with_data) if with_data else "none.")
    )
    if steady:
        lines.append(f"Same answer, flat cost (k < 0.2; {spans}): " + "; ".join(steady) + ".")
    if with_answer:
        lines.append(
            f"Growing answer ({spans}): "
            + "; ".join(with_answer)
            + ". The question itself gets bigger: in the demo a sub-district takes more grids as "
            "the city grows (at most 14 sub-districts), so its grid list and their household "
            "counts grow with the data."
        )
    return lines + job_findings(results, rows, spans)


def _less(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _job_name(key: str) -> str:
    return JOB_TITLES.get(key, key)


def job_findings(
    results: list[dict[str, Any]], rows: list[dict[str, Any]], spans: str
) -> list[str]:
    """The jobs: fixed-size ones whose cost grows with the data, fixed-size ones that stay flat,
    and growing questions with their cost per item read. A fixed-size job is judged by its
    exponent from the smallest size to the largest (a few runs of a job of tenths of a second
    differ by more than k = 0.2 between neighbouring sizes)."""
    first, last = results[0], results[-1]

    def overall(key: str, *path: str) -> float | None:
        return exponent(
            _job(first, key, *path), _job(last, key, *path), first["households"], last["households"]
        )

    by_job: dict[str, list[dict[str, float | None]]] = {}
    for row in rows:
        if row["type"] == "job":
            by_job.setdefault(row["what"], []).append(row["k"])
    if not by_job:
        return []
    growing, flat, bigger = [], [], []
    for key, ks in by_job.items():
        times = " / ".join(_k(k.get("p50")) for k in ks)
        http = [k.get("GraphQL HTTP p50") for k in ks]
        over = f", GraphQL HTTP p50 k = {' / '.join(_k(h) for h in http)}" if any(http) else ""
        if key in FIXED_JOBS:
            whole = [overall(key, "data", "p50_ms"), overall(key, "http", "p50_ms")]
            text = f"{_job_name(key)}: p50 k = {times}{over} ({_k(whole[0])} over the whole range)"
            (growing if max(k or 0 for k in whole) >= FLAT else flat).append(text)
        else:
            reads = " / ".join(_k(k.get("reads")) for k in ks)
            answers = " / ".join(_k(k.get("answer")) for k in ks)
            per = " / ".join(_k(_less(k.get("p50"), k.get("reads"))) for k in ks)
            bigger.append(
                f"{_job_name(key)}: reads k = {reads}, answer k = {answers}, p50 k = "
                f"{times}{over}; per item read k = {per}"
            )
    lines = [
        f"Jobs asking the same-sized question at every size (one grid, one file), growing cost "
        f"(k ≥ 0.2; {spans}): " + ("; ".join(growing) + "." if growing else "none."),
    ]
    if flat:
        lines.append(f"Same-sized jobs, flat cost (k < 0.2; {spans}): " + "; ".join(flat) + ".")
    if bigger:
        lines.append(
            f"Jobs whose question grows with the demo ({spans}): "
            + "; ".join(bigger)
            + ". What they read grows with the demo (the sub-district takes more grids, the "
            "district is the whole city); per item read k = p50 k − reads k, 0 when each "
            "household or case read costs the same at every size."
        )
    return lines


INTRO = f"""## How cost grows (`make bench-scaling`, `bench/scaling.py`)

The four side-by-side questions (`bench/queries`) and the coverage, hotspot and import jobs,
asked of demo databases of growing size, one client, requests one after another.

Queries: the floor's SQL statement (`bench/queries/floor/qN.sql` through psycopg2 as the tables'
owner: the least any server can do) and gridmap's HTTP API (one uvicorn worker, the grid center's
token, row-level security, masking and the audit log on; its per-caller rate limit raised out of
reach). Every query's variables name places in sub-district {SUBDISTRICT}, which exists at every
size (checked each run, with gridmap and the floor giving the same answer), so q1–q3 ask a
same-sized question at every size; q4 lists every grid of that sub-district, which grows with the
demo. Shared buffers: hits + reads of the floor statement under `EXPLAIN (ANALYZE, BUFFERS)`, the
8 KiB pages it touches, a figure free of timing noise; "most pages" names the index or table
whose scans touch the most of them at the largest size.

Jobs (median over a few runs after a warm-up, fewer but at least 3 once the runs took 30 s):

- visit coverage: `geo.coverage.cells` at GRID level in a transaction as the grid center (what
  `bench/coverage.py` times), then the GraphQL `coverage` query over HTTP, for one grid
  ({HOME_GRID}, q1's, about 500 households at every size) today and {PAST_DAYS} days ago, for
  sub-district {SUBDISTRICT} today and {PAST_DAYS} days ago, and for the whole district today.
  "Reads": the households of the scope. The demo's six months of visits end the day before it
  was loaded.
- case hotspots: `geo.case_hotspots.hotspots` over the last {WINDOW_DAYS} days and the three windows
  before, every category (what `bench/hotspots.py` times), then `caseHotspots` over HTTP, on the
  micro-grids of that grid, on 150 m hexagons over the sub-district and over the district.
  "Reads": the cases of the scope in the four windows (the demo's own, about half a case per
  household over its year).
- imports: the households register of that grid exported (`importers.export`, what `gridmap
  export households --scope {HOME_GRID}` runs as the tables' owner), imported again unchanged, and
  imported with one household in {CHANGE_EVERY} in another class and back, the two directions
  alternating (`importers.sources.register`, what `gridmap import households` runs); a fixed
  file of {BUILDINGS:,} footprints over the grid's micro-grids (`bench/imports.py`'s made-up
  ones: rectangles and L-shapes, 3 % self-intersecting bow-ties the importer repairs, 2 % just
  around the grid), imported into a building set without them and then again, unchanged
  (`importers.sources.buildings`, what `gridmap import buildings` runs); and the demo load:
  `load_demo` into the migrated, empty database (bulk COPY, index and key rebuilds, code
  triggers, six months of visits and a year of cases, ANALYZE). A freshly loaded database is
  then vacuumed (`VACUUM (ANALYZE)`, not counted in the load) before anything is measured, so
  autovacuum does not work through 18 GiB beside the measurements.

The grid, its register and the building file are the same size at every size, so their growth
is the cost of the data around them; the sub-district (more grids as the city grows: at most 14
sub-districts) and the district grow with the demo, so compare their time with what they read.
The exponent k between two sizes is log(figure ratio) / log(household ratio): 0 flat, 1 linear,
above 1 faster than linear. `bench/scaling.png` plots the medians, log-log.
"""


def markdown(results: list[dict[str, Any]]) -> str:
    last = results[-1]
    m, v = last["machine"], last["versions"]
    runs = sorted({(r["config"]["runs"], r["config"]["warmup"]) for r in results})
    lines = [
        INTRO,
        f"{m['nproc']} cores ({m['cpu']}), {m['memory_gib']:.0f} GiB, {m['os']}; PostgreSQL "
        f"{v['postgresql']}, PostGIS {v['postgis']}; Python {v['python']}, strawberry "
        f"{v['strawberry']}, uvicorn {v['uvicorn']}; "
        + ", ".join(f"{r} timed runs after {w} warm-up runs" for r, w in runs)
        + " per query and side. Each size's figures come from its latest run (the date below; "
        "the load average when the queries start, and when the jobs start after them).",
        "",
        "| households | measured | load average | sub-districts | grids | persons | visits "
        f"| cases | grids / households in {SUBDISTRICT} | demo load | households/s "
        "| database size |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s, load = r["scale"], r["load"]
        seconds = load.get("seconds")
        took = f"{seconds:.1f} s" if seconds else "not timed (reused)"
        if seconds and load.get("load_average_at_start", 0) >= 1.0:
            took += f" (machine busy: load average {load['load_average_at_start']:.2f})"
        if seconds and load.get("load_average_during"):
            during = load["load_average_during"]
            took += f" (load average during it {during['mean']:.1f}, max {during['max']:.1f})"
        rate = f"{r['households'] / seconds:,.0f}" if seconds else "-"
        averages = f"{r['load_average_at_start']:.2f}"
        if r.get("jobs"):
            averages += f" / {r['jobs_load_average_at_start']:.2f}"
        lines.append(
            f"| {r['households']:,} | {r['date']} | {averages} "
            f"| {s['subdistricts']} | {s['grids']:,} | {s['persons']:,} "
            f"| {_count(r.get('visits'))} | {_count(r.get('cases'))} "
            f"| {r['home_grids']:,} / {r['home_households']:,} | {took} | {rate} "
            f"| {_size(r['size_bytes']['database'])} |"
        )
    lines += [
        "",
        "| query | households | answer | bytes | floor SQL p50 | p99 | gridmap HTTP p50 | p99 "
        "| gridmap / floor p50 | shared buffers | most pages |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    queries = sorted({q for r in results for q in r["queries"]}, key=lambda q: int(q[1:]))
    for q in queries:
        for r in results:
            cell = r["queries"].get(q)
            if cell is None:
                continue
            fl, gm, buf = cell["floor"], cell["gridmap"], cell["buffers"]
            top = next(iter(buf["by_relation"].items()), None)
            share = f"{top[0]}: {top[1] / buf['total']:.0%}" if top and buf["total"] else "-"
            lines.append(
                f"| {q} | {r['households']:,} | {cell['answer']} | {cell['answer_bytes']:,} "
                f"| {fl['p50_ms']:.2f} | {fl['p99_ms']:.2f} | {gm['p50_ms']:.2f} "
                f"| {gm['p99_ms']:.2f} | {gm['p50_ms'] / fl['p50_ms']:.1f}× "
                f"| {buf['total']:,} | {share} |"
            )
    rows = growth(results)
    if rows:
        lines += [
            "",
            "Exponents k between consecutive sizes (figure ∝ households^k):",
            "",
            "| query | households | " + " | ".join(label for label, _ in FIGURES) + " |",
            "|---|---|" + "---:|" * len(FIGURES),
        ]
        for row in rows:
            if row["type"] == "query":
                cells = [_k(row["k"].get(label)) for label, _ in FIGURES]
                lines.append(f"| {row['what']} | {row['span']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Demo load time and database size: "
            + "; ".join(
                f"{row['what']} k = {_k(row['k']['k'])} ({row['span']})"
                for row in rows
                if row["type"] == "total"
            )
            + ".",
        ]
        stage_rows = [row for row in rows if row["type"] == "stage"]
        if stage_rows:
            loaded = [r for r in results if r["load"].get("stages")]
            names = list(dict.fromkeys(row["what"].rsplit(" ", 1)[1] for row in stage_rows))
            lines += [
                "",
                "Demo load by stage, seconds ("
                + " / ".join(_households(r["households"]) for r in loaded)
                + ") and k: "
                + "; ".join(
                    f"{name} "
                    + " / ".join(f"{r['load']['stages'].get(name, 0):.1f}" for r in loaded)
                    + " (k = "
                    + " / ".join(
                        _k(row["k"]["k"])
                        for row in stage_rows
                        if row["what"] == f"demo load stage {name}"
                    )
                    + ")"
                    for name in names
                )
                + ".",
            ]
    lines += job_tables(results, rows)
    lines += ["", "What the figures say:", ""]
    lines += [f"- {line}" for line in findings(results, rows)]
    lines.append("")
    return "\n".join(lines)


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def job_tables(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    with_jobs = [r for r in results if r.get("jobs")]
    if not with_jobs:
        return []
    lines = [
        "",
        "Jobs, one after another at each size (p50 and max over the runs; runs: timed runs after "
        "one warm-up). p50 is the data layer for coverage and hotspots (the Python function in "
        'its transaction, rows included) and the whole job for imports; "fixed": the same-sized '
        "question at every size.",
        "",
        "| job | households | fixed | reads | answer | p50 | max | GraphQL HTTP p50 | runs |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for key, *_ in JOBS:
        for r in with_jobs:
            cell = r["jobs"].get(key)
            if cell is None:
                continue
            data, http = cell["data"], cell["http"]
            lines.append(
                f"| {_job_name(key)} | {r['households']:,} | {'yes' if cell['fixed'] else 'no'} "
                f"| {cell['reads']:,} {cell['reads_what']} | {cell['answer']} "
                f"| {_ms(data['p50_ms'])} | {_ms(data['max_ms'])} "
                f"| {_ms(http['p50_ms']) if http else '-'} | {data['runs']} |"
            )
    job_rows = [row for row in rows if row["type"] == "job"]
    if job_rows:
        lines += [
            "",
            "Exponents k of the jobs between consecutive sizes:",
            "",
            "| job | households | reads | answer | p50 | GraphQL HTTP p50 |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for row in sorted(job_rows, key=lambda row: [key for key, *_ in JOBS].index(row["what"])):
            k = row["k"]
            lines.append(
                f"| {_job_name(row['what'])} | {row['span']} | {_k(k.get('reads'))} "
                f"| {_k(k.get('answer'))} | {_k(k.get('p50'))} | {_k(k.get('GraphQL HTTP p50'))} |"
            )
    return lines


def update_benchmarks(results: list[dict[str, Any]]) -> None:
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    section = f"{BEGIN}\n{markdown(results)}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{section}{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n{section}\n"
    BENCHMARKS.write_text(text, encoding="utf-8")


def plot(results: list[dict[str, Any]]) -> Path | None:
    """bench/scaling.png: median ms and shared buffers against households, log-log."""
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return None
    xs = [r["households"] for r in results]
    queries = sorted({q for r in results for q in r["queries"]}, key=lambda q: int(q[1:]))
    colours = dict(zip(queries, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd"), strict=False))
    with_jobs = any(r.get("jobs") for r in results)
    if with_jobs:
        fig, axes = plt.subplots(2, 2, figsize=(13, 10.4))
        (ms_ax, buf_ax), (reads_ax, imports_ax) = axes
    else:
        fig, (ms_ax, buf_ax) = plt.subplots(1, 2, figsize=(13, 5.2))
    firsts: dict[Any, list[float]] = {ms_ax: [], buf_ax: []}
    for q in queries:
        mine = [r for r in results if q in r["queries"]]
        for side, style, marker in (("gridmap", "-", "o"), ("floor", "--", "s")):
            ys = [r["queries"][q][side]["p50_ms"] for r in mine]
            label = f"{q.upper()} {'gridmap HTTP' if side == 'gridmap' else 'floor SQL'}"
            firsts[ms_ax].append(ys[0])
            ms_ax.plot(
                [r["households"] for r in mine],
                ys,
                style,
                marker=marker,
                color=colours[q],
                label=label,
            )
        ys = [r["queries"][q]["buffers"]["total"] for r in mine]
        firsts[buf_ax].append(ys[0])
        buf_ax.plot(
            [r["households"] for r in mine],
            ys,
            "-",
            marker="s",
            color=colours[q],
            label=f"{q.upper()} floor SQL",
        )
    if with_jobs:
        firsts[reads_ax], firsts[imports_ax] = _plot_jobs(results, reads_ax, imports_ax)
    for ax in firsts:
        values = [y for y in firsts[ax] if y > 0]
        if len(xs) > 1 and values:  # a slope-1 guide: what linear growth would look like
            y0 = math.exp(statistics.fmean(math.log(y) for y in values))
            ax.plot(
                [xs[0], xs[-1]],
                [y0, y0 * xs[-1] / xs[0]],
                ":",
                color="#999999",
                label="∝ households (k = 1)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, [_households(x) for x in xs])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("households")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ms_ax.set_ylabel("median latency, ms (1 client)")
    ms_ax.set_title("median latency per request", fontsize=10)
    buf_ax.set_ylabel("shared buffers touched (8 KiB pages)")
    buf_ax.set_title("pages the floor statement touches (EXPLAIN BUFFERS)", fontsize=10)
    if with_jobs:
        reads_ax.set_ylabel("median, ms (data layer, 1 client)")
        reads_ax.set_title(
            "coverage and hotspots (solid: same-sized question; dashed: grows with the demo)",
            fontsize=10,
        )
        imports_ax.set_ylabel("median, s")
        imports_ax.set_title("imports (same-sized) and the demo load", fontsize=10)
    fig.suptitle(f"How cost grows — latest run {results[-1]['date']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return PLOT


def _plot_jobs(results: list[dict[str, Any]], reads_ax: Any, imports_ax: Any) -> tuple[Any, Any]:
    """The jobs' medians against households: coverage and hotspots in ms, imports in s."""
    firsts: dict[Any, list[float]] = {reads_ax: [], imports_ax: []}
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    colour = {"coverage": iter(palette), "hotspots": iter(palette[::-1]), "import": iter(palette)}
    markers = {"coverage": "o", "hotspots": "^", "import": "s"}
    for key, kind, _, fixed in JOBS:
        mine = [r for r in results if key in (r.get("jobs") or {})]
        if not mine:
            continue
        ax = imports_ax if kind == "import" else reads_ax
        scale = 1000 if kind == "import" else 1
        ys = [r["jobs"][key]["data"]["p50_ms"] / scale for r in mine]
        firsts[ax].append(ys[0])
        ax.plot(
            [r["households"] for r in mine],
            ys,
            "-" if fixed else "--",
            marker=markers[kind],
            color=next(colour[kind]),
            label=_job_name(key),
        )
    loaded = [r for r in results if r["load"].get("seconds")]
    if loaded:
        ys = [r["load"]["seconds"] for r in loaded]
        firsts[imports_ax].append(ys[0])
        imports_ax.plot(
            [r["households"] for r in loaded], ys, "--", marker="D", color="#7f7f7f",
            label="demo load (grows with the demo)",
        )  # fmt: skip
    return firsts[reads_ax], firsts[imports_ax]


# --- the command --------------------------------------------------------------------------------


def _scales(value: str) -> list[int]:
    return sorted(set(sbs._ints(value)))


def _queries(value: str) -> list[int]:
    items = sbs._ints(value)
    if bad := [q for q in items if q not in QUERY_TITLES]:
        raise argparse.ArgumentTypeError(f"no query {bad}; there are {sorted(QUERY_TITLES)}")
    return items


def latest_results(out: Path) -> dict[int, dict[str, Any]]:
    found = {}
    for path in (out / "scaling").glob("latest-*.json"):
        with contextlib.suppress(ValueError, OSError, KeyError):
            result = json.loads(path.read_text(encoding="utf-8"))
            found[int(result["households"])] = result
    return found


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("For each size")[0].rstrip(),
        epilog="Runs in the local cluster of var/gridmap.env (`make db`). Databases:\n"
        "gridmap_scale_100k, gridmap_scale_1m, gridmap_scale_5m, … (kept for the next run).\n"
        "The demo (version 6: six months of visits, a year of cases) loads in about 4 minutes\n"
        "per million households on 2 cores; measuring takes a few minutes per size after the\n"
        "machine is quiet (the jobs at 5,000,000 households the longest).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scales",
        type=_scales,
        default=",".join(str(n) for n in DEFAULT_SCALES),
        metavar="N,N,…",
        help="households per database, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--runs", type=int, default=100, help="timed requests per query and side (default: 100)"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed requests before them (default: 5)"
    )
    parser.add_argument(
        "--queries",
        type=_queries,
        default="1,2,3,4",
        metavar="1,2,…",
        help="which of bench/queries (default: all four): "
        + "; ".join(f"q{n} {title}" for n, title in QUERY_TITLES.items()),
    )
    parser.add_argument(
        "--job-runs",
        type=int,
        default=10,
        help="timed runs per coverage and hotspot job and side, after one warm-up (default: 10)",
    )
    parser.add_argument(
        "--import-runs",
        type=int,
        default=6,
        help="timed runs of each register job (half as many, at least 3, of the building "
        "file's) (default: 6)",
    )
    parser.add_argument(
        "--job-budget",
        type=float,
        default=30,
        help="seconds of timed runs after which a job stops early, with at least 3 runs "
        "(default: 30)",
    )
    parser.add_argument(
        "--no-jobs",
        action="store_true",
        help="the four queries only, no coverage, hotspots, imports",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="drop and reload this script's databases of these sizes (to time the demo load "
        "again); a reused database keeps the load time measured when it was loaded",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="create, migrate and load (timed) the databases, measure nothing (the load of the "
        "largest size takes a while: measure later)",
    )
    parser.add_argument(
        "--drop", action="store_true", help="drop this script's databases of these sizes at the end"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=300,
        help="seconds to wait for the machine to be quiet (1-minute load average < 1) before "
        "measuring each size (default: 300)",
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help="where the JSON results go (default: bench/out)"
    )
    parser.add_argument(
        "--no-report", action="store_true", help="leave BENCHMARKS.md and bench/scaling.png alone"
    )
    args = parser.parse_args(argv)
    if args.runs < 2 or args.warmup < 0:
        parser.error("--runs must be at least 2 and --warmup at least 0")

    signal.signal(signal.SIGTERM, _raise_interrupt)
    stamp = dt.datetime.now(dt.UTC)
    run_dir = args.out / "scaling" / f"{stamp:%Y%m%dT%H%M%SZ}"
    measured: list[dict[str, Any]] = []
    try:
        settings = Settings()
        settings.require_database()
        queries = load_queries(args.queries)
        if args.prepare_only:
            for n in args.scales:
                db = sbs.resolve_database(database_name(n), settings)
                print(f"\n=== {n:,} households: database {db.name}")
                prepare(db, n, settings.secret_key, reload=args.reload, patience=args.patience)
            return 0
        run_dir.mkdir(parents=True, exist_ok=True)
        for n in args.scales:
            result = measure_scale(n, args, settings, queries, run_dir)
            measured.append(result)
            paths = [run_dir / f"{result['database']}.json"]
            if not args.no_report:
                paths.append(args.out / "scaling" / f"latest-{n}.json")
            for path in paths:
                path.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
        (run_dir / "results.json").write_text(
            json.dumps(measured, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        print(f"\nresults: {run_dir / 'results.json'}")
        if not args.no_report:
            merged = latest_results(args.out)
            merged.update({r["households"]: r for r in measured})
            series = [merged[k] for k in sorted(merged)]
            print()
            print(markdown(series))
            update_benchmarks(series)
            print(f"updated {BENCHMARKS.relative_to(ROOT)}")
            if (png := plot(series)) is not None:
                print(f"plot: {png.relative_to(ROOT)}")
        if args.drop:
            for n in args.scales:
                drop_database(sbs.resolve_database(database_name(n), settings))
        return 0
    except (ScalingError, sbs.BenchError, psycopg2.Error) as exc:
        print(f"\nscaling benchmark FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
