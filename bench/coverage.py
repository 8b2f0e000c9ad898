"""Visit coverage at the 1,000,000-household scale: the figures issue 4 asks for.

    .venv/bin/python bench/coverage.py                      # gridmap_bench_1m, 20 runs each
    .venv/bin/python bench/coverage.py --database gridmap --runs 5

Targets: the whole district at GRID level as of today under 1 s, one grid under 20 ms, the
whole district as of a past day under 5 s. Each case is timed twice: ``geo.coverage.cells`` in a
transaction scoped to the demo grid center (the database's work and the rows), and the GraphQL
query ``coverage`` through the app in-process (what a client waits for, without the network).
Median, p95 and max over ``--runs`` after one warm-up. The database is created and loaded with
the demo (with its six months of visits) when it is missing or older, as bench/side_by_side.py
does. Results: printed, and the section between the markers below in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import side_by_side as sbs  # noqa: E402
from sqlalchemy import text  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402
from geo import coverage  # noqa: E402
from geo.access import Caller, Role  # noqa: E402
from geo.db import make_engine, scoped_session  # noqa: E402
from geo.demo import DISTRICT_CODE, HOME_SUBDISTRICT, demo_info, load_demo  # noqa: E402

BEGIN = "<!-- bench/coverage.py: begin -->"
END = "<!-- bench/coverage.py: end -->"
QUERY = """query($s: String!, $d: Date) { coverage(scope: $s, level: GRID, asOf: $d) {
  code households contacted ratio overdue { a b c total } geometry } }"""


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


def count_cells(engine: Any, caller: Caller, scope: str, as_of: dt.date | None) -> int:
    """The data layer: ``geo.coverage.cells`` at GRID level in a transaction as ``caller``."""
    with scoped_session(engine, caller.settings()) as session:
        return len(coverage.cells(session=session, scope=scope, level="GRID", as_of=as_of))


def variables(scope: str, as_of: dt.date | None) -> dict[str, Any]:
    """The variables of ``QUERY``."""
    return {"s": scope, "d": as_of and str(as_of)}


def ask(client: Any, scope: str, as_of: dt.date | None) -> int:
    """The GraphQL query ``coverage`` through the app in-process (a starlette TestClient)."""
    response = client.post("/graphql", json={"query": QUERY, "variables": variables(scope, as_of)})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, response.text
    return len(body["data"]["coverage"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="gridmap_bench_1m", help="a local database name")
    parser.add_argument("--households", type=int, default=1_000_000,
                        help="the demo's size when the database must be loaded")  # fmt: skip
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--past-days", type=int, default=90, help="how far back the past day is")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    settings = Settings()
    db = sbs.resolve_database(args.database, settings)
    scale = sbs.prepare_database(db, args.households, settings.secret_key)
    info = demo_info(url=db.owner_url)
    if info is not None:  # bring an older demo up to date (its visits): fast when current
        print(load_demo(url=db.owner_url, secret_key=settings.secret_key,
                        households=info["households"], seed=info["seed"]))  # fmt: skip
    sbs.wait_quiet()

    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    past = today - dt.timedelta(days=args.past_days)
    engine = make_engine(db.app_url, pool_size=2)
    caller = Caller(Role.GRID_CENTER, areas=(DISTRICT_CODE,))
    with scoped_session(engine, caller.settings()) as session:
        grid = coverage.cells(session=session, scope=HOME_SUBDISTRICT, level="GRID")[0]["code"]
        visits = session.execute(text("SELECT count(*) FROM visit")).scalar_one()
    cases = {
        "district, today": (DISTRICT_CODE, None, 1000),
        "one grid, today": (grid, None, 20),
        f"district, {args.past_days} days ago": (DISTRICT_CODE, past, 5000),
    }
    app_settings = Settings(database_url=db.app_url, owner_database_url=db.owner_url)
    _, token = sbs.grid_center_token(db, app_settings)
    results: dict[str, dict[str, Any]] = {}
    with TestClient(create_app(app_settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for name, (scope, as_of, target) in cases.items():
            sql = functools.partial(count_cells, engine, caller, scope, as_of)
            http = functools.partial(ask, client, scope, as_of)
            cells = sql()
            results[name] = {
                "cells": cells, "target_ms": target,
                "sql": timed(sql, args.runs), "graphql": timed(http, args.runs),
            }  # fmt: skip
            r = results[name]
            print(f"{name:<24} {cells:>5} cells  SQL median {r['sql']['median_ms']:8.1f} ms"
                  f"  GraphQL median {r['graphql']['median_ms']:8.1f} ms"
                  f"  (p95 {r['graphql']['p95_ms']:.1f}, target < {target} ms)")  # fmt: skip
    engine.dispose()
    if not args.no_write:
        write(results, scale, visits, args.runs, today, past)
    return 0


def write(
    results: dict[str, dict[str, Any]],
    scale: dict[str, Any],
    visits: int,
    runs: int,
    today: dt.date,
    past: dt.date,
) -> None:
    m = sbs.machine()
    lines = [
        BEGIN,
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `bench/coverage.py` on "
        f"{m['nproc']} cores ({m['cpu']}, {m['memory_gib']} GiB, {m['os']}); database "
        f"`{scale['database']}`: {scale['households']:,} households, {visits:,} visits, "
        f"{scale['grids']:,} grids. Today is {today}, the past day {past}. Median, p95 and max "
        f"over {runs} runs after a warm-up, as the demo grid center.",
        "",
        "| case | cells | SQL median | GraphQL median | GraphQL p95 | GraphQL max | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        g = r["graphql"]
        met = "yes" if g["median_ms"] < r["target_ms"] else "**no**"
        lines.append(
            f"| {name} | {r['cells']:,} | {r['sql']['median_ms']:.1f} ms | {g['median_ms']:.1f} ms"
            f" | {g['p95_ms']:.1f} ms | {g['max_ms']:.1f} ms | < {r['target_ms']:,} ms | {met} |"
        )
    lines.append(END)
    sbs.write_section(BEGIN, END, "\n".join(lines), "Visit coverage (issue 4)")


if __name__ == "__main__":
    sys.exit(main())
