"""The one place where errors become what a client sees: a message a person can act on and a
stable ``extensions.code``; never a stack trace, never SQL."""

from __future__ import annotations

import logging
from typing import Any

import psycopg2
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response

from geo.errors import GridmapError

log = logging.getLogger("gridmap.errors")

UNAVAILABLE_MESSAGE = (
    "the database is not available just now (restarting or overloaded): try again in a few seconds"
)
UNAVAILABLE_PAGE = (
    "数据库暂时不可用，请几秒后重试。The database is not available just now: try again in a few "
    "seconds.\n"
)
RETRY_AFTER = "5"
# SQLSTATE classes that say the server cannot serve now, not that the request is wrong:
# 08 connection exception, 53 insufficient resources (too many connections), 57 operator
# intervention (shutting down, starting up, statement timeout).
_UNAVAILABLE_CLASSES = ("08", "53", "57")


class Unavailable(GridmapError):
    """The database cannot answer now: the client may send the same request again."""

    code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE_MESSAGE)


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is down, restarting or out of connections: a 503
    worth retrying, where anything else the database raises is a bug (a 500)."""
    if isinstance(exc, Unavailable | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, psycopg2.InterfaceError):
        return True
    code = getattr(exc.orig, "pgcode", None)
    return isinstance(exc.orig, psycopg2.OperationalError) and (
        code is None or code[:2] in _UNAVAILABLE_CLASSES
    )


def reason(exc: BaseException) -> str:
    """The driver's first line, for the log: never the SQL or its parameters (personal data)."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"


async def unavailable_response(conn: HTTPConnection, exc: Exception) -> Response:
    """Pages, files, Open311 and login while the database is away: a 503 with a plain message
    instead of a 500; other database errors stay 500s (and WebSockets are left to their own)."""
    if conn.scope["type"] != "http" or not unavailable(exc):
        raise exc
    log.warning("database unavailable at %s: %s", conn.url.path, reason(exc))
    headers = {"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"}
    return PlainTextResponse(UNAVAILABLE_PAGE, 503, headers=headers)


def format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = error.path
    if isinstance(original, GridmapError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.argument:
            extensions["argument"] = original.argument
    elif original is None or isinstance(original, GraphQLError):
        # Parse, validation and variable errors: graphql-core's message names the place.
        # Errors made with a code (``api.limits``) keep it.
        if error.extensions and "code" in error.extensions:
            code = error.extensions["code"]
        elif error.message.startswith("Syntax Error"):
            code = "GRAPHQL_PARSE_FAILED"
        elif error.message.startswith("Variable"):
            code = "BAD_USER_INPUT"
        else:
            code = "GRAPHQL_VALIDATION_FAILED"
        extensions = {"code": code}
    elif unavailable(original):
        log.warning("database unavailable at %s: %s", error.path, reason(original))
        formatted["message"] = UNAVAILABLE_MESSAGE
        extensions = {"code": Unavailable.code}
    else:
        log.error("unexpected error at %s", error.path, exc_info=original)
        formatted["message"] = "Internal server error"
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
    formatted["extensions"] = extensions
    return formatted
