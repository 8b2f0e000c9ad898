"""The HTTP surface: landing page, GraphiQL, the committed schema, health."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from api.schema import sdl

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == sdl(), "schema.graphql is stale: run `gridmap schema -o schema.graphql`"


def test_landing_page_links_the_api_the_maps_and_the_docs(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for link in ('href="/graphql"', 'href="/docs"', "<h2>Maps</h2>"):
        assert link in page.text
    assert client.get("/docs").text.startswith("# gridmap")
    assert client.get("/schema.graphql").text == sdl()


def test_graphiql_in_a_browser_and_get_queries(client: TestClient) -> None:
    page = client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    got = client.get("/graphql", params={"query": '{ district(code: "310106") { name } }'})
    assert got.json() == {"data": {"district": {"name": "静安区"}}}


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": True}
