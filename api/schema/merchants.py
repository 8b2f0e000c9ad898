"""Merchants: shops and firms near the households, who hire and make offers."""

from __future__ import annotations

import strawberry

from api.schema.areas import Building
from api.schema.base import GeoJSON, RowNode, parent
from api.schema.context import Info
from api.schema.relay import Node
from geo import queries as q


@strawberry.type(description="A merchant; `code` is its business-licence number or a source key.")
class Merchant(RowNode, Node):
    entity = q.MERCHANT
    code: str
    name: str
    category: str
    address: str | None
    employees: int | None
    geometry: GeoJSON
    distance_meters: float | None = strawberry.field(
        description="Metres from the point of a `near` search; null elsewhere."
    )

    @strawberry.field(description="The building the merchant is in, if it is in one.")
    async def building(self, info: Info) -> Building | None:
        return await parent(info, Building, self.row["building_id"])
