"""Hostile input (issue 11): schemathesis generates GraphQL operations from the live schema (read by
introspection from the app) and sends them as the public and as the demo user of every role. No
answer may be a server error (status 500, or an error coded INTERNAL_SERVER_ERROR), leak a stack
trace or SQL, or carry an error without an ``extensions.code``.

The operations run against a copy of the demo of this module's own (they include mutations), in
process through Starlette's TestClient, with the rate limit raised (10,000/s, burst 100,000) so
that the fuzzer is not throttled. The CI-sized run tries GRIDMAP_FUZZ_OPERATIONS operations in
all (default 2,000, about 50 s here), shared equally by the roles, positive (valid operations)
and negative (wrong arguments) alike, with a fixed seed; ``make fuzz`` runs 20,000. The figures
are printed at the end of the module and written to bench/out/fuzz-ci.json (fuzz-N.json for
another N)."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import Databases, ScratchDB, demo_tokens
from graphql import GraphQLError, Node, StringValueNode, parse
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from starlette.testclient import TestClient

from api.app import create_app

OPERATIONS = int(os.environ.get("GRIDMAP_FUZZ_OPERATIONS", "2000"))
SEED = int(os.environ.get("GRIDMAP_FUZZ_SEED", "11"))
ROLES = ["public", "grid_center", "community", "grid_worker", "department"]
OUT = (
    Path(__file__).resolve().parent.parent
    / "bench"
    / "out"
    / ("fuzz-ci.json" if "GRIDMAP_FUZZ_OPERATIONS" not in os.environ else f"fuzz-{OPERATIONS}.json")
)

# What a stack trace or SQL looks like in an answer; SQL keywords are matched case-sensitively.
LEAKS = re.compile(
    r'Traceback|File "|psycopg|sqlalchemy|SQLAlchemy|Background on this error|\bLINE \d+:'
    r"|SQLSTATE|\bSELECT |\bINSERT INTO\b|\bUPDATE \w+ SET\b|\bDELETE FROM\b|\bWHERE \w"
)

FIGURES: dict[str, Any] = {"operations": OPERATIONS, "seed": SEED, "roles": {}}

# A file arrives only in a multipart request; in JSON the fuzzer sends text where it belongs.
schemathesis.graphql.scalar(
    "Upload", st.text(max_size=20).map(lambda text: StringValueNode(value=text))
)


@pytest.fixture(scope="module")
def fuzz_db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    db = databases.make("fuzz", template=template_db.name)
    yield db
    databases.drop(db.name)


@pytest.fixture(scope="module")
def fuzz_client(fuzz_db: ScratchDB) -> Iterator[TestClient]:
    app = create_app(fuzz_db.settings(rate_limit_per_second=10_000.0, rate_limit_burst=100_000))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_client: TestClient) -> Any:
    """The schema as the running app tells it (introspection), for schemathesis."""
    return schemathesis.graphql.from_asgi("/graphql", fuzz_client.app)


@pytest.fixture(scope="module")
def fuzz_tokens(fuzz_db: ScratchDB) -> dict[str, dict[str, str]]:
    return demo_tokens(fuzz_db)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not FIGURES["roles"]:
        return
    roles = FIGURES["roles"].values()
    FIGURES["total"] = {
        key: round(sum(r[key] for r in roles), 1)
        for key in ("operations", "answered", "server_errors", "leaks", "uncoded_errors", "seconds")
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(FIGURES, indent=2, ensure_ascii=False) + "\n")
    print(f"\nGraphQL fuzzing ({OUT.relative_to(OUT.parents[2])}):")
    for role, r in FIGURES["roles"].items():
        print(
            f"  {role:12} {r['operations']:6} operations ({r['mutations']} mutations, "
            f"{r['answered']} answered without error) in "
            f"{r['seconds']:.1f} s: statuses {r['statuses']}, error codes {r['error_codes']}, "
            f"{r['server_errors']} server errors, {r['leaks']} leaks, "
            f"{r['uncoded_errors']} uncoded errors"
        )
    print(f"  total        {FIGURES['total']}")


def _strings(query: str) -> list[str]:
    """The string literals of a query, as a JSON answer would quote them, longest first."""
    try:
        document = parse(query)
    except GraphQLError:
        return []
    values = {n.value for n in _nodes(document) if isinstance(n, StringValueNode)}
    quoted = {json.dumps(v, ensure_ascii=False)[1:-1] for v in values} | values
    return sorted((v for v in quoted if v), key=len, reverse=True)


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    for key in node.keys:
        value = getattr(node, key, None)
        for child in value if isinstance(value, tuple) else [value]:
            if isinstance(child, Node):
                yield from _nodes(child)


def _problems(status: int, text: str, query: str) -> tuple[list[str], list[str]]:
    """(the answer's error codes, what is wrong with it). The query's own strings, which the
    fuzzer draws partly from the app's source (SQL among them) and an answer may quote back
    ("no District has code '…'"), are not leaks."""
    problems = []
    if status >= 500:
        problems.append(f"status {status}")
    unquoted = text
    for value in _strings(query):
        unquoted = unquoted.replace(value, "")
    if leak := LEAKS.search(unquoted):
        problems.append(f"leak: {leak.group()!r}")
    try:
        body = json.loads(text)
    except ValueError:
        return [], [*problems, "not JSON"]
    answers = body if isinstance(body, list) else [body]
    errors = [e for a in answers if isinstance(a, dict) for e in a.get("errors") or []]
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    if None in codes:
        problems.append("an error without extensions.code")
    if "INTERNAL_SERVER_ERROR" in codes:
        problems.append("INTERNAL_SERVER_ERROR")
    return [str(c) for c in codes], problems


@pytest.mark.parametrize("role", ROLES)
def test_fuzz(
    role: str,
    fuzz_client: TestClient,
    fuzz_schema: Any,
    fuzz_tokens: dict[str, dict[str, str]],
) -> None:
    headers = {} if role == "public" else {"Authorization": f"Bearer {fuzz_tokens[role]['token']}"}
    per_role = OPERATIONS // len(ROLES)
    statuses: Counter[int] = Counter()
    error_codes: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    count = {"operations": 0, "mutations": 0, "answered": 0}

    @seed(SEED + ROLES.index(role))
    @settings(
        max_examples=per_role,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(fuzz_schema.as_strategy(mode) for mode in GenerationMode))
    def fuzz(case: Any) -> None:
        body = {"query": case.body}  # schemathesis's GraphQL case: the query text
        response = fuzz_client.post("/graphql", json=body, headers=headers)
        count["operations"] += 1
        count["mutations"] += body["query"].lstrip().startswith("mutation")
        statuses[response.status_code] += 1
        codes, problems = _problems(response.status_code, response.text, case.body)
        error_codes.update(codes)
        count["answered"] += not codes  # data and no error: the fuzzer got past the checks
        if problems:
            failures.append(
                {"role": role, "problems": problems, "request": body,
                 "status": response.status_code, "response": response.text[:2000]}
            )  # fmt: skip

    started = time.perf_counter()
    fuzz()
    seconds = time.perf_counter() - started
    FIGURES["roles"][role] = {
        **count,
        "seconds": round(seconds, 1),
        "statuses": dict(sorted(statuses.items())),
        "error_codes": dict(error_codes.most_common()),
        "server_errors": sum(1 for f in failures if any(
            p.startswith("status 5") or p == "INTERNAL_SERVER_ERROR" for p in f["problems"])),
        "leaks": sum(1 for f in failures if any(p.startswith("leak") for p in f["problems"])),
        "uncoded_errors": sum(1 for f in failures if "an error without extensions.code" in
                              f["problems"]),
    }  # fmt: skip
    assert count["operations"] >= per_role * 0.9, count
    assert not failures, json.dumps(failures[:5], indent=1, ensure_ascii=False)
