"""`gridmap grids draw --dry-run` on the demo: a proposal inside the tolerance that places every
building once, codes of the community, the report the issue names, a map that works offline,
and nothing changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ScratchDB
from offline import chromium, open_offline
from playwright.sync_api import Browser
from test_family_files import owner

COMMUNITY = "310106015001"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def test_a_dry_run_proposes_and_maps_and_changes_nothing(
    demo_db: ScratchDB, tmp_path: Path, browser: Browser
) -> None:
    grids = "SELECT count(*) FROM grid"
    before = owner(demo_db, grids)
    out = tmp_path / "grids.html"
    done = demo_db.gridmap("grids", "draw", "--community", COMMUNITY, "--target-households",
                           "300", "--dry-run", "--map", str(out), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    proposal = json.loads(done.stdout)
    assert {"grids", "cv"} <= set(proposal)
    for grid in proposal["grids"]:
        assert {"code", "households", "polsbyPopper", "contiguous"} <= set(grid)
        assert grid["code"].startswith(COMMUNITY) and len(grid["code"]) == 15
        assert grid["contiguous"]
    households = [g["households"] for g in proposal["grids"]]
    registered = owner(demo_db, "SELECT count(*) FROM household h JOIN building b ON"
                       " b.id = h.building_id WHERE b.code LIKE %s AND h.moved_out IS NULL",
                       COMMUNITY + "%")[0][0]  # fmt: skip
    assert sum(households) == registered  # every household, once
    assert all(255 <= n <= 345 for n in households) or proposal["problems"]
    assert len({g["code"] for g in proposal["grids"]}) == len(households)
    assert owner(demo_db, grids) == before

    page = open_offline(browser, out.as_uri(), ready=".grid-new")
    assert page.locator(".grid-new").count() == len(households)
    assert page.locator(".grid-old").count() == owner(
        demo_db, "SELECT count(*) FROM grid WHERE code LIKE %s", COMMUNITY + "%")[0][0]


@pytest.mark.parametrize(("args", "message"), [
    (["--community", "310106015999", "--target-households", "300", "--dry-run"],
     "no community 310106015999"),
    (["--community", COMMUNITY, "--target-households", "99999", "--dry-run"], "target"),
])  # fmt: skip
def test_refusals_name_what_is_wrong(demo_db: ScratchDB, tmp_path: Path, args: list[str],
                                     message: str) -> None:  # fmt: skip
    done = demo_db.gridmap("grids", "draw", *args, "--map", str(tmp_path / "m.html"))
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
