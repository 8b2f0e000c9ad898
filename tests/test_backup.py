"""`gridmap db backup` and `gridmap db restore` on real PostgreSQL: a backup restored into an
empty database, and into a cluster of its own made for the test, holds every row of every table,
and the app works on it with its row-level security."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
from clusters import throwaway_cluster
from conftest import GRIDMAP, Databases, ScratchDB, as_role, demo_tokens
from gq import ok
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from api.app import create_app

TABLES = """
    SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1
"""


def _query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def digests(url: str) -> dict[str, tuple[int, str]]:
    """Every table of the public schema: its row count and an md5 of its rows in a fixed order
    (read as the owner, whom row-level security does not bind)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(TABLES)
            out = {}
            for (table,) in cur.fetchall():
                cur.execute(
                    f'SELECT count(*), md5(coalesce(string_agg(t::text, E\'\\n\' ORDER BY '
                    f't::text COLLATE "C"), \'\')) FROM public."{table}" t'
                )
                out[table] = cur.fetchone()
            return out
    finally:
        conn.close()


def security(url: str) -> dict[str, Any]:
    """Who owns what, which tables have row-level security, the policies and the grants."""
    not_extension = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid}
                       AND d.deptype = 'e')"""
    return {
        "function owners": _query(url, f"""
            SELECT p.proname, pg_get_userbyid(p.proowner), p.prosecdef FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND {not_extension.format(oid='p.oid')}
            ORDER BY 1, 2"""),
        "table owners": _query(url, f"""
            SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity
            FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
              AND c.relkind IN ('r', 'v', 'S') AND {not_extension.format(oid='c.oid')}
            ORDER BY 1"""),
        "policies": _query(url, """
            SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies
            ORDER BY 1, 2"""),
        "table grants": _query(url, """
            SELECT table_name, privilege_type FROM information_schema.role_table_grants
            WHERE grantee = 'gridmap_app' ORDER BY 1, 2"""),
        "function grants": _query(url, """
            SELECT routine_name, privilege_type FROM information_schema.role_routine_grants
            WHERE grantee = 'gridmap_app' ORDER BY 1, 2"""),
        "schema usage": _query(url, "SELECT has_schema_privilege('gridmap_app', 'public', "
                               "'USAGE'), has_schema_privilege('gridmap_app', 'public', "
                               "'CREATE')"),
        "triggers": _query(url, """
            SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger
            WHERE NOT tgisinternal ORDER BY 1, 2"""),
    }


def app_view(db: ScratchDB) -> dict[str, Any]:
    """What the app serves on ``db``: the households the grid center and the demo grid worker
    see, and whether the worker's are all in its own grids (row-level security)."""
    tokens = demo_tokens(db)
    with TestClient(create_app(db.settings())) as client:
        center = as_role(client, tokens, "grid_center")
        worker = as_role(client, tokens, "grid_worker")
        all_count = ok(center, "{ households { totalCount } }")["households"]["totalCount"]
        grids = ok(center, "query($c: String!) { worker(code: $c) { grids { code } } }",
                   c=tokens["grid_worker"]["worker"])["worker"]["grids"]  # fmt: skip
        seen = ok(worker, "{ households(first: 500) { totalCount edges { node { code } } } }")
    codes = [e["node"]["code"] for e in seen["households"]["edges"]]
    own = [g["code"] for g in grids]
    return {
        "grid center sees": all_count,
        "grid worker sees": seen["households"]["totalCount"],
        "listed": len(codes),
        "all in own grids": all(any(c.startswith(g) for g in own) for c in codes),
    }


def test_a_backup_restores_every_row_and_the_app_works_on_it(
    fresh_db: ScratchDB, databases: Databases, tmp_path: Path
) -> None:
    archive = tmp_path / "x.dump"
    done = fresh_db.gridmap("db", "backup", "-o", str(archive))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(archive)  # the file alone on standard output
    assert archive.read_bytes()[:5] == b"PGDMP"  # custom format
    assert archive.stat().st_mode & 0o077 == 0  # personal data: the owner's only
    assert not list(tmp_path.glob(".*partial"))
    owner = make_url(fresh_db.owner_url)
    assert owner.password and owner.password not in done.stderr + done.stdout

    target = databases.make("restored")  # empty, from template1: PostGIS and pgRouting
    done = fresh_db.gridmap("db", "restore", str(archive), "--database", target.name)
    assert done.returncode == 0, done.stderr
    assert f"restored into database {target.name}" in done.stdout

    source = digests(fresh_db.owner_url)
    assert len(source) > 30 and source["household"][0] > 1000
    assert source["alembic_version"][0] == 1
    assert digests(target.owner_url) == source  # every row of every table
    assert security(target.owner_url) == security(fresh_db.owner_url)
    # Restored with --no-owner by the tables' owner: it owns the SECURITY DEFINER functions.
    owners = security(target.owner_url)["function owners"]
    assert {o for _, o, definer in owners if definer} == {owner.username}

    on_source, on_restored = app_view(fresh_db), app_view(target)
    assert on_restored == on_source
    assert 0 < on_restored["grid worker sees"] < on_restored["grid center sees"]
    assert on_restored["all in own grids"] and on_restored["listed"] > 0


def test_a_database_holding_data_is_not_overwritten_without_yes(
    fresh_db: ScratchDB, tmp_path: Path
) -> None:
    archive = tmp_path / "before.dump"
    done = fresh_db.gridmap("db", "backup", "-o", str(archive))
    assert done.returncode == 0, done.stderr
    before = digests(fresh_db.owner_url)
    _query(fresh_db.owner_url, "UPDATE demo_info SET seed = seed + 1")  # a change since
    changed = digests(fresh_db.owner_url)
    assert changed != before

    refused = fresh_db.gridmap("db", "restore", str(archive))  # the app database
    assert refused.returncode != 0
    assert f"database {fresh_db.name}" in refused.stderr and "not empty" in refused.stderr
    assert "--yes" in refused.stderr and "nothing was changed" in refused.stderr
    assert digests(fresh_db.owner_url) == changed

    replaced = fresh_db.gridmap("db", "restore", str(archive), "--yes")
    assert replaced.returncode == 0, replaced.stderr
    assert f"replaced database {fresh_db.name}" in replaced.stdout
    assert digests(fresh_db.owner_url) == before
    names = [r[0] for r in _query(fresh_db.owner_url, "SELECT datname FROM pg_database")]
    assert not [n for n in names if n.startswith(f"{fresh_db.name[:40]}_restore_")]


def test_what_is_not_a_backup_is_refused(
    fresh_db: ScratchDB, databases: Databases, tmp_path: Path
) -> None:
    target = f"{databases.prefix}_never"
    databases.created.append(target)  # dropped at the end should a refusal fail to refuse
    cases = {
        "missing.dump": (None, "no such file"),
        "notes.txt": (b"hello, not a backup\n", "not a pg_dump archive"),
        "plain.sql": (b"--\n-- PostgreSQL database dump\n--\n", "plain SQL dump"),
    }
    archive = tmp_path / "x.dump"
    assert fresh_db.gridmap("db", "backup", "-o", str(archive)).returncode == 0
    whole = archive.read_bytes()
    cases["damaged.dump"] = (whole[:200], "cannot read")
    cases["truncated.dump"] = (whole[: len(whole) // 2], "rolled back")
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        done = fresh_db.gridmap("db", "restore", str(path), "--database", target)
        assert done.returncode != 0, (name, done.stdout)
        assert message in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr
        # Nothing left behind: the database it would have created does not exist.
        assert not _query(fresh_db.owner_url, "SELECT 1 FROM pg_database WHERE datname = %s",
                          (target,)), name  # fmt: skip
    again = fresh_db.gridmap("db", "backup", "-o", str(archive))
    assert again.returncode != 0 and "exists" in again.stderr
    assert archive.read_bytes() == whole


def test_a_backup_restores_into_a_fresh_cluster(fresh_db: ScratchDB, tmp_path: Path) -> None:
    archive = tmp_path / "x.dump"
    done = fresh_db.gridmap("db", "backup", "-o", str(archive))
    assert done.returncode == 0, done.stderr
    source = digests(fresh_db.owner_url)
    source_security = security(fresh_db.owner_url)
    with throwaway_cluster() as fresh:
        env = {**os.environ, "GRIDMAP_OWNER_DATABASE_URL": fresh.owner,
               "GRIDMAP_DATABASE_URL": fresh.app, "GRIDMAP_ADMIN_DATABASE_URL": fresh.admin}


        def restore() -> subprocess.CompletedProcess[str]:
            return subprocess.run([GRIDMAP, "db", "restore", str(archive)], env=env,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip

        # The archive grants to gridmap_app, which this server lacks yet: refused, rolled back.
        done = restore()
        assert done.returncode != 0
        assert "rolled back" in done.stderr and "role gridmap_app is missing" in done.stderr
        exists = "SELECT 1 FROM pg_database WHERE datname = 'gridmap'"
        assert not _query(fresh.admin, exists)
        fresh.add_app_role()
        done = restore()
        assert done.returncode == 0, done.stderr
        assert "restored into database gridmap" in done.stdout
        assert digests(fresh.owner) == source
        assert security(fresh.owner) == source_security
        restored = ScratchDB("gridmap", fresh.owner, fresh.app)
        view = app_view(restored)
        assert view == app_view(fresh_db)
        assert 0 < view["grid worker sees"] < view["grid center sees"]

