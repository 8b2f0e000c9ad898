"""The coverage map: served as the caller, written to a file by the CLI, and drawn by headless
Chromium (Debian's, never a downloaded one; tests/offline.py) with no network: from a local
server, and from disk."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ScratchDB, demo_tokens
from offline import chromium, open_offline, serve
from playwright.sync_api import Browser, Page
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from api.app import create_app
from api.maps import coverage_data
from geo.access import PUBLIC
from geo.coverage import LEVELS
from maps.assets import FILES

SCOPE = "310106015"  # the demo subdistrict: 10 grids
GRIDS = 10
HOUSEHOLD_CODE = re.compile(r"\d{21}-\d+-\d+")
REMOTE_LINK = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")
CELL = "path.coverage-cell"  # drawn: the map is ready


def coverage(client: TestClient, **params: str) -> Any:
    return client.get("/maps/coverage", params={"scope": SCOPE, **params})


def test_grid_center_map_has_every_level_and_the_overdue_households(client: TestClient) -> None:
    page = coverage(client, level="GRID")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<script src="/maps/assets/leaflet/dist/leaflet.js">' in html
    assert not REMOTE_LINK.search(html), "a link leaves the machine"
    for name in (
        "网格 grids (10)",
        "微网格 micro-grids",
        "楼栋 buildings",
        "逾期C类户",
        "蕃瓜弄第1网格",
    ):
        assert json.dumps(name)[1:-1] in html  # as the page's script writes it
    assert "天目西路街道" in html
    assert HOUSEHOLD_CODE.search(html), "the overdue class C households are drawn"


def test_every_asset_the_page_links_is_served(client: TestClient) -> None:
    html = coverage(client).text
    links = re.findall(r'(?:src|href)="(/maps/assets/[^"]+)"', html)
    assert len(links) == sum(len(files) for files in FILES.values())
    for link in links:
        got = client.get(link)
        assert got.status_code == 200, link
    font = "/maps/assets/@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2"
    assert client.get(font).status_code == 200  # what the style sheet refers to loads too


def test_base_map_only_when_a_tile_server_is_set(client: TestClient, demo_db: ScratchDB) -> None:
    assert "L.tileLayer" not in coverage(client).text
    tiles = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
    settings = demo_db.settings(map_tiles=tiles, map_tiles_attribution="区测绘院")
    with TestClient(create_app(settings)) as c:
        html = coverage(c).text
    assert "L.tileLayer" in html and json.dumps(tiles) in html
    assert json.dumps("区测绘院")[1:-1] in html


def test_public_map_has_no_household_and_no_small_counts(
    app_client: TestClient, demo_db: ScratchDB
) -> None:
    page = coverage(app_client, level="BUILDING")
    assert page.status_code == 200
    html = page.text
    assert not HOUSEHOLD_CODE.search(html) and json.dumps("逾期C类户")[1:-1] not in html
    assert "overdue-c" not in html

    engine = create_engine(demo_db.app_url)
    try:
        data = coverage_data(
            engine=engine, caller=PUBLIC, scope=SCOPE, level="BUILDING", as_of=None,
            k_anonymity=10,
        )  # fmt: skip
    finally:
        engine.dispose()
    assert data.overdue_c is None
    assert list(data.layers) == list(LEVELS)
    for cells in data.layers.values():
        for cell in cells:
            if cell.get("suppressed"):
                assert cell["households"] is None and cell["contacted"] is None
            else:
                assert cell["households"] >= 10


def test_grid_center_markers_are_audited(fresh_db: ScratchDB) -> None:
    token = demo_tokens(fresh_db)["grid_center"]
    owner = create_engine(fresh_db.owner_url)
    count = text(
        "SELECT count(*) FROM audit_log WHERE worker_code = :w"
        " AND fields @> ARRAY['household_class', 'geometry']"
    )
    try:
        with owner.connect() as connection:
            before = connection.execute(count, {"w": token["worker"]}).scalar_one()
        with TestClient(create_app(fresh_db.settings())) as c:
            c.headers["Authorization"] = f"Bearer {token['token']}"
            html = coverage(c).text
        with owner.connect() as connection:
            after = connection.execute(count, {"w": token["worker"]}).scalar_one()
    finally:
        owner.dispose()
    drawn = len(set(HOUSEHOLD_CODE.findall(html)))
    assert drawn > 0 and after - before == drawn


@pytest.mark.parametrize(
    ("params", "argument"),
    [
        ({"scope": ""}, "scope"),
        ({"scope": "999"}, "scope"),
        ({"scope": "310106099"}, "scope"),
        ({"asOf": "2999-01-01"}, "asOf"),
        ({"asOf": "yesterday"}, "asOf"),
        ({"level": "COUNTY"}, "level"),
        ({"scope": "310106015001001001", "level": "GRID"}, "level"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    app_client: TestClient, params: dict[str, str], argument: str
) -> None:
    page = coverage(app_client, **params)
    assert page.status_code == 400, page.text
    assert f"{argument}:" in page.text


def run_cli(*args: str, db: ScratchDB) -> subprocess.CompletedProcess[str]:
    return db.gridmap("map", "coverage", *args)


def test_cli_writes_a_self_contained_file(demo_db: ScratchDB, tmp_path: Path) -> None:
    out = tmp_path / "public.html"
    done = run_cli("--scope", SCOPE, "-o", str(out), db=demo_db)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    html = out.read_text(encoding="utf-8")
    assert "<script src=" not in html and '<link rel="stylesheet"' not in html
    assert "L.map(" in html
    assert not HOUSEHOLD_CODE.search(html)

    done = run_cli("--scope", "310106099", "-o", str(tmp_path / "x.html"), db=demo_db)
    assert done.returncode != 0 and "scope:" in done.stderr
    assert not (tmp_path / "x.html").exists()


# --------------------------------------------------------------------------------------------
# Headless Chromium, no network
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def live_server(demo_db: ScratchDB) -> Iterator[str]:
    with serve(demo_db.settings()) as url:
        yield url


def check_drawn(page: Page, *, markers: bool) -> None:
    assert page.evaluate("typeof L") == "object"
    assert page.locator("path.coverage-cell").count() == GRIDS  # GRID shown when it opens
    assert page.locator(".cell-label", has_text="蕃瓜弄第1网格").count() == 1
    assert page.locator(".leaflet-control-layers-overlays label").count() == 3 + markers
    assert (page.locator("path.overdue-c").count() > 0) == markers


def test_served_map_renders_offline(
    browser: Browser, live_server: str, tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {tokens['grid_center']['token']}"}
    page = open_offline(
        browser, f"{live_server}/maps/coverage?scope={SCOPE}&level=GRID", auth, ready=CELL
    )
    check_drawn(page, markers=True)
    shot = tmp_path / "coverage-grid-center.png"
    page.screenshot(path=shot)
    print(f"screenshot: {shot}")
    page.locator(".leaflet-control-layers-overlays label", has_text="微网格").click()
    assert page.locator("path.coverage-cell").count() > GRIDS  # micro-grids switched on

    public = open_offline(browser, f"{live_server}/maps/coverage?scope={SCOPE}", ready=CELL)
    check_drawn(public, markers=False)
    public.screenshot(path=tmp_path / "coverage-public.png")


def test_cli_file_renders_offline_from_disk(
    browser: Browser, demo_db: ScratchDB, tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "coverage.html"
    done = run_cli("--scope", SCOPE, "-o", str(out), "--worker", tokens["grid_center"]["worker"],
                   db=demo_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = open_offline(browser, out.as_uri(), ready=CELL)
    check_drawn(page, markers=True)
    shot = tmp_path / "coverage-file.png"
    page.screenshot(path=shot)
    print(f"screenshot: {shot}")
