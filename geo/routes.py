"""A block head's walking route for a day: the households due, in the order that walks least.

Households due are those not contacted within their cadence on the day (``geo.coverage``'s
rule), class C first, then the most overdue; class A are never walked to (they are contacted
through their preferred channel). Each stop must fall inside both the household's visit times
(the family file's ``visitTimes``) and the worker's shifts that day; distances are walking
distances on the network (pgRouting, ``walk_edge``); the order is OR-Tools' vehicle routing with
time windows, dropping the least due households when the day is full. A plan can be saved, so
the GraphQL answer, the GPX file and the map show the same route.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo import queries as q
from geo.access import FAMILY_FILE_ROLES, Caller
from geo.errors import BadInput, Forbidden, NotFound
from geo.workers import WORKER_FOR_AUTH

WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
Interval = tuple[int, int]  # seconds after local midnight, start inclusive, end exclusive


def _hm(value: str) -> int:
    h, m = value.split(":")
    return int(h) * 3600 + int(m) * 60


# A worker with no schedule of their own: Monday to Friday 9:00–17:00 with an hour for lunch,
# and Wednesday evening for the families only found in at night.
DEFAULT_SHIFTS: dict[int, tuple[Interval, ...]] = {
    d: ((_hm("09:00"), _hm("12:00")), (_hm("13:00"), _hm("17:00"))) for d in range(1, 6)
}
DEFAULT_SHIFTS[3] = (*DEFAULT_SHIFTS[3], (_hm("18:30"), _hm("20:30")))
# When a household is found in, by the family file's visit times; a file that names none is
# found in all day, every day.
HOME_HOURS = {
    "WEEKDAY_DAYTIME": (_hm("08:00"), _hm("18:00")),
    "WEEKDAY_EVENING": (_hm("18:00"), _hm("21:30")),
    "WEEKEND": (_hm("08:00"), _hm("21:30")),
}
ANY_TIME = (_hm("08:00"), _hm("21:30"))
TIME_WORDS = {
    "WEEKDAY_DAYTIME": "weekday daytime",
    "WEEKDAY_EVENING": "weekday evenings",
    "WEEKEND": "weekends",
}
MAX_STOPS = 200
MAX_DAYS_AHEAD = 366
# Households considered per stop asked for: the solver picks among them, most due first.
POOL_PER_STOP = 3
# Solutions the search looks at per node when it must be deterministic (no time limit).
SOLUTIONS_PER_NODE = 5
# The network around the stops that distances are computed on (degrees; ~1 km).
MARGIN_DEG = 0.01


@dataclass(frozen=True)
class RouteSettings:
    """How long visits take and how fast a block head walks; how long the solver may think."""

    visit_minutes: int = 15
    first_visit_minutes: int = 30
    walk_metres_per_minute: float = 70.0  # 4.2 km/h, with crossings
    time_limit_seconds: float = 1.0
    # Bounded by a number of solutions instead of time: the same instance gives the same tour
    # (tests, comparisons), but hundreds of households take tens of seconds.
    deterministic: bool = False


@dataclass(frozen=True)
class Stop:
    order: int
    household_id: uuid.UUID
    household_code: str
    household_class: str
    arrival_at: dt.datetime
    leg_m: float
    lon: float  # the building's door, where the stop is
    lat: float


@dataclass(frozen=True)
class Skip:
    household_id: uuid.UUID
    household_code: str
    reason: str
    channel: str | None = None  # class A: call (or message) them this way instead


@dataclass
class Route:
    worker_id: uuid.UUID
    worker_code: str
    day: dt.date
    start: str
    max_stops: int
    timezone: str
    stops: list[Stop] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    return_m: float = 0.0
    path: str | None = None  # GeoJSON LineString text
    reason: str | None = None  # why the route is empty
    planned_at: dt.datetime | None = None  # saved at; None: computed for this answer only
    start_lonlat: tuple[float, float] | None = None

    @property
    def total_m(self) -> float:
        return sum(s.leg_m for s in self.stops) + self.return_m


# --------------------------------------------------------------------------------------------
# The solver, on a distance matrix: usable (and tested) without a database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Node 0 is the start. ``windows[i]``: when a visit to node i may start (seconds after
    midnight); ``service[i]``: its length; ``penalty[i]``: the cost of leaving node i out."""

    metres: np.ndarray  # (n, n) integer metres
    windows: Sequence[Sequence[Interval]]
    service: Sequence[int]
    penalty: Sequence[int]
    day: Interval  # leave the start no earlier, be back no later
    max_stops: int
    metres_per_minute: float


def solve(problem: Problem, settings: RouteSettings) -> list[tuple[int, int]]:
    """The visited nodes in order, each with its arrival time (seconds after midnight)."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2  # slow to import

    n = len(problem.metres)
    if n <= 1:
        return []
    manager = pywrapcp.RoutingIndexManager(n, 1, 0)
    routing = pywrapcp.RoutingModel(manager)
    metres = problem.metres.astype(np.int64)
    walk = np.ceil(metres * 60.0 / problem.metres_per_minute).astype(np.int64)
    seconds = walk + np.asarray(problem.service, dtype=np.int64)[:, None]
    distance = routing.RegisterTransitMatrix(metres.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(distance)
    duration = routing.RegisterTransitMatrix(seconds.tolist())
    horizon = 2 * 86_400
    routing.AddDimension(duration, horizon, horizon, False, "time")
    time = routing.GetDimensionOrDie("time")
    for end in (routing.Start(0), routing.End(0)):
        time.CumulVar(end).SetRange(*problem.day)
    count = routing.RegisterUnaryTransitVector([0] + [1] * (n - 1))
    routing.AddDimension(count, 0, problem.max_stops, True, "stops")
    for node in range(1, n):
        index = manager.NodeToIndex(node)
        windows = sorted(problem.windows[node])
        cumul = time.CumulVar(index)
        cumul.SetRange(windows[0][0], windows[-1][1])
        for (_, gap_start), (gap_end, _) in itertools.pairwise(windows):
            if gap_end - gap_start > 1:
                cumul.RemoveInterval(gap_start + 1, gap_end - 1)
        routing.AddDisjunction([index], int(problem.penalty[node]))
    routing.AddVariableMinimizedByFinalizer(time.CumulVar(routing.End(0)))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    # Deterministic: a fixed amount of search. Otherwise the same, cut off by the time limit.
    params.solution_limit = SOLUTIONS_PER_NODE * n + 50
    if not settings.deterministic:
        params.time_limit.FromMilliseconds(int(settings.time_limit_seconds * 1000))
    routing.CloseModelWithParameters(params)
    # Start from the most due stops walked nearest-first and untangled (2-opt) when their time
    # windows allow it (always, without windows): the search only improves on it, so the tour
    # is never longer than that one. Otherwise OR-Tools' own first solution.
    wanted = sorted(range(1, n), key=lambda i: -problem.penalty[i])[: problem.max_stops]
    hint = routing.ReadAssignmentFromRoutes([two_opt_tour(metres, wanted)], True)
    if hint is not None:
        solution = routing.SolveFromAssignmentWithParameters(hint, params)
    else:
        solution = routing.SolveWithParameters(params)
    if solution is None:
        return []
    out = []
    index = routing.NextVar(routing.Start(0))
    index = solution.Value(index)
    while not routing.IsEnd(index):
        out.append((manager.IndexToNode(index), solution.Min(time.CumulVar(index))))
        index = solution.Value(routing.NextVar(index))
    return out


def two_opt_tour(metres: np.ndarray, nodes: Sequence[int]) -> list[int]:
    """The textbook tour: ``nodes`` nearest neighbour first from node 0, then the first
    shortening 2-opt move, again and again, until none is left."""
    m = metres.tolist()
    tour, left = [0], set(nodes)
    while left:
        here = m[tour[-1]]
        nxt = min(left, key=lambda j: (here[j], j))
        tour.append(nxt)
        left.remove(nxt)
    tour.append(0)
    improved = True
    while improved:
        improved = False
        for i in range(1, len(tour) - 2):
            for j in range(i + 1, len(tour) - 1):
                a, b, c, d = tour[i - 1], tour[i], tour[j], tour[j + 1]
                if m[a][c] + m[b][d] < m[a][b] + m[c][d]:
                    tour[i : j + 1] = reversed(tour[i : j + 1])
                    improved = True
    return tour[1:-1]


def tour_metres(metres: np.ndarray, order: Sequence[int]) -> int:
    """Length of the closed tour 0 → order → 0."""
    path = [0, *order, 0]
    return int(sum(metres[a, b] for a, b in itertools.pairwise(path)))


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def shifts(session: Session, worker_id: uuid.UUID) -> dict[int, tuple[Interval, ...]]:
    """The worker's week (ISO weekday → intervals), the default when they have set none."""
    rows = session.execute(
        text(
            "SELECT weekday, starts, ends FROM worker_shift WHERE worker_id = :w"
            " ORDER BY weekday, starts"
        ),
        {"w": worker_id},
    ).all()
    if not rows:
        return DEFAULT_SHIFTS
    week: dict[int, list[Interval]] = {}
    for weekday, starts, ends in rows:
        week.setdefault(weekday, []).append((_seconds(starts), _seconds(ends)))
    return {d: tuple(v) for d, v in week.items()}


def set_shifts(
    *,
    session: Session,
    caller: Caller,
    worker_id: uuid.UUID,
    week: Sequence[tuple[int, dt.time, dt.time]],
) -> dict[int, tuple[Interval, ...]]:
    """Replace a worker's week; an empty week restores the default."""
    worker = _worker(session, caller, worker_id, "input.workerId")
    seen: dict[int, list[tuple[dt.time, dt.time]]] = {}
    for i, (weekday, starts, ends) in enumerate(week):
        where = f"input.shifts[{i}]"
        if ends <= starts:
            raise BadInput(where, f"ends {ends:%H:%M} is not after starts {starts:%H:%M}")
        for a, b in seen.get(weekday, ()):
            if starts < b and a < ends:
                raise BadInput(
                    where, f"{WEEKDAYS[weekday - 1]} {starts:%H:%M}–{ends:%H:%M} overlaps "
                    f"{a:%H:%M}–{b:%H:%M}"
                )  # fmt: skip
        seen.setdefault(weekday, []).append((starts, ends))
    session.execute(text("DELETE FROM worker_shift WHERE worker_id = :w"), {"w": worker_id})
    for weekday, starts, ends in week:
        session.execute(
            text("INSERT INTO worker_shift VALUES (:w, :d, :s, :e)"),
            {"w": worker_id, "d": weekday, "s": starts, "e": ends},
        )
    audit.record(
        session=session, caller=caller, request_id=uuid.uuid4(), action="update",
        entries=[{"household_id": None, "household_code": None, "fields": ["worker_shift"],
                  "detail": {"worker": worker["code"], "shifts": len(week)}}],
    )  # fmt: skip
    return shifts(session, worker_id)


def _seconds(t: dt.time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


# --------------------------------------------------------------------------------------------
# Planning against the database
# --------------------------------------------------------------------------------------------

DUE = """
SELECT s.household_id, s.code, s.household_class, s.days_overdue, h.visit_times,
       h.contact_preference, h.last_contact_at IS NULL AS first_visit, e.vertex,
       ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
FROM household_contact_status(:area, :day) s
JOIN household h ON h.id = s.household_id
LEFT JOIN walk_entrance e ON e.code = left(s.code, 21)
WHERE NOT s.contacted
"""

MATRIX = """
SELECT start_vid, end_vid, agg_cost
FROM pgr_dijkstraCostMatrix(:edges, CAST(:vertices AS bigint[]), directed => false)
"""

# The walk itself: each edge the way it is walked, then its points in order.
PATH = """
WITH walked AS (
    SELECT p.seq, CASE WHEN p.node = e.source THEN e.geom ELSE ST_Reverse(e.geom) END AS geom
    FROM pgr_dijkstraVia(:edges, CAST(:vertices AS bigint[]), directed => false) p
    JOIN walk_edge e ON e.id = p.edge
)
SELECT ST_AsGeoJSON(ST_RemoveRepeatedPoints(ST_MakeLine(d.geom ORDER BY w.seq, d.path)), 7)
FROM walked w, LATERAL ST_DumpPoints(w.geom) d
"""


def _require_staff(caller: Caller, argument: str) -> None:
    if caller.role not in FAMILY_FILE_ROLES:
        raise Forbidden(argument, "you may not read walking routes: they are for family-file staff")


def _worker(
    session: Session, caller: Caller, worker_id: uuid.UUID, argument: str
) -> dict[str, Any]:
    """The worker whose routes the caller may plan and read, or an error naming ``argument``
    (the public learns nothing of which workers exist)."""
    _require_staff(caller, argument)
    row = (
        session.execute(
            text(
                "SELECT a.*, s.timezone, s.code AS subdistrict_code, c.code AS community_code"
                " FROM (" + WORKER_FOR_AUTH + " WHERE w.id = :id) a JOIN worker w ON w.id = a.id"
                " JOIN subdistrict s ON s.id = w.subdistrict_id"
                " LEFT JOIN community c ON c.id = w.community_id"
            ),
            {"id": worker_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(argument, f"no worker {worker_id}")
    worker = dict(row)
    if not caller.may_act_for(worker["id"], _areas(worker)):
        raise Forbidden(
            argument, f"you may not plan or read the routes of worker {worker['code']}: a "
            "worker's own, or those of the workers of your community or subdistrict"
        )  # fmt: skip
    return worker


def _areas(worker: dict[str, Any]) -> list[str]:
    """Where the worker's routes belong: their grids; with no grid yet, their community (or
    subdistrict) all the same."""
    return list(worker["areas"]) or [worker["community_code"] or worker["subdistrict_code"]]


def check_day(day: dt.date, today: dt.date, argument: str = "date") -> None:
    if day < today:
        raise BadInput(argument, f"{day} is in the past (today is {today}): plan today or later")
    if (day - today).days > MAX_DAYS_AHEAD:
        raise BadInput(argument, f"{day} is more than a year ahead")


def check_max_stops(max_stops: int, argument: str = "maxStops") -> None:
    if not 1 <= max_stops <= MAX_STOPS:
        raise BadInput(argument, f"{max_stops} is out of range: 1 to {MAX_STOPS} stops")


def walking_route(
    *,
    session: Session,
    caller: Caller,
    worker_id: uuid.UUID,
    day: dt.date,
    max_stops: int = 20,
    start: str | None = None,
    settings: RouteSettings = RouteSettings(),
) -> Route:
    """The saved plan of the worker's day, or one computed now (not saved)."""
    worker = _worker(session, caller, worker_id, "workerId")
    saved = saved_route(session, worker, day)
    if saved is not None:
        return saved
    check_max_stops(max_stops)
    return _plan(session, worker, day, max_stops, start, settings)


def plan_route(
    *,
    session: Session,
    caller: Caller,
    worker_id: uuid.UUID,
    day: dt.date,
    max_stops: int = 20,
    start: str | None = None,
    settings: RouteSettings = RouteSettings(),
) -> Route:
    """Plan the worker's day and save it, replacing the day's earlier plan."""
    worker = _worker(session, caller, worker_id, "input.workerId")
    check_max_stops(max_stops, "input.maxStops")
    _lock(session, worker_id, day)
    route = _plan(session, worker, day, max_stops, start, settings, argument="input.")
    session.execute(
        text("DELETE FROM route_plan WHERE worker_id = :w AND day = :d"),
        {"w": worker_id, "d": day},
    )
    plan_id = session.execute(
        text(
            "INSERT INTO route_plan (worker_id, day, start_code, max_stops, areas, reason,"
            " return_m, total_m, path, planned_by)"
            " VALUES (:w, :d, :start, :max, :areas, :reason, :ret, :total,"
            " ST_SetSRID(ST_GeomFromGeoJSON(:path), 4326), :by) RETURNING id, planned_at"
        ),
        {
            "w": worker_id,
            "d": day,
            "start": route.start,
            "max": max_stops,
            "areas": _areas(worker),
            "reason": route.reason,
            "ret": route.return_m,
            "total": route.total_m,
            "path": route.path,
            "by": caller.worker_code,
        },
    ).one()
    if route.stops:
        session.execute(
            text(
                "INSERT INTO route_stop (plan_id, position, household_id, household_code,"
                " household_class, arrival_at, leg_m)"
                " SELECT :p, s.* FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
                " AS s(position integer, household_id uuid, household_code text,"
                " household_class text, arrival_at timestamptz, leg_m double precision)"
            ),
            {"p": plan_id.id, "rows": _json(
                {"position": s.order, "household_id": s.household_id,
                 "household_code": s.household_code, "household_class": s.household_class,
                 "arrival_at": s.arrival_at, "leg_m": s.leg_m} for s in route.stops)},
        )  # fmt: skip
    if route.skipped:
        session.execute(
            text(
                "INSERT INTO route_skip (plan_id, household_id, household_code, reason, channel)"
                " SELECT :p, s.* FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
                " AS s(household_id uuid, household_code text, reason text, channel text)"
            ),
            {"p": plan_id.id, "rows": _json(
                {"household_id": s.household_id, "household_code": s.household_code,
                 "reason": s.reason, "channel": s.channel} for s in route.skipped)},
        )  # fmt: skip
    audit.record(
        session=session, caller=caller, request_id=uuid.uuid4(), action="create",
        entries=[{"household_id": s.household_id, "household_code": s.household_code,
                  "fields": ["route_stop"],
                  "detail": {"worker": worker["code"], "day": day.isoformat(),
                             "order": s.order}} for s in route.stops],
    )  # fmt: skip
    return replace(route, planned_at=plan_id.planned_at)


def saved_or_planned(
    *,
    session: Session,
    caller: Caller,
    worker_code: str,
    day: dt.date | None = None,
    settings: RouteSettings = RouteSettings(),
) -> Route:
    """The worker's saved plan for the day (today in their subdistrict when None), planned with
    the defaults and saved first when there is none (the GPX file, the map and ``gridmap
    route`` show what GraphQL shows)."""
    _require_staff(caller, "worker")
    found = session.execute(text("SELECT id FROM worker WHERE code = :c"), {"c": worker_code})
    worker_id = found.scalar()
    if worker_id is None:
        raise NotFound("worker", f"no worker has staff number {worker_code!r}")
    worker = _worker(session, caller, worker_id, "worker")
    today = dt.datetime.now(ZoneInfo(worker["timezone"])).date()
    day = day or today
    _lock(session, worker_id, day)
    saved = saved_route(session, worker, day)
    if saved is not None:
        return saved
    check_day(day, today)
    return plan_route(
        session=session, caller=caller, worker_id=worker_id, day=day, settings=settings
    )


def _lock(session: Session, worker_id: uuid.UUID, day: dt.date) -> None:
    """One planner of a worker's day at a time (the map and the GPX file opened at once, a
    double tap): the others wait, then find its plan."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"route_plan:{worker_id}:{day}"},
    )


def saved_route(session: Session, worker: dict[str, Any], day: dt.date) -> Route | None:
    plan = (
        session.execute(
            text(
                "SELECT p.id, p.start_code, p.max_stops, p.reason, p.return_m, p.planned_at,"
                " ST_AsGeoJSON(p.path, 7) AS path, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat"
                " FROM route_plan p LEFT JOIN walk_entrance e ON e.code = p.start_code"
                " WHERE p.worker_id = :w AND p.day = :d"
            ),
            {"w": worker["id"], "d": day},
        )
        .mappings()
        .first()
    )
    if plan is None:
        return None
    stops = session.execute(
        text(
            "SELECT s.position, s.household_id, s.household_code, s.household_class,"
            " s.arrival_at, s.leg_m, ST_X(e.geom), ST_Y(e.geom)"
            " FROM route_stop s LEFT JOIN walk_entrance e ON e.code = left(s.household_code, 21)"
            " WHERE s.plan_id = :p ORDER BY s.position"
        ),
        {"p": plan["id"]},
    ).all()
    skipped = session.execute(
        text(
            "SELECT household_id, household_code, reason, channel FROM route_skip"
            " WHERE plan_id = :p"
            " ORDER BY household_code"
        ),
        {"p": plan["id"]},
    ).all()
    zone = ZoneInfo(worker["timezone"])
    return Route(
        worker_id=worker["id"], worker_code=worker["code"], day=day, start=plan["start_code"],
        max_stops=plan["max_stops"], timezone=worker["timezone"],
        stops=[Stop(o, h, c, k, at.astimezone(zone), m, x, y)
               for o, h, c, k, at, m, x, y in stops],
        skipped=[Skip(*r) for r in skipped],
        return_m=plan["return_m"], path=plan["path"], reason=plan["reason"],
        planned_at=plan["planned_at"],
        start_lonlat=(plan["lon"], plan["lat"]) if plan["lon"] is not None else None,
    )  # fmt: skip


def _start_code(session: Session, worker: dict[str, Any], start: str | None, arg: str) -> str:
    if start is None:
        code = worker["community_code"] or next(
            (a[:12] for a in worker["areas"] if len(a) >= 12), None
        )
        if code is None:
            raise BadInput(arg + "start", f"worker {worker['code']} belongs to no community: "
                           "give the start (a community or building code)")  # fmt: skip
        return code
    start = start.strip()
    found = session.execute(
        text("SELECT 1 FROM walk_entrance WHERE code = :c"), {"c": start}
    ).first()
    if found is None:
        if len(start) == 21:
            exists = session.execute(text("SELECT 1 FROM building WHERE code = :c"), {"c": start})
            if exists.first() is None:
                raise NotFound(arg + "start", f"no building has code {start!r}")
        else:
            q.area_by_code(session=session, code=start, argument=arg + "start")
        raise BadInput(
            arg + "start", f"{start} has no entrance on the walking network: give a community "
            "(its office) or a building code"
        )  # fmt: skip
    return start


def _windows(
    visit_times: Sequence[str], worker_day: Sequence[Interval], weekend: bool, service: int
) -> list[Interval]:
    """When a visit may start: inside a shift and the household's hours, and over by the end
    of both."""
    if visit_times:
        keys = ["WEEKEND"] if weekend else [t for t in visit_times if t != "WEEKEND"]
        home = [HOME_HOURS[k] for k in keys if k in visit_times]
    else:
        home = [ANY_TIME]
    out = []
    for a, b in worker_day:
        for c, d in home:
            lo, hi = max(a, c), min(b, d) - service
            if hi >= lo:
                out.append((lo, hi))
    return sorted(out)


Candidate = tuple[dict[str, Any], list[Interval], int]  # household, windows, visit seconds


def _plan(
    session: Session,
    worker: dict[str, Any],
    day: dt.date,
    max_stops: int,
    start: str | None,
    settings: RouteSettings,
    argument: str = "",
) -> Route:
    zone = ZoneInfo(worker["timezone"])
    now = dt.datetime.now(zone)
    check_day(day, now.date(), argument + "date")
    start_code = _start_code(session, worker, start, argument)
    route = Route(
        worker_id=worker["id"], worker_code=worker["code"], day=day, start=start_code,
        max_stops=max_stops, timezone=worker["timezone"],
    )  # fmt: skip
    if not worker["areas"] or worker["role"] == "DEPARTMENT":
        route.reason = f"worker {worker['code']} has no grid: nobody to visit"
        return route
    entrance = session.execute(
        text("SELECT vertex, ST_X(geom), ST_Y(geom) FROM walk_entrance WHERE code = :c"),
        {"c": start_code},
    ).first()
    if entrance is None:
        route.reason = (
            f"no walking network at {start_code}: the demo builds one; for imported data run "
            "`gridmap network build --osm FILE`"
        )
        return route
    route.start_lonlat = (entrance[1], entrance[2])
    due = []
    for area in worker["areas"]:
        due.extend(session.execute(text(DUE), {"area": area, "day": day}).mappings())
    if not due:
        route.reason = f"nobody is due for a visit on {day} in {', '.join(worker['areas'])}"
        return route
    due.sort(key=lambda h: (h["household_class"] != "C", -h["days_overdue"], h["code"]))
    worker_day = shifts(session, worker["id"]).get(day.isoweekday(), ())
    if day == now.date():  # what is left of today
        at = now.hour * 3600 + now.minute * 60 + now.second
        worker_day = tuple((max(a, at), b) for a, b in worker_day if b > at)
    pool, skipped = _candidates(due, worker, day, worker_day, max_stops, settings)
    if pool:
        _walk(session, route, entrance[0], pool, skipped, worker_day, settings)
        if not route.stops and not route.reason:
            route.reason = f"no household due fits {worker['code']}'s shifts on {day}"
    else:
        route.reason = f"none of the {len(due)} households due can be walked to on {day}"
    route.skipped = sorted(skipped, key=lambda s: s.household_code)
    return route


def _candidates(
    due: Sequence[dict[str, Any]],
    worker: dict[str, Any],
    day: dt.date,
    worker_day: Sequence[Interval],
    max_stops: int,
    settings: RouteSettings,
) -> tuple[list[Candidate], list[Skip]]:
    """The households that can be walked to that day (the most due first, as many as the
    solver weighs), and the others with the reason."""
    code, weekend = worker["code"], day.isoweekday() >= 6
    left = " left" if day == dt.datetime.now(ZoneInfo(worker["timezone"])).date() else ""
    pool: list[Candidate] = []
    skipped: list[Skip] = []
    for h in due:
        minutes = settings.first_visit_minutes if h["first_visit"] else settings.visit_minutes
        reason = channel = None
        windows: list[Interval] = []
        if h["household_class"] == "A":
            channel = h["contact_preference"] or "PHONE"
            reason = f"class A: contact through their preferred channel ({channel}), not a visit"
        elif h["vertex"] is None:
            reason = "its building has no entrance on the walking network"
        elif not worker_day:
            reason = f"{code} has no shift{left} on {WEEKDAYS[day.isoweekday() - 1]} {day}"
        else:
            windows = _windows(h["visit_times"] or (), worker_day, weekend, 60 * minutes)
            if not windows:
                reason = f"not at home during {code}'s shifts on {day} ({_found_in(h)})"
        if reason:
            skipped.append(Skip(h["household_id"], h["code"], reason, channel))
        else:
            pool.append((h, windows, 60 * minutes))
    # As many as the solver can weigh well: a few per stop that fits in the day at most.
    shortest = 60 * min(settings.visit_minutes, settings.first_visit_minutes)
    fits = sum(b - a for a, b in worker_day) // shortest
    cap = POOL_PER_STOP * max(1, min(max_stops, fits))
    skipped.extend(
        Skip(h["household_id"], h["code"], f"less due than the {cap} households considered")
        for h, _, _ in pool[cap:]
    )
    return pool[:cap], skipped


def _found_in(household: dict[str, Any]) -> str:
    times = household["visit_times"] or ()
    return "found in: " + (", ".join(TIME_WORDS[t] for t in times) or "08:00–21:30")


def _walk(
    session: Session,
    route: Route,
    start_vertex: int,
    pool: list[Candidate],
    skipped: list[Skip],
    worker_day: Sequence[Interval],
    settings: RouteSettings,
) -> None:
    """Order the candidates on the network into ``route`` (stops, metres, path), adding those
    left out to ``skipped``."""
    start_lon, start_lat = route.start_lonlat or (0.0, 0.0)
    vertices = list(dict.fromkeys([start_vertex, *(h["vertex"] for h, _, _ in pool)]))
    lons = [start_lon, *(h["lon"] for h, _, _ in pool)]
    lats = [start_lat, *(h["lat"] for h, _, _ in pool)]
    edges = (
        "SELECT id, source, target, length_m AS cost FROM walk_edge WHERE geom &&"
        f" ST_MakeEnvelope({min(lons) - MARGIN_DEG!r}, {min(lats) - MARGIN_DEG!r},"
        f" {max(lons) + MARGIN_DEG!r}, {max(lats) + MARGIN_DEG!r}, 4326)"
    )
    position = {v: i for i, v in enumerate(vertices)}
    far = np.full((len(vertices), len(vertices)), np.inf)
    np.fill_diagonal(far, 0.0)
    for a, b, cost in session.execute(text(MATRIX), {"edges": edges, "vertices": vertices}):
        far[position[a], position[b]] = cost
    reachable = []
    for h, windows, service in pool:
        v = position[h["vertex"]]
        if math.isinf(far[0, v]) or math.isinf(far[v, 0]):
            skipped.append(Skip(h["household_id"], h["code"],
                                f"not reachable from {route.start} on the walking network "
                                "(a separate piece of it)"))  # fmt: skip
        else:
            reachable.append((h, windows, service))
    if not reachable:
        route.reason = f"no household due is reachable from {route.start} on the walking network"
        return

    nodes = [0, *(position[h["vertex"]] for h, _, _ in reachable)]
    metres = np.rint(far[np.ix_(nodes, nodes)]).astype(np.int64)
    span = max(int(metres.max()), 1) * (len(nodes) + 1)  # longer than any tour
    k = len(reachable)
    problem = Problem(
        metres=metres,
        windows=[[(0, 0)], *(w for _, w, _ in reachable)],
        service=[0, *(s for _, _, s in reachable)],
        # Lexicographic: a more due household always outweighs any walking saved.
        penalty=[0, *(span * (k - i) for i in range(k))],
        day=(min(a for a, _ in worker_day), max(b for _, b in worker_day)),
        max_stops=route.max_stops,
        metres_per_minute=settings.walk_metres_per_minute,
    )
    visited = solve(problem, settings)
    midnight = dt.datetime.combine(route.day, dt.time(), ZoneInfo(route.timezone))
    previous = 0
    for order, (node, arrival) in enumerate(visited, start=1):
        h = reachable[node - 1][0]
        route.stops.append(Stop(
            order, h["household_id"], h["code"], h["household_class"],
            midnight + dt.timedelta(seconds=arrival), float(far[nodes[previous], nodes[node]]),
            h["lon"], h["lat"],
        ))  # fmt: skip
        previous = node
    chosen = {node for node, _ in visited}
    full = len(visited) >= route.max_stops
    for i, (h, _, _) in enumerate(reachable, start=1):
        if i not in chosen:
            why = (f"maxStops ({route.max_stops}) reached by more due households" if full
                   else f"no time left in {route.worker_code}'s shifts on {route.day} "
                   f"({_found_in(h)})")  # fmt: skip
            skipped.append(Skip(h["household_id"], h["code"], why))
    if not visited:
        return
    route.return_m = float(far[nodes[previous], 0])
    walk = [vertices[0], *(vertices[nodes[n]] for n, _ in visited), vertices[0]]
    walk = [v for i, v in enumerate(walk) if i == 0 or v != walk[i - 1]]
    if len(walk) > 1:
        route.path = session.execute(text(PATH), {"edges": edges, "vertices": walk}).scalar()


def _json(rows: Any) -> str:
    return orjson.dumps(list(rows), default=str).decode()
