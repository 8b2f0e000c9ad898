"""The one place where errors become what a client sees: a message a person can act on and a
stable ``extensions.code``; never a stack trace, never SQL."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from geo.errors import GridmapError

log = logging.getLogger("gridmap.errors")


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
    else:
        log.error("unexpected error at %s", error.path, exc_info=original)
        formatted["message"] = "Internal server error"
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
    formatted["extensions"] = extensions
    return formatted
