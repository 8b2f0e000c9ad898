"""One database transaction per request, used from async code without blocking the event loop.

psycopg2 blocks, so every call runs in Starlette's thread pool. Calls of one request are
serialized by a lock: they share one connection and one transaction, in which the caller's scope
is set first (``geo.db.set_scope``) so row-level security sees it.

When the database goes away mid-request (a restart, no connection to be had), the transaction is
lost: every call from then on raises ``Unavailable`` at once, and nothing is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.errors import Unavailable, unavailable
from geo.db import set_scope

R = TypeVar("R")


class RequestDB:
    def __init__(self, engine: Engine, scope: Mapping[str, str]) -> None:
        self._engine = engine
        self._scope = scope
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self.lost: Exception | None = None  # why the database went away, taking the transaction

    async def run(self, fn: Callable[..., R], /, **kwargs: Any) -> R:
        """``fn(session=…, **kwargs)`` inside this request's transaction."""
        async with self._lock:
            return await run_in_threadpool(self._call, fn, kwargs)

    async def write(self, fn: Callable[..., R], /, **kwargs: Any) -> R:
        """``run`` for a mutation: its changes are kept whole or not at all (a savepoint), so
        a mutation that fails leaves nothing behind while the request's others stand."""
        async with self._lock:
            return await run_in_threadpool(self._call, fn, kwargs, True)

    def _call(self, fn: Callable[..., R], kwargs: dict[str, Any], nested: bool = False) -> R:
        if self.lost:
            raise Unavailable() from self.lost
        try:
            return self._call_in_session(fn, kwargs, nested)
        except (DBAPIError, PoolTimeout) as exc:
            if not unavailable(exc):
                raise
            self.lost = exc
            raise Unavailable() from exc

    def _call_in_session(self, fn: Callable[..., R], kwargs: dict[str, Any], nested: bool) -> R:
        if self._session is None:
            self._session = Session(self._engine)
            self._session.begin()
            set_scope(self._session, self._scope)
        if not nested:
            return fn(session=self._session, **kwargs)
        with self._session.begin_nested():
            return fn(session=self._session, **kwargs)

    async def close(self, *, commit: bool = False) -> None:
        session, self._session = self._session, None
        if session is not None:
            # Shielded: a request cancelled here (its client gone, the server stopping) still
            # ends its transaction and gives the connection back, rather than leaving both to
            # the garbage collector.
            closing = asyncio.ensure_future(
                run_in_threadpool(_finish, session, commit and not self.lost)
            )
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
            await asyncio.shield(closing)


_closing: set[asyncio.Future[None]] = set()  # kept until done: the loop holds tasks weakly


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
    finally:
        session.close()
