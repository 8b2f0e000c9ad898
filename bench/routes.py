"""Walking routes of 100 stops: the figures issue 9 asks for.

    .venv/bin/python bench/routes.py                      # gridmap_bench_routes, 5 runs
    .venv/bin/python bench/routes.py --runs 3 --no-write

Target: a 100-stop route with time windows on a 5,000-edge walking network in under 2 s, with
the solver's time limit at 1 s: ``geo.routes.walking_route`` as the worker whose day it is
(the app role, row-level security on). The database is created and loaded with a demo of
40,000 households (a network of 5,549 edges) when it is missing, brought up to date when its
demo is older, and kept for the next run.

The worker: a community worker (their area is the whole community, about 4,000 households), by
default the one whose community's doors, widened by ``geo.routes.MARGIN_DEG`` (the part of the
network the distances are computed on), take in the most edges. The day: next Wednesday. The
default Wednesday (9–12, 13–17, 18:30–20:30) with 15-minute visits (30 for a first) holds about
20 stops, so each run gives the worker one long Wednesday shift (``--shift``, set with
``geo.routes.set_shifts``) and shorter visits (``--visit-minutes``, ``--first-visit-minutes``);
the households' own visit times still apply (daytime only, evening only).

Each run is one transaction, rolled back at the end: set the shift, then time ``walking_route``,
split by wrapping the session's ``execute`` and ``geo.routes.solve`` (and its 2-opt seed) from
here: SQL of the households due, the distance matrix (``pgr_dijkstraCostMatrix``), the path
(``pgr_dijkstraVia``) and the rest, the solver, and Python. Median and max over ``--runs`` after
a warm-up. The route is checked: its stop count, each arrival inside the household's windows and
reachable in time from the stop before. Then the solver alone on the last run's problem, in a
child process: with longer time limits (``--limits``) and with ``deterministic=True`` (a fixed
amount of search, no time limit; stopped after ``--full-search-timeout``), for what a fuller
search gives. The worker's own shifts with the default visit lengths are measured the same way
for reference. Results: printed, and the section between the markers below in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import side_by_side as sbs  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from api.auth import caller_of  # noqa: E402
from api.settings import Settings  # noqa: E402
from geo import demo, routes  # noqa: E402
from geo.access import Caller  # noqa: E402
from geo.db import make_engine, set_scope  # noqa: E402
from geo.workers import worker_by_code  # noqa: E402

BEGIN = "<!-- bench/routes.py: begin -->"
END = "<!-- bench/routes.py: end -->"
TARGET_S = 2.0
ZONE = ZoneInfo("Asia/Shanghai")
WEDNESDAY = 3
# The statements of walking_route timed apart; any other statement counts as "other".
KINDS = {routes.DUE: "due", routes.MATRIX: "matrix", routes.PATH: "path"}
PIECES = (
    ("due", "SQL: households due (`household_contact_status`)"),
    ("matrix", "SQL: distance matrix (`pgr_dijkstraCostMatrix`)"),
    ("solver", "solver (`geo.routes.solve`, time limit {limit:g} s)"),
    ("two_opt", "… of which its 2-opt seed"),
    ("path", "SQL: path (`pgr_dijkstraVia`)"),
    ("other", "SQL: the rest (worker, saved plan, shifts, start)"),
    ("python", "Python: the rest"),
)


@dataclass(frozen=True)
class Case:
    name: str
    shift: tuple[dt.time, dt.time] | None  # None: the worker's own shifts that day
    settings: routes.RouteSettings


@dataclass
class Probe:
    """What one ``walking_route`` did: seconds by piece, the solver's problem and answer."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    problem: routes.Problem | None = None
    visited: list[tuple[int, int]] = field(default_factory=list)
    seed: list[int] = field(default_factory=list)  # the 2-opt tour the search starts from
    matrix: dict[str, Any] = field(default_factory=dict)  # the matrix statement's parameters

    def watch(self, session: Session) -> None:
        """Time the session's statements from now on, by kind."""
        execute = session.execute

        def timed(statement: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            kind = KINDS.get(getattr(statement, "text", ""), "other")
            if kind == "matrix":
                self.matrix = dict(params)
            start = time.perf_counter()
            try:
                return execute(statement, params, *args, **kwargs)
            finally:
                self.seconds[kind] += time.perf_counter() - start

        session.execute = timed  # type: ignore[method-assign]


@contextmanager
def probing(probes: list[Probe]) -> Iterator[None]:
    """Time ``geo.routes.solve`` and its 2-opt seed into the last probe of ``probes``."""
    solve, two_opt = routes.solve, routes.two_opt_tour

    def timed_solve(problem: routes.Problem, settings: routes.RouteSettings) -> Any:
        start = time.perf_counter()
        visited = solve(problem, settings)
        probe = probes[-1]
        probe.seconds["solver"] += time.perf_counter() - start
        probe.problem, probe.visited = problem, visited
        return visited

    def timed_two_opt(metres: np.ndarray, nodes: Sequence[int]) -> list[int]:
        start = time.perf_counter()
        tour = two_opt(metres, nodes)
        probes[-1].seconds["two_opt"] += time.perf_counter() - start
        probes[-1].seed = list(tour)
        return tour

    routes.solve = timed_solve  # type: ignore[assignment]
    routes.two_opt_tour = timed_two_opt  # type: ignore[assignment]
    try:
        yield
    finally:
        routes.solve, routes.two_opt_tour = solve, two_opt  # type: ignore[assignment]


def next_wednesday() -> dt.date:
    """The next Wednesday after today in Shanghai (never today)."""
    today = dt.datetime.now(ZONE).date()
    return today + dt.timedelta(days=(WEDNESDAY - today.isoweekday() - 1) % 7 + 1)


def choose_worker(owner: Engine) -> str:
    """The first community worker of the community whose doors' box, widened as
    ``walking_route`` widens it, takes in the most edges of the network."""
    with owner.connect() as connection:
        code = connection.execute(
            text(
                "WITH box AS (SELECT left(code, 12) AS community,"
                "  ST_Expand(ST_Extent(geom)::geometry, :margin) AS geom"
                "  FROM walk_entrance GROUP BY 1),"
                " edges AS (SELECT box.community, count(*) AS n FROM box"
                "  JOIN walk_edge e ON e.geom && box.geom GROUP BY 1)"
                " SELECT w.code FROM edges JOIN community c ON c.code = edges.community"
                " JOIN worker w ON w.community_id = c.id AND w.role = 'COMMUNITY'"
                " ORDER BY edges.n DESC, w.code LIMIT 1"
            ),
            {"margin": routes.MARGIN_DEG},
        ).scalar()
    if code is None:
        raise sbs.BenchError("no community worker, or no walking network: is the demo loaded?")
    return str(code)


def count_due(engine: Engine, caller: Caller, day: dt.date) -> tuple[int, int]:
    """Households due on ``day`` in the caller's areas, and those of them that can be walked
    to (not class A, their building on the network), as the caller sees them."""
    with engine.connect() as connection, connection.begin():
        session = Session(bind=connection)
        set_scope(session, caller.settings())
        due, walkable = session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE s.household_class <> 'A'"
                "  AND EXISTS (SELECT 1 FROM walk_entrance e WHERE e.code = left(s.code, 21)))"
                " FROM unnest(CAST(:areas AS text[])) a,"
                " LATERAL household_contact_status(a, :day) s WHERE NOT s.contacted"
            ),
            {"areas": list(caller.areas), "day": day},
        ).one()
        session.close()
    return int(due), int(walkable)


def one_run(
    engine: Engine,
    caller: Caller,
    worker: dict[str, Any],
    day: dt.date,
    case: Case,
    stops: int,
    probe: Probe,
) -> tuple[float, routes.Route, tuple[routes.Interval, ...]]:
    """One ``walking_route`` in a transaction of its own, rolled back: its wall time, the route
    and the worker's shifts that day."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection)
        try:
            set_scope(session, caller.settings())
            if case.shift is not None:
                routes.set_shifts(session=session, caller=caller, worker_id=worker["id"],
                                  week=[(day.isoweekday(), *case.shift)])  # fmt: skip
            worker_day = routes.shifts(session, worker["id"]).get(day.isoweekday(), ())
            probe.watch(session)
            start = time.perf_counter()
            route = routes.walking_route(
                session=session, caller=caller, worker_id=worker["id"], day=day,
                max_stops=stops, settings=case.settings,
            )  # fmt: skip
            seconds = time.perf_counter() - start
        finally:
            session.close()
            transaction.rollback()
    if route.planned_at is not None:
        raise sbs.BenchError(f"{worker['code']} has a saved plan for {day}: nothing is computed")
    probe.seconds["python"] = seconds - sum(
        v for k, v in probe.seconds.items() if k not in ("python", "two_opt")
    )
    return seconds, route, worker_day


def check_times(problem: routes.Problem, order: Sequence[int]) -> str | None:
    """Whether walking ``order`` from the start keeps every time window and is back by the end
    of the day, arriving as early as possible: None, or what breaks first."""
    walk = np.ceil(problem.metres * 60.0 / problem.metres_per_minute).astype(np.int64)
    at, here = problem.day[0], 0
    for i, node in enumerate(order, start=1):
        at += int(walk[here, node]) + problem.service[here]
        opens = [lo for lo, hi in sorted(problem.windows[node]) if at <= hi]
        if not opens:
            return f"stop {i} arrives at {routes.clock(at)}, after its windows"
        at, here = max(at, opens[0]), node
    at += int(walk[here, 0]) + problem.service[here]
    if at > problem.day[1]:
        return f"back at {routes.clock(at)}, after the day's end {routes.clock(problem.day[1])}"
    return None


def check_route(problem: routes.Problem, visited: Sequence[tuple[int, int]]) -> str | None:
    """Whether the solver's stops keep their windows, in time order: None, or the first fault."""
    walk = np.ceil(problem.metres * 60.0 / problem.metres_per_minute).astype(np.int64)
    at, here = problem.day[0], 0
    for node, arrival in visited:
        earliest = at + int(walk[here, node]) + problem.service[here]
        if arrival < earliest:
            return f"node {node} at {routes.clock(arrival)}, before it can be reached"
        if not any(lo <= arrival <= hi for lo, hi in problem.windows[node]):
            return f"node {node} at {routes.clock(arrival)}, outside its windows"
        at, here = arrival, node
    if at + problem.service[here] + int(walk[here, 0]) > problem.day[1]:
        return "back after the end of the day"
    return None


def _present(windows: Sequence[routes.Interval], service: int) -> list[routes.Interval]:
    """When a visit may be under way: the windows, each extended by the visit, merged."""
    out: list[routes.Interval] = []
    for lo, hi in sorted(windows):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi + service))
        else:
            out.append((lo, hi + service))
    return out


def restricted(problem: routes.Problem, worker_day: Sequence[routes.Interval]) -> set[int]:
    """The nodes whose visit times leave out part of the worker's day that a household found in
    all day (no visit times named) leaves open."""
    out = set()
    for node in range(1, len(problem.windows)):
        service = problem.service[node]
        anytime = routes._windows((), worker_day, False, service)
        if _present(problem.windows[node], service) != _present(anytime, service):
            out.add(node)
    return out


def measure(
    engine: Engine,
    caller: Caller,
    worker: dict[str, Any],
    day: dt.date,
    case: Case,
    stops: int,
    runs: int,
) -> dict[str, Any]:
    """``runs`` timed runs after a warm-up; the figures and the last run's route, checked."""
    probes: list[Probe] = []
    totals: list[float] = []
    answers: list[tuple[int, int]] = []  # stops and tour metres of each timed run
    route: routes.Route | None = None
    worker_day: tuple[routes.Interval, ...] = ()
    with probing(probes):
        for run in range(runs + 1):
            probes.append(Probe())
            seconds, route, worker_day = one_run(
                engine, caller, worker, day, case, stops, probes[-1]
            )
            p = probes[-1]
            print(
                f"  run {run or 'warm-up'}: {seconds * 1000:7.0f} ms, {len(route.stops)} stops, "
                f"{route.total_m:,.0f} m (matrix {p.seconds['matrix'] * 1000:.0f} ms, "
                f"solver {p.seconds['solver'] * 1000:.0f} ms, path {p.seconds['path'] * 1000:.0f}"
                " ms)"
            )
            if run:
                totals.append(seconds)
                answers.append((len(route.stops), round(route.total_m)))
    warm_up, timed = probes[0], probes[1:]
    last = timed[-1]
    assert route is not None and last.problem is not None
    problem = last.problem
    with engine.connect() as connection:
        bbox_edges = connection.execute(
            text(f"SELECT count(*) FROM ({last.matrix['edges']}) e")
        ).scalar_one()
    narrow = restricted(problem, worker_day)
    visited = [node for node, _ in last.visited]
    seed_fault = check_times(problem, last.seed) if last.seed else "no seed"
    return {
        "name": case.name,
        "shift": case.shift,
        "settings": case.settings,
        "worker_day": worker_day,
        "warm_up_s": sum(v for k, v in warm_up.seconds.items() if k != "two_opt"),
        "total": {"median_s": statistics.median(totals), "max_s": max(totals)},
        "pieces": {
            key: {
                "median_s": statistics.median(p.seconds.get(key, 0.0) for p in timed),
                "max_s": max(p.seconds.get(key, 0.0) for p in timed),
            }
            for key, _ in PIECES
        },
        "answers": answers,
        "stops": len(route.stops),
        "candidates": len(problem.metres) - 1,
        "skipped": len(route.skipped),
        "restricted": len(narrow),
        "restricted_stops": sum(1 for node in visited if node in narrow),
        "evening_stops": sum(1 for s in route.stops if s.arrival_at.hour >= 18),
        "first_at": route.stops[0].arrival_at if route.stops else None,
        "last_at": route.stops[-1].arrival_at if route.stops else None,
        "total_m": route.total_m,
        "tour_m": routes.tour_metres(problem.metres, visited),
        "most_due": sum(1 for node in visited if node <= problem.max_stops),
        "solver_s": last.seconds["solver"],
        "fault": check_route(problem, last.visited),
        "seed_stops": len(last.seed),
        "seed_m": routes.tour_metres(problem.metres, last.seed) if last.seed else 0,
        "seed_fault": seed_fault,
        "bbox_edges": bbox_edges,
        "matrix_vertices": len(last.matrix["vertices"]),
        "problem": problem,
        "visited": visited,
    }


def _solve_in_child(problem: routes.Problem, settings: routes.RouteSettings, send: Any) -> None:
    start = time.perf_counter()
    visited = routes.solve(problem, settings)
    send.send((time.perf_counter() - start, visited))
    send.close()


def solver_alone(
    problem: routes.Problem, settings: routes.RouteSettings, timeout: float
) -> dict[str, Any] | None:
    """``geo.routes.solve`` alone on ``problem``, in a child process: its answer, or None when
    it has not answered within ``timeout`` seconds (the child is stopped then)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_solve_in_child, args=(problem, settings, send))
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            return None
        seconds, visited = receive.recv()
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
    order = [node for node, _ in visited]
    return {
        "seconds": seconds,
        "stops": len(order),
        "tour_m": routes.tour_metres(problem.metres, order),
        "most_due": sum(1 for node in order if node <= problem.max_stops),
        "fault": check_route(problem, visited),
    }


def searches(problem: routes.Problem, limits: Sequence[float], timeout: float) -> list[Any]:
    """The solver alone with each time limit, then (``timeout`` > 0) with
    ``deterministic=True``: (what, answer or None when it did not finish in ``timeout``)."""
    runs = [
        (f"time limit {limit:g} s", routes.RouteSettings(time_limit_seconds=limit), limit + 60)
        for limit in limits
    ]
    if timeout > 0:
        runs.append(("`deterministic=True`", routes.RouteSettings(deterministic=True), timeout))
    out: list[Any] = []
    for what, settings, seconds in runs:
        print(f"the solver alone on the last problem, {what} (up to {seconds:.0f} s) …")
        r = solver_alone(problem, settings, seconds)
        out.append((what, r, seconds))
        if r is None:
            print(f"  did not finish within {seconds:.0f} s: stopped")
        else:
            print(f"  {r['seconds']:.1f} s, {r['stops']} stops, {r['tour_m']:,} m, "
                  f"{r['most_due']} of the {problem.max_stops} most due, "
                  f"windows {r['fault'] or 'kept'}")  # fmt: skip
    return out


def _time(value: str) -> dt.time:
    return dt.datetime.strptime(value, "%H:%M").time()


def _shift(value: str) -> tuple[dt.time, dt.time]:
    starts, _, ends = value.partition("-")
    return _time(starts), _time(ends)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="gridmap_bench_routes", help="a local database name")
    parser.add_argument("--households", type=int, default=40_000,
                        help="the demo's size when the database must be loaded")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--worker", help="a community worker's staff number (default: as above)")
    parser.add_argument("--stops", type=int, default=100, help="maxStops")
    parser.add_argument("--shift", type=_shift, default=_shift("08:00-21:30"),
                        help="the worker's Wednesday for the benchmark, HH:MM-HH:MM")  # fmt: skip
    parser.add_argument("--visit-minutes", type=int, default=4)
    parser.add_argument("--first-visit-minutes", type=int, default=6)
    parser.add_argument("--time-limit", type=float, default=1.0, help="the solver's, seconds")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the worker's own shifts with the default visits")  # fmt: skip
    parser.add_argument("--limits", default="1,5,20",
                        help="time limits (s) for the solver alone on the last run's problem, "
                        "comma-separated; empty: none")  # fmt: skip
    parser.add_argument("--full-search-timeout", type=float, default=900,
                        help="seconds the solver alone with deterministic=True may take "
                        "before it is stopped; 0: do not run it")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    settings = Settings()
    db = sbs.resolve_database(args.database, settings)
    scale = sbs.prepare_database(db, args.households, settings.secret_key)
    info = demo.demo_info(url=db.owner_url)
    if info is not None:  # bring an older demo up to date (its network): fast when current
        print(demo.load_demo(url=db.owner_url, secret_key=settings.secret_key,
                             households=info["households"], seed=info["seed"]))  # fmt: skip
    owner = create_engine(db.owner_url)
    try:
        code = args.worker or choose_worker(owner)
        with owner.connect() as connection:
            worker = worker_by_code(connection=connection, code=code)
            scale["edges"] = connection.execute(text("SELECT count(*) FROM walk_edge")).scalar()
    finally:
        owner.dispose()
    caller = caller_of(worker)
    day = next_wednesday()
    engine = make_engine(db.app_url, pool_size=1)
    due, walkable = count_due(engine, caller, day)
    print(f"worker {code} ({worker['role']}, areas {', '.join(worker['areas'])}), {day} "
          f"({routes.WEEKDAYS[day.isoweekday() - 1].title()}): {due:,} households due, "
          f"{walkable:,} of them walkable (not class A, their building on the network); "
          f"network {scale['edges']:,} edges")  # fmt: skip
    if walkable < 1.5 * args.stops:
        raise sbs.BenchError(f"{walkable} households to walk to: too few for {args.stops} stops")
    limit = args.time_limit
    cases = [
        Case(
            "benchmark", args.shift,
            routes.RouteSettings(visit_minutes=args.visit_minutes,
                                 first_visit_minutes=args.first_visit_minutes,
                                 time_limit_seconds=limit),
        ),
    ]  # fmt: skip
    if not args.no_reference:
        cases.append(Case("reference", None, routes.RouteSettings(time_limit_seconds=limit)))
    load = sbs.wait_quiet()
    results = []
    for case in cases:
        shift = "the worker's own shifts" if case.shift is None else (
            f"one shift {case.shift[0]:%H:%M}–{case.shift[1]:%H:%M}")  # fmt: skip
        visits = case.settings.visit_minutes, case.settings.first_visit_minutes
        print(f"{case.name}: {shift}, visits {visits[0]} min ({visits[1]} for a first), "
              f"maxStops {args.stops}")  # fmt: skip
        result = measure(engine, caller, worker, day, case, args.stops, args.runs)
        report(result, limit)
        results.append(result)
    engine.dispose()
    limits = [float(v) for v in args.limits.split(",") if v.strip()]
    alone = searches(results[0]["problem"], limits, args.full_search_timeout)
    b = results[0]
    met = all(n == args.stops for n, _ in b["answers"]) and b["total"]["median_s"] < TARGET_S
    print(f"target < {TARGET_S:.0f} s for {args.stops} stops: {'met' if met else 'MISSED'}")
    if not args.no_write:
        write(results, alone, scale, worker, day, due, walkable, load, args, met)
    return 0


def report(r: dict[str, Any], limit: float) -> None:
    print(f"  {'':<56} {'median':>8} {'max':>8}")
    print(f"  {'walking_route, total':<56} {r['total']['median_s'] * 1000:6.0f} ms "
          f"{r['total']['max_s'] * 1000:6.0f} ms")  # fmt: skip
    for key, label in PIECES:
        t = r["pieces"][key]
        print(f"  {label.format(limit=limit).replace('`', ''):<56} "
              f"{t['median_s'] * 1000:6.0f} ms {t['max_s'] * 1000:6.0f} ms")  # fmt: skip
    print(
        f"  {r['stops']} stops of {r['candidates']} households considered ({r['restricted']} of "
        f"them with visit times narrower than the shift: {r['restricted_stops']} among the "
        f"stops, {r['evening_stops']} stops after 18:00), {r['total_m']:,.0f} m walked; "
        f"distances on {r['bbox_edges']:,} edges (the stops' box), {r['matrix_vertices']} "
        f"vertices; windows: {r['fault'] or 'kept'}; 2-opt seed ({r['seed_stops']} most due): "
        f"{r['seed_m']:,} m, {r['seed_fault'] or 'feasible'}"
    )
    print(f"  stops and metres per run: {r['answers']}; cold first run {r['warm_up_s']:.2f} s")


def write(
    results: list[dict[str, Any]],
    alone: list[Any],
    scale: dict[str, Any],
    worker: dict[str, Any],
    day: dt.date,
    due: int,
    walkable: int,
    load: float,
    args: Any,
    met: bool,
) -> None:
    m = sbs.machine()
    b = results[0]
    seed = "feasible." if b["seed_fault"] is None else (
        f"but it breaks the time windows ({b['seed_fault']}), so the search starts from "
        "scratch (`PATH_CHEAPEST_ARC`).")  # fmt: skip
    lines = [
        BEGIN,
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `bench/routes.py` on "
        f"{m['nproc']} cores ({m['cpu']}, {m['memory_gib']} GiB, {m['os']}), load average "
        f"{load:.2f}; database `{scale['database']}`: {scale['households']:,} households, a "
        f"walking network of {scale['edges']:,} edges. `walking_route` for community worker "
        f"{worker['code']} (area {', '.join(worker['areas'])}: {due:,} households due on "
        f"{day}, a Wednesday, {walkable:,} of them walkable) with maxStops {args.stops}, as "
        f"that worker (app role, row-level security); median and max over {args.runs} runs "
        f"after a warm-up, each in its own transaction, rolled back.",
        "",
        f"- The benchmark's day: one shift {b['shift'][0]:%H:%M}–{b['shift'][1]:%H:%M} "
        f"(`set_shifts` in the run's transaction) and {b['settings'].visit_minutes}-minute "
        f"visits ({b['settings'].first_visit_minutes} for a first visit), because the default "
        f"Wednesday of 15-minute visits does not hold {args.stops} stops (see the reference "
        f"below). Each household's visit times still apply: {b['restricted']} of the "
        f"{b['candidates']} households considered are found in only in the daytime or only in "
        f"the evening ({b['restricted_stops']} of them among the stops).",
        f"- The route: **{b['stops']} stops**, {b['total_m']:,.0f} m, first arrival "
        f"{b['first_at']:%H:%M}, last {b['last_at']:%H:%M} ({b['evening_stops']} after "
        f"18:00); every arrival inside its windows and reachable from the stop before: "
        f"{'yes' if b['fault'] is None else '**no**: ' + b['fault']}. Stops and metres of "
        f"each run: {', '.join(f'{s} / {m_:,}' for s, m_ in b['answers'])}.",
        f"- Distances: `pgr_dijkstraCostMatrix` over {b['matrix_vertices']} vertices on the "
        f"{b['bbox_edges']:,} edges of the stops' box (their extent widened by "
        f"{routes.MARGIN_DEG}°, as `walking_route` does).",
        f"- The solver's seed (the {b['seed_stops']} most due households nearest first, then "
        f"2-opt): {b['seed_m']:,} m, {seed}",
        "",
        "| piece | median | max |",
        "|---|---:|---:|",
        f"| `walking_route`, total | **{b['total']['median_s'] * 1000:.0f} ms** | "
        f"{b['total']['max_s'] * 1000:.0f} ms |",
    ]
    for key, label in PIECES:
        t = b["pieces"][key]
        lines.append(
            f"| {label.format(limit=args.time_limit)} | {t['median_s'] * 1000:.0f} ms | "
            f"{t['max_s'] * 1000:.0f} ms |"
        )
    lines += [
        "",
        f"Target: {args.stops} stops in under {TARGET_S:.0f} s with the solver's time limit at "
        f"{args.time_limit:g} s, {args.stops} stops in every run — "
        + ("**met**." if met else "**missed**."),
        f"The first (cold) call took {b['warm_up_s']:.2f} s (OR-Tools' import).",
    ]
    if alone:
        lines += [
            "",
            "The solver alone on the last run's problem (its time-limited search is not "
            "deterministic; `deterministic=True` is a fixed amount of search, no time limit):",
            "",
            f"| search | seconds | stops | tour | among the {args.stops} most due | windows |",
            "|---|---:|---:|---:|---:|---|",
            f"| in the last run above ({args.time_limit:g} s) | {b['solver_s']:.1f} | "
            f"{b['stops']} | {b['tour_m']:,} m | {b['most_due']} | "
            f"{'kept' if b['fault'] is None else b['fault']} |",
        ]
        for what, r, seconds in alone:
            if r is None:
                lines.append(f"| {what} | > {seconds:.0f} (stopped) | | | | |")
            else:
                lines.append(
                    f"| {what} | {r['seconds']:.1f} | {r['stops']} | {r['tour_m']:,} m | "
                    f"{r['most_due']} | {'kept' if r['fault'] is None else r['fault']} |"
                )
    for r in results[1:]:
        lines += [
            "",
            "Reference, the worker's own Wednesday ("
            + ", ".join(f"{routes.clock(a)}–{routes.clock(z)}" for a, z in r["worker_day"])
            + f") with the default {r['settings'].visit_minutes}-minute visits "
            f"({r['settings'].first_visit_minutes} for a first): {r['stops']} stops "
            f"({r['most_due']} of them among the {args.stops} most due), "
            f"{r['total_m']:,.0f} m, total median {r['total']['median_s'] * 1000:.0f} ms "
            f"(max {r['total']['max_s'] * 1000:.0f} ms; solver "
            f"{r['pieces']['solver']['median_s'] * 1000:.0f} ms, matrix "
            f"{r['pieces']['matrix']['median_s'] * 1000:.0f} ms).",
        ]
    lines.append(END)
    sbs.write_section(BEGIN, END, "\n".join(lines), "Walking routes (issue 9)")


if __name__ == "__main__":
    sys.exit(main())
