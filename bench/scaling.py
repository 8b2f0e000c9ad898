"""How cost grows: the side-by-side queries on demo databases of 100,000 to 5,000,000 households.

Why: the side-by-side benchmark asks one size at a time. This asks the same four questions
(``bench/queries``) at several sizes on this machine, so we can tell what grows with the data
from what grows with the answer, and plan for a province (``docs/scaling.md``).

    make bench-scaling                                   # installs matplotlib, then this
    .venv/bin/python bench/scaling.py                    # 100,000, 1,000,000 and 5,000,000
    .venv/bin/python bench/scaling.py --scales 100000 --runs 30

For each size it creates (or reuses, when it holds that demo) the database
``gridmap_scale_<size>`` (``gridmap_scale_100k``, ``_1m``, ``_5m``) in the local cluster the way
``bench/side_by_side.py`` does (its helpers: create, migrate, load the demo), timing the demo load
(the one import job there is) and recording the database size. Then, one client, requests one
after another, for each query: the floor's SQL statement (``bench/queries/floor/qN.sql``, psycopg2
as the tables' owner) and gridmap's HTTP API (``uvicorn api.app:create_app --factory`` as the app
role with the grid center's Bearer token, its per-caller rate limit raised out of reach), median
and p99 over ``--runs`` after ``--warmup``; then the shared buffers the floor statement touches
(``EXPLAIN (ANALYZE, BUFFERS)``). It checks first that the queries' places exist at that size and
that gridmap and the floor give the same answer.

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
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import side_by_side as sbs  # noqa: E402

from api.settings import Settings  # noqa: E402
from geo import demo as geo_demo  # noqa: E402
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


def _demo_households(db: sbs.Database) -> int | None:
    with sbs._owner(db) as cur:
        cur.execute("SELECT households FROM demo_info WHERE id = 1")
        row = cur.fetchone()
    return None if row is None else int(row[0])


def prepare(
    db: sbs.Database, households: int, secret_key: str, *, reload: bool, patience: int
) -> dict[str, Any]:
    """Create, migrate and load (timed) the demo database of this size, or reuse it.

    Returns the load figures: ``seconds`` and ``stages`` when this run or an earlier run of this
    script loaded it (kept in the database's comment), ``timed`` false otherwise."""
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
    loaded = _demo_households(db)
    if loaded is not None and loaded != households:
        raise ScalingError(
            f"database {db.name} holds the {loaded:,}-household demo, not {households:,}: "
            + ("--reload replaces it" if _ours(comment) else "it is not this script's: drop it")
        )
    if loaded is None:
        # The load time is a figure too: not while other work shares the machine.
        load_average = sbs.wait_quiet(limit=1.0, patience_s=patience)
        print(f"loading the demo ({households:,} households) into {db.name}")
        summary = geo_demo.load_demo(
            url=db.owner_url, secret_key=secret_key, households=households, progress=True
        )
        print(summary)
        load = {
            "timed": True,
            "seconds": round(summary.seconds, 2),
            "stages": summary.stages,
            "load_average_at_start": round(load_average, 2),
            "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        }
        with _admin(db) as cur:
            _set_comment(cur, db.name, load)
        return load
    print(f"reusing {db.name} ({loaded:,} households already loaded)")
    return _load_of(comment) or {"timed": False}


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
            " (SELECT count(*) FROM audit_log)",
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
    load_average = 0.0
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
    finally:
        if client is not None:
            client.close()
        floor.close()
        server.stop()
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
    }


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
        rows.append({"what": "demo load time", "span": span, "k": {"k": load_k}})
        rows.append({"what": "database size", "span": span, "k": {"k": size_k}})
        for q in sorted(set(a["queries"]) & set(b["queries"])):
            ks = {
                label: exponent(_get(a, q, *path), _get(b, q, *path), na, nb)
                for label, path in FIGURES
            }
            rows.append({"what": q, "span": span, "k": ks})
    return rows


def findings(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """What grows faster than linearly; what grows with the data rather than with the answer."""
    if len(results) < 2:
        return [
            "One size only: no exponents yet. Run the other sizes (`--scales`) to see what grows."
        ]
    faster = []
    for row in rows:
        for label, k in row["k"].items():
            if band(k) != "faster than linear":
                continue
            answer_k = row["k"].get("answer bytes")
            why = ""
            if answer_k is not None and label != "answer bytes":
                why = f" (its answer: k = {answer_k:.2f})"
            what = row["what"] if label == "k" else f"{row['what']} {label}"
            faster.append(f"{what}, {row['span']}: k = {k:.2f}{why}")
    lines = [
        "Faster than linearly (k > 1.1): "
        + ("; ".join(faster) if faster else "nothing measured here.")
    ]
    spans = " / ".join(dict.fromkeys(row["span"] for row in rows))
    by_query: dict[str, list[dict[str, float | None]]] = {}
    for row in rows:
        if row["what"].startswith("q"):
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
    return lines


INTRO = f"""## How cost grows (`make bench-scaling`, `bench/scaling.py`)

The four side-by-side questions (`bench/queries`) asked of demo databases of growing size, one
client, requests one after another: the floor's SQL statement (`bench/queries/floor/qN.sql`
through psycopg2 as the tables' owner: the least any server can do) and gridmap's HTTP API (one
uvicorn worker, the grid center's token, row-level security, masking and the audit log on; its
per-caller rate limit raised out of reach). Every query's variables name places in sub-district
{SUBDISTRICT}, which exists at every size (checked each run, with gridmap and the floor giving the
same answer), so q1–q3 ask a same-sized question at every size; q4 lists every grid of that
sub-district, which grows with the demo. Shared buffers: hits + reads of the floor statement under
`EXPLAIN (ANALYZE, BUFFERS)`, the 8 KiB pages it touches, a figure free of timing noise; "most
pages" names the index or table whose scans touch the most of them at the largest size. The
exponent k between two sizes is log(figure ratio) / log(household ratio): 0 flat, 1 linear, above 1
faster than linear. `bench/scaling.png` plots the medians, log-log. Demo load: `load_demo` into the
migrated, empty database (bulk COPY, index and key rebuilds, code triggers, ANALYZE), the one import
job there is.

Not measured, because they do not exist yet: the coverage (visits) and hotspot (cases) jobs, which
come with the visits and cases issues; add them here when they land.
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
        + " per query and side. Each size's figures come from its latest run (the date below).",
        "",
        "| households | measured | load average | sub-districts | grids | persons "
        f"| grids / households in {SUBDISTRICT} | demo load | households/s | database size |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s, load = r["scale"], r["load"]
        seconds = load.get("seconds")
        took = f"{seconds:.1f} s" if seconds else "not timed (reused)"
        if seconds and load.get("load_average_at_start", 0) >= 1.0:
            took += f" (machine busy: load average {load['load_average_at_start']:.2f})"
        rate = f"{r['households'] / seconds:,.0f}" if seconds else "-"
        lines.append(
            f"| {r['households']:,} | {r['date']} | {r['load_average_at_start']:.2f} "
            f"| {s['subdistricts']} | {s['grids']:,} | {s['persons']:,} "
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
            if row["what"].startswith("q"):
                cells = [_k(row["k"].get(label)) for label, _ in FIGURES]
                lines.append(f"| {row['what']} | {row['span']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Demo load time and database size: "
            + "; ".join(
                f"{row['what']} k = {_k(row['k']['k'])} ({row['span']})"
                for row in rows
                if not row["what"].startswith("q")
            )
            + ".",
        ]
    lines += ["", "What the figures say:", ""]
    lines += [f"- {line}" for line in findings(results, rows)]
    lines.append("")
    return "\n".join(lines)


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
    for ax in (ms_ax, buf_ax):
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
    fig.suptitle(f"How cost grows — latest run {results[-1]['date']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return PLOT


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
        "The demo loads in about 47 s per million households on 2 cores; measuring takes\n"
        "about a minute per size after the machine is quiet.",
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
        "--reload",
        action="store_true",
        help="drop and reload this script's databases of these sizes (to time the demo load "
        "again); a reused database keeps the load time measured when it was loaded",
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
