"""A block head's walking route outside GraphQL: the GPX file (planned and saved first, so
GraphQL's walkingRoute shows the same route afterwards), the map page at a phone's size in
headless Chromium with no network (tests/offline.py), and `gridmap route`; each as the caller,
every household shown audited, refused to the public and departments. The day is next
Wednesday in the demo's zone: the default week has an evening shift then."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import gpxpy
import pytest
from conftest import Databases, ScratchDB, as_role, demo_tokens
from gq import ok
from offline import chromium, open_offline, serve
from playwright.sync_api import Browser, Request
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from api.app import create_app
from api.auth import caller_of, issue_token
from api.route_maps import route_data
from api.schema.relay import global_id
from geo.workers import worker_by_code

HOUSEHOLD_CODE = re.compile(r"\d{21}-\d+-\d+")
REMOTE_LINK = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")
OTHER_WORKER = "JA015-WG-0002"  # a block head of another grid
PHONE = {"width": 390, "height": 844}
QUERY = """query($id: ID!, $d: Date!) { walkingRoute(workerId: $id, date: $d) {
  plannedAt stops { order household { code } } } }"""


def next_wednesday() -> dt.date:
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return today + dt.timedelta(days=(2 - today.weekday()) % 7 or 7)


DAY = next_wednesday()


@pytest.fixture(scope="module")
def route_db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    """A copy of the demo of this module's own: the first request to a day saves its plan,
    which the later ones read."""
    db = databases.make("routemaps", template=template_db.name)
    yield db
    databases.drop(db.name)


@pytest.fixture(scope="module")
def route_tokens(route_db: ScratchDB) -> dict[str, dict[str, str]]:
    return demo_tokens(route_db)


@pytest.fixture(scope="module")
def route_client(route_db: ScratchDB) -> Iterator[TestClient]:
    with TestClient(create_app(route_db.settings())) as c:
        yield c


def owner_rows(db: ScratchDB, sql: str, **params: Any) -> list[Any]:
    owner = create_engine(db.owner_url)
    try:
        with owner.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        owner.dispose()


def worker_id(db: ScratchDB, code: str) -> Any:
    return owner_rows(db, "SELECT id FROM worker WHERE code = :c", c=code)[0].id


def reads_of(db: ScratchDB, worker: str, field: str) -> list[str]:
    """Household codes of the worker's audited reads naming ``field``, oldest first."""
    rows = owner_rows(
        db, "SELECT household_code FROM audit_log WHERE worker_code = :w AND action = 'read'"
        " AND :f = ANY(fields) ORDER BY at, household_code", w=worker, f=field,
    )  # fmt: skip
    return [r.household_code for r in rows]


def gpx_url(worker: str, day: object = DAY) -> str:
    return f"/routes/{worker}/{day}.gpx"


def stops_of(gpx: gpxpy.gpx.GPX) -> list[tuple[int, str]]:
    """(order, household code) of the stop waypoints; the start is "00 …"."""
    out = []
    for w in gpx.waypoints:
        number, _, rest = w.name.partition(" ")
        if int(number):
            out.append((int(number), rest))
    return out


def test_gpx_saves_the_plan_graphql_then_answers_and_every_stop_is_audited(
    fresh_db: ScratchDB,
) -> None:
    tokens = demo_tokens(fresh_db)
    worker = tokens["grid_worker"]["worker"]
    variables = {"id": global_id("Worker", worker_id(fresh_db, worker)), "d": DAY.isoformat()}
    with TestClient(create_app(fresh_db.settings())) as app:
        client = as_role(app, tokens, "grid_worker")
        before = ok(client, QUERY, **variables)["walkingRoute"]
        assert before["plannedAt"] is None  # nothing saved yet: computed for that answer

        got = client.get(gpx_url(worker))
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/gpx+xml"
        assert got.headers["content-disposition"] == (
            f'attachment; filename="route-{worker}-{DAY}.gpx"'
        )
        assert got.headers["cache-control"] == "no-store"
        gpx = gpxpy.parse(got.text)

        after = ok(client, QUERY, **variables)["walkingRoute"]
    stops = stops_of(gpx)
    assert len(stops) >= 5
    assert [n for n, _ in stops] == list(range(1, len(stops) + 1))
    assert after["plannedAt"] is not None
    assert [(s["order"], s["household"]["code"]) for s in after["stops"]] == stops

    start = gpx.waypoints[0]
    assert start.name.startswith("00 ") and start.type == "start" and start.time is None
    times = [w.time for w in gpx.waypoints[1:]]
    assert all(t is not None and t.utcoffset() == dt.timedelta(0) for t in times)
    assert times == sorted(times)
    local = times[0].astimezone(ZoneInfo("Asia/Shanghai"))  # type: ignore[union-attr]
    assert local.date() == DAY and f"{local:%H:%M}" in gpx.waypoints[1].description
    assert gpx.waypoints[1].description.startswith(("B 类", "C 类"))
    points = gpx.tracks[0].segments[0].points
    assert len(points) > len(stops)
    first = (points[0].latitude, points[0].longitude)
    assert first == pytest.approx((start.latitude, start.longitude), abs=1e-6)  # 7 digits

    assert sorted(reads_of(fresh_db, worker, "route_stop")) == sorted(c for _, c in stops)
    assert not reads_of(fresh_db, worker, "route_skip")  # the GPX names no skipped household


@pytest.mark.parametrize("role", ["grid_worker", "community", "grid_center"])
def test_the_worker_and_their_community_and_center_see_the_map_each_read_audited(
    route_client: TestClient,
    route_db: ScratchDB,
    route_tokens: dict[str, dict[str, str]],
    role: str,
) -> None:
    worker = route_tokens["grid_worker"]["worker"]
    reader = route_tokens[role]["worker"]
    client = as_role(route_client, route_tokens, role)
    stops_before = len(reads_of(route_db, reader, "route_stop"))
    skips_before = len(reads_of(route_db, reader, "route_skip"))
    page = client.get("/maps/route", params={"worker": worker, "date": DAY.isoformat()})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<script src="/maps/assets/leaflet/dist/leaflet.js">' in html
    assert not REMOTE_LINK.search(html), "a link leaves the machine"
    assert 'name="viewport" content="width=device-width' in html
    assert "route-path" in html and "route-start" in html and f"{worker} · {DAY}" in html

    gpx = gpxpy.parse(client.get(gpx_url(worker)).text)  # the same saved plan
    stops = stops_of(gpx)
    shown = set(HOUSEHOLD_CODE.findall(html))
    codes = {c for _, c in stops}
    assert codes <= shown and len(shown - codes) <= 3  # and the first skipped ones
    for n, code in stops:
        assert f"stop {n}</b>" in html and code in html
    new_stops = reads_of(route_db, reader, "route_stop")[stops_before:]
    assert len(new_stops) == 2 * len(stops)  # the page and the GPX file
    assert set(reads_of(route_db, reader, "route_skip")[skips_before:]) == shown - codes


def test_today_is_the_default_day(
    route_client: TestClient, route_tokens: dict[str, dict[str, str]]
) -> None:
    worker = route_tokens["grid_worker"]["worker"]
    page = as_role(route_client, route_tokens, "grid_worker").get(
        "/maps/route", params={"worker": worker}
    )
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert page.status_code == 200, page.text
    assert f"{worker} · {today}" in page.text


def test_first_views_of_a_day_at_once_show_one_saved_plan(
    route_db: ScratchDB, route_tokens: dict[str, dict[str, str]]
) -> None:
    """The map and the GPX file asked for together (or a double tap): one plans, the other
    reads that plan, neither fails nor replaces it."""
    worker = route_tokens["grid_worker"]["worker"]
    day = DAY + dt.timedelta(days=7)
    engine = create_engine(route_db.app_url)
    try:
        with engine.connect() as connection:
            caller = caller_of(worker_by_code(connection=connection, code=worker))
        with ThreadPoolExecutor(3) as pool:
            routes = list(pool.map(lambda _: route_data(
                engine=engine, caller=caller, worker=worker, day=day,
                settings=route_db.settings().route_settings(), skipped_shown=0,
            ), range(3)))  # fmt: skip
    finally:
        engine.dispose()
    assert len({(r.planned_at, tuple(s.household_code for s in r.stops)) for r in routes}) == 1
    saved = owner_rows(
        route_db, "SELECT p.planned_at FROM route_plan p JOIN worker w ON w.id = p.worker_id"
        " WHERE w.code = :w AND p.day = :d", w=worker, d=day,
    )  # fmt: skip
    assert [r.planned_at for r in saved] == [routes[0].planned_at]


def refusals(tokens: dict[str, dict[str, str]], worker: str) -> list[tuple[str | None, str, int]]:
    """(token, worker asked for, status) of every refusal, for both endpoints."""
    return [
        (None, worker, 403),
        (tokens["department"]["token"], worker, 403),
        (tokens["other_worker"]["token"], worker, 403),
        (tokens["grid_worker"]["token"], "NOBODY-1", 404),
    ]


@pytest.fixture(scope="module")
def tokens_and_other(
    route_db: ScratchDB, route_tokens: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """The demo's tokens and one of a block head of another grid."""
    owner = create_engine(route_db.owner_url)
    try:
        with owner.connect() as connection:
            other = worker_by_code(connection=connection, code=OTHER_WORKER)
    finally:
        owner.dispose()
    token = issue_token(route_db.settings(), other)
    return route_tokens | {"other_worker": {"worker": OTHER_WORKER, "token": token}}


@pytest.mark.parametrize("endpoint", ["map", "gpx"])
def test_refused_callers_get_403_and_an_unknown_worker_404(
    route_client: TestClient,
    route_db: ScratchDB,
    tokens_and_other: dict[str, dict[str, str]],
    endpoint: str,
) -> None:
    worker = tokens_and_other["grid_worker"]["worker"]
    for token, asked, status in refusals(tokens_and_other, worker):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if endpoint == "map":
            got = route_client.get(
                "/maps/route", params={"worker": asked, "date": DAY.isoformat()}, headers=headers
            )
        else:
            got = route_client.get(gpx_url(asked), headers=headers)
        assert got.status_code == status, (token, asked, got.text)
        assert got.headers["content-type"].startswith("text/html")
        assert "worker:" in got.text and not HOUSEHOLD_CODE.search(got.text)
        if status == 403:
            assert "may not" in got.text
    # Nobody refused read a household.
    for role in ("department", "other_worker"):
        assert not reads_of(route_db, tokens_and_other[role]["worker"], "route_stop")


@pytest.mark.parametrize(
    ("path", "params", "argument"),
    [
        ("/maps/route", {"date": DAY.isoformat()}, "worker"),
        ("/maps/route", {"worker": "  ", "date": DAY.isoformat()}, "worker"),
        ("/maps/route", {"worker": "{worker}", "date": "2026-13-45"}, "date"),
        ("/maps/route", {"worker": "{worker}", "date": "next week"}, "date"),
        # In the past (and never planned), and too far ahead:
        ("/maps/route", {"worker": "{worker}", "date": "2000-01-05"}, "date"),
        ("/maps/route", {"worker": "{worker}", "date": str(DAY + dt.timedelta(800))}, "date"),
        (gpx_url("{worker}", "2026-02-30"), {}, "date"),
        (gpx_url("{worker}", "tomorrow"), {}, "date"),
        (gpx_url("{worker}", "2000-01-05"), {}, "date"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    route_client: TestClient,
    route_tokens: dict[str, dict[str, str]],
    path: str,
    params: dict[str, str],
    argument: str,
) -> None:
    worker = route_tokens["grid_worker"]["worker"]
    client = as_role(route_client, route_tokens, "grid_worker")
    params = {name: value.replace("{worker}", worker) for name, value in params.items()}
    got = client.get(path.replace("{worker}", worker), params=params)
    assert got.status_code == 400, got.text
    assert f'role="alert">{argument}:' in got.text


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def run_cli(*args: str, db: ScratchDB) -> subprocess.CompletedProcess[str]:
    return db.gridmap("route", *args)


def test_cli_prints_the_route_and_writes_the_map_and_gpx(
    route_db: ScratchDB, route_tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    worker = route_tokens["grid_worker"]["worker"]
    done = run_cli("--help", db=route_db)
    assert done.returncode == 0 and "Usage: gridmap route" in done.stdout
    assert "--worker" in done.stdout and "--gpx" in done.stdout

    map_file, gpx_file = tmp_path / "route.html", tmp_path / "route.gpx"
    done = run_cli("--worker", worker, "--date", DAY.isoformat(), "--map", str(map_file),
                   "--gpx", str(gpx_file), db=route_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Walking route of {worker} on {DAY} (Wednesday)")
    assert lines[1].split() == ["#", "arrives", "household", "class", "leg", "m"]
    stops = stops_of(gpxpy.parse(gpx_file.read_text(encoding="utf-8")))
    rows = [line.split() for line in lines[2 : 2 + len(stops)]]
    assert [(int(r[0]), r[2]) for r in rows] == stops
    assert all(re.fullmatch(r"\d\d:\d\d", r[1]) and r[3] in ("B", "C") for r in rows)
    assert re.match(r"back to \d+: [\d,]+ m; total [\d,]+ m \(\d+\.\d km\)", lines[2 + len(stops)])
    assert any(line.startswith("skipped (") for line in lines)
    assert f"wrote {map_file}" in done.stdout and f"wrote {gpx_file}" in done.stdout
    html = map_file.read_text(encoding="utf-8")
    assert "<script src=" not in html and '<link rel="stylesheet"' not in html
    assert "L.map(" in html and all(code in html for _, code in stops)

    done = run_cli("--worker", worker, "--date", DAY.isoformat(), "--json", db=route_db)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [(s["order"], s["household"]) for s in answer["stops"]] == stops
    assert answer["plannedAt"] and answer["path"]["type"] == "LineString"
    assert answer["totalMeters"] > 0 and all(s["reason"] for s in answer["skipped"])

    for args, message in (
        (["--worker", worker, "--date", "2026-02-30"], "--date:"),
        (["--worker", worker, "--date", "2000-01-05"], "date:"),
        (["--worker", "NOBODY-1"], "NOBODY-1"),
        (["--worker", route_tokens["department"]["worker"]], "may not"),
    ):
        done = run_cli(*args, "--map", str(tmp_path / "x.html"), db=route_db)
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "input." not in done.stderr  # GraphQL's argument names are not the CLI's
        assert not (tmp_path / "x.html").exists()


# --------------------------------------------------------------------------------------------
# Headless Chromium, no network, at a phone's size
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def live_server(route_db: ScratchDB) -> Iterator[str]:
    with serve(route_db.settings()) as url:
        yield url


def test_served_map_works_offline_on_a_phone(
    browser: Browser,
    live_server: str,
    route_client: TestClient,
    route_tokens: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    worker = route_tokens["grid_worker"]["worker"]
    auth = {"Authorization": f"Bearer {route_tokens['grid_worker']['token']}"}
    gpx = gpxpy.parse(route_client.get(gpx_url(worker), headers=auth).text)
    doors = {(w.longitude, w.latitude) for w in gpx.waypoints[1:]}
    url = f"{live_server}/maps/route?worker={worker}&date={DAY}"
    # Opened with every request off the machine refused and any error failing it (desktop
    # size), then again at a phone's size, every request it makes recorded.
    page = open_offline(browser, url, auth, ready=".route-stop")
    requests: list[str] = []

    def record(request: Request) -> None:
        requests.append(request.url)

    page.on("request", record)
    page.set_viewport_size(PHONE)
    page.reload(wait_until="load")
    page.wait_for_selector(".route-stop")
    page.wait_for_timeout(300)
    shot = tmp_path / "route-phone.png"
    page.screenshot(path=shot)
    print(f"screenshot: {shot}")
    assert requests and all(
        urlsplit(u).scheme == "data" or urlsplit(u).hostname == "127.0.0.1" for u in requests
    ), requests
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    markers = page.locator(".route-stop")
    assert markers.count() == len(doors)
    numbers = " ".join(markers.all_inner_texts())
    assert re.search(r"\b1\b", numbers) and str(len(gpx.waypoints) - 1) in numbers
    for i in range(markers.count()):  # every stop on the screen, big enough for a thumb
        box = markers.nth(i).bounding_box()
        assert box is not None and box["width"] >= 36 and box["height"] >= 36
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]
    assert page.locator(".route-start").is_visible()
    summary = page.locator(".route-summary")
    assert summary.is_visible() and f"{worker} · {DAY}" in summary.inner_text()
    assert (summary.bounding_box() or {"width": 9999})["width"] <= PHONE["width"]

    page.locator(".route-stop", has_text=re.compile(r"^1(,|–|$)")).dispatch_event("click")
    popup = page.locator(".leaflet-popup-content").inner_text()
    assert "stop 1" in popup and re.search(r"\d\d:\d\d", popup) and "walk" in popup
    assert stops_of(gpx)[0][1] in popup


def test_cli_file_works_offline_from_disk(
    browser: Browser, route_db: ScratchDB, route_tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "route.html"
    done = run_cli("--worker", route_tokens["grid_worker"]["worker"], "--date", DAY.isoformat(),
                   "--map", str(out), db=route_db)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = open_offline(browser, out.as_uri(), ready=".route-stop")
    assert page.locator(".route-stop").count() > 0 and page.locator(".route-path").count() == 1
