"""Cases: report one (with photos), move it along the loop, merge a duplicate, and read them
with their history. The work is in ``geo.cases``; row-level security decides which cases a
caller sees (staff: their areas; a department: its unit's)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import strawberry

from api.schema.areas import Grid, MicroGrid
from api.schema.base import GeoJSON, NearInput, filters, values_enum
from api.schema.context import Info
from api.schema.personal import personal
from api.schema.relay import (
    DEFAULT_PAGE,
    Connection,
    Node,
    check_first,
    decode_cursor,
    global_id,
    make_connection,
    parse_global_id,
)
from geo import cases as c
from geo import queries as q
from geo.access import Role
from geo.errors import BadInput, Forbidden

if TYPE_CHECKING:
    from api.schema.visits import Visit

VisitRef = Annotated["Visit", strawberry.lazy("api.schema.visits")]

CaseSource = values_enum("CaseSource", c.SOURCES, "Where a case came from.")
CaseState = values_enum("CaseState", c.STATES, "Where a case is in the closed loop.")
CasePriority = values_enum("CasePriority", c.PRIORITIES, "URGENT cases go first.")
PhotoStage = values_enum("PhotoStage", c.PHOTO_STAGES, "When a photo was taken.")
CASE_ROLES = frozenset({*c.REPORTERS, Role.DEPARTMENT})


@strawberry.type(description="A category of the case catalogue, with its unit and time limit.")
class CaseCategory:
    code: str
    name: str
    name_en: str
    public_name: str = strawberry.field(description="What the public reads (Open311).")
    default_unit: str = strawberry.field(description="The unit its cases are dispatched to.")
    time_limit: int
    time_unit: str = strawberry.field(description="HOURS (calendar) or WORKING_DAYS.")
    active: bool
    public: bool = strawberry.field(description="Its cases are in the public Open311 feed.")

    @classmethod
    def of(cls, row: dict[str, Any]) -> CaseCategory:
        return cls(**{k: row[k] for k in (
            "code", "name", "name_en", "public_name", "default_unit", "time_limit", "time_unit",
            "active", "public")})  # fmt: skip


@strawberry.type(description="A unit cases are dispatched to (a department's).")
class Unit:
    code: str
    name: str
    name_en: str | None


@strawberry.type(description="One step of a case: who did what, when, with what note.")
class CaseEvent:
    at: dt.datetime
    action: str
    from_state: CaseState | None  # type: ignore[valid-type]
    to_state: CaseState | None  # type: ignore[valid-type]
    worker_code: str | None
    role: str
    unit_code: str | None
    note: str | None


@strawberry.type(description="A photo of a case, served to those who may see the case.")
class CasePhoto:
    id: strawberry.ID
    stage: PhotoStage  # type: ignore[valid-type]
    content_type: str
    size: int
    uploaded_at: dt.datetime
    url: str = strawberry.field(description="GET it with your credentials.")


@strawberry.type(description="A case: a problem reported in a grid, followed to its closure.")
class Case(Node):
    row: strawberry.Private[dict[str, Any]]
    number: str = strawberry.field(description="The case number people quote: 2026-000123.")
    source: CaseSource  # type: ignore[valid-type]
    category: str = strawberry.field(description="The catalogue's category code.")
    source_category: str | None = strawberry.field(
        description="An import's own category name (kept under OTHER when it had no mapping)."
    )
    description: str
    location: GeoJSON
    reporter_code: str | None = strawberry.field(
        description="Who reported it: a staff number, or open311:<client> for an Open311 client."
    )
    reporter_name: str | None = personal(description="A resident who reported it.")
    reporter_phone: str | None = personal(description="A resident who reported it.")
    unit_code: str | None = strawberry.field(description="The unit responsible for it.")
    priority: CasePriority  # type: ignore[valid-type]
    state: CaseState  # type: ignore[valid-type]
    reported_at: dt.datetime
    dispatched_at: dt.datetime | None
    deadline: dt.datetime | None = strawberry.field(
        description="From dispatch, by the category's time limit (calendar hours or working "
        "days)."
    )
    overdue: bool = strawberry.field(description="Past its deadline and not handled.")
    handled_at: dt.datetime | None
    closed_at: dt.datetime | None
    returned_count: int = strawberry.field(description="Times it was sent back to the unit.")

    @strawberry.field(description="The grid it was reported in (by containment).")
    async def grid(self, info: Info) -> Grid:
        found = await info.context.loaders.by_code(q.GRID).load(self.row["grid_code"])
        assert found is not None
        return Grid.from_row(found)

    @strawberry.field
    async def micro_grid(self, info: Info) -> MicroGrid | None:
        code = self.row["micro_grid_code"]
        found = code and await info.context.loaders.by_code(q.MICRO_GRID).load(code)
        return MicroGrid.from_row(found) if found else None

    @strawberry.field(description="The case this one was merged into (a duplicate).")
    async def merged_into(self, info: Info) -> Case | None:
        key = self.row["merged_into"]
        return None if key is None else await case_node(info, key)

    @strawberry.field(description="The visit it was escalated from.")
    async def visit(self, info: Info) -> VisitRef | None:
        from api.schema.visits import visit_node

        key = self.row["visit_id"]
        return None if key is None else await visit_node(info, key)

    @strawberry.field(description="Every step, oldest first.")
    async def events(self, info: Info) -> list[CaseEvent]:
        rows = await info.context.loaders.case_events().load(self.row["id"])
        return [
            CaseEvent(
                at=r["at"], action=r["action"],
                from_state=r["from_state"] and CaseState(r["from_state"]),
                to_state=r["to_state"] and CaseState(r["to_state"]),
                worker_code=r["worker_code"], role=r["role"], unit_code=r["unit_code"],
                note=r["note"],
            )
            for r in rows
        ]  # fmt: skip

    @strawberry.field
    async def photos(self, info: Info) -> list[CasePhoto]:
        rows = await info.context.loaders.case_photos().load(self.row["id"])
        return [
            CasePhoto(
                id=strawberry.ID(str(r["id"])), stage=PhotoStage(r["stage"]),
                content_type=r["content_type"], size=r["size"], uploaded_at=r["uploaded_at"],
                url=f"/cases/{self.number}/photos/{r['id']}",
            )
            for r in rows
        ]  # fmt: skip

    @classmethod
    def of(cls, row: dict[str, Any]) -> Case:
        return cls(
            row=row, id=global_id("Case", row["id"]), number=row["number"],
            source=CaseSource(row["source"]), category=row["category_code"],
            source_category=row["source_category"], description=row["description"],
            location=orjson.Fragment(
                orjson.dumps({"type": "Point", "coordinates": [row["lon"], row["lat"]]})
            ),
            reporter_code=row["reporter_code"], reporter_name=row["reporter_name"],
            reporter_phone=row["reporter_phone"], unit_code=row["unit_code"],
            priority=CasePriority(row["priority"]), state=CaseState(row["state"]),
            reported_at=row["reported_at"], dispatched_at=row["dispatched_at"],
            deadline=row["deadline"], overdue=row["overdue"], handled_at=row["handled_at"],
            closed_at=row["closed_at"], returned_count=row["returned_count"],
        )  # fmt: skip


def require_case_role(info: Info) -> None:
    if info.context.caller.role not in CASE_ROLES:
        raise Forbidden("cases", "cases are for grid staff and the departments they go to")


def case_key(info: Info, value: str, argument: str) -> uuid.UUID:
    require_case_role(info)
    found, key = parse_global_id(value, argument=argument)
    if found != "Case":
        raise BadInput(argument, f"{value!r} is the ID of a {found}, not of a Case")
    return key


async def case_node(info: Info, key: uuid.UUID) -> Case | None:
    row = await info.context.db.run(c.case_by_id, case_id=key)
    return None if row is None else Case.of(row)


async def case(info: Info, id: strawberry.ID) -> Case | None:
    """The case with this global ID, if you may see it."""
    return await case_node(info, case_key(info, id, "id"))


async def case_by_number(info: Info, number: str) -> Case | None:
    """The case with this number (2026-000123), if you may see it."""
    require_case_role(info)
    row = await info.context.db.run(c.case_by_number, number=number.strip())
    return None if row is None else Case.of(row)


@strawberry.input(description="Which cases: every criterion given must hold.")
class CaseFilter:
    scope: str | None = strawberry.field(
        default=None, description="An area code; default: all your areas."
    )
    states: list[CaseState] | None = None  # type: ignore[valid-type]
    categories: list[str] | None = None
    sources: list[CaseSource] | None = None  # type: ignore[valid-type]
    from_: dt.date | None = strawberry.field(
        default=None, name="from", description="Reported on or after this local day."
    )
    to: dt.date | None = strawberry.field(
        default=None, description="Reported on or before this local day."
    )
    overdue: bool | None = None
    within: GeoJSON | None = strawberry.field(
        default=None, description="Only cases whose point lies within this GeoJSON geometry."
    )
    near: NearInput | None = strawberry.field(
        default=None, description="Only cases within `meters` of a point."
    )

    def value(self) -> c.CaseFilter:
        spatial = filters(within=self.within, near=self.near)
        near = spatial.near and (spatial.near.lon, spatial.near.lat, spatial.near.meters)
        return c.CaseFilter(
            scope=self.scope, states=[s.value for s in self.states or ()],
            categories=self.categories or (), sources=[s.value for s in self.sources or ()],
            first_day=self.from_, last_day=self.to, overdue=self.overdue,
            within=spatial.within, near=near,
        )  # fmt: skip


async def cases(
    info: Info,
    filter: CaseFilter | None = None,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Connection[Case]:
    """The cases you may see, newest first."""
    require_case_role(info)
    check_first(first)
    after_key = decode_cursor(after)
    where = (filter or CaseFilter()).value()
    db = info.context.db
    page = await db.run(c.cases_page, where=where, first=first, after=after_key)

    async def total() -> int:
        return await db.run(c.cases_count, where=where)

    return make_connection(
        [Case.of(r) for r in page.rows], [c.case_key(r) for r in page.rows],
        has_next=page.has_next, has_previous=after is not None, total=total,
    )  # fmt: skip


async def case_categories(info: Info, include_inactive: bool = False) -> list[CaseCategory]:
    rows = await info.context.db.run(c.categories, include_inactive=include_inactive)
    return [CaseCategory.of(r) for r in rows]


async def units(info: Info) -> list[Unit]:
    rows = await info.context.db.run(c.units)
    return [Unit(code=r["code"], name=r["name"], name_en=r["name_en"]) for r in rows]


@strawberry.input(description="A photo, base64-encoded (JPEG, PNG or WebP, up to 5 MB).")
class PhotoInput:
    stage: PhotoStage  # type: ignore[valid-type]
    content_type: str
    data_base64: str

    def value(self) -> c.PhotoIn:
        return c.PhotoIn(self.stage.value, self.content_type, self.data_base64)


@strawberry.input
class ReportCaseInput:
    category: str = strawberry.field(description="A code of `caseCategories`.")
    description: str
    lon: float
    lat: float
    source: CaseSource = strawberry.field(default=CaseSource("GRID_WHISTLE"))  # type: ignore
    priority: CasePriority = strawberry.field(default=CasePriority("NORMAL"))  # type: ignore
    reporter_name: str | None = strawberry.field(
        default=None, description="A resident who reported it (hotline, online)."
    )
    reporter_phone: str | None = None
    photos: list[PhotoInput] | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="The same for every retry of this report (a UUID, 8–200 "
        "characters): a retry returns the case reported first, never a second case.",
    )  # fmt: skip


@strawberry.type
class ReportCasePayload:
    case: Case
    duplicates: list[Case] = strawberry.field(
        description="Open cases of the same category within 100 m: merge if it is the same."
    )


async def report_case(info: Info, input: ReportCaseInput) -> ReportCasePayload:
    require_case_role(info)
    row, duplicates = await info.context.db.write(
        c.report_case, caller=info.context.caller,
        case=c.CaseIn(
            source=input.source.value, category=input.category.strip(),
            description=input.description, lon=input.lon, lat=input.lat,
            priority=input.priority.value, reporter_name=input.reporter_name,
            reporter_phone=input.reporter_phone,
            photos=[p.value() for p in input.photos or ()],
            idempotency_key=input.idempotency_key,
        ),
    )  # fmt: skip
    return ReportCasePayload(
        case=Case.of(row), duplicates=[Case.of(d) for d in duplicates]
    )


@strawberry.input
class TransitionCaseInput:
    case_id: strawberry.ID
    to: CaseState  # type: ignore[valid-type]
    note: str | None = strawberry.field(
        default=None, description="Required for REJECTED (the reason) and RETURNED."
    )
    unit_code: str | None = strawberry.field(
        default=None, description="DISPATCHED: the unit (default: the category's)."
    )
    photos: list[PhotoInput] | None = None


@strawberry.type
class TransitionCasePayload:
    case: Case


async def transition_case(info: Info, input: TransitionCaseInput) -> TransitionCasePayload:
    key = case_key(info, input.case_id, "input.caseId")
    row = await info.context.db.write(
        c.transition, caller=info.context.caller, case_id=key, to=input.to.value,
        note=input.note, unit_code=input.unit_code,
        photos=[p.value() for p in input.photos or ()],
    )  # fmt: skip
    return TransitionCasePayload(case=Case.of(row))


@strawberry.input
class MergeCaseInput:
    case_id: strawberry.ID = strawberry.field(description="The duplicate: it is closed.")
    into_id: strawberry.ID = strawberry.field(description="The case it repeats: it goes on.")
    note: str | None = None


async def merge_case(info: Info, input: MergeCaseInput) -> Case:
    key = case_key(info, input.case_id, "input.caseId")
    into = case_key(info, input.into_id, "input.intoId")
    row = await info.context.db.write(
        c.merge, caller=info.context.caller, case_id=key, into_id=into, note=input.note
    )
    return Case.of(row)


@strawberry.input
class AddCasePhotoInput:
    case_id: strawberry.ID
    photo: PhotoInput


async def add_case_photo(info: Info, input: AddCasePhotoInput) -> Case:
    key = case_key(info, input.case_id, "input.caseId")
    row = await info.context.db.write(
        c.add_photo, caller=info.context.caller, case_id=key, photo=input.photo.value()
    )
    return Case.of(row)


@strawberry.input(description="A category of the catalogue, new or changed.")
class CaseCategoryInput:
    code: str
    name: str
    name_en: str
    public_name: str = strawberry.field(description="What the public reads of its cases.")
    default_unit: str
    time_limit: int
    time_unit: str = strawberry.field(description="HOURS (calendar) or WORKING_DAYS.")
    active: bool = True
    public: bool = strawberry.field(
        default=True, description="List its cases in the public Open311 feed."
    )


async def set_case_category(info: Info, input: CaseCategoryInput) -> CaseCategory:
    row = await info.context.db.write(
        c.set_category, caller=info.context.caller,
        category=c.CategoryIn(
            code=input.code, name=input.name, name_en=input.name_en,
            public_name=input.public_name, default_unit=input.default_unit,
            time_limit=input.time_limit, time_unit=input.time_unit, active=input.active,
            public=input.public,
        ),
    )  # fmt: skip
    return CaseCategory.of(row)


@strawberry.type(description="An exception to Monday–Friday: a day off, or a weekend worked.")
class Holiday:
    day: dt.date
    working: bool = strawberry.field(description="True: a weekend day worked (调休).")
    name: str


@strawberry.input
class HolidayInput:
    day: dt.date
    working: bool = False
    name: str


@strawberry.input
class SetHolidaysInput:
    year: int
    days: list[HolidayInput] = strawberry.field(description="The whole year's exceptions.")


async def holidays(info: Info, year: int) -> list[Holiday]:
    rows = await info.context.db.run(c.holidays, year=year)
    return [Holiday(**r) for r in rows]


async def set_holidays(info: Info, input: SetHolidaysInput) -> list[Holiday]:
    rows = await info.context.db.write(
        c.set_holidays, caller=info.context.caller, year=input.year,
        days=[(d.day, d.working, d.name) for d in input.days],
    )  # fmt: skip
    return [Holiday(**r) for r in rows]
