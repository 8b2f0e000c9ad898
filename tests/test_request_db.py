"""A request's transaction when its task is cancelled (the client went away)."""

from __future__ import annotations

import asyncio
import contextlib

from conftest import ScratchDB
from sqlalchemy import create_engine, text

from api.database import RequestDB


def test_a_cancelled_close_still_gives_the_connection_back(demo_db: ScratchDB) -> None:
    engine = create_engine(demo_db.app_url, pool_size=1, max_overflow=0)

    async def cancelled_while_closing() -> None:
        db = RequestDB(engine, scope={"role": "public"})
        assert await db.run(lambda session: session.execute(text("SELECT 1")).scalar()) == 1
        assert engine.pool.checkedout() == 1
        closing = asyncio.create_task(db.close())
        await asyncio.sleep(0)  # the close has begun: now the client goes away
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        for _ in range(100):  # the closing goes on in its thread
            if engine.pool.checkedout() == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the connection was not given back")

    try:
        asyncio.run(cancelled_while_closing())
    finally:
        engine.dispose()
