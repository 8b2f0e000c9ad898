"""Job matching: openings at merchants, residents seeking work, offers, candidates with their
explanations, the optimal proposals, and the workflow of a match (``geo.jobs`` does the work).

Seekers are residents: their fields are personal data, and every list that shows them is for the
roles that keep family files, inside their areas (row-level security)."""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import strawberry

from api.schema.areas import Household, Person
from api.schema.base import parent, values_enum
from api.schema.context import Info
from api.schema.family_files import entity_key, given, require_file_keeper
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
from geo import jobs
from geo.errors import BadInput

if TYPE_CHECKING:
    from api.schema.merchants import Merchant

MerchantRef = Annotated["Merchant", strawberry.lazy("api.schema.merchants")]

JobShift = values_enum(
    "JobShift",
    jobs.SHIFTS,
    "A weekly block of hours: weekday mornings (20 h), afternoons (20 h), "
    "evenings (15 h), weekend days (16 h), weekend evenings (6 h).",
)
JobMatchState = values_enum(
    "JobMatchState", jobs.STATES, "PROPOSED → CONTACTED → INTERVIEWED → HIRED, or DECLINED."
)


async def merchant_of(info: Info, merchant_id: uuid.UUID) -> Merchant:
    from api.schema.merchants import Merchant

    found = await parent(info, Merchant, merchant_id)
    assert found is not None
    return found


def today(info: Info) -> dt.date:
    return dt.datetime.now(ZoneInfo(info.context.settings.timezone)).date()


@strawberry.type(description="A job a merchant offers; `code` is `<merchant code>-J<nn>`.")
class JobOpening(Node):
    row: strawberry.Private[dict[str, Any]]
    code: str
    title: str
    skills: list[str]
    shifts: list[JobShift]
    weekly_hours: int
    wage: int = strawberry.field(description="Yuan per hour.")
    headcount: int
    open_slots: int = strawberry.field(
        description="Headcount minus live proposals and hires (in every area)."
    )
    valid_from: dt.date
    valid_until: dt.date | None

    @strawberry.field
    async def merchant(self, info: Info) -> MerchantRef:
        return await merchant_of(info, self.row["merchant_id"])

    @classmethod
    def of(cls, row: dict[str, Any]) -> JobOpening:
        return cls(
            row=row,
            id=global_id("JobOpening", row["id"]),
            code=row["code"],
            title=row["title"],
            skills=list(row["skills"]),
            shifts=[JobShift(s) for s in row["shifts"]],
            weekly_hours=row["weekly_hours"],
            wage=row["wage"],
            headcount=row["headcount"],
            open_slots=row["open_slots"],
            valid_from=row["valid_from"],
            valid_until=row["valid_until"],
        )


@strawberry.type(description="A resident seeking work nearby, registered with their consent.")
class JobSeeker(Node):
    row: strawberry.Private[dict[str, Any]]
    skills: list[str] | None = personal()
    shifts: list[JobShift] | None = personal(description="When they can work.")
    weekly_hours: int | None = personal(description="At most this many hours a week.")
    min_wage: int | None = personal(description="Yuan per hour, at least.")
    max_walk_meters: int | None = personal(description="The farthest they will walk to work.")
    consent_at: dt.datetime

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["household_id"], self.row["household_code"]

    @strawberry.field(description="The resident.")
    async def person(self, info: Info) -> Person | None:
        return await parent(info, Person, self.row["person_id"])

    @strawberry.field
    async def household(self, info: Info) -> Household | None:
        return await parent(info, Household, self.row["household_id"])

    @classmethod
    def of(cls, row: dict[str, Any]) -> JobSeeker:
        return cls(
            row=row,
            id=global_id("JobSeeker", row["id"]),
            skills=list(row["skills"]),
            shifts=[JobShift(s) for s in row["shifts"]],
            weekly_hours=row["weekly_hours"],
            min_wage=row["min_wage"],
            max_walk_meters=row["max_walk_meters"],
            consent_at=row["consent_at"],
        )


@strawberry.type(description="Why a seeker and an opening fit.")
class MatchExplanation:
    distance_meters: float
    skills_matched: list[str]
    hours_overlap: int = strawberry.field(
        description="Hours a week in shifts both have (at least the job's weekly hours)."
    )
    wage_ok: bool
    text: str


@strawberry.type(description="A feasible pair of a seeker and an opening, with its score.")
class JobCandidate:
    candidate: strawberry.Private[jobs.Candidate]
    distance_meters: float
    score: float = strawberry.field(
        description="0 to 100: distance 35 %, skills 35 %, hours 15 %, wage 15 %."
    )
    explanation: MatchExplanation

    @strawberry.field
    async def seeker(self, info: Info) -> JobSeeker:
        return JobSeeker.of(await info.context.loaders.job_seekers().load(self.candidate.seeker_id))

    @strawberry.field
    async def opening(self, info: Info) -> JobOpening:
        row = await info.context.loaders.job_openings().load(self.candidate.opening_id)
        return JobOpening.of(row)

    @classmethod
    def of(cls, c: jobs.Candidate) -> JobCandidate:
        return cls(
            candidate=c,
            distance_meters=c.distance_meters,
            score=c.score,
            explanation=MatchExplanation(
                distance_meters=c.distance_meters,
                skills_matched=list(c.skills_matched),
                hours_overlap=c.hours_overlap,
                wage_ok=c.wage_ok,
                text=c.text,
            ),
        )


@strawberry.type(description="One step of a match, with who and when.")
class JobMatchEvent:
    from_state: JobMatchState | None
    to_state: JobMatchState
    at: dt.datetime
    worker_code: str | None
    note: str | None


@strawberry.type(description="A proposal of a seeker for an opening, and how it went.")
class JobMatch(Node):
    row: strawberry.Private[dict[str, Any]]
    state: JobMatchState
    score: float
    distance_meters: float
    created_at: dt.datetime

    @strawberry.field
    async def seeker(self, info: Info) -> JobSeeker | None:
        row = await info.context.loaders.job_seekers().load(self.row["seeker_id"])
        return None if row is None else JobSeeker.of(row)

    @strawberry.field
    async def opening(self, info: Info) -> JobOpening:
        return JobOpening.of(await info.context.loaders.job_openings().load(self.row["opening_id"]))

    @strawberry.field
    async def events(self, info: Info) -> list[JobMatchEvent]:
        found = await info.context.db.run(jobs.events_of, match_ids=[self.row["id"]])
        return [
            JobMatchEvent(
                from_state=e["from_state"] and JobMatchState(e["from_state"]),
                to_state=JobMatchState(e["to_state"]),
                at=e["at"],
                worker_code=e["worker_code"],
                note=e["note"],
            )
            for e in found[self.row["id"]]
        ]

    @classmethod
    def of(cls, row: dict[str, Any]) -> JobMatch:
        return cls(
            row=row,
            id=global_id("JobMatch", row["id"]),
            state=JobMatchState(row["state"]),
            score=row["score"],
            distance_meters=row["distance_meters"],
            created_at=row["created_at"],
        )


@strawberry.type(description="A merchant's discount or notice for residents within a radius.")
class Offer:
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID
    title: str
    description: str | None
    radius_meters: int
    valid_from: dt.date
    valid_until: dt.date | None

    @strawberry.field
    async def merchant(self, info: Info) -> MerchantRef:
        return await merchant_of(info, self.row["merchant_id"])

    @classmethod
    def of(cls, row: dict[str, Any]) -> Offer:
        return cls(
            row=row,
            id=strawberry.ID(str(row["id"])),
            title=row["title"],
            description=row["description"],
            radius_meters=row["radius_meters"],
            valid_from=row["valid_from"],
            valid_until=row["valid_until"],
        )


@strawberry.type(description="Residents hired nearby, per grid of their homes.")
class Placement:
    grid_code: str
    hired: int


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


def _key(info: Info, value: strawberry.ID | None, type_name: str, argument: str) -> Any:
    return None if value is None else entity_key(info, value, type_name, argument)


async def job_candidates(
    info: Info,
    scope: str,
    max_distance_meters: float = 1500,
    seeker_id: strawberry.ID | None = None,
    opening_id: strawberry.ID | None = None,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Connection[JobCandidate]:
    """Every feasible pair in `scope`: best score first."""
    require_file_keeper(info)
    check_first(first)
    after_key = decode_cursor(after)
    found, _ = await info.context.db.run(
        jobs.candidates,
        scope=scope,
        max_distance=max_distance_meters,
        today=today(info),
        seeker_id=_key(info, seeker_id, "JobSeeker", "seekerId"),
        opening_id=_key(info, opening_id, "JobOpening", "openingId"),
    )
    # Best first: the page starts after the cursor's key (a binary search, nothing copied).
    start = 0 if after_key is None else bisect.bisect_right(
        found, tuple(after_key), key=lambda c: c.sort_key
    )  # fmt: skip
    page = found[start : start + first]

    async def total() -> int:
        return len(found)

    return make_connection(
        [JobCandidate.of(c) for c in page],
        [tuple(c.sort_key) for c in page],
        has_next=start + first < len(found),
        has_previous=start > 0,
        total=total,
    )


async def job_matches(
    info: Info, scope: str, max_distance_meters: float = 1500
) -> list[JobCandidate]:
    """The proposals that serve `scope` best: the largest total score with each seeker at most
    once and each opening at most its open slots (an optimal assignment, not greedy)."""
    require_file_keeper(info)
    found, slots = await info.context.db.run(
        jobs.candidates, scope=scope, max_distance=max_distance_meters, today=today(info)
    )
    return [JobCandidate.of(c) for c in jobs.assign(found, slots)]


async def job_seekers(
    info: Info, scope: str, first: int = DEFAULT_PAGE, after: str | None = None
) -> Connection[JobSeeker]:
    require_file_keeper(info)
    check_first(first)
    after_key = decode_cursor(after)
    db = info.context.db
    rows, has_next = await db.run(
        jobs.seekers_page, scope=scope, first=first, after=after_key and after_key[-1]
    )

    async def total() -> int:
        return await db.run(jobs.in_scope_count, table="job_seeker", scope=scope)

    return make_connection(
        [JobSeeker.of(r) for r in rows],
        [(r["person_code"],) for r in rows],
        has_next=has_next,
        has_previous=after is not None,
        total=total,
    )


async def job_proposals(
    info: Info,
    scope: str,
    states: list[JobMatchState] | None = None,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Connection[JobMatch]:
    """The matches of seekers in `scope`, in any or the given states."""
    require_file_keeper(info)
    check_first(first)
    after_key = decode_cursor(after)
    wanted = [s.value for s in states or ()]
    db = info.context.db
    rows, has_next = await db.run(
        jobs.matches_page,
        scope=scope,
        states=wanted,
        first=first,
        after=after_key and after_key[-1],
    )

    async def total() -> int:
        return await db.run(jobs.in_scope_count, table="job_match", scope=scope, states=wanted)

    return make_connection(
        [JobMatch.of(r) for r in rows],
        [(str(r["id"]),) for r in rows],
        has_next=has_next,
        has_previous=after is not None,
        total=total,
    )


async def offers(info: Info, scope: str) -> list[Offer]:
    """Offers valid today that reach the area or household with this code."""
    rows = await info.context.db.run(jobs.offers, scope=scope, today=today(info))
    return [Offer.of(r) for r in rows]


async def placements(
    info: Info,
    scope: str,
    from_: Annotated[dt.date, strawberry.argument(name="from")],
    to: dt.date,
) -> list[Placement]:
    """Residents hired nearby from day `from` to day `to` (inclusive), per grid."""
    require_file_keeper(info)
    if to < from_:
        raise BadInput("to", f"{to} is before from {from_}")
    zone = ZoneInfo(info.context.settings.timezone)
    rows = await info.context.db.run(
        jobs.placements,
        scope=scope,
        since=dt.datetime.combine(from_, dt.time(), zone),
        until=dt.datetime.combine(to + dt.timedelta(days=1), dt.time(), zone),
    )
    return [Placement(grid_code=r["grid"], hired=r["hired"]) for r in rows]


# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------


@strawberry.input
class JobOpeningInput:
    merchant_id: strawberry.ID
    title: str
    shifts: list[JobShift]
    weekly_hours: int
    wage: int = strawberry.field(description="Yuan per hour.")
    headcount: int
    valid_from: dt.date
    skills: list[str] | None = None
    valid_until: dt.date | None = None


@strawberry.input(description="Only the fields given change.")
class UpdateJobOpeningInput:
    opening_id: strawberry.ID
    title: str | None = strawberry.UNSET
    skills: list[str] | None = strawberry.UNSET
    shifts: list[JobShift] | None = strawberry.UNSET
    weekly_hours: int | None = strawberry.UNSET
    wage: int | None = strawberry.UNSET
    headcount: int | None = strawberry.UNSET
    valid_from: dt.date | None = strawberry.UNSET
    valid_until: dt.date | None = strawberry.UNSET


@strawberry.input(description="A resident seeking work; `consent` must be true.")
class JobSeekerInput:
    member_id: strawberry.ID
    skills: list[str]
    shifts: list[JobShift]
    weekly_hours: int
    min_wage: int
    max_walk_meters: int
    consent: bool


@strawberry.input
class OfferInput:
    merchant_id: strawberry.ID
    title: str
    radius_meters: int
    valid_from: dt.date
    description: str | None = None
    valid_until: dt.date | None = None


@strawberry.input
class ProposeJobMatchesInput:
    scope: str
    max_distance_meters: float = 1500


@strawberry.input
class ProposeJobMatchInput:
    seeker_id: strawberry.ID
    opening_id: strawberry.ID
    max_distance_meters: float = 1500


@strawberry.input
class SetJobMatchStateInput:
    match_id: strawberry.ID
    to: JobMatchState
    note: str | None = None


def _values(data: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    return given({k: v for k, v in vars(data).items() if k not in skip})


async def create_job_opening(info: Info, input: JobOpeningInput) -> JobOpening:
    merchant = entity_key(info, input.merchant_id, "Merchant", "input.merchantId")
    values = _values(input, ("merchant_id",))
    values.setdefault("skills", [])
    row = await info.context.db.write(
        jobs.create_opening, caller=info.context.caller, merchant_id=merchant, values=values
    )
    return JobOpening.of(row)


async def update_job_opening(info: Info, input: UpdateJobOpeningInput) -> JobOpening:
    key = entity_key(info, input.opening_id, "JobOpening", "input.openingId")
    values = _values(input, ("opening_id",))
    for name in ("title", "shifts", "weekly_hours", "wage", "headcount", "valid_from"):
        if name in values and values[name] is None:
            raise BadInput(f"input.{name}", "may not be null")
    row = await info.context.db.write(jobs.update_opening, opening_id=key, values=values)
    return JobOpening.of(row)


async def register_job_seeker(info: Info, input: JobSeekerInput) -> JobSeeker:
    person = entity_key(info, input.member_id, "Person", "input.memberId")
    row = await info.context.db.write(
        jobs.register_seeker,
        caller=info.context.caller,
        person_id=person,
        values=_values(input, ("member_id",)),
    )
    return JobSeeker.of(row)


async def remove_job_seeker(info: Info, seeker_id: strawberry.ID) -> bool:
    """The resident withdrew consent, or found work elsewhere: the record goes, matches too."""
    key = entity_key(info, seeker_id, "JobSeeker", "seekerId")
    await info.context.db.write(jobs.remove_seeker, caller=info.context.caller, seeker_id=key)
    return True


async def create_offer(info: Info, input: OfferInput) -> Offer:
    merchant = entity_key(info, input.merchant_id, "Merchant", "input.merchantId")
    row = await info.context.db.write(
        jobs.create_offer,
        caller=info.context.caller,
        merchant_id=merchant,
        values=_values(input, ("merchant_id",)),
    )
    return Offer.of(row)


def _propose_best(session: Any, caller: Any, scope: str, distance: float, day: dt.date) -> list:
    found, slots = jobs.candidates(session=session, scope=scope, max_distance=distance, today=day)
    return jobs.propose(session=session, caller=caller, chosen=jobs.assign(found, slots))


async def propose_job_matches(info: Info, input: ProposeJobMatchesInput) -> list[JobMatch]:
    """Propose the optimal set (`jobMatches`) for `scope`: each becomes a PROPOSED match."""
    require_file_keeper(info)
    rows = await info.context.db.write(
        _propose_best,
        caller=info.context.caller,
        scope=input.scope,
        distance=input.max_distance_meters,
        day=today(info),
    )
    return [JobMatch.of(r) for r in rows]


def _propose_one(
    session: Any,
    caller: Any,
    seeker: uuid.UUID,
    opening: uuid.UUID,
    distance: float,
    day: dt.date,
) -> list:
    row = jobs.seeker_by_id(session=session, seeker_id=seeker)
    if row is None:
        raise BadInput("input.seekerId", f"no job seeker {seeker} in your areas")
    found, _ = jobs.candidates(
        session=session,
        scope=row["household_code"][:15],  # its grid
        max_distance=distance,
        today=day,
        seeker_id=seeker,
        opening_id=opening,
    )
    if not found:
        raise BadInput(
            "input.openingId",
            "this opening does not fit this seeker (distance, skills, hours, wage, open slots) "
            "or the seeker has a live proposal already: see jobCandidates",
        )
    return jobs.propose(session=session, caller=caller, chosen=found)


async def propose_job_match(info: Info, input: ProposeJobMatchInput) -> JobMatch:
    seeker = entity_key(info, input.seeker_id, "JobSeeker", "input.seekerId")
    opening = entity_key(info, input.opening_id, "JobOpening", "input.openingId")
    rows = await info.context.db.write(
        _propose_one,
        caller=info.context.caller,
        seeker=seeker,
        opening=opening,
        distance=input.max_distance_meters,
        day=today(info),
    )
    return JobMatch.of(rows[0])


async def set_job_match_state(info: Info, input: SetJobMatchStateInput) -> JobMatch:
    key = entity_key(info, input.match_id, "JobMatch", "input.matchId")
    row = await info.context.db.write(
        jobs.set_match_state,
        caller=info.context.caller,
        match_id=key,
        to=input.to.value,
        note=input.note,
    )
    return JobMatch.of(row)


async def node(info: Info, type_name: str, key: uuid.UUID) -> Any:
    """``node(id:)`` of the job types (seekers and matches: inside the caller's areas)."""
    if type_name == "JobOpening":
        row = await info.context.db.run(jobs.opening_by_id, opening_id=key)
        return row and JobOpening.of(row)
    if type_name == "JobSeeker":
        row = await info.context.db.run(jobs.seeker_by_id, seeker_id=key)
        return row and JobSeeker.of(row)
    row = await info.context.db.run(jobs.match_by_id, match_id=key)
    return row and JobMatch.of(row)


NODE_TYPES = ("JobOpening", "JobSeeker", "JobMatch")
