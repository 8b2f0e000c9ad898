"""The README's example queries work as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gq import ok
from starlette.testclient import TestClient

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
QUERIES = re.findall(r"```graphql\n(.*?)```", README, flags=re.S)


def test_readme_has_examples() -> None:
    assert len(QUERIES) >= 4


@pytest.mark.parametrize("query", QUERIES, ids=[f"example{i + 1}" for i in range(len(QUERIES))])
def test_readme_example_runs(client: TestClient, query: str) -> None:
    data = ok(client, query)
    for value in data.values():
        assert value, f"empty answer for {list(data)}"
        if isinstance(value, dict) and "totalCount" in value:
            assert value["totalCount"] > 0
