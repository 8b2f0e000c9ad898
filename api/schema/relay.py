"""Relay conventions: the Node interface, global IDs, cursor connections and page limits."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NewType, TypeVar

import orjson
import strawberry

from geo.errors import BadInput

DEFAULT_PAGE = 50
MAX_PAGE = 500

T = TypeVar("T")


@strawberry.interface(description="An object with a global ID (Relay).")
class Node:
    id: strawberry.ID


def global_id(type_name: str, key: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode())


def parse_global_id(value: str, *, argument: str) -> tuple[str, uuid.UUID]:
    """(type name, key) of a global ID, or an error naming the argument."""
    try:
        type_name, _, key = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
        return type_name, uuid.UUID(key)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput(argument, f"{value!r} is not a global ID of this API") from None


def encode_cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode()


def decode_cursor(value: str | None, *, argument: str = "after") -> tuple[Any, ...] | None:
    if value is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(value.encode()))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        key = None
    if not isinstance(key, list) or not key or not isinstance(key[-1], str):
        raise BadInput(argument, f"{value!r} is not a cursor of this list")
    return tuple(key)


def check_first(first: int, *, argument: str = "first") -> int:
    if not 0 <= first <= MAX_PAGE:
        raise BadInput(argument, f"page size {first} is out of range: between 0 and {MAX_PAGE}")
    return first


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type(description="A page of a list, Relay style: `first` and `after` move through it.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds, across all pages.")
    async def total_count(self) -> int:
        return await self.total()


def make_connection(
    nodes: list[T],
    keys: list[tuple[Any, ...]],
    *,
    has_next: bool,
    has_previous: bool,
    total: Callable[[], Awaitable[int]],
) -> Connection[T]:
    cursors = [encode_cursor(k) for k in keys]
    return Connection(
        edges=[Edge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)],
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        total=total,
    )


GeoJSON = NewType("GeoJSON", object)

GEOJSON_SCALAR = strawberry.scalar(
    name="GeoJSON",
    description="An RFC 7946 GeoJSON geometry object, coordinates [longitude, latitude] in WGS 84.",
    # Any JSON passes the scalar: resolvers validate it so their errors can name the argument.
    serialize=lambda value: value,
    parse_value=lambda value: value,
)
