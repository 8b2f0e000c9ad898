"""Case hotspots at the 1,000,000-household scale with 500,000 cases: the figures issue 5 asks
for.

    .venv/bin/python bench/hotspots.py                      # gridmap_bench_1m, 20 runs each
    .venv/bin/python bench/hotspots.py --runs 5 --no-write

Targets: district-wide hotspots on 150 m hexagons under 2 s, one grid's case list under 20 ms.

The database (the 1,000,000-household demo, created and loaded as bench/coverage.py does when
missing) is migrated to the head revision, and synthetic cases are added once, as the owner
with COPY, until it holds ``--cases`` (500,000) cases, the demo's own included; they are kept
(the rows whose ``client`` is ``bench/hotspots.py``), so a later run adds none. Half of them
are a background spread over the district's micro-grids in proportion to their households,
half fall in 60 clusters (a Gaussian
of 80 to 300 m around a point; each cluster starts on a random day of the year and runs to
today, so some are new and some old), all reported over the 365 days up to today, in the
categories of the catalogue; older ones mostly closed. No events, no photos.

Timed, median, p95 and max over ``--runs`` after one warm-up:

- hotspots: ``geo.case_hotspots.hotspots`` for the whole district, the last 30 days and the three
  windows before, on 150 m hexagons, in a transaction as the demo grid center (the database's
  work, the statistics and the rows), and the GraphQL query ``caseHotspots`` with every cell's
  geometry through the app in-process (what a client waits for, without the network); the
  same on the district's grids for reference. The pieces of one call are timed apart too.
- one grid's case list: the newest 50 cases of the demo grid worker's grid, as that worker
  through the app role with row-level security on, each run a transaction of its own (set the
  caller, select, commit): ``SELECT … FROM grid_case WHERE grid_code = … ORDER BY reported_at
  DESC LIMIT 50``, and ``geo.cases.cases_page`` (the GraphQL ``cases`` list's query) when it
  is there.

Results: printed, and the section between the markers below in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import psycopg2  # noqa: E402
import shapely  # noqa: E402
import side_by_side as sbs  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from api.auth import caller_of  # noqa: E402
from api.settings import Settings  # noqa: E402
from geo import case_hotspots as ch  # noqa: E402
from geo.access import Caller, Role  # noqa: E402
from geo.db import make_engine, scoped_session  # noqa: E402
from geo.demo import DISTRICT_CODE, demo_info, demo_logins_of  # noqa: E402
from geo.workers import worker_by_code  # noqa: E402

BEGIN = "<!-- bench/hotspots.py: begin -->"
END = "<!-- bench/hotspots.py: end -->"
CLIENT = "bench/hotspots.py"
ZONE = ZoneInfo("Asia/Shanghai")
HOTSPOTS_TARGET_MS = 2000
LIST_TARGET_MS = 20
CLUSTERS = 60
QUERY = """query($s: String!, $f: Date, $t: Date, $k: HotspotCellKind!) {
  caseHotspots(scope: $s, from: $f, to: $t, cell: $k, hexMeters: 150) {
    srid cells { code geometry count zScore pValue confidence emerging suppressed } } }"""
LIST = """
SELECT c.id, c.number, c.category_code, c.state, c.priority, c.reported_at, c.deadline,
       ST_X(c.location) AS lon, ST_Y(c.location) AS lat
FROM grid_case c WHERE c.grid_code = :grid ORDER BY c.reported_at DESC LIMIT 50
"""


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    fn()  # warm-up: plans, caches
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))] * 1000,
        "max_ms": seconds[-1] * 1000,
    }


# --------------------------------------------------------------------------------------------
# 500,000 synthetic cases, once
# --------------------------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def plant_cases(db: sbs.Database, total: int, seed: int) -> tuple[int, int]:
    """Add synthetic cases until the database holds ``total`` cases (the demo's own count);
    they are kept, and never added twice. (synthetic, all cases)."""
    conn = psycopg2.connect(_dsn(db.owner_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE client = %s), count(*) FROM grid_case",
                        (CLIENT,))  # fmt: skip
            have, everything = cur.fetchone()
            if everything >= total:
                return have, everything
            need = total - everything
            print(f"adding {need:,} synthetic cases to {db.name} (kept for the next run)")
            start = time.perf_counter()
            rows = _synthetic(cur, need, have, np.random.default_rng(seed + have))
            cur.copy_expert(
                "COPY grid_case (number, source, category_code, description, location,"
                " grid_code, micro_grid_code, state, reported_at, closed_at, external_id, client)"
                " FROM STDIN",
                rows,
            )
            cur.execute("ANALYZE grid_case")
            print(f"  done in {time.perf_counter() - start:.0f} s")
            return have + need, total
    finally:
        conn.close()


def _synthetic(cur: Any, n: int, offset: int, rng: np.random.Generator) -> io.StringIO:
    cur.execute(
        "SELECT m.code, ST_AsBinary(m.geom), count(h.id) FROM micro_grid m"
        " LEFT JOIN household h ON h.code >= m.code AND h.code < m.code || chr(1114111)"
        " WHERE m.code LIKE %s GROUP BY m.code, m.geom ORDER BY m.code",
        (DISTRICT_CODE + "%",),
    )
    found = cur.fetchall()
    codes = np.array([r[0] for r in found])
    shapes = shapely.from_wkb([bytes(r[1]) for r in found])
    weight = np.array([r[2] + 1 for r in found], dtype=float)
    weight /= weight.sum()
    cur.execute("SELECT code FROM case_category WHERE active ORDER BY code")
    categories = [r[0] for r in cur.fetchall()]
    tree = shapely.STRtree(shapes)
    now = dt.datetime.now(dt.UTC)
    year = 365 * 86400.0

    # Background: a micro-grid by its households, a point inside it, a time in the year.
    k = n // 2
    where = rng.choice(len(codes), size=k, p=weight)
    x, y = _inside(shapes[where], rng)
    ago = rng.uniform(0, year, k)
    # Clusters: a centre in a micro-grid, a spread, a first day; cases by intensity x days.
    centres = rng.choice(len(codes), size=CLUSTERS, p=weight)
    cx, cy = _inside(shapes[centres], rng)
    sigma = rng.uniform(80, 300, CLUSTERS)
    start = rng.uniform(20 * 86400, year, CLUSTERS)  # active for its last `start` seconds
    share = rng.uniform(0.5, 2, CLUSTERS) * start
    m = n - k
    which = rng.choice(CLUSTERS, size=m, p=share / share.sum())
    lat0 = cy[which]
    px = cx[which] + rng.normal(0, 1, m) * sigma[which] / (111_320 * np.cos(np.radians(lat0)))
    py = lat0 + rng.normal(0, 1, m) * sigma[which] / 111_320
    pa = rng.uniform(0, 1, m) * start[which]
    points = shapely.points(px, py)
    inside, hit = tree.query(points, predicate="within")
    keep = np.full(m, -1)
    keep[inside] = hit
    ok = keep >= 0  # a point off the district's micro-grids is left out: the background is more
    x, y, ago = np.concatenate([x, px[ok]]), np.concatenate([y, py[ok]]), np.concatenate(
        [ago, pa[ok]]
    )  # fmt: skip
    where = np.concatenate([where, keep[ok]])
    extra = n - len(where)
    if extra > 0:  # top up with background
        more = rng.choice(len(codes), size=extra, p=weight)
        mx, my = _inside(shapes[more], rng)
        x, y = np.concatenate([x, mx]), np.concatenate([y, my])
        ago = np.concatenate([ago, rng.uniform(0, year, extra)])
        where = np.concatenate([where, more])

    days = ago / 86400
    closed = rng.uniform(0, 1, n) < np.minimum(0.97, days / 20)
    states = np.where(closed, "CLOSED", rng.choice(["REPORTED", "DISPATCHED", "HANDLED"], n))
    took = rng.uniform(2 * 3600, 15 * 86400, n)  # seconds from report to closure
    category = rng.integers(len(categories), size=n)
    out = io.StringIO()
    for i in range(n):
        at = now - dt.timedelta(seconds=float(ago[i]))
        closed_at = "\\N"
        if closed[i]:
            closed_at = min(now, at + dt.timedelta(seconds=float(took[i]))).isoformat()
        code = codes[where[i]]
        number = f"{at.astimezone(ZONE).year}-{5_000_000 + offset + i}"
        out.write(
            f"{number}\tGRID_WHISTLE\t{categories[category[i]]}\tsynthetic case ({CLIENT})\t"
            f"SRID=4326;POINT({x[i]:.9f} {y[i]:.9f})\t{code[:15]}\t{code}\t{states[i]}\t"
            f"{at.isoformat()}\t{closed_at}\tbench-{offset + i}\t{CLIENT}\n"
        )
    out.seek(0)
    return out


def _inside(shapes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniform point inside each shape (rejection in its bounding box)."""
    bounds = shapely.bounds(shapes)
    x = np.empty(len(shapes))
    y = np.empty(len(shapes))
    todo = np.arange(len(shapes))
    while len(todo):
        b = bounds[todo]
        tx = rng.uniform(b[:, 0], b[:, 2])
        ty = rng.uniform(b[:, 1], b[:, 3])
        hit = shapely.contains_xy(shapes[todo], tx, ty)
        x[todo[hit]], y[todo[hit]] = tx[hit], ty[hit]
        todo = todo[~hit]
    return x, y


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def pieces(session: Any, first: dt.date, last: dt.date) -> dict[str, float]:
    """One district-wide HEX call, timed by piece."""
    spent: dict[str, float] = {}
    originals = {}

    def wrap(name: str) -> None:
        fn = getattr(ch, name)
        originals[name] = fn

        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

        setattr(ch, name, timed_fn)

    for name in ("check_window", "check_categories", "utm_srid", "check_hexagon_count",
                 "_hex_cells", "_hex_counts"):  # fmt: skip
        wrap(name)
    try:
        start = time.perf_counter()
        ch.hotspots(session=session, scope=DISTRICT_CODE, first_day=first, last_day=last,
                    cell="HEX", hex_m=150)  # fmt: skip
        spent["total"] = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(ch, name, fn)
    return spent


def explain(engine: Any, caller: Caller, sql: str, params: dict[str, Any]) -> str:
    with scoped_session(engine, caller.settings()) as session:
        rows = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).scalars()
        return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="gridmap_bench_1m", help="a local database name")
    parser.add_argument("--households", type=int, default=1_000_000,
                        help="the demo's size when the database must be loaded")  # fmt: skip
    parser.add_argument("--cases", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--days", type=int, default=30, help="the window's length")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--explain", action="store_true", help="print the plans")
    args = parser.parse_args(argv)

    settings = Settings()
    db = sbs.resolve_database(args.database, settings)
    scale = sbs.prepare_database(db, args.households, settings.secret_key)
    synthetic, cases = plant_cases(db, args.cases, args.seed)
    scale["demo_version"] = (demo_info(url=db.owner_url) or {}).get("version")
    load = sbs.wait_quiet()

    today = dt.datetime.now(ZONE).date()
    first = today - dt.timedelta(days=args.days - 1)
    engine = make_engine(db.app_url, pool_size=2)
    center = Caller(Role.GRID_CENTER, areas=(DISTRICT_CODE,))
    logins = demo_logins_of(db.owner_url)
    owner = make_engine(db.owner_url, pool_size=1)
    with owner.connect() as connection:
        worker = caller_of(worker_by_code(connection=connection, code=logins["GRID_WORKER"]))
        grid = worker.areas[0]
        grid_cases = connection.execute(
            text("SELECT count(*) FROM grid_case WHERE grid_code = :g"), {"g": grid}
        ).scalar_one()
        in_windows = connection.execute(
            text("SELECT count(*) FROM grid_case WHERE reported_at >= :f"),
            {"f": dt.datetime.combine(first - dt.timedelta(days=3 * args.days), dt.time(),
                                      ZONE)},
        ).scalar_one()  # fmt: skip
    owner.dispose()

    app_settings = Settings(database_url=db.app_url, owner_database_url=db.owner_url)
    _, token = sbs.grid_center_token(db, app_settings)
    results: dict[str, dict[str, Any]] = {}
    with TestClient(create_app(app_settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for cell, name in (("HEX", "district, 150 m hexagons"), ("GRID", "district, grids")):
            sql = functools.partial(count_cells, engine, center, DISTRICT_CODE, cell, first, today)

            def http(cell: str = cell) -> int:
                variables = {"s": DISTRICT_CODE, "f": str(first), "t": str(today), "k": cell}
                response = client.post("/graphql", json={"query": QUERY, "variables": variables})
                body = response.json()
                assert response.status_code == 200 and "errors" not in body, response.text[:500]
                return len(body["data"]["caseHotspots"]["cells"])

            cells = sql()
            hot = labels(engine, center, cell, first, today)
            target = HOTSPOTS_TARGET_MS if cell == "HEX" else None
            results[name] = {
                "cells": cells, "target_ms": target, "hot": hot,
                "sql": timed(sql, args.runs), "graphql": timed(http, args.runs),
            }  # fmt: skip
            r = results[name]
            print(f"{name:<26} {cells:>6} cells  data layer median {r['sql']['median_ms']:7.1f} ms"
                  f"  GraphQL median {r['graphql']['median_ms']:7.1f} ms"
                  f"  (p95 {r['graphql']['p95_ms']:.1f})  {hot}")  # fmt: skip

    with scoped_session(engine, center.settings()) as session:
        split = pieces(session, first, today)
    print("one HEX call by piece: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in split.items()))

    def listed() -> int:
        with scoped_session(engine, worker.settings()) as session:
            return len(session.execute(text(LIST), {"grid": grid}).all())

    lists = {"SQL": (listed, LIST.strip())}
    try:
        from geo import cases as case_module

        def page() -> int:
            with scoped_session(engine, worker.settings()) as session:
                return len(case_module.cases_page(session=session, scope=grid, first=50,
                                                  after=None).rows)  # fmt: skip

        page()
        lists["geo.cases.cases_page"] = (page, "geo.cases.cases_page(scope=grid, first=50)")
    except Exception as exc:  # the lead's list may not be there yet, or may have changed
        print(f"geo.cases.cases_page not measured: {exc!r}")
    for name, (fn, _) in lists.items():
        rows = fn()
        assert rows == min(50, grid_cases), (rows, grid_cases)
        r = timed(fn, max(args.runs, 50))
        results[f"one grid's case list ({name})"] = {
            "cells": rows, "target_ms": LIST_TARGET_MS, "sql": r, "graphql": None, "hot": "",
        }  # fmt: skip
        print(f"one grid's case list, {name}: {rows} rows, median {r['median_ms']:.2f} ms"
              f" (p95 {r['p95_ms']:.2f}, max {r['max_ms']:.2f})")  # fmt: skip

    if args.explain:
        print(explain(engine, worker, LIST, {"grid": grid}))
        print(explain(engine, center, "SELECT * FROM case_hex_counts(:s, 32651, 150, :f, :t,"
                      " 3, NULL)", {"s": DISTRICT_CODE, "f": first, "t": today}))  # fmt: skip
    engine.dispose()
    if not args.no_write:
        write(results, split, scale, (synthetic, cases), in_windows, grid, grid_cases, worker,
              load, args, today)  # fmt: skip
    return 0


def count_cells(engine: Any, caller: Caller, scope: str, cell: str, first: dt.date,
                last: dt.date) -> int:  # fmt: skip
    """The data layer: ``geo.case_hotspots.hotspots`` (150 m hexagons for HEX) in a transaction
    as ``caller``; the number of cells."""
    with scoped_session(engine, caller.settings()) as session:
        return len(ch.hotspots(session=session, scope=scope, first_day=first, last_day=last,
                               cell=cell, hex_m=150).cells)  # fmt: skip


def labels(engine: Any, caller: Caller, cell: str, first: dt.date, last: dt.date,
           scope: str = DISTRICT_CODE) -> str:  # fmt: skip
    """What came out: hot and cold cells, and the trends."""
    with scoped_session(engine, caller.settings()) as session:
        found = ch.hotspots(session=session, scope=scope, first_day=first, last_day=last,
                            cell=cell, hex_m=150)  # fmt: skip
    confidence: dict[str, int] = {}
    trend: dict[str, int] = {}
    for c in found.cells:
        confidence[c["confidence"]] = confidence.get(c["confidence"], 0) + 1
        if c["emerging"] != "NONE":
            trend[c["emerging"]] = trend.get(c["emerging"], 0) + 1
    hot = sum(v for k, v in confidence.items() if k.startswith("HOT"))
    cold = sum(v for k, v in confidence.items() if k.startswith("COLD"))
    return f"{hot} hot ({confidence.get('HOT_99', 0)} at 99 %), {cold} cold; " + (
        ", ".join(f"{v} {k}" for k, v in sorted(trend.items())) or "no trend"
    )


def write(
    results: dict[str, dict[str, Any]],
    split: dict[str, float],
    scale: dict[str, Any],
    cases: tuple[int, int],
    in_windows: int,
    grid: str,
    grid_cases: int,
    worker: Caller,
    load: float,
    args: Any,
    today: dt.date,
) -> None:
    m = sbs.machine()
    made = (
        f"{cases[0]:,} of them synthetic: clustered, over the year up to {today}, see the script"
        if cases[0] else f"all the demo's own: demo version {scale['demo_version']} loads a "
        "year of cases, so none was added"
    )  # fmt: skip
    lines = [
        BEGIN,
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `bench/hotspots.py` on "
        f"{m['nproc']} cores ({m['cpu']}, {m['memory_gib']} GiB, {m['os']}), load average "
        f"{load:.2f}; database `{scale['database']}`: {scale['households']:,} households, "
        f"{scale['grids']:,} grids, {cases[1]:,} cases ({made}), {in_windows:,} of them in the "
        f"four windows. Median, p95 and max over {args.runs} runs after a warm-up.",
        "",
        f"Hotspots of district {DISTRICT_CODE}, the last {args.days} days and the three windows "
        "before, every category, as the demo grid center: the data layer "
        "(`geo.case_hotspots.hotspots` in its transaction) and the GraphQL query `caseHotspots` "
        "with every cell's geometry, through the app in-process.",
        "",
        "| case | cells | data layer median | GraphQL median | GraphQL p95 | GraphQL max | target"
        " | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        if r["graphql"] is None:
            continue
        g = r["graphql"]
        target = f"< {r['target_ms']:,} ms" if r["target_ms"] else "—"
        met = "—" if not r["target_ms"] else "yes" if g["median_ms"] < r["target_ms"] else "**no**"
        lines.append(
            f"| {name} | {r['cells']:,} | {r['sql']['median_ms']:.0f} ms | {g['median_ms']:.0f} ms"
            f" | {g['p95_ms']:.0f} ms | {g['max_ms']:.0f} ms | {target} | {met} |"
        )
    lines += ["", "What came out: " + "; ".join(
        f"{name}: {r['hot']}" for name, r in results.items() if r["hot"]) + ".", ""]  # fmt: skip
    timed_pieces = {k: v for k, v in split.items() if k != "total"}
    shown = [f"{_piece(k)} {v * 1000:.0f} ms" for k, v in timed_pieces.items() if v >= 0.0005]
    rest = split["total"] - sum(timed_pieces.values())
    lines.append(
        f"One district-wide hexagon call by piece: {', '.join(shown)}, the statistics and the "
        f"rest {rest * 1000:.0f} ms (total {split['total'] * 1000:.0f} ms)."
    )
    lines += [
        "",
        f"One grid's case list: the newest 50 of the {grid_cases:,} cases of grid {grid}, as "
        f"its grid worker {worker.worker_code} through the app role with row-level security on, "
        "each run a transaction (set the caller, select, commit).",
        "",
        "| query | rows | median | p95 | max | target | met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        if r["graphql"] is not None:
            continue
        s = r["sql"]
        met = "yes" if s["median_ms"] < r["target_ms"] else "**no**"
        lines.append(
            f"| {name.split('(', 1)[1].rstrip(')')} | {r['cells']} | {s['median_ms']:.2f} ms | "
            f"{s['p95_ms']:.2f} ms | {s['max_ms']:.2f} ms | < {r['target_ms']} ms | {met} |"
        )
    lines.append(END)
    sbs.write_section(BEGIN, END, "\n".join(lines), "Case hotspots (issue 5)")


def _piece(name: str) -> str:
    return {
        "check_window": "the window", "check_categories": "categories",
        "utm_srid": "the projection", "check_hexagon_count": "the hexagon cap",
        "_hex_cells": "SQL: the hexagons (`ST_HexagonGrid`)",
        "_hex_counts": "SQL: the counts (`case_hex_counts`)",
    }.get(name, name)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
