"""Tests run against the real PostGIS of the local cluster (`make test` starts it), each suite in
databases of its own: a template migrated and loaded with the demo once, a read-only copy shared
by the tests that only read, and a fresh copy for each test that writes."""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from shapely import geos_version_string
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from api.app import create_app
from api.auth import issue_token
from api.settings import Settings
from geo.demo import demo_logins_of, load_demo
from geo.migrate import upgrade
from geo.workers import worker_by_code


def pytest_report_header() -> str:
    return f"GEOS {geos_version_string}"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """A crash in native code prints the crashing thread alone: CI keeps only the head and tail
    of a long output, and with every thread dumped the one that crashed fell in between."""
    faulthandler.enable(file=os.dup(sys.stderr.fileno()), all_threads=False)  # as pytest's own


@dataclass(frozen=True)
class ScratchDB:
    name: str
    owner_url: str
    app_url: str

    def settings(self, **overrides: Any) -> Settings:
        return Settings(
            database_url=self.app_url, owner_database_url=self.owner_url, env="test", **overrides
        )

    def gridmap(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        """``gridmap ARGS`` as a user runs it, with this database in its environment."""
        env = {**os.environ, "GRIDMAP_DATABASE_URL": self.app_url,
               "GRIDMAP_OWNER_DATABASE_URL": self.owner_url}  # fmt: skip
        return subprocess.run(
            [GRIDMAP, *args], capture_output=True, text=True, timeout=timeout, env=env
        )


GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """``sql`` on the database at ``url`` (a SQLAlchemy URL) in a transaction of its own: the
    rows it returns (none for a statement that returns none)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _url(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _admin(url: str, sql: str) -> None:
    dsn = make_url(url).set(drivername="postgresql", database="postgres")
    conn = psycopg2.connect(dsn.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


class Databases:
    def __init__(self, base: Settings) -> None:
        base.require_database()
        assert base.owner_database_url and base.database_url
        self.owner = base.owner_database_url
        self.app = base.database_url
        self.prefix = f"gridmap_test_{os.getpid()}"
        self.created: list[str] = []

    def make(self, name: str, template: str | None = None) -> ScratchDB:
        full = f"{self.prefix}_{name}"
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        _admin(self.owner, f'CREATE DATABASE "{full}"{clause}')
        self.created.append(full)
        return ScratchDB(full, _url(self.owner, full), _url(self.app, full))

    def drop(self, name: str) -> None:
        # The app role's last connections may still be closing: the owner may not end them
        # (FORCE needs pg_signal_backend for another role's sessions), so wait for them.
        for attempt in range(50):
            try:
                _admin(self.owner, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ObjectInUse):
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.created.remove(name)

    def drop_all(self) -> None:
        for name in reversed(list(self.created)):
            self.drop(name)


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    dbs = Databases(Settings())
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def template_db(databases: Databases) -> ScratchDB:
    """Migrated and loaded with the default demo district; never connected to after that."""
    db = databases.make("template")
    upgrade(db.owner_url)
    load_demo(url=db.owner_url, secret_key=Settings().secret_key, progress=False)
    return db


@pytest.fixture(scope="session")
def demo_db(databases: Databases, template_db: ScratchDB) -> ScratchDB:
    """The demo, for tests that only read."""
    return databases.make("demo", template=template_db.name)


@pytest.fixture
def fresh_db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    """A copy of the demo of this test's own, for tests that write."""
    db = databases.make(f"t{uuid.uuid4().hex[:8]}", template=template_db.name)
    yield db
    databases.drop(db.name)


@pytest.fixture
def empty_db(databases: Databases) -> Iterator[ScratchDB]:
    """Migrated and empty: what a sub-district that imports its own data starts from."""
    db = databases.make(f"e{uuid.uuid4().hex[:8]}")
    upgrade(db.owner_url)
    yield db
    databases.drop(db.name)


def demo_tokens(db: ScratchDB) -> dict[str, dict[str, str]]:
    """{role: {"worker": code, "token": …}} for the demo user of each role, as the CLI prints."""
    settings = db.settings()
    engine = create_engine(db.owner_url)
    try:
        with engine.connect() as connection:
            return {
                role.lower(): {
                    "worker": code,
                    "token": issue_token(
                        settings, worker_by_code(connection=connection, code=code)
                    ),
                }
                for role, code in demo_logins_of(db.owner_url).items()
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def tokens(demo_db: ScratchDB) -> dict[str, dict[str, str]]:
    return demo_tokens(demo_db)


@pytest.fixture(scope="session")
def app_client(demo_db: ScratchDB) -> Iterator[TestClient]:
    """A client of the app serving the read-only demo, with no credentials (the public)."""
    with TestClient(create_app(demo_db.settings())) as c:
        yield c


def as_role(client: TestClient, tokens: dict[str, dict[str, str]], role: str) -> TestClient:
    """The same app, called with the Bearer token of the demo user of ``role``."""
    authed = TestClient(client.app)
    authed.headers["Authorization"] = f"Bearer {tokens[role]['token']}"
    return authed


@pytest.fixture(scope="session")
def client(app_client: TestClient, tokens: dict[str, dict[str, str]]) -> TestClient:
    """The grid center of the demo subdistrict: sees every household (phones and ID numbers
    masked)."""
    return as_role(app_client, tokens, "grid_center")


@contextmanager
def database_work(client: TestClient) -> Iterator[list[str]]:
    """What the app asks of the database inside the block: "checkout" for each connection taken
    from a pool (the auth cache, the compiled reads and the resolvers all take one: no statement
    without one), and the text of each statement SQLAlchemy runs (compiled reads run theirs on
    the DB-API connection)."""
    seen: list[str] = []
    state = client.app.state  # type: ignore[attr-defined]

    def checkout(*_: Any) -> None:
        seen.append("checkout")

    def statement(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    for engine in (state.engine, state.reader):
        event.listen(engine.pool, "checkout", checkout)
        event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        for engine in (state.engine, state.reader):
            event.remove(engine.pool, "checkout", checkout)
            event.remove(engine, "before_cursor_execute", statement)
