"""What every type built from a row shares, and the resolvers lists and children use.

Types stay thin: they hold the row ``geo.queries`` answered with and fetch related rows through
the request's data loaders.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar, Self, TypeVar

import strawberry

from api.schema.context import Info
from api.schema.relay import (
    Connection,
    GeoJSON,
    check_first,
    decode_cursor,
    global_id,
    make_connection,
)
from geo import queries as q
from geo.access import FAMILY_FILE_ROLES, Caller
from geo.errors import BadInput
from geo.geojson import check_point, parse_geometry, to_geojson_text

T = TypeVar("T", bound="RowNode")


class RowNode:
    """A Relay node made from a row; plain fields are copied from the row's columns by name."""

    entity: ClassVar[q.Entity]
    row: q.Row
    id: strawberry.ID

    @classmethod
    def from_row(cls, row: q.Row) -> Self:
        fields = cls.__dict__.get("_plain")
        if fields is None:
            definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
            fields = [
                f.python_name
                for f in definition.fields
                if f.base_resolver is None and f.python_name != "id"
            ]
            cls._plain = fields  # type: ignore[attr-defined]
        values = {name: row.get(name) for name in fields}
        node = cls(id=global_id(cls.entity.name, row["id"]), **values)
        node.row = row  # not a GraphQL field: what resolvers of related fields start from
        return node

    @classmethod
    def from_optional(cls, row: q.Row | None) -> Self | None:
        return None if row is None else cls.from_row(row)


SUPPRESSED = (
    "True when the counts are withheld from the public: fewer households than the k-anonymity "
    "threshold, so small counts cannot single anyone out."
)


def is_suppressed(info: Info, households: int) -> bool:
    return info.context.caller.is_public and households < info.context.settings.k_anonymity


def suppressed_or(info: Info, counts: tuple[int, int]) -> tuple[int | None, int | None]:
    """The counts, or nulls for the public where they are too small to show."""
    return (None, None) if is_suppressed(info, counts[0]) else counts


@strawberry.input(description="Things within `meters` of a point, nearest first.")
class NearInput:
    lon: float
    lat: float
    meters: float


def values_enum(name: str, values: Iterable[str], description: str) -> Any:
    """A GraphQL enum of the data layer's own values: one list serves both."""
    return strawberry.enum(enum.Enum(name, {v: v for v in values}), description=description)


def filters(
    *,
    within: Any = None,
    intersects: Any = None,
    near: NearInput | None = None,
    scope: str | None = None,
) -> q.Filters:
    """Validated list filters; each error names the argument at fault."""
    near_q = None
    if near is not None:
        check_point(near.lon, near.lat, prefix="near.")
        if not 0 < near.meters <= 100_000:
            raise BadInput("near.meters", f"{near.meters} is out of range: (0, 100000] metres")
        near_q = q.Near(near.lon, near.lat, near.meters)
    return q.Filters(
        within=None
        if within is None
        else to_geojson_text(parse_geometry(within, argument="within")),
        intersects=None
        if intersects is None
        else to_geojson_text(parse_geometry(intersects, argument="intersects")),
        near=near_q,
        scope=scope,
    )


def in_callers_areas(where: q.Filters, entity: q.Entity, caller: Caller) -> q.Filters:
    """A list of family files names the caller's areas: row-level security filters them anyway,
    but named, they are ranges of the code index instead of a scan of everyone else's."""
    if not entity.personal:
        return where
    return replace(where, areas=caller.areas if caller.role in FAMILY_FILE_ROLES else ())


async def list_connection(
    info: Info,
    cls: type[T],
    *,
    first: int,
    after: str | None,
    where: q.Filters,
) -> Connection[T]:
    """A top-level list: one page in code order (or nearest first), with a lazy total."""
    check_first(first)
    after_key = decode_cursor(after)
    db = info.context.db
    where = in_callers_areas(where, cls.entity, info.context.caller)
    if where.scope is not None:
        await db.run(q.area_by_code, code=where.scope, argument="scope")
    page = await db.run(q.page, entity=cls.entity, first=first, after=after_key, filters=where)
    return make_connection(
        [cls.from_row(r) for r in page.rows],
        [q.sort_key(r) for r in page.rows],
        has_next=page.has_next,
        has_previous=after is not None,
        total=lambda: db.run(q.count, entity=cls.entity, filters=where),
    )


async def child_connection(
    info: Info, cls: type[T], parent_id: uuid.UUID, *, first: int, after: str | None
) -> Connection[T]:
    """Children of one parent; the loader fetches the same page for every parent at once."""
    check_first(first)
    after_key = decode_cursor(after)
    loaders = info.context.loaders
    page = await loaders.children(cls.entity, first, after_key and after_key[-1]).load(parent_id)
    return make_connection(
        [cls.from_row(r) for r in page.rows],
        [q.sort_key(r) for r in page.rows],
        has_next=page.has_next,
        has_previous=after is not None,
        total=lambda: loaders.child_count(cls.entity).load(parent_id),
    )


async def parent(info: Info, cls: type[T], parent_id: uuid.UUID | None) -> T | None:
    if parent_id is None:
        return None
    return cls.from_optional(await info.context.loaders.by_id(cls.entity).load(parent_id))


__all__ = ["GeoJSON", "NearInput", "RowNode", "child_connection", "filters", "list_connection"]
