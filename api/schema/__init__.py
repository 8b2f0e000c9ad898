"""The GraphQL schema: one module per domain, joined here."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig

from api.schema.areas import (
    Building,
    Community,
    District,
    Grid,
    Household,
    MicroGrid,
    Person,
    Subdistrict,
)
from api.schema.merchants import Merchant
from api.schema.mutation import Mutation
from api.schema.query import Query
from api.schema.relay import GEOJSON_SCALAR, GeoJSON
from api.schema.workers import Worker


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Expected errors are the client's; unexpected ones are logged by ``api.errors``."""


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[District, Subdistrict, Community, Grid, MicroGrid, Building, Household, Person, Worker,
           Merchant],
    config=StrawberryConfig(scalar_map={GeoJSON: GEOJSON_SCALAR}),
)  # fmt: skip


def sdl() -> str:
    """The schema as SDL, as committed in ``schema.graphql``."""
    return schema.as_str() + "\n"
