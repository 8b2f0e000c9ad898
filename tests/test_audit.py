"""Every request that returns a household's personal data leaves one audit row per household,
in a log nobody can rewrite; the grid center reads it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, ok
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from api.app import create_app
from geo.audit import array_literal


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as public:
        yield public, demo_tokens(fresh_db)


def log(db: ScratchDB) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(make_url(db.owner_url).set(drivername="postgresql")
                            .render_as_string(hide_password=False))  # fmt: skip
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT worker_code, role, action, household_code, fields, request_id"
                        " FROM audit_log ORDER BY household_code")  # fmt: skip
            return cur.fetchall()
    finally:
        conn.close()


def test_one_row_per_household_read(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    data = ok(worker, "{ households(first: 5) { edges { node { code householdClass"
                      " members { name phone } } } } }")  # fmt: skip
    codes = sorted(e["node"]["code"] for e in data["households"]["edges"])
    entries = log(fresh_db)
    assert [e[3] for e in entries] == codes
    who = tokens["grid_worker"]["worker"]
    for worker_code, role, action, _, fields, _ in entries:
        assert (worker_code, role, action) == (who, "grid_worker", "read")
        assert sorted(fields) == ["household_class", "name", "phone"]
    assert len({e[5] for e in entries}) == 1  # one request


def test_no_row_without_personal_fields(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    public, tokens = app
    ok(
        as_role(public, tokens, "grid_worker"),
        "{ households(first: 5) { edges { node { code } } } }",
    )
    ok(public, "{ grids { edges { node { code householdCount } } } }")
    assert log(fresh_db) == []


def test_the_grid_center_reads_the_log_and_nobody_else(app: tuple[TestClient, Any]) -> None:
    public, tokens = app
    worker = as_role(public, tokens, "grid_worker")
    ok(worker, "{ households(first: 3) { edges { node { members { name } } } } }")
    query = "{ auditLog(first: 10) { totalCount edges { node { workerCode action fields } } } }"
    center = ok(as_role(public, tokens, "grid_center"), query)["auditLog"]
    assert center["totalCount"] >= 3
    assert {e["node"]["workerCode"] for e in center["edges"]} >= {tokens["grid_worker"]["worker"]}
    for role in ("grid_worker", "community", "department"):
        err = error(as_role(public, tokens, role), query)
        assert err["extensions"]["code"] == "FORBIDDEN"
    assert error(public, query)["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("url", ["owner_url", "app_url"])
def test_the_log_is_append_only(app: tuple[TestClient, Any], fresh_db: ScratchDB, url: str) -> None:
    public, tokens = app
    ok(as_role(public, tokens, "grid_worker"), "{ households(first: 1) { edges { node {"
                                                " members { name } } } } }")  # fmt: skip
    dsn = make_url(getattr(fresh_db, url)).set(drivername="postgresql")
    statements = [f"{verb} {table}{tail}" for table in ("audit_log", "audit_entry", "audit_read")
                  for verb, tail in (("UPDATE", " SET role = 'x'"), ("DELETE FROM", ""),
                                     ("TRUNCATE", ""))]  # fmt: skip
    for sql in statements:
        conn = psycopg2.connect(dsn.render_as_string(hide_password=False))
        try:
            with pytest.raises(psycopg2.Error), conn, conn.cursor() as cur:
                cur.execute("SELECT set_config('gridmap.role', 'grid_center', true)")
                cur.execute(sql)
        finally:
            conn.close()
    assert len(log(fresh_db)) == 1


def test_array_literals_carry_any_code(demo_db: ScratchDB) -> None:
    """Household codes come from imported files: a comma, quote, backslash or brace in one must
    reach the audit log as it was."""
    codes = ["310106015002002001001-1-0101", "a,b", 'q"uote', "back\\slash", "{br}ace", "", "NULL"]
    conn = psycopg2.connect(make_url(demo_db.owner_url).set(drivername="postgresql")
                            .render_as_string(hide_password=False))  # fmt: skip
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT CAST(%s AS text[])", (array_literal(codes),))
            assert cur.fetchone()[0] == codes
    finally:
        conn.close()
