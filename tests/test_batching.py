"""No N+1: a nested query costs the same number of SQL statements however many rows it returns."""

from __future__ import annotations

from typing import Any

from gq import ok
from sqlalchemy import event
from starlette.testclient import TestClient

from api.app import create_app

NESTED = """
query($n: Int!) {
  subdistrict(code: "310106015") {
    code householdCount
    communities(first: $n) { edges { node {
      code householdCount residentCount
      grids(first: $n) { totalCount edges { node {
        code householdCount workers { code } community { code }
        microGrids(first: $n) { edges { node {
          code grid { code }
          buildings(first: $n) { edges { node {
            code householdCount residentCount
            households(first: $n) { totalCount edges { node {
              code householdClass building { code } members { name }
            } } }
          } } }
        } } }
      } } }
    } } }
  }
}"""


def test_nested_query_statement_count_does_not_grow_with_rows(demo_db: Any) -> None:
    statements: list[str] = []
    with TestClient(create_app(demo_db.settings())) as client:
        event.listen(
            client.app.state.engine,  # type: ignore[attr-defined]
            "before_cursor_execute",
            lambda conn, cursor, sql, *rest: statements.append(sql),
        )
        counts = {}
        rows = {}
        for n in (1, 3, 6):
            statements.clear()
            data = ok(client, NESTED, n=n)
            counts[n] = len(statements)
            rows[n] = str(data).count("'code'")
    assert rows[1] < rows[3] < rows[6], rows  # more rows came back …
    assert counts[1] == counts[3] == counts[6], counts  # … for the same statements
    assert counts[6] <= 20, statements
