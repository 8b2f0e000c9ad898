"""Merchants: shops and firms near the households, who hire and make offers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from api.schema.areas import Building
from api.schema.base import GeoJSON, RowNode, parent
from api.schema.context import Info
from api.schema.relay import Node
from geo import jobs
from geo import queries as q

if TYPE_CHECKING:
    from api.schema.jobs import JobOpening

JobOpeningRef = Annotated["JobOpening", strawberry.lazy("api.schema.jobs")]


@strawberry.type(description="A merchant; `code` is its business-licence number or a source key.")
class Merchant(RowNode, Node):
    entity = q.MERCHANT
    code: str
    name: str
    category: str
    address: str | None
    employees: int | None
    contact: str | None = strawberry.field(description="The business's phone.")
    opening_hours: str | None
    geometry: GeoJSON
    distance_meters: float | None = strawberry.field(
        description="Metres from the point of a `near` search; null elsewhere."
    )

    @strawberry.field(description="Its job openings, current or not.")
    async def openings(self, info: Info) -> list[JobOpeningRef]:
        from api.schema.jobs import JobOpening

        rows = await info.context.db.run(jobs.openings_of, merchant_ids=[self.row["id"]])
        return [JobOpening.of(r) for r in rows[self.row["id"]]]

    @strawberry.field(description="The building the merchant is in, if it is in one.")
    async def building(self, info: Info) -> Building | None:
        return await parent(info, Building, self.row["building_id"])
