"""Engines and request-scoped transactions.

Every unit of work runs in one transaction that first records who is asking with
``set_config('gridmap.<key>', value, true)`` (the same as ``SET LOCAL``), so row-level security
policies can key on ``current_setting('gridmap.<key>', true)`` and a resolver cannot forget it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # A request never waits on the database for ever: 30 s per statement.
        connect_args={"options": "-c statement_timeout=30000 -c TimeZone=UTC"},
    )


def set_scope(session: Session, scope: Mapping[str, str]) -> None:
    """Record the caller in the current transaction; it ends with the transaction."""
    for key, value in scope.items():
        session.execute(
            text("SELECT set_config(:key, :value, true)"), {"key": f"gridmap.{key}", "value": value}
        )


@contextmanager
def scoped_session(engine: Engine, scope: Mapping[str, str]) -> Iterator[Session]:
    """One transaction for one unit of work, committed on success and rolled back on error."""
    with Session(engine) as session, session.begin():
        set_scope(session, scope)
        yield session
