"""Visit coverage: cells coloured by how many households were contacted within their cadence,
the block head's list of overdue households, and the cadence policy behind both
(``geo.coverage`` computes them in the database)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
import strawberry

from api.schema.areas import Household, HouseholdClass
from api.schema.base import SUPPRESSED, GeoJSON, is_suppressed, parent, values_enum
from api.schema.context import Info
from api.schema.family_files import require_file_keeper
from api.schema.personal import personal
from api.schema.relay import (
    DEFAULT_PAGE,
    Connection,
    check_first,
    decode_cursor,
    make_connection,
)
from geo import coverage as cov
from geo.access import Role
from geo.errors import Forbidden

CoverageLevel = values_enum("CoverageLevel", cov.LEVELS, "The cells coverage is counted in.")


@strawberry.type(description="Households not contacted within their cadence, by class.")
class OverdueCounts:
    a: int
    b: int
    c: int
    total: int


@strawberry.type(description="One cell of a coverage map.")
class CoverageCell:
    code: str
    name: str | None
    geometry: GeoJSON
    households: int | None = strawberry.field(description="Households living in the cell.")
    contacted: int | None = strawberry.field(
        description="Households contacted within their class's cadence as of the day."
    )
    ratio: float | None = strawberry.field(description="contacted / households (0 to 1).")
    overdue: OverdueCounts | None
    suppressed: bool = strawberry.field(description=SUPPRESSED)


def _cell(info: Info, row: dict[str, Any]) -> CoverageCell:
    hidden = is_suppressed(info, row["households"])
    overdue = OverdueCounts(
        a=row["overdue_a"], b=row["overdue_b"], c=row["overdue_c"],
        total=row["overdue_a"] + row["overdue_b"] + row["overdue_c"],
    )  # fmt: skip
    return CoverageCell(
        code=row["code"], name=row["name"], geometry=orjson.Fragment(row["geometry"]),
        households=None if hidden else row["households"],
        contacted=None if hidden else row["contacted"],
        ratio=None if hidden else row["ratio"],
        overdue=None if hidden else overdue, suppressed=hidden,
    )  # fmt: skip


async def coverage(
    info: Info, scope: str, as_of: dt.date | None = None, level: CoverageLevel = CoverageLevel.GRID
) -> list[CoverageCell]:
    """Every cell of `level` inside the area `scope`, as of the end of `asOf` (today when not
    given, in the subdistrict's time zone)."""
    rows = await info.context.db.run(cov.cells, scope=scope, level=level.value, as_of=as_of)
    return [_cell(info, r) for r in rows]


@strawberry.type(description="A household overdue for a visit.")
class OverdueHousehold:
    row: strawberry.Private[dict[str, Any]]
    household_class: HouseholdClass | None = personal()
    last_contact_at: dt.datetime | None = strawberry.field(
        description="Its last contact that counts (for class A: through its preferred channel)."
    )
    due_on: dt.date = strawberry.field(description="The day it fell due.")
    days_overdue: int

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["household_id"], self.row["code"]

    @strawberry.field
    async def household(self, info: Info) -> Household:
        found = await parent(info, Household, self.row["household_id"])
        assert found is not None
        return found


async def overdue_households(
    info: Info,
    scope: str,
    as_of: dt.date | None = None,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    household_class: HouseholdClass | None = None,
) -> Connection[OverdueHousehold]:
    """Households in `scope` not contacted within their cadence: class C first, then the most
    overdue. A household never contacted is overdue from its moved-in day (or the policy's
    start)."""
    require_file_keeper(info)
    check_first(first)
    after_key = decode_cursor(after)
    db = info.context.db
    cls = household_class.value if household_class is not None else None
    page = await db.run(
        cov.overdue_page, scope=scope, as_of=as_of, first=first, after=after_key,
        household_class=cls,
    )  # fmt: skip
    nodes = [
        OverdueHousehold(
            row=r,
            household_class=HouseholdClass(r["household_class"]),
            last_contact_at=r["last_contact_at"],
            due_on=r["due_on"],
            days_overdue=r["days_overdue"],
        )
        for r in page.rows
    ]

    async def total() -> int:
        if after_key is None:  # the first page counted them all
            return page.rows[0]["total_count"] if page.rows else 0
        return await db.run(cov.overdue_count, scope=scope, as_of=as_of, household_class=cls)

    return make_connection(
        nodes, [cov.overdue_key(r) for r in page.rows], has_next=page.has_next,
        has_previous=after is not None, total=total,
    )  # fmt: skip


@strawberry.type(description="How often households of each class are to be contacted.")
class CadencePolicy:
    subdistrict_code: str
    class_a_days: int = strawberry.field(
        description="Class A: one contact through its preferred channel every so many days."
    )
    class_b_days: int
    class_c_days: int
    starts_on: dt.date | None = strawberry.field(
        description="Households never contacted are overdue from this day or their move-in day, "
        "whichever is later."
    )
    updated_at: dt.datetime | None
    updated_by: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> CadencePolicy:
        return cls(
            subdistrict_code=row["code"], class_a_days=row["class_a_days"],
            class_b_days=row["class_b_days"], class_c_days=row["class_c_days"],
            starts_on=row["starts_on"], updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )  # fmt: skip


async def cadence_policy(info: Info, scope: str) -> CadencePolicy:
    """The policy that applies to `scope`: its subdistrict's (defaults: A and B 182 days, C 30)."""
    return CadencePolicy.of(await info.context.db.run(cov.cadence_policy, scope=scope))


@strawberry.input(description="Fields not given keep their value.")
class SetCadencePolicyInput:
    scope: str = strawberry.field(description="The subdistrict's code.")
    class_a_days: int | None = None
    class_b_days: int | None = None
    class_c_days: int | None = None
    starts_on: dt.date | None = strawberry.UNSET


async def set_cadence_policy(info: Info, input: SetCadencePolicyInput) -> CadencePolicy:
    caller = info.context.caller
    if caller.role is not Role.GRID_CENTER or not any(
        input.scope.startswith(a) for a in caller.areas
    ):
        raise Forbidden("input.scope", "the cadence policy is set by the subdistrict's grid center")
    row = await info.context.db.write(
        cov.set_cadence_policy,
        scope=input.scope,
        days={"A": input.class_a_days, "B": input.class_b_days, "C": input.class_c_days},
        starts_on=None if input.starts_on is strawberry.UNSET else input.starts_on,
        clear_start=input.starts_on is None,
        worker_code=caller.worker_code,
    )
    return CadencePolicy.of(row)
