"""Subscriptions: ``caseReported(scope:)`` pushes the cases newly reported in an area to a grid
center's screen. They are served over a WebSocket (``api.subscriptions``), never over HTTP.

A socket outlives any one transaction, so its context (``SocketContext``) runs each database
call in a transaction of its own as the caller, and checks the caller's credentials again as the
subscription goes on: a token that expires or is revoked, or a worker who is removed, ends the
socket like it ends the next HTTP request. Row-level security decides which cases reach whom,
as it does for ``cases``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketState

from api.auth import caller_of
from api.errors import reason, unavailable
from api.schema.cases import Case, require_case_role
from api.schema.context import Context, Info
from api.schema.loaders import Loaders
from geo import cases as c
from geo import queries as q
from geo.access import FAMILY_FILE_ROLES, PUBLIC, Caller
from geo.audit import AuditTrail, write_reads
from geo.db import scoped_session
from geo.errors import Forbidden

log = logging.getLogger("gridmap.subscriptions")
R = TypeVar("R")

# A case carries the time its reporting transaction began and becomes visible when that
# transaction commits, maybe after a newer one: each poll looks back this far and skips the
# cases already accounted for, so a slow report is pushed late rather than never.
LOOK_BACK = dt.timedelta(minutes=5)
# Cases fetched per poll; more are fetched at once, without waiting for the next poll.
POLL_ROWS = 100


class CallDB:
    """What resolvers use of ``RequestDB`` (``run``), for a socket: each call is a transaction
    of its own as the caller (``geo.db.scoped_session``), begun, committed and closed in one
    call to the thread pool, which a subscription cancelled meanwhile waits for."""

    def __init__(self, engine: Engine, caller: Caller) -> None:
        self.engine = engine
        self._scope = caller.settings()

    async def run(self, fn: Callable[..., R], /, **kwargs: Any) -> R:
        return await to_the_end(run_in_threadpool(self._once, fn, kwargs))

    def _once(self, fn: Callable[..., R], kwargs: dict[str, Any]) -> R:
        with scoped_session(self.engine, self._scope) as session:
            return fn(session=session, **kwargs)


async def to_the_end(work: Awaitable[R]) -> R:
    """``await work`` (a call to the thread pool), which runs to its end even if the awaiting
    task is cancelled meanwhile; the cancellation goes on after it. A thread abandoned would go
    on holding a database connection after its socket, maybe after the app, had ended."""
    call = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait([call])
        raise


@dataclass
class SocketContext(Context):
    """The context of one graphql-transport-ws connection, shared by its subscriptions. Until
    ``connection_init`` admits a caller (``api.subscriptions``), it is the public's."""

    websocket: WebSocket | None = None
    connection_params: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None  # the token epoch of the credentials
    expires: float | None = None  # when the token expires (UNIX time); None: a cookie session

    @classmethod
    def opening(cls, websocket: WebSocket) -> SocketContext:
        state = websocket.app.state
        return cls(
            request=None, settings=state.settings, db=CallDB(state.engine, PUBLIC),
            caller=PUBLIC, vault=state.vault, websocket=websocket,
        )  # fmt: skip

    def admit(self, caller: Caller, *, epoch: int, expires: float | None) -> None:
        self.caller, self.epoch, self.expires = caller, epoch, expires
        self.db = CallDB(self.db.engine, caller)
        self.loaders = Loaders(self.db)
        self.audit = AuditTrail(caller)

    async def recheck(self) -> str | None:
        """Why the credentials no longer hold, or None. The worker is read again (cached for a
        few seconds, as for HTTP requests); changed areas apply from here on."""
        if self.expires is not None and time.time() >= self.expires:
            return "the token has expired: ask for a new one"
        assert self.websocket is not None and self.caller.worker_id is not None
        worker = await to_the_end(self.websocket.app.state.auth.worker(self.caller.worker_id))
        if worker is None:
            return "the worker of these credentials no longer exists"
        if worker["token_epoch"] != self.epoch:
            return "these credentials were revoked: log in again"
        current = caller_of(worker, remote=self.caller.remote)
        if current != self.caller:
            self.caller = current
            self.db = CallDB(self.db.engine, current)
            self.loaders = Loaders(self.db)
        return None

    async def event_done(self) -> None:
        """After an event's fields are resolved: audit the personal data it revealed (as an HTTP
        request does when it ends) and start the next event with empty data loaders."""
        trail, self.audit = self.audit, AuditTrail(self.caller)
        self.loaders = Loaders(self.db)
        if trail.reads:
            await self.db.run(write_reads, trail=trail)

    async def close(self, code: int, message: str) -> None:
        """Close the socket (once, whichever subscription comes first)."""
        assert self.websocket is not None
        if self.websocket.application_state == WebSocketState.CONNECTED:
            await self.websocket.close(code, close_reason(message))


def close_reason(message: str) -> str:
    """A WebSocket close reason holds at most 123 bytes of UTF-8."""
    return message.encode()[:123].decode(errors="ignore")


@dataclass
class Accounted:
    """The cases a subscription has accounted for (pushed, or there before it began) among
    those reported within ``LOOK_BACK``: their id and when they were reported."""

    cases: dict[uuid.UUID, dt.datetime] = field(default_factory=dict)

    def since(self, now: dt.datetime) -> dt.datetime:
        """Where a poll at ``now`` starts; cases reported before it are forgotten here."""
        start = now - LOOK_BACK
        self.cases = {k: at for k, at in self.cases.items() if at >= start}
        return start

    def new(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not accounted for yet, in their order; accounted for from now on."""
        found = [r for r in rows if r["id"] not in self.cases]
        self.cases.update((r["id"], r["reported_at"]) for r in found)
        return found


def check_scope(caller: Caller, scope: str) -> None:
    """Staff subscribe to an area that overlaps theirs (their areas' part of a larger one is
    what row-level security shows them); a department, to any area (it sees its unit's cases
    wherever they are)."""
    if caller.role in FAMILY_FILE_ROLES and not any(
        scope.startswith(area) or area.startswith(scope) for area in caller.areas
    ):
        raise Forbidden(
            "scope", f"{scope} is outside your areas ({', '.join(caller.areas) or 'none'}): "
            "subscribe to one of them, or to an area inside one"
        )  # fmt: skip


async def _poll(context: SocketContext, scope: str, accounted: Accounted) -> list[dict]:
    """The cases of ``scope`` reported within ``LOOK_BACK`` that are not accounted for yet,
    oldest first: at most ``POLL_ROWS``, one transaction."""
    since = accounted.since(dt.datetime.now(dt.UTC))
    rows = await context.db.run(
        c.reported_since, scope=scope, since=since, exclude=list(accounted.cases), limit=POLL_ROWS
    )
    return accounted.new(rows)


async def _pushes(context: SocketContext, scope: str, accounted: Accounted) -> AsyncIterator[Case]:
    every = context.settings.case_poll_seconds
    wait = every
    while True:
        await asyncio.sleep(wait)
        try:
            problem = await context.recheck()
            rows = [] if problem else await _poll(context, scope, accounted)
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("caseReported(%s): database unavailable, retrying: %s", scope, reason(exc))
            wait = every
            continue
        if problem:
            await context.close(4401, f"Unauthorized: {problem}")
            await asyncio.Event().wait()  # until the socket's end cancels this subscription
        for row in rows:
            try:
                yield Case.of(row)
            finally:
                await context.event_done()
        wait = 0 if len(rows) == POLL_ROWS else every


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The cases newly reported in an area (a grid, community or subdistrict "
        "code), each once, oldest first, as soon as they are found (the server looks every "
        "GRIDMAP_CASE_POLL_SECONDS). Only those you may see: staff, in their areas; a "
        "department, those dispatched to its unit. Over a WebSocket at /graphql with the "
        "graphql-transport-ws protocol."
    )
    async def case_reported(self, info: Info, scope: str) -> AsyncIterator[Case]:
        require_case_role(info)
        context = info.context
        if not isinstance(context, SocketContext):
            raise Forbidden(
                "subscriptions are served over a WebSocket at /graphql (graphql-transport-ws)"
            )
        scope = scope.strip()
        await context.db.run(q.area_by_code, code=scope, argument="scope")
        check_scope(context.caller, scope)
        # The cases already there are accounted for: only those reported from now on are new.
        accounted = Accounted()
        while len(await _poll(context, scope, accounted)) == POLL_ROWS:
            pass
        return _pushes(context, scope, accounted)
