"""Walking routes: a block head's day of visits in the order that walks least, planned (and
saved) for the worker, and the worker's weekly shifts it fits into. The work is in
``geo.routes``."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import TYPE_CHECKING, Annotated

import orjson
import strawberry

from api.schema.areas import Household
from api.schema.base import GeoJSON, parent
from api.schema.context import Info
from api.schema.family_files import ContactChannel, entity_key
from geo import routes as r

if TYPE_CHECKING:
    from api.schema.workers import Worker

WorkerRef = Annotated["Worker", strawberry.lazy("api.schema.workers")]

Weekday = strawberry.enum(
    enum.Enum("Weekday", [(d, i) for i, d in enumerate(r.WEEKDAYS, start=1)]),
    description="A day of the week.",
)


@strawberry.type(description="One stop of a walking route.")
class RouteStop:
    stop: strawberry.Private[r.Stop]
    order: int = strawberry.field(description="1 for the first stop.")
    arrival_at: dt.datetime = strawberry.field(description="When the visit starts.")
    leg_meters: float = strawberry.field(
        description="Walking metres from the previous stop (the first: from the start)."
    )

    @strawberry.field
    async def household(self, info: Info) -> Household:
        found = await parent(info, Household, self.stop.household_id)
        assert found is not None
        return found


@strawberry.type(description="A household due that the route leaves out, and why.")
class SkippedHousehold:
    skip: strawberry.Private[r.Skip]
    reason: str
    channel: ContactChannel | None = strawberry.field(
        description="Class A: contact them through this channel instead (the call list)."
    )

    @strawberry.field
    async def household(self, info: Info) -> Household:
        found = await parent(info, Household, self.skip.household_id)
        assert found is not None
        return found

    @classmethod
    def of(cls, skip: r.Skip) -> SkippedHousehold:
        channel = ContactChannel(skip.channel) if skip.channel else None
        return cls(skip=skip, reason=skip.reason, channel=channel)


@strawberry.type(description="A worker's walking route for a day: from the start and back.")
class WalkingRoute:
    route: strawberry.Private[r.Route]
    date: dt.date
    start: str = strawberry.field(
        description="Code of the start and end: a community (its office) or a building."
    )
    max_stops: int
    stops: list[RouteStop]
    skipped: list[SkippedHousehold]
    calls: list[SkippedHousehold] = strawberry.field(
        description="Class A households due: a phone or WeChat list, never a door visit."
    )
    return_meters: float = strawberry.field(description="Walking metres from the last stop back.")
    total_meters: float = strawberry.field(description="All legs plus the way back.")
    path: GeoJSON | None = strawberry.field(
        description="The walk along the network: a GeoJSON LineString (null: no stops)."
    )
    reason: str | None = strawberry.field(
        description="Why there are no stops, when there are none."
    )
    planned_at: dt.datetime | None = strawberry.field(
        description="When the plan was saved (planRoute); null: computed for this answer."
    )

    @strawberry.field
    async def worker(self, info: Info) -> WorkerRef:
        from api.schema.workers import Worker

        found = await parent(info, Worker, self.route.worker_id)
        assert found is not None
        return found

    @classmethod
    def of(cls, route: r.Route) -> WalkingRoute:
        return cls(
            route=route, date=route.day, start=route.start, max_stops=route.max_stops,
            stops=[RouteStop(stop=s, order=s.order, arrival_at=s.arrival_at, leg_meters=s.leg_m)
                   for s in route.stops],
            skipped=[SkippedHousehold.of(s) for s in route.skipped],
            calls=[SkippedHousehold.of(s) for s in route.skipped if s.channel],
            return_meters=route.return_m, total_meters=route.total_m,
            path=orjson.Fragment(route.path) if route.path else None,
            reason=route.reason, planned_at=route.planned_at,
        )  # fmt: skip


async def walking_route(
    info: Info,
    worker_id: strawberry.ID,
    date: dt.date,
    max_stops: int = 20,
    start: str | None = None,
) -> WalkingRoute:
    """The worker's saved plan for `date` (planRoute), or else the best route now, not saved:
    the households due in the worker's areas (class C first, then the most overdue; class A
    get a call instead), within their visit times and the worker's shifts, from `start` (the
    worker's community office by default) and back."""
    worker = entity_key(info, worker_id, "Worker", "workerId")
    route = await info.context.db.run(
        r.walking_route, caller=info.context.caller, worker_id=worker, day=date,
        max_stops=max_stops, start=start, settings=info.context.settings.route_settings(),
    )  # fmt: skip
    return WalkingRoute.of(route)


@strawberry.input
class PlanRouteInput:
    worker_id: strawberry.ID
    date: dt.date
    max_stops: int = 20
    start: str | None = strawberry.field(
        default=None, description="A community (its office) or building code; default: the "
        "worker's community office."
    )  # fmt: skip


@strawberry.type
class PlanRoutePayload:
    route: WalkingRoute


async def plan_route(info: Info, input: PlanRouteInput) -> PlanRoutePayload:
    worker = entity_key(info, input.worker_id, "Worker", "input.workerId")
    route = await info.context.db.write(
        r.plan_route, caller=info.context.caller, worker_id=worker, day=input.date,
        max_stops=input.max_stops, start=input.start,
        settings=info.context.settings.route_settings(),
    )  # fmt: skip
    return PlanRoutePayload(route=WalkingRoute.of(route))


@strawberry.type(description="A shift of a worker's week, in local time.")
class Shift:
    weekday: Weekday  # type: ignore[valid-type]
    starts: dt.time
    ends: dt.time


@strawberry.input
class ShiftInput:
    weekday: Weekday  # type: ignore[valid-type]
    starts: dt.time
    ends: dt.time


@strawberry.input
class SetWorkerScheduleInput:
    worker_id: strawberry.ID
    shifts: list[ShiftInput] = strawberry.field(
        description="The whole week; empty: back to the default (Monday–Friday 9:00–17:00 with "
        "lunch 12:00–13:00, and Wednesday 18:30–20:30)."
    )


@strawberry.type
class SetWorkerSchedulePayload:
    shifts: list[Shift]


def shift_list(week: dict[int, tuple[r.Interval, ...]]) -> list[Shift]:
    return [
        Shift(weekday=Weekday(day), starts=_time(a), ends=_time(b))
        for day in sorted(week)
        for a, b in week[day]
    ]


def _time(seconds: int) -> dt.time:
    return dt.time(seconds // 3600, seconds % 3600 // 60, seconds % 60)


async def set_worker_schedule(
    info: Info, input: SetWorkerScheduleInput
) -> SetWorkerSchedulePayload:
    worker = entity_key(info, input.worker_id, "Worker", "input.workerId")
    week = await info.context.db.write(
        r.set_shifts, caller=info.context.caller, worker_id=worker,
        week=[(s.weekday.value, s.starts, s.ends) for s in input.shifts],
    )  # fmt: skip
    return SetWorkerSchedulePayload(shifts=shift_list(week))


async def worker_schedule(info: Info, worker_id: uuid.UUID) -> list[Shift]:
    week = await info.context.db.run(r.shifts, worker_id=worker_id)
    return shift_list(week)
