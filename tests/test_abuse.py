"""Oversized and abusive requests (issue 11) are refused before any database work, each with an
HTTP status (413 too large, 400 too deep or too many) and a GraphQL error with a code: huge
variables, deeply nested input, thousands of aliases, batches, huge query text, many operations,
fragments or variables in one document, one field selected again and again.

"Before any database work" is observed, not assumed: listeners on the app's two engines record
every connection taken from a pool and every statement sent while the request is answered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import as_role, database_work
from gq import ok
from starlette.testclient import TestClient

from api.limits import (
    MAX_DUPLICATES,
    MAX_FRAGMENTS,
    MAX_INPUT_DEPTH,
    MAX_INPUT_VALUES,
    MAX_OPERATIONS,
    MAX_QUERY_CHARS,
    MAX_VARIABLE_DEFINITIONS,
)

TOO_COMPLEX = "QUERY_TOO_COMPLEX"
TOO_LARGE = "PAYLOAD_TOO_LARGE"


def post(client: TestClient, body: Any) -> Any:
    return client.post(
        "/graphql", content=json.dumps(body), headers={"content-type": "application/json"}
    )


def refusal(client: TestClient, body: Any, status: int, code: str) -> str:
    """POST ``body`` and check it is refused with ``status`` and ``code`` having touched no
    database; the error's message."""
    with database_work(client) as work:
        response = post(client, body)
    assert response.status_code == status, response.text[:500]
    answer = response.json()
    assert answer.get("data") is None, answer
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == code, error
    assert "Traceback" not in response.text and "SELECT" not in response.text
    assert work == [], work[:5]
    return str(error["message"])


def test_the_listener_sees_database_work(app_client: TestClient) -> None:
    """The control: an ordinary read does take a connection and send statements."""
    with database_work(app_client) as work:
        ok(app_client, '{ district(code: "310106") { name } }')  # compiled
    assert "checkout" in work
    with database_work(app_client) as work:
        ok(app_client, '{ workers(first: 1) { edges { node { code } } } }')  # the resolvers
    assert "checkout" in work and any("SELECT" in w for w in work[1:])


def test_huge_variables_are_refused(app_client: TestClient) -> None:
    query = "query($c: [String!]) { cases(filter: {categories: $c}) { totalCount } }"
    # Over the body limit (1 MB): refused from Content-Length, before parsing the JSON.
    big = {"query": query, "variables": {"c": ["FACILITY_REPAIR"] * 70_000}}
    assert "1,000,000 bytes" in refusal(app_client, big, 413, TOO_LARGE)
    # Under it, but more values than any input needs.
    many = {"query": query, "variables": {"c": ["x"] * (MAX_INPUT_VALUES + 1)}}
    assert f"{MAX_INPUT_VALUES:,} values" in refusal(app_client, many, 400, TOO_COMPLEX)
    # Undeclared variables count the same: they are parsed and held all the same.
    spare = {"query": "{ __typename }", "variables": {f"v{i}": i for i in range(60_000)}}
    assert "values" in refusal(app_client, spare, 400, TOO_COMPLEX)


def nested_json(levels: int, kind: str) -> str:
    inner, outer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return inner * levels + "1" + outer * levels


@pytest.mark.parametrize("kind", ["list", "object"])
@pytest.mark.parametrize("levels", [MAX_INPUT_DEPTH + 1, 300, 1000])
def test_deeply_nested_variables_are_refused(
    app_client: TestClient, kind: str, levels: int
) -> None:
    """300 levels used to be a server error (orjson writes at most 255); over 1,024 the JSON
    parser refuses the body itself."""
    body = '{"query": "query($v: GeoJSON) { __typename }", "variables": {"v": %s}}'
    with database_work(app_client) as work:
        response = app_client.post(
            "/graphql",
            content=(body % nested_json(levels, kind)).encode(),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400, response.text[:300]
    assert response.json()["errors"][0]["extensions"]["code"] == TOO_COMPLEX
    assert f"more than {MAX_INPUT_DEPTH} levels" in response.json()["errors"][0]["message"]
    assert work == []
    beyond_json = body % nested_json(1100, kind)
    response = app_client.post(
        "/graphql", content=beyond_json.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"]


def test_deeply_nested_input_in_the_query_is_refused(app_client: TestClient) -> None:
    for value in ("{a: " * 250 + "1" + "}" * 250, "[" * 250 + "1" + "]" * 250):
        query = "{ cases(filter: {within: " + value + "}) { totalCount } }"
        message = refusal(app_client, {"query": query}, 400, TOO_COMPLEX)
        assert "nested too deeply" in message


def test_a_real_geometry_is_not_nested_too_deeply(
    app_client: TestClient, tokens: dict[str, Any]
) -> None:
    """A multipolygon (6 levels with the variables' object) is far from the limit."""
    square = [[121.44, 31.24], [121.46, 31.24], [121.46, 31.26], [121.44, 31.26], [121.44, 31.24]]
    within = {"type": "MultiPolygon", "coordinates": [[square]]}
    center = as_role(app_client, tokens, "grid_center")
    query = "query($w: GeoJSON) { cases(filter: {within: $w}) { totalCount } }"
    assert ok(center, query, w=within)["cases"]["totalCount"] >= 0


def test_thousands_of_aliases_are_refused(app_client: TestClient) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(3000)) + " }"
    assert "200 aliases" in refusal(app_client, {"query": query}, 400, TOO_COMPLEX)


def test_batches_are_refused_whole_or_answered_one_by_one(app_client: TestClient) -> None:
    one = {"query": "{ __typename }"}
    assert "not 10000" in refusal(app_client, [one] * 10_000, 400, "BAD_REQUEST")
    assert "1 to 10 operations" in refusal(app_client, [one] * 11, 400, "BAD_REQUEST")
    assert "1 to 10 operations" in refusal(app_client, [], 400, "BAD_REQUEST")
    # Ten operations each at the text limit are over the body limit together.
    padded = {"query": "#" + "x" * (MAX_QUERY_CHARS - 20) + "\n{ __typename }"}
    assert "bytes" in refusal(app_client, [padded] * 10, 413, TOO_LARGE)
    # In a batch that may run, an abusive operation is refused on its own, without SQL.
    aliases = {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(300)) + " }"}
    with database_work(app_client) as work:
        answer = post(app_client, [aliases, aliases])
    assert answer.status_code == 200 and work == []
    assert [a["errors"][0]["extensions"]["code"] for a in answer.json()] == [TOO_COMPLEX] * 2


def test_huge_query_text_is_refused(app_client: TestClient) -> None:
    """Comments and strings are not tokens: the text is bounded on its own."""
    comment = "# " + "x" * MAX_QUERY_CHARS + "\n{ __typename }"
    string = '{ district(code: "%s") { name } }' % ("3" * MAX_QUERY_CHARS)
    for query in (comment, string):
        message = refusal(app_client, {"query": query}, 413, TOO_LARGE)
        assert f"over the limit of {MAX_QUERY_CHARS:,}" in message
    # Over it by the length of the text, not of the JSON (escapes count once).
    just_under = "# " + "x" * (MAX_QUERY_CHARS - 40) + "\n{ __typename }"
    assert ok(app_client, just_under) == {"__typename": "Query"}


def test_many_operations_fragments_or_variables_in_a_document_are_refused(
    app_client: TestClient,
) -> None:
    operations = " ".join(f"query q{i} {{ __typename }}" for i in range(MAX_OPERATIONS + 1))
    body = {"query": operations, "operationName": "q1"}
    assert f"{MAX_OPERATIONS + 1} operations" in refusal(app_client, body, 400, TOO_COMPLEX)
    thousands = " ".join(f"query q{i} {{ __typename }}" for i in range(2500))
    refusal(app_client, {"query": thousands, "operationName": "q1"}, 400, TOO_COMPLEX)
    fragments = "{ ...f0 } " + " ".join(
        f"fragment f{i} on Query {{ __typename }}" for i in range(MAX_FRAGMENTS + 1)
    )
    assert "fragments" in refusal(app_client, {"query": fragments}, 400, TOO_COMPLEX)
    variables = "query(" + " ".join(f"$v{i}: Int" for i in range(MAX_VARIABLE_DEFINITIONS + 1))
    message = refusal(app_client, {"query": variables + ") { __typename }"}, 400, TOO_COMPLEX)
    assert "variable definitions" in message
    # At the limits, the document is served.
    allowed = " ".join(f"query q{i} {{ __typename }}" for i in range(MAX_OPERATIONS))
    answer = post(app_client, {"query": allowed, "operationName": "q3"})
    assert answer.status_code == 200 and answer.json() == {"data": {"__typename": "Query"}}


def test_one_field_selected_again_and_again_is_refused(app_client: TestClient) -> None:
    """graphql-core compares fields of one response name pairwise: 330 copies cost it 0.8 s."""
    copy = "grids(first: 1) { totalCount }"
    query = "{ " + " ".join([copy] * (MAX_DUPLICATES + 2)) + " }"
    message = refusal(app_client, {"query": query}, 400, TOO_COMPLEX)
    assert "'grids'" in message and f"{MAX_DUPLICATES} times" in message
    # Inline fragments merge into the selection they are in: counted the same.
    inline = "{ " + " ".join(f"... on Query {{ {copy} }}" for _ in range(MAX_DUPLICATES + 2))
    refusal(app_client, {"query": inline + " }"}, 400, TOO_COMPLEX)
    # A field repeated a few times, as fragments of a client do, is fine.
    few = "{ " + " ".join([copy] * 5) + " }"
    assert ok(app_client, few)["grids"]["totalCount"] > 0


def test_a_get_is_refused_the_same_way(app_client: TestClient) -> None:
    operations = " ".join(f"query q{i} {{ __typename }}" for i in range(MAX_OPERATIONS + 1))
    with database_work(app_client) as work:
        response = app_client.get("/graphql", params={"query": operations, "operationName": "q0"})
    assert response.status_code == 400 and work == []
    assert response.json()["errors"][0]["extensions"]["code"] == TOO_COMPLEX


def test_a_worker_is_refused_the_same_way(app_client: TestClient, tokens: dict[str, Any]) -> None:
    """With a token, only the worker's row may be read (cached for a few seconds): the
    refusal itself is the same."""
    worker = as_role(app_client, tokens, "grid_worker")
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(300)) + " }"
    response = worker.post("/graphql", json={"query": query})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == TOO_COMPLEX


def test_a_nul_in_a_variables_key_is_refused(app_client: TestClient) -> None:
    body = {"query": "{ __typename }", "variables": {"a\x00": 1}}
    with database_work(app_client) as work:
        response = post(app_client, body)
    assert response.status_code == 200 and work == []
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
