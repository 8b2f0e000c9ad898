"""Bad input gets an error naming the argument and the problem: never a 500, never a trace."""

from __future__ import annotations

from typing import Any

import pytest
from gq import error, gql
from starlette.testclient import TestClient

BOWTIE = {
    "type": "Polygon",
    "coordinates": [[[121.45, 31.24], [121.46, 31.25], [121.46, 31.24], [121.45, 31.25],
                     [121.45, 31.24]]],
}  # fmt: skip


def no_trace(body: Any) -> None:
    text = str(body)
    for leak in ("Traceback", 'File "', "psycopg2", "SELECT ", "sqlalchemy"):
        assert leak not in text, text


@pytest.mark.parametrize(
    ("geojson", "problem"),
    [
        ({"type": "Polygon", "coordinates": [[[121.45, 31.24], [121.46]]]}, "malformed"),
        ({"type": "Polygone", "coordinates": []}, "unknown GeoJSON geometry type"),
        ({"coordinates": [1, 2]}, "unknown GeoJSON geometry type"),
        ("POLYGON((0 0, 1 0, 1 1, 0 0))", "expected a GeoJSON geometry object"),
        (BOWTIE, "invalid Polygon"),
        ({"type": "Point", "coordinates": [200, 31]}, "out of range"),
    ],
)
def test_malformed_geojson_variable_names_the_argument(
    client: TestClient, geojson: Any, problem: str
) -> None:
    err = error(client, "query($g: GeoJSON!) { buildings(within: $g) { totalCount } }", g=geojson)
    assert err["message"].startswith("within: ") and problem in err["message"], err
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "argument": "within"}
    no_trace(err)


def test_malformed_geojson_literal_names_the_argument(client: TestClient) -> None:
    err = error(
        client, '{ grids(intersects: {type: "Polygon", coordinates: [[1, 2]]}) { totalCount } }'
    )
    assert err["message"].startswith("intersects: malformed Polygon")
    assert err["extensions"]["argument"] == "intersects"


@pytest.mark.parametrize(
    ("query", "argument", "code"),
    [
        ('{ grid(code: "310106015999999") { code } }', "code", "NOT_FOUND"),
        ('{ household(code: "nope") { code } }', "code", "NOT_FOUND"),
        ('{ grids(scope: "310106999") { totalCount } }', "scope", "NOT_FOUND"),
        ('{ grids(scope: "31010601") { totalCount } }', "scope", "BAD_USER_INPUT"),
        ("{ grids(first: 501) { totalCount } }", "first", "BAD_USER_INPUT"),
        ("{ grids(first: -1) { totalCount } }", "first", "BAD_USER_INPUT"),
        ('{ grids(after: "garbage!") { totalCount } }', "after", "BAD_USER_INPUT"),
        ("{ district(code: \"310106\") { subdistricts(first: 900) { totalCount } } }", "first",
         "BAD_USER_INPUT"),
        ("{ placeAt(lon: 200, lat: 31) { grid { code } } }", "lon", "BAD_USER_INPUT"),
        ("{ placeAt(lon: 121, lat: -95) { grid { code } } }", "lat", "BAD_USER_INPUT"),
        ("{ buildings(near: {lon: 121.45, lat: 91, meters: 10}) { totalCount } }", "near.lat",
         "BAD_USER_INPUT"),
        ("{ buildings(near: {lon: 121.45, lat: 31.2, meters: -5}) { totalCount } }",
         "near.meters", "BAD_USER_INPUT"),
        ('{ node(id: "not-an-id") { id } }', "id", "BAD_USER_INPUT"),
    ],
)  # fmt: skip
def test_bad_arguments_are_named(client: TestClient, query: str, argument: str, code: str) -> None:
    err = error(client, query)
    assert err["message"].startswith(f"{argument}: "), err
    assert err["extensions"] == {"code": code, "argument": argument}
    no_trace(err)


def test_an_unknown_code_leaves_the_rest_of_the_answer(client: TestClient) -> None:
    body = gql(client, '{ a: district(code: "310106") { code } b: grid(code: "1") { code } }')
    assert body["data"] == {"a": {"code": "310106"}, "b": None}
    assert body["errors"][0]["path"] == ["b"]


def test_invalid_documents_and_requests(client: TestClient) -> None:
    body = gql(client, "{ grids { nope } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "nope" in body["errors"][0]["message"]
    body = gql(client, "{ grids { ")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    body = gql(client, "query($n: Int!) { grids(first: $n) { totalCount } }", n="ten")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    for raw in (b"{not json", b"[1, 2]", b'{"query": 5}'):
        response = client.post(
            "/graphql", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["message"]
        no_trace(response.text)
    huge = client.post("/graphql", content=b" " * 2_000_000)
    assert huge.status_code == 413
