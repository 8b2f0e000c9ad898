"""The command line as a person uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRIDMAP, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "command", [[], ["db"], ["db", "up"], ["db", "migrate"], ["db", "status"], ["db", "reset"],
                ["db", "down"], ["demo"], ["serve"], ["schema"]]
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
