"""The jobs map: served as the caller (seekers and proposals for grid staff, audited; none of it
for the public), bad input named, written to a file by the CLI, and drawn by headless Chromium
with no network (tests/offline.py). The test openings, seekers and an offer are added to a copy
of the demo of this module's own; whatever jobs data the demo has besides may be there too."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Databases, ScratchDB, demo_tokens
from offline import chromium, open_offline, serve
from playwright.sync_api import Browser, Page
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from api.app import create_app
from api.auth import caller_of
from api.job_maps import jobs_data
from geo import coverage, jobs
from geo.access import PUBLIC
from geo.db import scoped_session
from geo.workers import worker_by_code

SCOPE = "310106015"  # the demo subdistrict: 10 grids
GRIDS = 10
PERSON_CODE = re.compile(r"\d{21}-\d+-\d+-\d{2}")
HOUSEHOLD_CODE = re.compile(r"\d{21}-\d+-\d+")
REMOTE_LINK = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")
OPENING = "收银员 cashier (test)"
OFFER = "新客九折 10% off (test)"
SEEKER_SKILL = "剪纸 paper cutting (test)"  # no opening asks for it: shown only with a seeker
MERCHANT_PIN = ".leaflet-marker-pane .awesome-marker"  # shadows are in a pane of their own

# Three merchants hiring two cashiers each; a resident of each of the six households nearest
# the first of them, seeking that work; an offer of the first reaching 600 m. Owner SQL, as the
# demo loader writes.
SEED = f"""
INSERT INTO job_opening (code, merchant_id, title, skills, shifts, weekly_hours, wage, headcount,
                         valid_from)
SELECT code || '-T01', id, '{OPENING}', ARRAY['收银'],
       ARRAY['WEEKDAY_MORNING', 'WEEKDAY_AFTERNOON'], 20, 25, 2, current_date - 10
FROM (SELECT id, code FROM merchant ORDER BY code LIMIT 3) m;

INSERT INTO job_seeker (person_id, household_id, household_code, skills, shifts, weekly_hours,
                        min_wage, max_walk_meters, consent)
SELECT person_id, household_id, household_code, ARRAY['收银', '{SEEKER_SKILL}'],
       ARRAY['WEEKDAY_MORNING', 'WEEKDAY_AFTERNOON', 'WEEKEND_DAYTIME'], 40, 20, 1500, true
FROM (
    SELECT DISTINCT ON (h.id) p.id AS person_id, h.id AS household_id, h.code AS household_code,
           h.location <-> m.geom AS away
    FROM person p JOIN household h ON h.id = p.household_id,
         (SELECT geom FROM merchant ORDER BY code LIMIT 1) m
    WHERE h.code LIKE '{SCOPE}%' AND h.moved_out IS NULL AND h.location IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM job_seeker s WHERE s.person_id = p.id)
    ORDER BY h.id, p.code
) nearest
ORDER BY away, household_code
LIMIT 6;

INSERT INTO offer (merchant_id, title, description, radius_meters, valid_from)
SELECT id, '{OFFER}', '凭社区卡 with the community card', 600, current_date - 1
FROM merchant ORDER BY code LIMIT 1;
"""
SEEDED = f"""
SELECT p.code FROM job_seeker s JOIN person p ON p.id = s.person_id
WHERE s.household_code LIKE '{SCOPE}%' ORDER BY p.code
"""


@pytest.fixture(scope="module")
def jobs_db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    """A copy of the demo with the test's openings, seekers and offer: written once, read by
    every test here (the audit test counts its own rows)."""
    db = databases.make("jobmaps", template=template_db.name)
    owner = create_engine(db.owner_url)
    try:
        with owner.begin() as connection:
            connection.execute(text(SEED))
    finally:
        owner.dispose()
    yield db
    databases.drop(db.name)


@pytest.fixture(scope="module")
def seekers(jobs_db: ScratchDB) -> list[str]:
    """Person codes of every seeker of the scope (the test's six and any of the demo's)."""
    owner = create_engine(jobs_db.owner_url)
    try:
        with owner.connect() as connection:
            return list(connection.execute(text(SEEDED)).scalars())
    finally:
        owner.dispose()


@pytest.fixture(scope="module")
def job_tokens(jobs_db: ScratchDB) -> dict[str, dict[str, str]]:
    return demo_tokens(jobs_db)


@pytest.fixture(scope="module")
def jobs_client(jobs_db: ScratchDB) -> Iterator[TestClient]:
    with TestClient(create_app(jobs_db.settings())) as c:
        yield c


def jobs_map(client: TestClient, token: str | None = None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/maps/jobs", params={"scope": SCOPE, **params}, headers=headers)


def in_page(value: str, html: str) -> bool:
    """Whether the page shows ``value``: in a popup's HTML as it is, in a layer's name
    JSON-escaped by the page's script."""
    return value in html or json.dumps(value)[1:-1] in html


def audit_rows(db: ScratchDB, worker: str, fields: list[str]) -> int:
    owner = create_engine(db.owner_url)
    try:
        with owner.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM audit_log WHERE worker_code = :w AND fields @> :f"),
                {"w": worker, "f": fields},
            ).scalar_one()
    finally:
        owner.dispose()


def test_grid_center_sees_seekers_and_optimal_proposals_each_audited(
    jobs_client: TestClient,
    jobs_db: ScratchDB,
    job_tokens: dict[str, dict[str, str]],
    seekers: list[str],
) -> None:
    center = job_tokens["grid_center"]
    before = audit_rows(jobs_db, center["worker"], ["job_seeker", "geometry"])
    matched_before = audit_rows(jobs_db, center["worker"], ["job_match"])
    page = jobs_map(jobs_client, center["token"], maxDistanceMeters="1500")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<script src="/maps/assets/leaflet/dist/leaflet.js">' in html
    assert not REMOTE_LINK.search(html), "a link leaves the machine"
    for name in ("求职者 job seekers", "推荐匹配 proposed matches", "商户 餐饮", "优惠 offers",
                 "网格 grids (10)", OPENING, OFFER, "蕃瓜弄第1网格", "m on foot",
                 SEEKER_SKILL):  # fmt: skip
        assert in_page(name, html), name
    assert "job-seeker" in html and "job-match" in html and "job-offer" in html
    drawn = set(PERSON_CODE.findall(html))
    assert drawn == set(seekers) and len(drawn) >= 6  # every seeker, at home, and nobody else

    households = {code.rsplit("-", 1)[0] for code in drawn}
    after = audit_rows(jobs_db, center["worker"], ["job_seeker", "geometry"])
    assert after - before == len(households)
    assert audit_rows(jobs_db, center["worker"], ["job_match"]) > matched_before

    # The lines are the optimal assignment over exactly the candidates (geo.jobs).
    engine = create_engine(jobs_db.app_url)
    try:
        with engine.connect() as connection:
            caller = caller_of(worker_by_code(connection=connection, code=center["worker"]))
        data = jobs_data(engine=engine, caller=caller, scope=SCOPE, max_distance=1500)
        with scoped_session(engine, caller.settings()) as session:
            today = coverage.today(session, SCOPE)
            chosen = jobs.assign(*jobs.candidates(
                session=session, scope=SCOPE, max_distance=1500, today=today))  # fmt: skip
    finally:
        engine.dispose()
    assert data.proposals is not None and data.seekers is not None
    assert {(p["seeker_id"], p["score"]) for p in data.proposals} == {
        (c.seeker_id, c.score) for c in chosen
    }
    assert chosen and all(p["text"] for p in data.proposals)


@pytest.mark.parametrize("role", ["public", "department"])
def test_public_map_has_merchants_and_offers_and_no_seeker_data(
    jobs_client: TestClient,
    jobs_db: ScratchDB,
    job_tokens: dict[str, dict[str, str]],
    seekers: list[str],
    role: str,
) -> None:
    token = None if role == "public" else job_tokens[role]["token"]
    page = jobs_map(jobs_client, token)
    assert page.status_code == 200
    html = page.text
    assert in_page(OPENING, html) and in_page(OFFER, html) and in_page("商户", html)
    assert not PERSON_CODE.search(html) and not HOUSEHOLD_CODE.search(html)
    for marker in ("job-seeker", "job-match", "wage wanted", "walks up to", "m on foot",
                   SEEKER_SKILL, *seekers):  # fmt: skip
        assert marker not in html, marker

    engine = create_engine(jobs_db.app_url)
    try:
        data = jobs_data(engine=engine, caller=PUBLIC, scope=SCOPE, max_distance=1500)
    finally:
        engine.dispose()
    assert data.seekers is None and data.proposals is None
    assert any(o["title"] == OPENING for m in data.merchants for o in m["openings"])


@pytest.mark.parametrize(
    ("params", "argument"),
    [
        ({"scope": ""}, "scope"),
        ({"scope": "999"}, "scope"),
        ({"scope": "310106099"}, "scope"),
        ({"maxDistanceMeters": "-1"}, "maxDistanceMeters"),
        ({"maxDistanceMeters": "0"}, "maxDistanceMeters"),
        ({"maxDistanceMeters": "20001"}, "maxDistanceMeters"),
        ({"maxDistanceMeters": "far"}, "maxDistanceMeters"),
        ({"maxDistanceMeters": "nan"}, "maxDistanceMeters"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    app_client: TestClient, params: dict[str, str], argument: str
) -> None:
    page = app_client.get("/maps/jobs", params={"scope": SCOPE, **params})
    assert page.status_code == 400, page.text
    assert f"{argument}:" in page.text


def run_cli(*args: str, db: ScratchDB) -> subprocess.CompletedProcess[str]:
    return db.gridmap("map", "jobs", *args)


def test_cli_writes_a_self_contained_file(
    jobs_db: ScratchDB, job_tokens: dict[str, dict[str, str]], seekers: list[str], tmp_path: Path
) -> None:
    public = tmp_path / "public.html"
    done = run_cli("--scope", SCOPE, "-o", str(public), db=jobs_db)
    assert done.returncode == 0, done.stderr
    assert str(public) in done.stdout and "public" in done.stdout
    html = public.read_text(encoding="utf-8")
    assert "<script src=" not in html and '<link rel="stylesheet"' not in html
    assert "L.map(" in html and in_page(OPENING, html)
    assert not PERSON_CODE.search(html) and "job-seeker" not in html

    worker = tmp_path / "worker.html"
    done = run_cli("--scope", SCOPE, "-o", str(worker), "--max-distance", "1200",
                   "--worker", job_tokens["grid_center"]["worker"], db=jobs_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(PERSON_CODE.findall(worker.read_text(encoding="utf-8"))) == set(seekers)

    for args, argument in (
        (["--scope", "310106099"], "scope:"),
        (["--scope", SCOPE, "--max-distance", "-5"], "--max-distance:"),
        (["--scope", SCOPE, "--max-distance", "far"], "--max-distance:"),
    ):
        done = run_cli(*args, "-o", str(tmp_path / "x.html"), db=jobs_db)
        assert done.returncode != 0 and argument in done.stderr, done.stderr
        assert not (tmp_path / "x.html").exists()


# --------------------------------------------------------------------------------------------
# Headless Chromium, no network
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def live_server(jobs_db: ScratchDB) -> Iterator[str]:
    with serve(jobs_db.settings()) as url:
        yield url


def layer_count(page: Page, prefix: str) -> int:
    """The count a layer's name carries: "求职者 job seekers (7)" → 7."""
    label = page.locator(".leaflet-control-layers-overlays label", has_text=prefix).inner_text()
    return int(re.search(r"\((\d+)", label).group(1))  # type: ignore[union-attr]


def check_drawn(page: Page, *, staff: bool) -> None:
    assert page.evaluate("typeof L") == "object"
    assert page.locator("path.job-area").count() == GRIDS
    assert page.locator(".area-label", has_text="蕃瓜弄第1网格").count() == 1
    labels = page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    merchants = sum(layer_count(page, t.strip()) for t in labels if t.strip().startswith("商户"))
    assert merchants > 0 and page.locator(MERCHANT_PIN).count() == merchants
    assert page.locator("path.job-offer").count() == layer_count(page, "优惠 offers") > 0
    if staff:
        seekers = layer_count(page, "求职者 job seekers")
        lines = layer_count(page, "推荐匹配 proposed matches")
        assert seekers >= 6 and page.locator("path.job-seeker").count() == seekers
        assert lines > 0 and page.locator("path.job-match").count() == lines
        # A line's middle may lie under a pin: the click goes to the line itself.
        page.locator("path.job-match").first.dispatch_event("click")
        popup = page.locator(".leaflet-popup-content")
        assert "score" in popup.inner_text() and "m on foot" in popup.inner_text()
    else:
        assert page.locator("path.job-seeker, path.job-match").count() == 0


def test_served_map_renders_offline(
    browser: Browser, live_server: str, job_tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {job_tokens['grid_center']['token']}"}
    url = f"{live_server}/maps/jobs?scope={SCOPE}&maxDistanceMeters=1500"
    page = open_offline(browser, url, auth, ready="path.job-match")
    shot = tmp_path / "jobs-grid-center.png"
    page.screenshot(path=shot)  # before check_drawn opens a popup
    print(f"screenshot: {shot}")
    check_drawn(page, staff=True)

    public = open_offline(browser, url, ready=MERCHANT_PIN)
    check_drawn(public, staff=False)
    public.screenshot(path=tmp_path / "jobs-public.png")


def test_cli_file_renders_offline_from_disk(
    browser: Browser, jobs_db: ScratchDB, job_tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "jobs.html"
    done = run_cli("--scope", SCOPE, "-o", str(out), "--worker",
                   job_tokens["grid_center"]["worker"], db=jobs_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = open_offline(browser, out.as_uri(), ready="path.job-match")
    shot = tmp_path / "jobs-file.png"
    page.screenshot(path=shot)
    print(f"screenshot: {shot}")
    check_drawn(page, staff=True)
