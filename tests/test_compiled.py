"""Compiled queries (``api.compiled``) answer exactly as the resolvers do, for every role: the
same data, the same masking, the same audit rows; and they answer in one statement."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jwt
import psycopg2
import pytest
from conftest import Databases, ScratchDB, demo_tokens
from conftest import query as sql
from gq import gql, ok
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from starlette.testclient import TestClient

import api.compiled
import api.graphql
from api.app import create_app
from api.compiled import compile_operation, prepared
from api.schema.relay import decode_cursor
from geo.access import Caller, Role
from geo.db import make_engine

ROLES = ["grid_center", "community", "grid_worker", "department", "public"]

GRID_TREE = """query($code: String!) { grid(code: $code) { code householdCount geometry
  microGrids(first: 10) { edges { node { code householdCount geometry
    buildings(first: 10) { edges { node { code householdCount geometry
      households(first: 20) { edges { node { code householdClass } } } } } } } } } } }"""
NEAR = """query($lon: Float!, $lat: Float!, $meters: Float!, $after: String) {
  buildings(near: {lon: $lon, lat: $lat, meters: $meters}, first: 7, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { code distanceMeters geometry } } } }"""
HOUSEHOLD_PAGE = """query($scope: String!) { households(scope: $scope, first: 500) {
  edges { node { code householdClass members { code name birthYear } } } } }"""
GRIDS = """query($scope: String!, $first: Int!, $after: String) {
  grids(scope: $scope, first: $first, after: $after) {
    __typename totalCount
    pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
    edges { __typename cursor node { __typename id code name householdCount residentCount
      suppressed geometry } } } }"""
FAMILY_FILES = """query($scope: String!) { households(scope: $scope, first: 30) { totalCount
  edges { node { id code unit room householdClass geometry distanceMeters householdCount
    residentCount members { id code name gender relation birthYear phone elderlyLivingAlone
      childlessElderly bereaved lowIncome disabled entitledGroup seekingWork
      household { code } } } } } }"""
ID_NUMBERS = """query($scope: String!) { households(scope: $scope, first: 5) {
  edges { node { code members { code idNumber } } } } }"""
PARENTS = """query($code: String!) { household(code: $code) { code building { code levels address
  microGrid { code grid { code community { code name office subdistrict { code timezone
    district { code name householdCount } } } } } } } }"""
COUNTS = """{ districts { edges { node { code name householdCount residentCount suppressed
  subdistricts(first: 2) { totalCount edges { node { code householdCount suppressed
    communities(first: 3) { pageInfo { hasNextPage endCursor } edges { node { code name
      householdCount residentCount suppressed } } } } } } } } } }"""
BUILDINGS = """query($code: String!) { microGrid(code: $code) { code householdCount
  residentCount suppressed buildings(first: 500) { totalCount edges { node { id code name
    address levels householdCount residentCount suppressed geometry microGrid { code }
    households(first: 3) { totalCount pageInfo { hasNextPage startCursor } edges { cursor
      node { code } } } } } } } }"""
SHAPES = """query Shapes($code: String!) { __typename g: grid(code: $code) { ...Counted
  ... on Grid { name } ... on Node { id } again: code code
  first: microGrids(first: 2) { edges { node { code } } }
  later: microGrids(first: 2, after: "WyIwIl0=") { pageInfo { hasPreviousPage }
    edges { node { code } } } } }
fragment Counted on Area { code householdCount }"""
SPATIAL = """query($area: GeoJSON!) {
  inside: buildings(within: $area, first: 500) { totalCount edges { node { code } } }
  touching: microGrids(intersects: $area) { edges { node { code } } } }"""


@pytest.fixture(scope="module")
def db(databases: Databases, template_db: ScratchDB) -> ScratchDB:
    return databases.make("compiled", template=template_db.name)


@pytest.fixture(scope="module")
def apps(db: ScratchDB) -> Iterator[tuple[TestClient, TestClient]]:
    """The same database served with compiled queries, and by the resolvers alone."""
    with (
        TestClient(create_app(db.settings())) as compiled,
        TestClient(create_app(db.settings(compiled_queries=False))) as resolved,
    ):
        yield compiled, resolved


@pytest.fixture(scope="module")
def tokens(db: ScratchDB) -> dict[str, dict[str, str]]:
    return demo_tokens(db)


@pytest.fixture(scope="module")
def cases(apps: tuple[TestClient, TestClient], tokens: dict[str, Any]) -> list[tuple[str, Any]]:
    """Each query with variables naming places of the demo (inside the grid worker's grid)."""
    _, resolved = apps
    worker = authed(resolved, tokens, "grid_worker")
    data = ok(worker, "{ households(first: 1) { edges { node { code geometry } } } }")
    household = data["households"]["edges"][0]["node"]
    code = household["code"]
    grid, micro_grid = code[:15], code[:18]
    lon, lat = household["geometry"]["coordinates"]
    area = ok(resolved, "query($c: String!) { microGrid(code: $c) { geometry } }", c=micro_grid)
    page = ok(resolved, GRIDS, scope=code[:9], first=3)["grids"]["pageInfo"]["endCursor"]
    near = ok(resolved, NEAR, lon=lon, lat=lat, meters=300)
    return [
        (GRID_TREE, {"code": grid}),
        (NEAR, {"lon": lon, "lat": lat, "meters": 300}),
        (NEAR, {"lon": lon, "lat": lat, "meters": 300,
                "after": near["buildings"]["pageInfo"]["endCursor"]}),
        (HOUSEHOLD_PAGE, {"scope": code[:9]}),
        (HOUSEHOLD_PAGE, {"scope": grid}),
        (GRIDS, {"scope": code[:9], "first": 3}),
        (GRIDS, {"scope": code[:9], "first": 3, "after": page}),
        (GRIDS, {"scope": code[:12], "first": 0}),
        (FAMILY_FILES, {"scope": grid}),
        (ID_NUMBERS, {"scope": grid}),
        (PARENTS, {"code": code}),
        (COUNTS, {}),
        (BUILDINGS, {"code": micro_grid}),
        (SHAPES, {"code": grid}),
        (SPATIAL, {"area": area["microGrid"]["geometry"]}),
    ]  # fmt: skip


def authed(client: TestClient, tokens: dict[str, Any], role: str) -> TestClient:
    other = TestClient(client.app)
    if role != "public":
        other.headers["Authorization"] = f"Bearer {tokens[role]['token']}"
    return other


def audit_rows(db: ScratchDB) -> Counter[tuple[Any, ...]]:
    conn = psycopg2.connect(make_url(db.owner_url).set(drivername="postgresql")
                            .render_as_string(hide_password=False))  # fmt: skip
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT worker_code, role, action, household_code, fields FROM audit_log")
            return Counter((*r[:4], tuple(sorted(r[4]))) for r in cur.fetchall())
    finally:
        conn.close()


def normalized(value: Any) -> Any:
    """Cursors are opaque: equal when they decode to the same position."""
    if isinstance(value, dict):
        return {
            k: decode_cursor(v) if k in ("cursor", "startCursor", "endCursor") and v else
            normalized(v)
            for k, v in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def answer_and_audit(
    client: TestClient, db: ScratchDB, query: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], Counter[tuple[Any, ...]]]:
    before = audit_rows(db)
    body = gql(client, query, **variables)
    return body, audit_rows(db) - before


@pytest.mark.parametrize("role", ROLES)
def test_compiled_answers_as_the_resolvers_do(
    role: str,
    apps: tuple[TestClient, TestClient],
    tokens: dict[str, Any],
    db: ScratchDB,
    cases: list[tuple[str, Any]],
) -> None:
    compiled, resolved = (authed(app, tokens, role) for app in apps)
    for query, variables in cases:
        fast, fast_audit = answer_and_audit(compiled, db, query, variables)
        slow, slow_audit = answer_and_audit(resolved, db, query, variables)
        assert "errors" not in slow, slow
        where = f"{role}: {query[:60]!r} {variables}"
        assert normalized(fast) == normalized(slow), where
        assert fast_audit == slow_audit, where
        assert key_order(fast) == key_order(slow), where  # clients may show fields as they come


def key_order(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, key_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [key_order(v) for v in value]
    return None


@pytest.mark.parametrize("role", ROLES)
def test_the_common_reads_compile_for_every_role(
    role: str, cases: list[tuple[str, Any]], tokens: dict[str, Any]
) -> None:
    caller = caller_of(role, tokens)
    for query, variables in cases:
        # Only the resolvers open sealed ID numbers; the others read the masked form or none.
        general = query is ID_NUMBERS and role in ("community", "grid_worker")
        compiled = compile_operation(query, variables, None, caller, 10)
        assert (compiled is None) == general, (role, query[:60])


def test_a_kept_statement_is_its_callers_own(
    cases: list[tuple[str, Any]], tokens: dict[str, Any]
) -> None:
    """Statements are kept per caller: asking again gives that caller's statement, never one
    compiled for a caller who sees more (or less)."""
    query, variables = next((q, v) for q, v in cases if q is HOUSEHOLD_PAGE)
    kept = {}
    for role in ROLES:
        caller = caller_of(role, tokens)
        fresh = api.compiled._compile(api.compiled._valid(query), variables, None, caller, 10)
        first = compile_operation(query, variables, None, caller, 10)
        again = compile_operation(query, dict(variables), None, replace(caller, remote="x"), 10)
        assert first == fresh and again is first, role
        kept[role] = first
    assert len({(c.sql, str(c.audited)) for c in kept.values() if c is not None}) > 2


def caller_of(role: str, tokens: dict[str, Any]) -> Caller:
    if role == "public":
        return Caller(Role.PUBLIC)
    claims = jwt.decode(tokens[role]["token"], options={"verify_signature": False})
    role_ = Role(claims["role"].lower())
    return Caller(role_, worker_code=claims["sub"], areas=tuple(claims["scope"]))


def test_what_does_not_compile_takes_the_general_path(
    apps: tuple[TestClient, TestClient], tokens: dict[str, Any]
) -> None:
    caller = caller_of("grid_center", tokens)
    for query in [
        "{ workers { edges { node { code } } } }",
        '{ grid(code: "310106015002002") { workers { code } } }',
        "query($s: Boolean!) { grids { edges { node { code @skip(if: $s) } } } }",
        '{ node(id: "x") { id } }',
        "{ grids(first: 501) { edges { node { code } } } }",
        '{ grids(scope: "12") { edges { node { code } } } }',
        "{ nope }",
    ]:
        assert compile_operation(query, {"s": False}, None, caller, 10) is None, query
    compiled, _ = apps
    gc = authed(compiled, tokens, "grid_center")
    err = gql(gc, '{ grids(scope: "310106999") { totalCount } }')["errors"][0]
    assert err["extensions"]["code"] == "NOT_FOUND" and "scope" in err["message"]
    err = gql(gc, '{ grid(code: "310106015999999") { code } }')["errors"][0]
    assert err["extensions"]["code"] == "NOT_FOUND" and "code" in err["message"]


class Recording:
    """A pooled connection whose cursors write down what they run."""

    def __init__(self, inner: Any, seen: list[str]) -> None:
        self.inner, self.seen = inner, seen

    @classmethod
    def of(cls, connect: Any, seen: list[str]) -> Any:
        return lambda: cls(connect(), seen)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def cursor(self) -> Any:
        cursor, seen = self.inner.cursor(), self.seen

        class Cursor:
            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

            def execute(self, sql: str, params: Any = None) -> None:
                seen.append(sql)
                cursor.execute(sql, params)

        return Cursor()


def test_a_page_of_households_with_members_is_one_statement(
    apps: tuple[TestClient, TestClient], tokens: dict[str, Any], cases: list[tuple[str, Any]],
    db: ScratchDB, monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled, _ = apps
    audited = ("SELECT count(*), (SELECT cardinality(household_ids) FROM audit_read"
               " ORDER BY at DESC LIMIT 1) FROM audit_read")
    before = sql(db.owner_url, audited)[0][0]
    seen: list[str] = []
    engine = compiled.app.state.reader  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "raw_connection", Recording.of(engine.raw_connection, seen))
    data = ok(authed(compiled, tokens, "grid_center"), HOUSEHOLD_PAGE, scope=cases[0][1]
              ["code"][:9])  # fmt: skip
    assert len(data["households"]["edges"]) == 500
    # The data in one statement, and the audit entry of the 500 households in another (both
    # run as statements prepared on the connection).
    assert len(seen) == 2, seen
    assert all(sql.split(" ", 1)[0] in ("SELECT", "EXECUTE") for sql in seen), seen
    assert sql(db.owner_url, audited)[0] == (before + 1, 500)


def test_a_failing_statement_leaves_the_answer_to_the_resolvers(
    apps: tuple[TestClient, TestClient],
    tokens: dict[str, Any],
    cases: list[tuple[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled, resolved = (authed(app, tokens, "grid_center") for app in apps)
    expected = ok(resolved, GRID_TREE, **cases[0][1])

    def lost(*args: Any, **kwargs: Any) -> None:
        raise DBAPIError("SELECT …", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(api.graphql, "run", lost)
    assert ok(compiled, GRID_TREE, **cases[0][1]) == expected


def test_statements_are_prepared_per_connection_and_bounded(
    db: ScratchDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.compiled, "PREPARED_PER_CONNECTION", 2)
    engine = make_engine(db.app_url, autocommit=True)
    try:
        c = engine.raw_connection()
        cursor = c.cursor()
        for n in range(3):
            statement = prepared(c, f"SELECT CAST(%(x)s AS int) + {n}, '%%'")
            assert statement.startswith("EXECUTE ")
            cursor.execute(statement, {"x": 1})
            assert cursor.fetchone() == (1 + n, "%")
        # The least recently used one was deallocated.
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone() == (2,)
        # One whose parameter type PostgreSQL cannot tell runs as it is.
        assert prepared(c, "SELECT %(x)s IS NULL") == "SELECT %(x)s IS NULL"
        c.close()
    finally:
        engine.dispose()
