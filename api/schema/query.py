"""The root Query: lists with spatial filters, lookups by code, `node(id:)` and `placeAt`."""

# No `from __future__ import annotations` here: the field factories below annotate their
# resolvers with the class they are made for, which must be evaluated when they are made.

from typing import Annotated, Any

import strawberry

from api.schema import jobs
from api.schema.areas import (
    NODE_TYPES,
    Building,
    Community,
    District,
    Grid,
    Household,
    MicroGrid,
    Subdistrict,
)
from api.schema.audit import audit_log
from api.schema.base import GeoJSON, NearInput, RowNode, filters, list_connection
from api.schema.case_hotspots import case_hotspots
from api.schema.case_stats import case_stats
from api.schema.cases import (
    case,
    case_by_number,
    case_categories,
    case_node,
    cases,
    holidays,
    units,
)
from api.schema.context import Info
from api.schema.coverage import cadence_policy, coverage, overdue_households
from api.schema.family_files import family_file
from api.schema.merchants import Merchant
from api.schema.relay import DEFAULT_PAGE, Connection, Node, parse_global_id
from api.schema.routes import walking_route
from api.schema.visits import talents, visit_node
from api.schema.workers import Worker
from geo import queries as q
from geo.access import FAMILY_FILE_ROLES
from geo.errors import BadInput, NotFound
from geo.geojson import check_point

TYPES: dict[str, type[RowNode]] = {**NODE_TYPES, "Worker": Worker, "Merchant": Merchant}

WITHIN = "Only things whose geometry lies within this GeoJSON geometry."
INTERSECTS = "Only things whose geometry intersects this GeoJSON geometry."
NEAR = "Only things within `meters` of a point, nearest first, each with `distanceMeters`."
SCOPE = "Only things inside the area with this code (district … micro-grid)."


def _spatial_list(cls: type[RowNode]) -> Any:
    async def resolve(
        info: Info,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
        within: Annotated[GeoJSON | None, strawberry.argument(description=WITHIN)] = None,
        intersects: Annotated[GeoJSON | None, strawberry.argument(description=INTERSECTS)] = None,
        near: Annotated[NearInput | None, strawberry.argument(description=NEAR)] = None,
        scope: Annotated[str | None, strawberry.argument(description=SCOPE)] = None,
    ) -> Connection[cls]:  # type: ignore[valid-type]
        where = filters(within=within, intersects=intersects, near=near, scope=scope)
        return await list_connection(info, cls, first=first, after=after, where=where)

    return strawberry.field(resolver=resolve, description=f"{cls.entity.name} list (Relay).")


def _by_code(cls: type[RowNode]) -> Any:
    async def resolve(info: Info, code: str) -> cls | None:  # type: ignore[valid-type]
        row = await info.context.loaders.by_code(cls.entity).load(code)
        if row is None:
            if cls.entity.personal and info.context.caller.role not in FAMILY_FILE_ROLES:
                return None  # no family files for this role: nothing to find, nothing to say
            gone = await info.context.db.run(q.where_now, code=code)
            raise NotFound("code", f"no {cls.entity.name} has code {code!r}{gone}")
        return cls.from_row(row)

    return strawberry.field(resolver=resolve, description=f"The {cls.entity.name} with this code.")


@strawberry.type(description="The areas and the building that contain a point.")
class Place:
    community: Community | None
    grid: Grid | None
    micro_grid: MicroGrid | None
    building: Building | None


@strawberry.type
class Query:
    districts = _spatial_list(District)
    subdistricts = _spatial_list(Subdistrict)
    communities = _spatial_list(Community)
    grids = _spatial_list(Grid)
    micro_grids = _spatial_list(MicroGrid)
    buildings = _spatial_list(Building)
    households = _spatial_list(Household)
    merchants = _spatial_list(Merchant)

    district = _by_code(District)
    subdistrict = _by_code(Subdistrict)
    community = _by_code(Community)
    grid = _by_code(Grid)
    micro_grid = _by_code(MicroGrid)
    building = _by_code(Building)
    household = _by_code(Household)
    worker = _by_code(Worker)
    merchant = _by_code(Merchant)

    @strawberry.field(description="Workers (Relay), by staff number.")
    async def workers(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Worker]:
        return await list_connection(info, Worker, first=first, after=after, where=q.Filters())

    audit_log = strawberry.field(resolver=audit_log, description="The audit log (grid center).")

    family_file = strawberry.field(resolver=family_file)
    coverage = strawberry.field(resolver=coverage)
    overdue_households = strawberry.field(resolver=overdue_households)
    cadence_policy = strawberry.field(resolver=cadence_policy)
    talents = strawberry.field(resolver=talents)
    case_stats = strawberry.field(resolver=case_stats, description="Case figures (staff).")
    case_hotspots = strawberry.field(
        resolver=case_hotspots, description="Hot and cold spots of cases (Getis-Ord Gi*), per cell."
    )

    job_candidates = strawberry.field(resolver=jobs.job_candidates)
    job_matches = strawberry.field(resolver=jobs.job_matches)
    job_seekers = strawberry.field(
        resolver=jobs.job_seekers, description="Residents seeking work in `scope`."
    )
    job_proposals = strawberry.field(resolver=jobs.job_proposals)
    offers = strawberry.field(resolver=jobs.offers)
    placements = strawberry.field(resolver=jobs.placements)

    walking_route = strawberry.field(resolver=walking_route)

    case = strawberry.field(resolver=case)
    case_by_number = strawberry.field(resolver=case_by_number)
    cases = strawberry.field(resolver=cases)
    case_categories = strawberry.field(
        resolver=case_categories, description="The case catalogue."
    )
    units = strawberry.field(resolver=units, description="The units cases are dispatched to.")
    holidays = strawberry.field(
        resolver=holidays, description="A year's exceptions to Monday–Friday (deadlines)."
    )

    @strawberry.field(description="Any object by its global ID (Relay).")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, key = parse_global_id(id, argument="id")
        if type_name == "Visit":
            return await visit_node(info, key)
        if type_name == "Case":
            return await case_node(info, key)
        if type_name in jobs.NODE_TYPES:
            return await jobs.node(info, type_name, key)
        cls = TYPES.get(type_name)
        if cls is None:
            raise BadInput("id", f"{id!r} is not a global ID of this API")
        return cls.from_optional(await info.context.loaders.by_id(cls.entity).load(key))

    @strawberry.field(description="The community, grid, micro-grid and building at a point.")
    async def place_at(self, info: Info, lon: float, lat: float) -> Place:
        check_point(lon, lat)
        found = await info.context.db.run(q.place_at, lon=lon, lat=lat)
        return Place(
            community=Community.from_optional(found["Community"]),
            grid=Grid.from_optional(found["Grid"]),
            micro_grid=MicroGrid.from_optional(found["MicroGrid"]),
            building=Building.from_optional(found["Building"]),
        )
