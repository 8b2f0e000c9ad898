"""Deep, wide and costly operations are refused before they reach the database; so are large
bodies, large batches, floods and bad tokens, each with a status and a stable code."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import database_work
from gq import error, gql, ok
from graphql import get_introspection_query
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from api.app import create_app
from api.auth import issue_token
from api.limits import RateLimiter
from api.settings import Settings
from geo.workers import revoke_tokens, worker_by_code

PROD_KEY = "5e1f" * 16


def nested(levels: int) -> str:
    """A valid query ``levels`` fields deep: households > edges > node > building > …"""
    cycle = ["households(first: 1)", "edges", "node", "building"]
    chain = [cycle[i % 4] for i in range(levels - 1)]
    return "{ " + " { ".join(chain) + " { code" + " }" * len(chain) + " }"


def code_of(body: Any) -> str:
    return body["errors"][0]["extensions"]["code"]


def refused(client: TestClient, query: str, status: int = 400, **variables: Any) -> dict[str, Any]:
    """The one error of an operation the limits refuse: HTTP 400 (413 when too large), no data."""
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None and len(body["errors"]) == 1, body
    return body["errors"][0]


def test_depth_over_20_is_refused_before_any_sql(app_client: TestClient) -> None:
    with database_work(app_client) as sql:
        ok(app_client, "{ grids(first: 500) { totalCount } }")
        assert sql, "the listener sees the app's SQL"
        sql.clear()
        err = refused(app_client, nested(21))
        assert err["extensions"] == {"code": "QUERY_TOO_COMPLEX"}
        assert "more than 20 levels" in err["message"]
        assert sql == []
    at_limit = gql(app_client, nested(20))
    assert all(e["extensions"]["code"] != "QUERY_TOO_COMPLEX" for e in at_limit.get("errors", []))


def test_a_full_page_three_levels_deep_is_served(client: TestClient) -> None:
    data = ok(
        client,
        """{ households(first: 500) { edges { node { code
             building { code microGrid { code grid { code } } } members { name } } } } }""",
    )
    edges = data["households"]["edges"]
    assert len(edges) == 500 and edges[0]["node"]["building"]["microGrid"]["grid"]["code"]


def test_pages_nested_in_pages_are_refused_before_any_sql(app_client: TestClient) -> None:
    query = """{ grids(first: 500) { edges { node { microGrids(first: 500) { edges { node {
                 buildings(first: 500) { totalCount } } } } } } } }"""
    with database_work(app_client) as sql:
        err = refused(app_client, query)
        assert sql == []
    assert err["extensions"] == {"code": "QUERY_TOO_COMPLEX"}
    assert "1,001,501" in err["message"] and "200,000" in err["message"]
    assert "first" in err["message"]
    # The page sizes sent as variables count the same.
    variables = "query($n: Int!) { grids(first: $n) { edges { node { microGrids(first: $n) {"
    variables += " edges { node { buildings(first: $n) { totalCount } } } } } } } }"
    assert refused(app_client, variables, n=500)["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "errors" not in gql(app_client, variables, n=2)


def test_many_aliases_or_fields_are_refused_cheaply(app_client: TestClient) -> None:
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"
    # One fragment spread 1001 times: the same field 1001 times, where the fragment is spread.
    fields = "{ grids { " + "...F " * 1001 + "} } fragment F on GridConnection { totalCount }"
    with database_work(app_client) as sql:
        assert "200 aliases" in refused(app_client, aliases)["message"]
        assert "1000 fields" in refused(app_client, fields)["message"]
        assert sql == []
    huge = "{ " + "grids { totalCount } " * 4_000 + "}"
    err = refused(app_client, huge)  # refused while parsing
    assert err["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "15000 tokens" in err["message"]


@pytest.fixture(scope="module")
def production(demo_db: Any) -> Iterator[TestClient]:
    settings = Settings(
        database_url=demo_db.app_url, owner_database_url=demo_db.owner_url,
        env="production", secret_key=PROD_KEY,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        yield c


def test_introspection_is_off_for_the_public_in_production(
    production: TestClient, app_client: TestClient, demo_db: Any, tokens: dict[str, Any]
) -> None:
    full = get_introspection_query()
    for query in (full, '{ __type(name: "Grid") { name } }'):
        err = error(production, query)
        assert err["extensions"]["code"] == "FORBIDDEN" and "introspection" in err["message"]
    assert ok(production, "{ __typename }") == {"__typename": "Query"}

    engine = create_engine(demo_db.owner_url)
    try:
        with engine.connect() as connection:
            worker = worker_by_code(connection=connection, code=tokens["community"]["worker"])
    finally:
        engine.dispose()
    worker_client = TestClient(production.app)
    token = issue_token(production.app.state.settings, worker)  # type: ignore[attr-defined]
    worker_client.headers["Authorization"] = f"Bearer {token}"
    assert ok(worker_client, full)["__schema"]["queryType"]["name"] == "Query"
    assert ok(app_client, full)["__schema"]["queryType"]["name"] == "Query"  # development


def test_batches_are_answered_in_order_up_to_ten(app_client: TestClient) -> None:
    ops = [
        {"query": '{ district(code: "310106") { name } }'},
        {"query": "query($c: String!) { subdistrict(code: $c) { code } }",
         "variables": {"c": "310106015"}},
    ]  # fmt: skip
    answer = app_client.post("/graphql", json=ops)
    assert answer.status_code == 200
    assert answer.json() == [
        {"data": {"district": {"name": "静安区"}}},
        {"data": {"subdistrict": {"code": "310106015"}}},
    ]
    with database_work(app_client) as sql:
        too_many = app_client.post("/graphql", json=ops * 5 + ops[:1])
        assert sql == []  # none of them ran
    assert too_many.status_code == 400 and code_of(too_many.json()) == "BAD_REQUEST"
    assert "10 operations" in too_many.json()["errors"][0]["message"]


def test_a_large_body_is_refused(app_client: TestClient) -> None:
    query = json.dumps({"query": "{ __typename }", "pad": "x" * 2_000_000}).encode()
    declared = app_client.post(
        "/graphql", content=query, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413 and code_of(declared.json()) == "PAYLOAD_TOO_LARGE"
    claimed = app_client.post(  # refused from the header, before reading the body
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"content-length": "2000000"}
    )
    assert claimed.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: stopped while reading
        for start in range(0, len(query), 65_536):
            yield query[start : start + 65_536]

    streamed = app_client.post("/graphql", content=chunks())
    assert streamed.status_code == 413 and code_of(streamed.json()) == "PAYLOAD_TOO_LARGE"


def test_a_flood_is_slowed_per_caller(demo_db: Any, tokens: dict[str, Any]) -> None:
    settings = demo_db.settings(rate_limit_per_second=0.01, rate_limit_burst=5)
    with TestClient(create_app(settings)) as public:
        answers = [public.post("/graphql", json={"query": "{ __typename }"}) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert code_of(answers[-1].json()) == "RATE_LIMITED"
        worker = TestClient(public.app)
        worker.headers["Authorization"] = f"Bearer {tokens['grid_worker']['token']}"
        assert worker.post("/graphql", json={"query": "{ __typename }"}).status_code == 200


def test_a_client_paging_through_a_scope_is_never_slowed(
    demo_db: Any, tokens: dict[str, Any]
) -> None:
    page = """query($after: String) { households(scope: "310106015", first: 100, after: $after) {
                pageInfo { hasNextPage endCursor } edges { node { code } } } }"""
    with TestClient(create_app(demo_db.settings())) as app:
        client = TestClient(app.app)
        client.headers["Authorization"] = f"Bearer {tokens['grid_center']['token']}"
        after, codes = None, set()
        for _ in range(30):
            answer = client.post("/graphql", json={"query": page, "variables": {"after": after}})
            assert answer.status_code == 200, answer.text
            households = answer.json()["data"]["households"]
            codes.update(e["node"]["code"] for e in households["edges"])
            after = households["pageInfo"]["endCursor"]
        assert len(codes) == 3000


def test_the_rate_limiter_admits_a_steady_pace_and_refuses_a_flood() -> None:
    now = [0.0]
    limiter = RateLimiter(50, 200, clock=lambda: now[0])
    for _ in range(40 * 60):  # 40 requests a second for a minute
        assert limiter.take("worker:A") == 0
        now[0] += 1 / 40
    flood = [limiter.take("worker:B") for _ in range(201)]
    assert flood[:200] == [0] * 200 and flood[200] == pytest.approx(1 / 50)
    assert limiter.take("worker:A") == 0  # one caller's flood is its own


def bearer(client: TestClient, token: str) -> Any:
    return client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"}
    )


def worker_row(url: str, code: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return worker_by_code(connection=connection, code=code)
    finally:
        engine.dispose()


def test_expired_forged_and_foreign_tokens_are_refused(
    app_client: TestClient, demo_db: Any, tokens: dict[str, Any]
) -> None:
    settings = demo_db.settings()
    worker = worker_row(demo_db.owner_url, tokens["grid_worker"]["worker"])
    assert bearer(app_client, issue_token(settings, worker)).status_code == 200
    header, payload, signature = issue_token(settings, worker).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"], claims["scope"] = "GRID_CENTER", ["310106015"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused = {
        "expired": issue_token(settings, worker, ttl=-dt.timedelta(minutes=1)),
        "forged": f"{header}.{forged_payload}.{signature}",
        "foreign": issue_token(demo_db.settings(secret_key="a" * 64), worker),
        "garbage": "not-a-token",
    }
    for kind, token in refused.items():
        answer = bearer(app_client, token)
        assert answer.status_code == 401, kind
        assert code_of(answer.json()) == "UNAUTHENTICATED", kind
    assert "expired" in bearer(app_client, refused["expired"]).json()["errors"][0]["message"]


def test_a_revoked_token_is_refused(fresh_db: Any, tokens: dict[str, Any]) -> None:
    code = tokens["grid_worker"]["worker"]
    settings = fresh_db.settings()
    token = issue_token(settings, worker_row(fresh_db.owner_url, code))
    engine = create_engine(fresh_db.owner_url)
    try:
        with engine.begin() as connection:
            revoke_tokens(connection=connection, code=code)
    finally:
        engine.dispose()
    with TestClient(create_app(settings)) as client:
        answer = bearer(client, token)
        assert answer.status_code == 401 and code_of(answer.json()) == "UNAUTHENTICATED"
        assert "revoked" in answer.json()["errors"][0]["message"]
        fresh = issue_token(settings, worker_row(fresh_db.owner_url, code))
        assert bearer(client, fresh).status_code == 200


def test_a_nul_character_is_refused_before_any_sql(app_client: TestClient) -> None:
    """PostgreSQL text cannot hold NUL: a string carrying one (written in the query or sent as a
    variable) is a clear BAD_USER_INPUT, never a server error (the fuzzer found these). As the
    public: a worker's token may read the worker's row (cached for 5 s), which is not the
    operation's SQL."""
    client = app_client
    with database_work(client) as sql:
        for query, variables in (
            ('{ building(code: "31\\u0000") { name } }', {}),
            ('{ grid(code: "\\u0000/") { code } }', {}),
            ("query($c: String!) { household(code: $c) { code } }", {"c": "1\x00"}),
            ("query($s: String!) { cases(filter: {scope: $s}) { totalCount } }", {"s": "3101\x00"}),
        ):
            err = error(client, query, **variables)
            assert err["extensions"]["code"] == "BAD_USER_INPUT" and "NUL" in err["message"]
        assert sql == []
    # A backslash followed by u0000 is text, not NUL.
    body = gql(client, "query($c: String!) { building(code: $c) { name } }", c="\\u0000")
    assert all(e["extensions"]["code"] != "BAD_USER_INPUT" or "NUL" not in e["message"]
               for e in body.get("errors", []))  # fmt: skip
