"""Reading the spatial model: pages, lookups, children in batches, counts, spatial filters.

Every function answers with plain rows (dicts) whose ``geometry`` PostGIS has already turned into
GeoJSON, so nothing converts geometry row by row in Python. Batched forms (``*_by_parent``,
``*_counts``) take many keys and run one statement, for per-request data loaders.
Distances are metres on the WGS-84 spheroid (``geography``).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from geo.errors import BadInput, NotFound

Row = dict[str, Any]

GEOJSON_DIGITS = 7  # about 1 cm: enough for footprints, and a third less JSON than the default 9


def _geojson(column: str) -> str:
    return f"ST_AsGeoJSON(t.{column}, {GEOJSON_DIGITS})::json AS geometry"


@dataclass(frozen=True)
class Entity:
    """How one type of the model is read. ``parent`` is the foreign key to the level above."""

    name: str
    table: str
    columns: str
    geom: str | None = None
    parent: str | None = None
    # Areas carry fixed-width codes that every code below them extends.
    code_width: int | None = None
    # Whether this entity's codes extend its area's code (else a scope is matched in space).
    coded: bool = True
    # Rows are family files: row-level security shows them only inside the caller's areas.
    personal: bool = False

    @property
    def select(self) -> str:
        cols = f"t.id, t.code, {self.columns}"
        if self.parent:
            cols += f", t.{self.parent} AS parent_id"
        if self.geom:
            cols += ", " + _geojson(self.geom)
        return cols


DISTRICT = Entity("District", "district", "t.name", "geom", None, 6)
SUBDISTRICT = Entity("Subdistrict", "subdistrict", "t.name, t.timezone", "geom", "district_id", 9)
COMMUNITY = Entity(
    "Community",
    "community",
    "t.name, ST_AsGeoJSON(t.office, 7)::json AS office",
    "geom",
    "subdistrict_id",
    12,
)
GRID = Entity("Grid", "grid", "t.name", "geom", "community_id", 15)
MICRO_GRID = Entity("MicroGrid", "micro_grid", "t.name", "geom", "grid_id", 18)
BUILDING = Entity("Building", "building", "t.name, t.address, t.levels", "geom", "micro_grid_id")
HOUSEHOLD = Entity(
    "Household",
    "household",
    "t.unit, t.room, t.household_class, t.moved_in, t.moved_out",
    "location",
    "building_id",
    personal=True,
)
PERSON = Entity(
    "Person",
    "person",
    "t.name, t.gender, t.relation, t.birth_year, t.phone, t.id_number_sealed,"
    " t.id_number_masked, t.elderly_living_alone,"
    " t.childless_elderly, t.bereaved, t.low_income, t.disabled, t.entitled_group,"
    " t.seeking_work",
    None,
    "household_id",
    personal=True,
)
WORKER = Entity(
    "Worker",
    "worker",
    "t.name, t.phone, t.role::text AS role, t.unit_code, t.subdistrict_id, t.community_id",
    coded=False,
)
MERCHANT = Entity(
    "Merchant",
    "merchant",
    "t.name, t.category, t.address, t.employees, t.contact, t.opening_hours, t.building_id",
    "geom",
    coded=False,
)

ENTITIES = {
    e.name: e
    for e in (
        DISTRICT,
        SUBDISTRICT,
        COMMUNITY,
        GRID,
        MICRO_GRID,
        BUILDING,
        HOUSEHOLD,
        PERSON,
        WORKER,
        MERCHANT,
    )
}
AREAS_BY_WIDTH = {e.code_width: e for e in ENTITIES.values() if e.code_width}


@dataclass(frozen=True)
class Near:
    lon: float
    lat: float
    meters: float

    def envelope(self) -> tuple[float, float, float, float]:
        """A lon/lat box sure to hold the circle, so the GiST index narrows the search first."""
        dlat = self.meters / 110_574 * 1.01
        coslat = max(math.cos(math.radians(min(abs(self.lat) + dlat, 89.9))), 1e-6)
        dlon = min(self.meters / (111_320 * coslat) * 1.01, 360.0)
        return (self.lon - dlon, self.lat - dlat, self.lon + dlon, self.lat + dlat)


@dataclass(frozen=True)
class Filters:
    """Spatial and scope filters of a list. ``within``/``intersects`` are GeoJSON text."""

    within: str | None = None
    intersects: str | None = None
    near: Near | None = None
    scope: str | None = None
    # The caller's areas, for family files: row-level security filters them anyway; naming the
    # code ranges lets the index find them instead of scanning everyone else's.
    areas: tuple[str, ...] | None = None

    def where(self, entity: Entity, params: dict[str, Any]) -> list[str]:
        clauses: list[str] = []
        inside = (
            self.scope is not None
            and entity.coded
            and any(self.scope.startswith(a) for a in self.areas or ())
        )
        if self.areas is not None and not inside:  # a scope inside them is narrower already
            ranges = [f"(t.code >= :area{i} AND t.code < :area{i} || chr(1114111))"
                      for i in range(len(self.areas))]  # fmt: skip
            clauses.append("(" + (" OR ".join(ranges) or "false") + ")")
            params.update({f"area{i}": a for i, a in enumerate(self.areas)})
        g = f"t.{entity.geom}"
        if self.scope is not None:
            params["scope"] = self.scope
            if entity.coded:
                # Codes extend their area's code, so a scope is a range of the code index.
                clauses.append("t.code >= :scope AND t.code < :scope || chr(1114111)")
            else:
                area = AREAS_BY_WIDTH[len(self.scope)].table
                clauses.append(f"ST_Intersects({g}, (SELECT geom FROM {area} WHERE code = :scope))")
        if self.within is not None:
            clauses.append(f"ST_Within({g}, ST_SetSRID(ST_GeomFromGeoJSON(:within), 4326))")
            params["within"] = self.within
        if self.intersects is not None:
            clauses.append(f"ST_Intersects({g}, ST_SetSRID(ST_GeomFromGeoJSON(:intersects), 4326))")
            params["intersects"] = self.intersects
        if self.near is not None:
            xmin, ymin, xmax, ymax = self.near.envelope()
            clauses.append(
                f"{g} && ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, 4326)"
                f" AND ST_DWithin({g}::geography, (SELECT p FROM here), :meters)"
            )
            params.update(
                xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, meters=self.near.meters,
                lon=self.near.lon, lat=self.near.lat,
            )  # fmt: skip
        return clauses


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    has_next: bool


def rows_by_ids(*, session: Session, entity: Entity, ids: Sequence[uuid.UUID]) -> dict[Any, Row]:
    sql = f"SELECT {entity.select} FROM {entity.table} t WHERE t.id = ANY(:keys)"
    return {r["id"]: r for r in _all(session, sql, keys=list(ids))}


def rows_by_codes(*, session: Session, entity: Entity, codes: Sequence[str]) -> dict[Any, Row]:
    sql = f"SELECT {entity.select} FROM {entity.table} t WHERE t.code = ANY(:keys)"
    return {r["code"]: r for r in _all(session, sql, keys=list(codes))}


def page(
    *,
    session: Session,
    entity: Entity,
    first: int,
    after: tuple[Any, ...] | None,
    filters: Filters,
) -> Page:
    """One page in code order, or by distance then code when ``filters.near`` is set.

    ``after`` is the sort key of the last row of the previous page (see ``sort_key``).
    """
    sql, params = page_sql(entity, first + 1, after, filters)
    rows = _all(session, sql, **params)
    return Page(rows[:first], len(rows) > first)


def page_sql(
    entity: Entity, limit: int, after: tuple[Any, ...] | None, filters: Filters
) -> tuple[str, dict[str, Any]]:
    """The statement of ``page`` (``:name`` parameters), also what compiled queries nest."""
    params: dict[str, Any] = {"limit": limit}
    where = filters.where(entity, params)
    select = entity.select
    if filters.near is not None:
        distance = f"ST_Distance(t.{entity.geom}::geography, (SELECT p FROM here))"
        select += f", {distance} AS distance_meters"
        order = "distance_meters, t.code"
        if after is not None:
            where.append(f"({distance}, t.code) > (:after_distance, :after_code)")
            params.update(after_distance=after[0], after_code=after[1])
    else:
        order = "t.code"
        if after is not None:
            where.append("t.code > :after_code")
            params["after_code"] = after[-1]
    sql = _with_here(filters) + f"SELECT {select} FROM {entity.table} t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {order} LIMIT :limit", params


def count_sql(entity: Entity, filters: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    where = filters.where(entity, params)
    sql = _with_here(filters) + f"SELECT count(*) FROM {entity.table} t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


def count(*, session: Session, entity: Entity, filters: Filters) -> int:
    sql, params = count_sql(entity, filters)
    return session.execute(text(sql), params).scalar_one()


def sort_key(row: Row) -> tuple[Any, ...]:
    """What a cursor remembers of a row: (distance, code) in a near search, else (code,)."""
    if "distance_meters" in row:
        return (row["distance_meters"], row["code"])
    return (row["code"],)


def pages_by_parent(
    *,
    session: Session,
    entity: Entity,
    parent_ids: Sequence[uuid.UUID],
    first: int,
    after_code: str | None,
) -> dict[uuid.UUID, Page]:
    """The first page of children of each parent, in code order, in one statement."""
    assert entity.parent
    sql = f"""
        SELECT * FROM (
            SELECT {entity.select},
                   row_number() OVER (PARTITION BY t.{entity.parent} ORDER BY t.code) AS rn
            FROM {entity.table} t
            WHERE t.{entity.parent} = ANY(:parents)
              AND (CAST(:after AS text) IS NULL OR t.code > :after)
        ) s WHERE rn <= :limit ORDER BY parent_id, code
    """
    grouped: dict[uuid.UUID, list[Row]] = defaultdict(list)
    for r in _all(session, sql, parents=list(parent_ids), after=after_code, limit=first + 1):
        del r["rn"]
        grouped[r["parent_id"]].append(r)
    return {p: Page(grouped[p][:first], len(grouped[p]) > first) for p in parent_ids}


def counts_by_parent(
    *, session: Session, entity: Entity, parent_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    assert entity.parent
    sql = (
        f"SELECT t.{entity.parent} AS parent_id, count(*) AS n FROM {entity.table} t"
        f" WHERE t.{entity.parent} = ANY(:parents) GROUP BY 1"
    )
    found = {r["parent_id"]: r["n"] for r in _all(session, sql, parents=list(parent_ids))}
    return {p: found.get(p, 0) for p in parent_ids}


def area_counts(*, session: Session, codes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(households, residents) in each area, counted on the code index: a household's code
    extends its building's, which extends its micro-grid's, and so on up to the district.
    Aggregates are public, so a SECURITY DEFINER function counts past row-level security."""
    sql = "SELECT code, households, residents FROM area_household_counts(CAST(:codes AS text[]))"
    return {r["code"]: (r["households"], r["residents"]) for r in _all(session, sql, codes=codes)}


def building_counts(
    *, session: Session, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """(households, residents) per building, through the foreign keys (a building may still
    carry a source key such as ``osm:w1`` that its households' codes extend)."""
    sql = "SELECT id, households, residents FROM building_household_counts(CAST(:ids AS uuid[]))"
    return {r["id"]: (r["households"], r["residents"]) for r in _all(session, sql, ids=list(ids))}


def persons_by_household(
    *, session: Session, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row]]:
    sql = f"""SELECT {PERSON.select} FROM person t
              WHERE t.household_id = ANY(:ids) ORDER BY t.code"""
    return group_rows(_all(session, sql, ids=list(household_ids)), "parent_id", household_ids)


def grids_by_worker(
    *, session: Session, worker_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row]]:
    sql = f"""SELECT {GRID.select}, wg.worker_id FROM worker_grid wg
              JOIN grid t ON t.id = wg.grid_id WHERE wg.worker_id = ANY(:ids) ORDER BY t.code"""
    return group_rows(_all(session, sql, ids=list(worker_ids)), "worker_id", worker_ids, pop=True)


def workers_by_grid(
    *, session: Session, grid_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row]]:
    sql = f"""SELECT {WORKER.select}, wg.grid_id FROM worker_grid wg
              JOIN worker t ON t.id = wg.worker_id
              WHERE wg.grid_id = ANY(:ids) ORDER BY t.role, t.code"""
    return group_rows(_all(session, sql, ids=list(grid_ids)), "grid_id", grid_ids, pop=True)


def place_at(*, session: Session, lon: float, lat: float) -> dict[str, Row | None]:
    """The community, grid, micro-grid and building containing a point (each may be None)."""
    found: dict[str, Row | None] = {}
    for entity in (COMMUNITY, GRID, MICRO_GRID, BUILDING):
        sql = (
            f"SELECT {entity.select} FROM {entity.table} t WHERE ST_Intersects(t.geom,"
            " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) ORDER BY t.code LIMIT 1"
        )
        rows = _all(session, sql, lon=lon, lat=lat)
        found[entity.name] = rows[0] if rows else None
    return found


def area_by_code(*, session: Session, code: str, argument: str) -> Row:
    """The area a scope code names, or an error naming the argument."""
    entity = AREAS_BY_WIDTH.get(len(code)) if code.isdigit() else None
    if entity is None:
        widths = ", ".join(f"{w} ({e.name.lower()})" for w, e in sorted(AREAS_BY_WIDTH.items()))
        raise BadInput(argument, f"{code!r} is not an area code: expected {widths} digits")
    row = rows_by_codes(session=session, entity=entity, codes=[code]).get(code)
    if row is None:
        raise NotFound(argument, f"no {entity.name.lower()} has code {code!r}"
                       + where_now(session=session, code=code))  # fmt: skip
    return row


def where_now(*, session: Session | Connection, code: str) -> str:
    """': <where it went>' for a code a grid redraw retired or changed, else '' (migration
    0014's ``code_whereabouts``: personal codes only for callers who cover them)."""
    said = session.execute(text("SELECT code_whereabouts(:code)"), {"code": code}).scalar()
    return f": {said}" if said else ""


def _with_here(filters: Filters) -> str:
    if filters.near is None:
        return ""
    return "WITH here AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS p) "


def _all(session: Session, sql: str, **params: Any) -> list[Row]:
    return [dict(r) for r in session.execute(text(sql), params).mappings()]


def first_row(session: Session | Connection, sql: str, **params: Any) -> Row | None:
    """The first row of ``sql`` as a dict, or None (a lookup by key)."""
    row = session.execute(text(sql), params).mappings().first()
    return dict(row) if row else None


def group_rows(
    rows: Iterable[Any], key: str, keys: Sequence[Any], *, pop: bool = False
) -> dict[Any, list[Row]]:
    """Rows (dicts or mappings) by their ``key`` column, for data loaders: every one of
    ``keys`` present, empty when it has none. ``pop``: the column was only there to group by."""
    grouped: dict[Any, list[Row]] = {k: [] for k in keys}
    for r in rows:
        row = dict(r)
        grouped[row.pop(key) if pop else row[key]].append(row)
    return grouped
