"""Calling the GraphQL endpoint as a client does."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST a query; the body as JSON (with ``data`` and maybe ``errors``)."""
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


def ok(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """The ``data`` of a query that must succeed."""
    body = gql(client, query, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def error(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """The one error of a query that must fail."""
    body = gql(client, query, **variables)
    assert body.get("errors"), body
    assert len(body["errors"]) == 1, body["errors"]
    return body["errors"][0]
