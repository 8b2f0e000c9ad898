"""The /graphql endpoint: GraphiQL for browsers, the API for clients (GET and POST, JSON; a
POST may batch up to ``MAX_BATCH`` operations as a JSON list, answered by a list in order).

Before an operation runs, the request is checked: credentials, CSRF for cookie sessions, body
size, batch size, the caller's rate, and the operation's depth, width and cost
(``api.limits``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html
from strawberry.types.graphql import OperationType

from api.compiled import compile_operation, run
from api.database import RequestDB
from api.errors import format_error, log
from api.limits import MAX_BATCH, BodyTooLarge, check_operation, read_body
from api.schema import schema
from api.schema.context import Context
from api.web import Refused, authenticate, rate_limit
from geo.access import Caller
from geo.audit import write_reads

MAX_BODY_BYTES = 1_000_000
JSON = "application/json"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass(frozen=True)
class Operation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


async def graphql_endpoint(request: Request) -> Response:
    if request.method == "GET" and "query" not in request.query_params:
        return HTMLResponse(get_graphql_ide_html(graphql_ide="graphiql"))
    try:
        caller = await authenticate(request)
        operations, batched = await _operations(request)
        rate_limit(request, caller, cost=len(operations))
    except Refused as exc:
        return exc.response()
    answers = [await _answer(request, caller, operation) for operation in operations]
    if batched:
        return Response(b"[" + b",".join(body for body, _ in answers) + b"]", media_type=JSON)
    body, ran = answers[0]
    return Response(body, 200 if ran or request.method == "POST" else 400, media_type=JSON)


async def _operations(request: Request) -> tuple[list[Operation], bool]:
    """The operations of a request and whether they came as a batch (a JSON list)."""
    if request.method == "GET":
        params: Any = dict(request.query_params)
        if isinstance(params.get("variables"), str):
            try:
                params["variables"] = orjson.loads(params["variables"])
            except orjson.JSONDecodeError:
                raise Refused(400, "BAD_USER_INPUT", "variables: not valid JSON") from None
        return [_operation(params)], False
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge as exc:
        message = f"{exc}: send a smaller query, or fewer operations at once"
        raise Refused(413, "PAYLOAD_TOO_LARGE", message) from None
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "BAD_REQUEST", f"request body is not valid JSON ({exc})") from None
    if not isinstance(params, list):
        return [_operation(params)], False
    if not 1 <= len(params) <= MAX_BATCH:
        message = f"a batch holds 1 to {MAX_BATCH} operations, not {len(params)}: split it up"
        raise Refused(400, "BAD_REQUEST", message)
    return [_operation(p, f"operation {i}: ") for i, p in enumerate(params, 1)], True


def _operation(params: Any, where: str = "") -> Operation:
    if not isinstance(params, dict) or not isinstance(params.get("query"), str):
        raise Refused(400, "BAD_REQUEST", f'{where}expected a JSON object with a "query" string')
    variables = params.get("variables") or None
    if variables is not None and not isinstance(variables, dict):
        raise Refused(400, "BAD_USER_INPUT", f'{where}"variables" must be a JSON object')
    name = params.get("operationName")
    return Operation(params["query"], variables, name if isinstance(name, str) else None)


async def _answer(request: Request, caller: Caller, operation: Operation) -> tuple[bytes, bool]:
    """The JSON answer to one operation, and whether it ran. Operations too deep, too wide
    or too costly are refused before they reach the database; the common reads are answered
    by one SQL statement (``api.compiled``), the rest by the resolvers."""
    settings = request.app.state.settings
    refusals = check_operation(
        schema._schema,
        operation.query,
        operation.variables,
        operation.operation_name,
        introspection=not (settings.env == "production" and caller.is_public),
    )
    if refusals:
        result = ExecutionResult(data=None, errors=refusals)
    else:
        data = await _compiled(request, caller, operation) if settings.compiled_queries else None
        if data is not None:
            return b'{"data":' + data.encode() + b"}", True
        result = await execute(
            request, caller, operation.query, operation.variables, operation.operation_name
        )
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [format_error(e) for e in result.errors]
    return orjson.dumps(payload), result.data is not None


async def _compiled(request: Request, caller: Caller, operation: Operation) -> str | None:
    k = request.app.state.settings.k_anonymity
    compiled = compile_operation(
        operation.query, operation.variables, operation.operation_name, caller, k
    )
    if compiled is None:
        return None
    try:
        return await run_in_threadpool(run, request.app.state.reader, compiled, caller)
    except DBAPIError:
        # The resolvers meet the same trouble and answer it as an error a client can act on.
        log.warning("compiled query failed: the resolvers answer instead", exc_info=True)
        return None


async def execute(
    request: Request,
    caller: Caller,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> ExecutionResult:
    """One operation as ``caller``, in one transaction that first records who is asking. What
    the answer revealed of personal data is audited in that transaction before it commits."""
    app = request.app
    db = RequestDB(app.state.engine, scope=caller.settings())
    context = Context(
        request=request, settings=app.state.settings, db=db, caller=caller, vault=app.state.vault
    )
    committed = False
    try:
        result = await schema.execute(
            query,
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
            allowed_operation_types=_allowed(request),
        )
        if context.audit.reads:
            await db.run(write_reads, trail=context.audit)
        await db.close(commit=True)
        committed = True
    finally:
        if not committed:
            await db.close()
    return result


def _allowed(request: Request) -> tuple[OperationType, ...]:
    # A GET must not change anything (links and prefetches follow GETs).
    if request.method == "GET":
        return (OperationType.QUERY,)
    return (OperationType.QUERY, OperationType.MUTATION)
