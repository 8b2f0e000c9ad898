"""The command line as a person uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ScratchDB

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRIDMAP, *args], capture_output=True, text=True, timeout=120,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    "command", [[], ["db"], ["db", "up"], ["db", "migrate"], ["db", "status"], ["db", "reset"],
                ["db", "backup"], ["db", "restore"],
                ["db", "down"], ["demo"], ["serve"], ["schema"], ["auth"], ["auth", "token"],
                ["auth", "demo-tokens"], ["auth", "revoke"], ["auth", "password"], ["map"],
                ["map", "coverage"], ["map", "jobs"], ["route"], ["network"],
                ["network", "build"], ["open311"], ["open311", "key"]]
)  # fmt: skip
def test_every_command_explains_itself(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: gridmap" in done.stdout and len(done.stdout.splitlines()) > 4


def test_schema_check_passes_on_the_committed_file() -> None:
    done = run("schema", "--check")
    assert done.returncode == 0, done.stderr


def test_status_finds_the_local_cluster_with_no_environment() -> None:
    done = run("db", "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["running"] is True
    assert status["revision"] == status["head"]


def test_tokens_from_the_command_line_open_the_api(demo_db: ScratchDB, client: Any) -> None:
    on_demo = {"GRIDMAP_OWNER_DATABASE_URL": demo_db.owner_url}
    done = run("auth", "demo-tokens", "--json", env=on_demo)
    assert done.returncode == 0, done.stderr
    demo = json.loads(done.stdout)
    assert set(demo) == {"grid_center", "community", "grid_worker", "department"}
    assert all(set(v) == {"worker", "token"} for v in demo.values())
    done = run("auth", "token", "--worker", demo["grid_worker"]["worker"], "--ttl", "5m",
               env=on_demo)  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token and token.count(".") == 2  # the token alone on standard output
    answer = client.post("/graphql", json={"query": "{ households { totalCount } }"},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert 0 < answer.json()["data"]["households"]["totalCount"] < 5000
    unknown = run("auth", "token", "--worker", "NOBODY-1", env=on_demo)
    assert unknown.returncode != 0 and "NOBODY-1" in unknown.stderr
