"""Errors the data layer raises for a person to act on; the API maps each to a code in one place."""

from __future__ import annotations


class GridmapError(Exception):
    """Base of every error a client may see. ``code`` is the stable ``extensions.code``."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


class BadInput(GridmapError):
    """Input a person wrote is malformed or out of range; ``argument`` names where."""

    code = "BAD_USER_INPUT"

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}", argument=argument)


class NotFound(GridmapError):
    code = "NOT_FOUND"

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}", argument=argument)


class Forbidden(GridmapError):
    """The caller may not do this; the message says who may."""

    code = "FORBIDDEN"

    def __init__(self, argument_or_message: str, problem: str | None = None) -> None:
        if problem is None:
            super().__init__(argument_or_message)
        else:
            super().__init__(f"{argument_or_message}: {problem}", argument=argument_or_message)


class Conflict(GridmapError):
    """The data changed under the request (a stale version, a reused key): reload, retry."""

    code = "CONFLICT"

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}", argument=argument)
