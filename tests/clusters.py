"""A PostgreSQL cluster of a test's own, for what must not happen to the shared local cluster:
restoring into an empty server, stopping and starting the server under a running app."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from api import cluster


def sql(url: str, statement: str) -> None:
    """One statement in autocommit (CREATE DATABASE cannot run in a transaction)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    base: Path
    port: int
    passwords: dict[str, str]

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, role: str, database: str) -> str:
        password = self.passwords[role]
        return f"postgresql+psycopg2://{role}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def owner(self) -> str:
        return self.url("gridmap", "gridmap")

    @property
    def app(self) -> str:
        return self.url("gridmap_app", "gridmap")

    @property
    def admin(self) -> str:
        return self.url("postgres", "postgres")

    @property
    def app_password(self) -> str:
        return self.passwords["gridmap_app"]

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
            f"{self.base} -c fsync=off -c full_page_writes=off -c shared_buffers=64MB"
        )
        cluster._run_as_server([
            str(cluster.PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60",
            "-l", str(self.base / "log"), "-o", options,
        ], what="start the throwaway cluster")  # fmt: skip

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        cluster._run_as_server(
            [str(cluster.PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-w", "-m", mode],
            what="stop the throwaway cluster",
            check=check,
        )

    def add_app_database(self) -> None:
        """The app role and an empty database gridmap, as ``gridmap db up`` leaves them."""
        self.add_app_role()
        sql(self.admin, "CREATE DATABASE gridmap OWNER gridmap")
        sql(self.admin, "GRANT CONNECT ON DATABASE gridmap TO gridmap_app")

    def add_app_role(self) -> None:
        sql(self.admin, f"CREATE ROLE gridmap_app LOGIN PASSWORD '{self.app_password}'")


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A new PostgreSQL 15 cluster in a temporary directory, as ``gridmap db up`` makes one
    (the owner role gridmap, PostGIS and pgRouting in template1) but with no database gridmap
    and no app role yet; stopped and deleted afterwards. Under root it runs as the OS user
    postgres, as the local cluster does."""
    account = cluster._server_account()
    base = Path(tempfile.mkdtemp(prefix="gridmap-fresh-"))
    roles = ("postgres", "gridmap", "gridmap_app")
    made = Cluster(base, free_port(), {r: secrets.token_urlsafe(18) for r in roles})
    started = False
    try:
        if os.geteuid() == 0:
            os.chown(base, account.pw_uid, account.pw_gid)
            cluster._grant_traverse(account.pw_name, base)
        pwfile = base / "pw"
        pwfile.write_text(made.passwords["postgres"] + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        cluster._run_as_server([
            str(cluster.PG_BIN / "initdb"), "-D", str(made.data), "--username=postgres",
            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
            f"--locale={cluster._locale()}", "--no-instructions", "--no-sync",
        ], what="initdb a throwaway cluster")  # fmt: skip
        started = True
        made.start()
        owner_password = made.passwords["gridmap"]
        sql(made.admin, f"CREATE ROLE gridmap LOGIN CREATEDB PASSWORD '{owner_password}'")
        sql(made.url("postgres", "template1"), "CREATE EXTENSION postgis; CREATE EXTENSION "
            "pgrouting; REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # fmt: skip
        yield made
    finally:
        if started:
            made.stop("immediate", check=False)
        shutil.rmtree(base, ignore_errors=True)
