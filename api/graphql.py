"""The /graphql endpoint: GraphiQL for browsers, the API for clients (GET and POST, JSON; a
POST may batch up to ``MAX_BATCH`` operations as a JSON list, answered by a list in order).

Before an operation runs, the request is checked: credentials, CSRF for cookie sessions, body
size, batch size, the caller's rate, and the operation's depth, width and cost
(``api.limits``).

While the database is away (a restart), an operation is answered at once with the error code
``UNAVAILABLE``, its transaction left uncommitted, and the request with HTTP 503 if nothing in it
was done (a batch may hold answers that stand): the client sends it again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html
from strawberry.types.graphql import OperationType

from api.compiled import compile_operation, run
from api.database import RequestDB
from api.errors import (
    RETRY_AFTER,
    UNAVAILABLE_MESSAGE,
    Unavailable,
    format_error,
    log,
    reason,
    unavailable,
)
from api.limits import MAX_BATCH, BodyTooLarge, check_operation, read_body, refusal_status
from api.schema import schema
from api.schema.context import Context
from api.web import Refused, authenticate, rate_limit
from geo.access import Caller
from geo.audit import write_reads

MAX_BODY_BYTES = 1_000_000
MAX_UPLOAD_BYTES = 10 * 1024 * 1024 + 64 * 1024  # a register (api.schema.imports) and the form
MAX_UPLOAD_FILES = 1
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
    except (DBAPIError, PoolTimeout) as exc:  # the caller's worker could not be read
        if not unavailable(exc):
            raise
        log.warning("database unavailable: %s", reason(exc))
        return Refused(503, Unavailable.code, UNAVAILABLE_MESSAGE, _RETRY).response()
    answers = [await _answer(request, caller, operation) for operation in operations]
    statuses = {status for _, status in answers}
    if statuses == {503}:  # the database was away: nothing was done, the client sends it again
        status = 503
    elif batched:
        status = 200
    else:
        status = answers[0][1]
    body = b"[" + b",".join(body for body, _ in answers) + b"]" if batched else answers[0][0]
    return Response(body, status, headers=_RETRY if status == 503 else None, media_type=JSON)


_RETRY = {"Retry-After": RETRY_AFTER}


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
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return [await _multipart(request)], False
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


async def _multipart(request: Request) -> Operation:
    """One operation with files, as the GraphQL multipart request spec sends it (form fields
    ``operations`` and ``map``, then the files): each file is put where ``map`` says in the
    variables. Bounded by Content-Length before anything is read."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise Refused(411, "BAD_REQUEST", "an upload needs a Content-Length")
    if int(declared) > MAX_UPLOAD_BYTES:
        raise Refused(413, "PAYLOAD_TOO_LARGE", f"an upload is at most {MAX_UPLOAD_BYTES >> 20} "
                      "MB: import larger files with `gridmap import`")  # fmt: skip
    try:
        form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=10)
        params = orjson.loads(str(form.get("operations", "")))
        mapping = orjson.loads(str(form.get("map", "{}")))
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "BAD_REQUEST", f"operations or map: not valid JSON ({exc})") from None
    except (HTTPException, MultiPartException) as exc:
        raise Refused(400, "BAD_REQUEST", f"not a multipart upload ({exc})") from None
    operation = _operation(params)
    if not isinstance(mapping, dict):
        raise Refused(400, "BAD_REQUEST", 'map: a JSON object {"0": ["variables.input.file"]}')
    variables: dict[str, Any] = dict(operation.variables or {})
    for key, paths in mapping.items():
        upload = form.get(key)
        if not isinstance(upload, StarletteUpload) or not isinstance(paths, list):
            raise Refused(400, "BAD_REQUEST", f"map: no file {key!r} in the request")
        for path in paths:
            _place(variables, str(path), upload)
    return Operation(operation.query, variables, operation.operation_name)


def _place(variables: dict[str, Any], path: str, upload: Any) -> None:
    """Set ``variables.input.file`` (a path of the map) to the uploaded file."""
    parts = path.split(".")
    if parts[0] != "variables" or len(parts) < 2:
        raise Refused(400, "BAD_REQUEST", f"map: {path!r} is not a path in the variables")
    target: Any = variables
    for part in parts[1:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = upload
    else:
        target[last] = upload


def _operation(params: Any, where: str = "") -> Operation:
    if not isinstance(params, dict) or not isinstance(params.get("query"), str):
        raise Refused(400, "BAD_REQUEST", f'{where}expected a JSON object with a "query" string')
    variables = params.get("variables") or None
    if variables is not None and not isinstance(variables, dict):
        raise Refused(400, "BAD_USER_INPUT", f'{where}"variables" must be a JSON object')
    name = params.get("operationName")
    return Operation(params["query"], variables, name if isinstance(name, str) else None)


async def _answer(request: Request, caller: Caller, operation: Operation) -> tuple[bytes, int]:
    """The JSON answer to one operation and its HTTP status: 200 if it ran (or did not, for a
    POST), 400 if a GET did not, 413 or 400 if the limits refused it, 503 if the database was
    away. Operations too deep, too wide or too costly are refused before they
    reach the database; the common reads are answered by one SQL statement (``api.compiled``),
    the rest by the resolvers."""
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
        try:
            compiled = settings.compiled_queries
            data = await _compiled(request, caller, operation) if compiled else None
        except Unavailable as exc:
            result = _unavailable_result(exc)
        else:
            if data is not None:
                return b'{"data":' + data.encode() + b"}", 200
            result = await execute(
                request, caller, operation.query, operation.variables, operation.operation_name
            )
    payload: dict[str, Any] = {"data": result.data}
    status = 200 if result.data is not None or request.method == "POST" else 400
    status = refusal_status(refusals) or status
    if result.errors:
        payload["errors"] = [format_error(e) for e in result.errors]
        if any(e["extensions"]["code"] == Unavailable.code for e in payload["errors"]):
            status = 503
    return orjson.dumps(payload), status


def _unavailable_result(exc: BaseException) -> ExecutionResult:
    """The whole answer when the database went away: one error, no data to trust."""
    cause = exc.__cause__ if isinstance(exc, Unavailable) and exc.__cause__ else exc
    log.warning("database unavailable: %s", reason(cause))
    error = GraphQLError(UNAVAILABLE_MESSAGE, original_error=Unavailable())
    return ExecutionResult(data=None, errors=[error])


async def _compiled(request: Request, caller: Caller, operation: Operation) -> str | None:
    k = request.app.state.settings.k_anonymity
    compiled = compile_operation(
        operation.query, operation.variables, operation.operation_name, caller, k
    )
    if compiled is None:
        return None
    try:
        # Straight onto asyncio's own threads: anyio's hop (Starlette's run_in_threadpool)
        # cost a tenth of the grid tree's Python time.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, run, request.app.state.reader, compiled, caller)
    except (DBAPIError, PoolTimeout) as exc:
        if unavailable(exc):
            raise Unavailable() from exc
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
    the answer revealed of personal data is audited in that transaction before it commits.
    If the database went away (even at the commit, when it is not known whether the commit
    landed), the answer is only an ``UNAVAILABLE`` error: nothing it says is acknowledged, and
    the client's retry (with the same idempotency key, for a write) lands once."""
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
        if db.lost:
            raise Unavailable() from db.lost
        if context.audit.reads:
            await db.run(write_reads, trail=context.audit)
        await db.close(commit=True)
        committed = True
    except (Unavailable, DBAPIError, PoolTimeout) as exc:
        if not unavailable(exc):
            raise
        result = _unavailable_result(exc)
    finally:
        if not committed:
            await db.close()
    return result


def _allowed(request: Request) -> tuple[OperationType, ...]:
    # A GET must not change anything (links and prefetches follow GETs).
    if request.method == "GET":
        return (OperationType.QUERY,)
    return (OperationType.QUERY, OperationType.MUTATION)
