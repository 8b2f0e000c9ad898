"""The GraphQL schema: one module per domain, joined here."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

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
from api.schema.subscription import Subscription
from api.schema.workers import Worker


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Expected errors are the client's; unexpected ones are logged by ``api.errors``."""

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """An operation of a kind the transport does not run (a mutation in a GET, a
        subscription over HTTP), or no operation of that name, is the client's error."""
        try:
            return await super().execute(*args, **kwargs)
        except InvalidOperationTypeError as exc:
            message = WRONG_TRANSPORT.get(exc.operation_type, "not allowed here")
        except CannotGetOperationTypeError as exc:
            message = (
                f"operationName: the document has no operation named {exc.operation_name!r}"
                if exc.operation_name
                else "the document has several operations: say which with operationName"
            )
        error = GraphQLError(message, extensions={"code": "BAD_REQUEST"})
        return ExecutionResult(data=None, errors=[error])


WRONG_TRANSPORT = {
    OperationType.MUTATION: "a mutation changes things: send it with POST, not GET",
    OperationType.SUBSCRIPTION: "subscriptions are served over a WebSocket at /graphql with the "
    "graphql-transport-ws protocol, not over HTTP",
}


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[District, Subdistrict, Community, Grid, MicroGrid, Building, Household, Person, Worker,
           Merchant],
    config=StrawberryConfig(scalar_map={GeoJSON: GEOJSON_SCALAR}),
    # Clients send the same few documents: parsing and validating them again was a third of the
    # CPU under load (bench/loadtest.py).
    # (Factories: strawberry keeps each cache at module level, shared by every request.)
    extensions=[lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
)  # fmt: skip


def sdl() -> str:
    """The schema as SDL, as committed in ``schema.graphql``."""
    return schema.as_str() + "\n"
