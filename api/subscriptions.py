"""The WebSocket at /graphql: subscriptions (``caseReported``) with the graphql-transport-ws
protocol (the ``graphql-ws`` npm client's; not the legacy one of subscriptions-transport-ws).

- Credentials come with ``connection_init``: ``{"Authorization": "Bearer <token>"}`` or
  ``{"token": "<token>"}``; without them, the handshake's ``Authorization`` header or the
  browser's session cookie (a page on another origin is refused at the handshake, so a cookie
  cannot be borrowed). No valid credentials: closed with 4401; a role that may not subscribe:
  4403. Expired or revoked credentials later close the socket with 4401 too.
- Only subscriptions run here: a query or mutation is refused with an error (send it to
  ``POST /graphql``). Each subscription is checked like an HTTP operation first (depth, width
  and cost, ``api.limits``; the caller's rate) and its errors are worded and coded the same
  (``api.errors.format_error``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import anyio
from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.execution import ExecutionResult

from api.auth import Unauthenticated, decode_token
from api.errors import format_error, reason, unavailable
from api.limits import check_operation, parse_document
from api.schema import schema
from api.schema.cases import CASE_ROLES
from api.schema.subscription import SocketContext, close_reason
from api.web import Refused, login_of, rate_limit

log = logging.getLogger("gridmap.subscriptions")

# Subscriptions at once on one socket: each looks for new cases every poll.
MAX_SUBSCRIPTIONS = 10
# A socket that says nothing after opening is closed (4408) after this long.
INIT_TIMEOUT = dt.timedelta(seconds=10)


async def graphql_socket(websocket: WebSocket) -> None:
    await SOCKET.run(websocket)


async def admit(context: SocketContext, params: dict[str, Any]) -> tuple[int, str] | None:
    """Admit the caller of ``connection_init`` into ``context``; else the close code and reason."""
    websocket = context.websocket
    assert websocket is not None
    state = websocket.app.state
    remote = websocket.client.host if websocket.client else None
    try:
        token = _sent_token(params)
        if token is None and "authorization" in websocket.headers:
            token = _bearer(websocket.headers["authorization"])
        if token is not None:
            claims = decode_token(state.settings, token)
            caller = await state.auth.from_token(token, remote=remote)
            epoch, expires = claims["ep"], claims["exp"]
        elif login := login_of(websocket):
            caller = await state.auth.caller(websocket)
            epoch, expires = login["ep"], None
        else:
            return 4401, (
                'Unauthorized: send connection_init with {"Authorization": "Bearer <token>"}'
            )
    except Unauthenticated as exc:
        return 4401, f"Unauthorized: {exc.message}"
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning("database unavailable at connection_init: %s", reason(exc))
        return 1013, "Try again later: the database is not available just now"
    if caller.role not in CASE_ROLES:
        return 4403, f"Forbidden: the {caller.role.value} role has no subscriptions"
    context.admit(caller, epoch=epoch, expires=expires)
    return None


def _sent_token(params: dict[str, Any]) -> str | None:
    header = params.get("Authorization", params.get("authorization"))
    if header is not None:
        return _bearer(header)
    token = params.get("token")
    if token is None:
        return None
    if not isinstance(token, str) or not token.strip():
        raise Unauthenticated('"token" must be the token, a string')
    return token.strip()


def _bearer(header: Any) -> str:
    scheme, _, token = header.partition(" ") if isinstance(header, str) else ("", "", "")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization must be 'Bearer <token>'")
    return token.strip()


def refusals(context: SocketContext, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Why not to run a subscribe message's operation, as formatted errors (none: run it)."""
    query = payload["query"]
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return [_error('"variables" must be a JSON object', "BAD_USER_INPUT")]
    name = payload.get("operationName")
    name = name if isinstance(name, str) else None
    errors = check_operation(schema._schema, query, variables, name, introspection=True)
    if errors:
        return [format_error(e) for e in errors]
    operation = get_operation_ast(parse_document(query), name)
    if operation is None:
        which = f"no operation is named {name!r}" if name else "say which with operationName"
        return [_error(f"the document has no single operation to run: {which}", "BAD_REQUEST")]
    if operation.operation is not OperationType.SUBSCRIPTION:
        return [
            _error(
                f"only subscriptions are served over the WebSocket: send this "
                f"{operation.operation.value} to POST /graphql",
                "BAD_REQUEST",
            )
        ]
    try:
        rate_limit(context.websocket, context.caller)
    except Refused as exc:
        return [_error(exc.message, exc.code)]
    return []


def _error(message: str, code: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code}}


class SubscriptionsOnly:
    """The schema as the socket runs it: subscriptions only (behind ``refusals``, a second
    guard), each result's errors worded and coded as over HTTP: never SQL nor a stack trace."""

    def __init__(self, schema: BaseSchema) -> None:
        self._schema = schema

    async def stream(self, query: str, **kwargs: Any) -> AsyncGenerator[ExecutionResult, None]:
        return _coded(await self._schema.subscribe(query, **kwargs))


async def _coded(
    results: AsyncGenerator[ExecutionResult, None],
) -> AsyncGenerator[ExecutionResult, None]:
    async with aclosing(results):
        async for result in results:
            if result.errors:
                result.errors = [_coded_error(e) for e in result.errors]
            yield result


def _coded_error(error: GraphQLError) -> GraphQLError:
    formatted = format_error(error)
    return GraphQLError(
        formatted["message"], error.nodes, error.source, error.positions, error.path,
        extensions=formatted["extensions"],
    )  # fmt: skip


class SocketHandler(BaseGraphQLTransportWSHandler[SocketContext, None]):
    """strawberry's graphql-transport-ws, with the caller admitted at ``connection_init`` and
    each subscription checked before it starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = SubscriptionsOnly(self.schema)

    async def shutdown(self) -> None:
        # Every subscription ends (a database call under way returns first), even when the
        # socket's own task is being cancelled (a server shutting down): none is left behind
        # holding a connection.
        with anyio.CancelScope(shield=True):
            await super().shutdown()

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload", {})
        if not (self.connection_init_received or self.connection_timed_out) and isinstance(
            payload, dict
        ):
            refused = await admit(self.context, payload)
            if refused:
                self.connection_init_received = True
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                await self.websocket.close(refused[0], close_reason(refused[1]))
                return
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: Any) -> None:
        payload = message.get("payload")
        if self.connection_acknowledged and message.get("id") not in self.operations:
            if (
                not isinstance(message.get("id"), str)
                or not isinstance(payload, dict)
                or not isinstance(payload.get("query"), str)
            ):
                await self.handle_invalid_message('a subscribe message needs an "id" and a '
                                                  '"payload" with a "query" string')  # fmt: skip
                return
            try:
                problem = await self.context.recheck()
            except Exception as exc:
                if not unavailable(exc):
                    raise
                problem = None
            if problem:
                await self.websocket.close(4401, close_reason(f"Unauthorized: {problem}"))
                return
            if len(self.operations) >= MAX_SUBSCRIPTIONS:
                errors = [_error(f"at most {MAX_SUBSCRIPTIONS} subscriptions at once on one "
                                 "socket: complete one first", "BAD_REQUEST")]  # fmt: skip
            else:
                errors = refusals(self.context, payload)
            if errors:
                await self.send_message({"id": message["id"], "type": "error", "payload": errors})
                return
        await super().handle_subscribe(message)


class GraphQLSocket(GraphQL[SocketContext, None]):
    graphql_transport_ws_handler_class = SocketHandler

    async def get_context(self, request: Any, response: Any) -> SocketContext:
        return SocketContext.opening(request)


SOCKET = GraphQLSocket(
    schema,
    graphql_ide=None,
    subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    connection_init_wait_timeout=INIT_TIMEOUT,
    max_subscriptions_per_connection=MAX_SUBSCRIPTIONS,
)
