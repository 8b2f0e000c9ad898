"""Workers: grid-center staff, community staff, block heads, micro-grid leaders, departments."""

from __future__ import annotations

import strawberry

from api.schema.areas import Community, Grid, Subdistrict
from api.schema.base import RowNode, parent
from api.schema.context import Info
from api.schema.personal import personal
from api.schema.relay import Node
from api.schema.routes import Shift, worker_schedule
from geo import queries as q
from geo.models import WorkerRole as WorkerRoleValues

WorkerRole = strawberry.enum(WorkerRoleValues, description="What a worker does, and so may see.")


@strawberry.type(description="A worker; `code` is the staff number.")
class Worker(RowNode, Node):
    entity = q.WORKER
    code: str
    name: str
    phone: str | None = personal(description="Work phone: for staff, not for the public.")
    role: WorkerRole
    unit_code: str | None = strawberry.field(
        description="The department unit cases are dispatched to (department staff only)."
    )

    @strawberry.field(description="The grids this worker is assigned to.")
    async def grids(self, info: Info) -> list[Grid]:
        rows = await info.context.loaders.worker_grids().load(self.row["id"])
        return [Grid.from_row(r) for r in rows]

    @strawberry.field
    async def subdistrict(self, info: Info) -> Subdistrict:
        return await parent(info, Subdistrict, self.row["subdistrict_id"])

    @strawberry.field
    async def community(self, info: Info) -> Community | None:
        return await parent(info, Community, self.row["community_id"])

    @strawberry.field(description="The week walking routes are planned in (local times).")
    async def schedule(self, info: Info) -> list[Shift]:
        return await worker_schedule(info, self.row["id"])
