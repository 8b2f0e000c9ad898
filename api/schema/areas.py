"""The spatial hierarchy: District > Subdistrict > Community > Grid > MicroGrid > Building >
Household, and the Persons of a household."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Annotated, ClassVar

import strawberry

from api.schema.base import (
    SUPPRESSED,
    GeoJSON,
    RowNode,
    child_connection,
    is_suppressed,
    parent,
    suppressed_or,
)
from api.schema.context import Info
from api.schema.personal import personal
from api.schema.relay import DEFAULT_PAGE, Connection, Node
from geo import queries as q
from geo.models import HouseholdClass as HouseholdClassValues
from geo.pii import mask_phone

if TYPE_CHECKING:
    from api.schema.family_files import FamilyFile
    from api.schema.visits import Visit
    from api.schema.workers import Worker

WorkerRef = Annotated["Worker", strawberry.lazy("api.schema.workers")]
FamilyFileRef = Annotated["FamilyFile", strawberry.lazy("api.schema.family_files")]
VisitRef = Annotated["Visit", strawberry.lazy("api.schema.visits")]


@strawberry.interface(
    description="An area of the hierarchy (district … micro-grid): its code extends its parent's."
)
class Area(Node):
    code: str
    geometry: GeoJSON
    row: ClassVar[q.Row]  # set on each instance by RowNode.from_row

    @strawberry.field(description="Households registered in this area; null when `suppressed`.")
    async def household_count(self, info: Info) -> int | None:
        return suppressed_or(info, await info.context.loaders.area_counts().load(self.row["code"]))[
            0
        ]

    @strawberry.field(
        description="Persons living in this area's households; null when `suppressed`."
    )
    async def resident_count(self, info: Info) -> int | None:
        return suppressed_or(info, await info.context.loaders.area_counts().load(self.row["code"]))[
            1
        ]

    @strawberry.field(description=SUPPRESSED)
    async def suppressed(self, info: Info) -> bool:
        counts = await info.context.loaders.area_counts().load(self.row["code"])
        return is_suppressed(info, counts[0])


@strawberry.type(description="A district (区), 6-digit GB/T 2260 code.")
class District(RowNode, Area):
    entity = q.DISTRICT
    code: str
    name: str
    geometry: GeoJSON

    @strawberry.field
    async def subdistricts(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Subdistrict]:
        return await child_connection(info, Subdistrict, self.row["id"], first=first, after=after)


@strawberry.type(description="A sub-district (街道), 9-digit code.")
class Subdistrict(RowNode, Area):
    entity = q.SUBDISTRICT
    code: str
    name: str
    geometry: GeoJSON
    timezone: str = strawberry.field(
        description="IANA time zone in which this sub-district counts days and months."
    )

    @strawberry.field
    async def district(self, info: Info) -> District:
        return await parent(info, District, self.row["parent_id"])

    @strawberry.field
    async def communities(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Community]:
        return await child_connection(info, Community, self.row["id"], first=first, after=after)


@strawberry.type(description="A community (社区居委会), 12-digit code.")
class Community(RowNode, Area):
    entity = q.COMMUNITY
    code: str
    name: str
    geometry: GeoJSON
    office: GeoJSON | None = strawberry.field(
        description="The committee office (a Point): where block heads' walks start."
    )

    @strawberry.field
    async def subdistrict(self, info: Info) -> Subdistrict:
        return await parent(info, Subdistrict, self.row["parent_id"])

    @strawberry.field
    async def grids(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Grid]:
        return await child_connection(info, Grid, self.row["id"], first=first, after=after)


@strawberry.type(description="A grid (网格) of a few hundred households, 15-digit code.")
class Grid(RowNode, Area):
    entity = q.GRID
    code: str
    name: str | None
    geometry: GeoJSON

    @strawberry.field
    async def community(self, info: Info) -> Community:
        return await parent(info, Community, self.row["parent_id"])

    @strawberry.field
    async def micro_grids(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[MicroGrid]:
        return await child_connection(info, MicroGrid, self.row["id"], first=first, after=after)

    @strawberry.field(description="The workers assigned to this grid.")
    async def workers(self, info: Info) -> list[WorkerRef]:
        from api.schema.workers import Worker

        rows = await info.context.loaders.grid_workers().load(self.row["id"])
        return [Worker.from_row(r) for r in rows]


@strawberry.type(description="A micro-grid (微网格), usually one building, 18-digit code.")
class MicroGrid(RowNode, Area):
    entity = q.MICRO_GRID
    code: str
    name: str | None
    geometry: GeoJSON

    @strawberry.field
    async def grid(self, info: Info) -> Grid:
        return await parent(info, Grid, self.row["parent_id"])

    @strawberry.field
    async def buildings(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Building]:
        return await child_connection(info, Building, self.row["id"], first=first, after=after)


@strawberry.type(
    description="A building (楼栋): its micro-grid's code plus 3 digits, or a source key such "
    "as `osm:w123456` while it belongs to no micro-grid."
)
class Building(RowNode, Node):
    entity = q.BUILDING
    code: str
    name: str | None
    address: str | None
    levels: int | None
    geometry: GeoJSON
    distance_meters: float | None = strawberry.field(
        description="Metres from the point of a `near` search; null elsewhere."
    )

    @strawberry.field
    async def micro_grid(self, info: Info) -> MicroGrid | None:
        return await parent(info, MicroGrid, self.row["parent_id"])

    @strawberry.field
    async def households(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Household]:
        return await child_connection(info, Household, self.row["id"], first=first, after=after)

    @strawberry.field(description="Households in this building; null when `suppressed`.")
    async def household_count(self, info: Info) -> int | None:
        return suppressed_or(info, await self._counts(info))[0]

    @strawberry.field(description="Persons living in this building; null when `suppressed`.")
    async def resident_count(self, info: Info) -> int | None:
        return suppressed_or(info, await self._counts(info))[1]

    @strawberry.field(description=SUPPRESSED)
    async def suppressed(self, info: Info) -> bool:
        return is_suppressed(info, (await self._counts(info))[0])

    async def _counts(self, info: Info) -> tuple[int, int]:
        return await info.context.loaders.building_counts().load(self.row["id"])


HouseholdClass = strawberry.enum(
    HouseholdClassValues,
    description="A: contact by phone or online, no door visits; B: normal visits; "
    "C: special groups, visited more often.",
)


@strawberry.type(description="A household (户) and its family file; code `<building>-unit-room`.")
class Household(RowNode, Node):
    entity = q.HOUSEHOLD
    code: str
    unit: str | None
    room: str
    household_class: HouseholdClass | None = personal(
        description="A, B or C: C tells that a member belongs to a special group."
    )
    geometry: GeoJSON | None = personal(description="The household's location (a Point).")
    distance_meters: float | None = strawberry.field(
        description="Metres from the point of a `near` search; null elsewhere."
    )

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["id"], self.row["code"]

    @strawberry.field
    async def building(self, info: Info) -> Building:
        return await parent(info, Building, self.row["parent_id"])

    @strawberry.field(description="The household's members.")
    async def members(self, info: Info) -> list[Person]:
        rows = await info.context.loaders.members().load(self.row["id"])
        return [Person.from_row(r) for r in rows]

    moved_out: date | None = strawberry.field(
        description="The day the household moved out; null while it lives here. Moved-out "
        "households stay in the register, uncounted."
    )

    @strawberry.field(description="The family file, as it stands (`familyFile` for a past day).")
    async def family_file(self, info: Info) -> FamilyFileRef | None:
        from api.schema.family_files import family_file

        return await family_file(info, self.id)

    @strawberry.field(description="The latest visits, newest first.")
    async def visits(self, info: Info, last: int = 10) -> list[VisitRef]:
        from api.schema.family_files import require_file_keeper
        from api.schema.visits import household_visits

        require_file_keeper(info)
        return await household_visits(info, self.row["id"], last)

    @strawberry.field(description="Always 1: a household is one household.")
    def household_count(self) -> int:
        return 1

    @strawberry.field
    async def resident_count(self, info: Info) -> int:
        return await info.context.loaders.child_count(q.PERSON).load(self.row["id"])


@strawberry.type(description="A member of a household.")
class Person(RowNode, Node):
    entity = q.PERSON
    code: str
    name: str | None = personal()
    gender: str | None = personal()
    relation: str | None = personal(description="Relation to the head of the household.")
    birth_year: int | None = personal()
    phone: str | None = personal(
        masked=lambda node: node.row["phone"] and mask_phone(node.row["phone"])
    )
    elderly_living_alone: bool | None = personal()
    childless_elderly: bool | None = personal()
    bereaved: bool | None = personal()
    low_income: bool | None = personal()
    disabled: bool | None = personal()
    entitled_group: bool | None = personal()
    seeking_work: bool | None = personal()

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["parent_id"], self.row["code"].rsplit("-", 1)[0]

    @personal(
        description="The resident ID number (18 characters).",
        masked=lambda node: node.row["id_number_masked"],
    )
    def id_number(self, info: Info) -> str | None:
        sealed = self.row["id_number_sealed"]
        return None if sealed is None else info.context.vault.open(bytes(sealed))

    @strawberry.field
    async def household(self, info: Info) -> Household:
        return await parent(info, Household, self.row["parent_id"])


NODE_TYPES: dict[str, type[RowNode]] = {
    cls.entity.name: cls
    for cls in (District, Subdistrict, Community, Grid, MicroGrid, Building, Household, Person)
}
