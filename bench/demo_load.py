"""How fast the demo loads: a scratch database, the schema, the demo, the figures, then drop it.

    .venv/bin/python bench/demo_load.py                     # 1,000,000 households
    .venv/bin/python bench/demo_load.py --households 50000 --keep

Runs as the tables' owner (GRIDMAP_OWNER_DATABASE_URL, from ``api.settings``; the role needs
CREATEDB). The target is 1,000,000 households in under 3 minutes on a 2-core machine, index and
constraint maintenance and the code triggers included.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.settings import Settings
from geo.demo import load_demo


def _admin(owner_url: str, sql: str) -> None:
    dsn = make_url(owner_url).set(drivername="postgresql", database="postgres")
    conn = psycopg2.connect(dsn.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _build_schema(url: str) -> str:
    try:
        from geo.migrate import upgrade
    except ImportError:  # before the first migration existed
        from sqlalchemy import create_engine

        from geo.models import Base

        engine = create_engine(url)
        try:
            Base.metadata.create_all(engine)
        finally:
            engine.dispose()
        return "create_all"
    upgrade(url)
    return "alembic upgrade head"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    settings = Settings()
    owner = settings.owner_database_url
    if not owner:
        parser.error("no database configured: run `gridmap db up` or set DATABASE_URL")
    name = f"demo_bench_{os.getpid()}"
    url = make_url(owner).set(database=name).render_as_string(hide_password=False)
    _admin(owner, f'CREATE DATABASE "{name}"')
    try:
        schema = _build_schema(url)
        with (
            psycopg2.connect(
                make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT version(), postgis_lib_version()")
            server, postgis = cur.fetchone()
        conn.close()
        start = time.perf_counter()
        summary = load_demo(
            url=url, secret_key=settings.secret_key, households=args.households, seed=args.seed,
            progress=not args.no_progress,
        )  # fmt: skip
        total = time.perf_counter() - start
        print(f"machine: {_machine()}")
        print(f"server: {server.split(' on ')[0]}, PostGIS {postgis}; schema by {schema}")
        print(f"database: {name}{' (kept)' if args.keep else ''}")
        print(summary)
        print(
            f"{args.households:,} households in {total:.1f} s: "
            f"{args.households / total:,.0f} households/s"
        )
        for stage, seconds in summary.stages.items():
            print(f"  {stage:<12} {seconds:7.1f} s")
    finally:
        if not args.keep:
            _admin(owner, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
