"""Visits: recording one from a phone (retried safely), and reading a household's visits and the
talents found on them. The work is in ``geo.visits``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from api.schema.areas import Household, Person
from api.schema.base import parent, values_enum
from api.schema.context import Info
from api.schema.family_files import (
    ContactChannel,
    Demand,
    DemandResolution,
    entity_key,
    require_file_keeper,
)
from api.schema.personal import personal
from api.schema.relay import (
    DEFAULT_PAGE,
    Connection,
    Node,
    check_first,
    decode_cursor,
    global_id,
    make_connection,
)
from geo import queries as q
from geo import visits as v
from geo.errors import BadInput

if TYPE_CHECKING:
    from api.schema.workers import Worker

WorkerRef = Annotated["Worker", strawberry.lazy("api.schema.workers")]


VisitTask = values_enum("VisitTask", v.TASKS, "The six tasks of a visit.")
Willingness = values_enum("Willingness", v.WILLINGNESS, "What a capable resident is willing to do.")


@strawberry.type(description="A visit to a household (in person, by phone, online …).")
class Visit(Node):
    row: strawberry.Private[dict[str, Any]]
    visited_at: dt.datetime
    mode: ContactChannel = strawberry.field(description="The channel: DOOR for a knock.")
    night: bool = strawberry.field(description="At night (18:00–06:00) in local time.")
    weekend: bool = strawberry.field(description="On a Saturday or Sunday in local time.")
    tasks: list[VisitTask]
    notes: str | None = personal()
    warnings: list[str]
    recorded_at: dt.datetime

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["household_id"], self.row["household_code"]

    @strawberry.field
    async def household(self, info: Info) -> Household:
        found = await parent(info, Household, self.row["household_id"])
        assert found is not None
        return found

    @strawberry.field
    async def worker(self, info: Info) -> WorkerRef:
        from api.schema.workers import Worker

        found = await parent(info, Worker, self.row["worker_id"])
        assert found is not None
        return found

    @strawberry.field(description="Demands raised on this visit.")
    async def demands(self, info: Info) -> list[Demand]:
        rows = await info.context.loaders.visit_demands().load(self.row["id"])
        return [Demand.of(r, self.row["household_id"], self.row["household_code"]) for r in rows]

    @classmethod
    def of(cls, row: dict[str, Any]) -> Visit:
        return cls(
            row=row, id=global_id("Visit", row["id"]), visited_at=row["visited_at"],
            mode=ContactChannel(row["mode"]), night=row["night"], weekend=row["weekend"],
            tasks=[VisitTask(t) for t in row["tasks"]], notes=row["notes"],
            warnings=list(row["warnings"]), recorded_at=row["recorded_at"],
        )  # fmt: skip


@strawberry.input(description="A demand raised on the visit.")
class DemandInput:
    text: str
    resolution: DemandResolution
    category: str | None = strawberry.field(
        default=None, description="A category of the case catalogue, when there is one."
    )
    answer: str | None = strawberry.field(
        default=None, description="What was answered on the spot (required when ANSWERED)."
    )


@strawberry.input(description="A capable resident (能人) found on the visit.")
class TalentInput:
    member_id: strawberry.ID
    skills: list[str]
    willingness: Willingness
    notes: str | None = None


@strawberry.input
class RecordVisitInput:
    household_id: strawberry.ID
    worker_id: strawberry.ID
    visited_at: dt.datetime = strawberry.field(description="When, with its offset (+08:00).")
    mode: ContactChannel
    idempotency_key: str = strawberry.field(
        description="Made once per visit by the phone (a UUID), the same on every retry: a "
        "retry returns the visit already recorded."
    )
    tasks: list[VisitTask] | None = None
    notes: str | None = None
    demands: list[DemandInput] | None = None
    talents: list[TalentInput] | None = None


@strawberry.type
class RecordVisitPayload:
    visit: Visit
    warnings: list[str] = strawberry.field(
        description="Recorded, but worth knowing: e.g. a door visit to a class A household."
    )
    replayed: bool = strawberry.field(
        description="True when the key had been recorded before: this is that visit."
    )


async def record_visit(info: Info, input: RecordVisitInput) -> RecordVisitPayload:
    household = entity_key(info, input.household_id, "Household", "input.householdId")
    worker = entity_key(info, input.worker_id, "Worker", "input.workerId")
    talents = []
    for i, t in enumerate(input.talents or ()):
        member = entity_key(info, t.member_id, "Person", f"input.talents[{i}].memberId")
        talents.append(v.TalentIn(member, tuple(t.skills), t.willingness.value, t.notes))
    visit = v.VisitIn(
        household_id=household,
        worker_id=worker,
        visited_at=input.visited_at,
        mode=input.mode.value,
        idempotency_key=input.idempotency_key,
        tasks=tuple(t.value for t in input.tasks or ()),
        notes=input.notes,
        demands=tuple(
            v.DemandIn(d.text, d.resolution.value, d.category, d.answer)
            for d in input.demands or ()
        ),
        talents=tuple(talents),
    )
    row, recorded = await info.context.db.write(
        v.record_visit, caller=info.context.caller, visit=visit
    )
    return RecordVisitPayload(visit=Visit.of(row), warnings=list(row["warnings"]),
                              replayed=not recorded)  # fmt: skip


async def visit_node(info: Info, key: uuid.UUID) -> Visit | None:
    """``node(id:)`` of a visit: row-level security shows only visits inside the caller's areas."""
    row = await info.context.db.run(v.visit_by_id, visit_id=key)
    return None if row is None else Visit.of(row)


async def household_visits(info: Info, household_id: uuid.UUID, last: int) -> list[Visit]:
    if not 0 <= last <= 100:
        raise BadInput("last", f"{last} is out of range: 0 to 100 visits")
    return [Visit.of(r) for r in await info.context.loaders.visits(last).load(household_id)]


@strawberry.type(description="A capable resident found on a visit, willing (or not) to help.")
class Talent:
    row: strawberry.Private[dict[str, Any]]
    skills: list[str] | None = personal()
    willingness: Willingness | None = personal()
    notes: str | None = personal()
    found_at: dt.datetime

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["household_id"], self.row["household_code"]

    @strawberry.field
    async def person(self, info: Info) -> Person | None:
        return await parent(info, Person, self.row["person_id"])

    @strawberry.field
    async def household(self, info: Info) -> Household | None:
        return await parent(info, Household, self.row["household_id"])


async def talents(
    info: Info, scope: str, first: int = DEFAULT_PAGE, after: str | None = None
) -> Connection[Talent]:
    """Capable residents found on visits inside `scope` (an area code), by household."""
    require_file_keeper(info)
    check_first(first)
    after_key = decode_cursor(after)
    db = info.context.db
    await db.run(q.area_by_code, code=scope, argument="scope")
    rows, has_next = await db.run(
        v.talents_page, scope=scope, first=first, after=after_key and after_key[-1]
    )
    nodes = [
        Talent(
            row=r,
            skills=r["skills"],
            willingness=Willingness(r["willingness"]),
            notes=r["notes"],
            found_at=r["found_at"],
        )
        for r in rows
    ]

    async def total() -> int:
        return await db.run(v.talents_count, scope=scope)

    return make_connection(
        nodes, [(r["person_code"],) for r in rows], has_next=has_next,
        has_previous=after is not None, total=total,
    )  # fmt: skip
