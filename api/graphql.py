"""The /graphql endpoint: GraphiQL for browsers, the API for clients (GET and POST, JSON)."""

from __future__ import annotations

from typing import Any

import orjson
from graphql import ExecutionResult
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html
from strawberry.types.graphql import OperationType

from api.auth import Unauthenticated
from api.database import RequestDB
from api.errors import format_error
from api.schema import schema
from api.schema.context import Context
from geo.access import Caller
from geo.audit import write_reads

MAX_BODY_BYTES = 1_000_000


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _problem(message: str, status: int, code: str = "BAD_REQUEST") -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status)


async def graphql_endpoint(request: Request) -> Response:
    if request.method == "GET" and "query" not in request.query_params:
        return HTMLResponse(get_graphql_ide_html(graphql_ide="graphiql"))
    try:
        caller = await request.app.state.auth.caller(request)
    except Unauthenticated as exc:
        return _problem(exc.message, 401, exc.code)
    if request.method == "GET":
        params: Any = dict(request.query_params)
        if isinstance(params.get("variables"), str):
            try:
                params["variables"] = orjson.loads(params["variables"])
            except orjson.JSONDecodeError:
                return _problem("variables: not valid JSON", 400, "BAD_USER_INPUT")
    else:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _problem(f"request body over {MAX_BODY_BYTES} bytes", 413)
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _problem(f"request body is not valid JSON ({exc})", 400)
    if not isinstance(params, dict) or not isinstance(params.get("query"), str):
        return _problem('expected a JSON object with a "query" string', 400)
    variables = params.get("variables") or None
    if variables is not None and not isinstance(variables, dict):
        return _problem('"variables" must be a JSON object', 400, "BAD_USER_INPUT")

    result = await execute(request, caller, params["query"], variables, params.get("operationName"))
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [format_error(e) for e in result.errors]
    status = 200 if result.data is not None or request.method == "POST" else 400
    return JSONResponse(payload, status)


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
