"""Open311 GeoReport v2: a client issued a key with `gridmap open311 key` files a request at a
point of a demo grid; anyone reads it back without the reporter, the description or the exact
point, open then closed; the catalogue, the filters, the errors in GeoReport's format, the
keys' rotation and revocation; and staff see the same case, reporter included, in GraphQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from conftest import Databases, ScratchDB, as_role, demo_tokens
from gq import error, ok
from starlette.testclient import TestClient
from test_cases import a_point_in, grid_of
from test_family_files import owner

from api.app import create_app

V2 = "/open311/v2"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NAME = ("三", "张")  # first_name, last_name
PHONE = "13912345678"
DESCRIPTION = "Open311 测试：7号楼门口的垃圾三天没人清运"
READ = """query($n: String!) { caseByNumber(number: $n) { number source category description state
  reporterName reporterPhone reporterCode events { action workerCode role } } }"""


@pytest.fixture(scope="module")
def db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    made = databases.make("open311", template=template_db.name)
    yield made
    databases.drop(made.name)


@pytest.fixture(scope="module")
def public(db: ScratchDB) -> Iterator[TestClient]:
    with TestClient(create_app(db.settings())) as c:
        yield c


def run_cli(*args: str, db: ScratchDB) -> subprocess.CompletedProcess[str]:
    return db.gridmap("open311", "key", *args)


def issue(db: ScratchDB, client: str, *args: str) -> str:
    done = run_cli("--client", client, *args, db=db)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n") and done.stdout.count("\n") == 1  # the key alone
    return done.stdout.strip()


@pytest.fixture(scope="module")
def key(db: ScratchDB) -> str:
    return issue(db, "citizen-app")


@pytest.fixture(scope="module")
def grid(db: ScratchDB) -> str:
    return grid_of(db, demo_tokens(db)["grid_worker"]["worker"])


def post(client: TestClient, fields: dict[str, Any], fmt: str = "json") -> Any:
    return client.post(f"{V2}/requests.{fmt}", data=fields)


def report(client: TestClient, key: str, point: dict[str, float], **extra: Any) -> dict[str, Any]:
    fields = {
        "api_key": key, "service_code": "EXPOSED_GARBAGE", "lat": point["lat"],
        "long": point["lon"], "description": DESCRIPTION, "first_name": NAME[0],
        "last_name": NAME[1], "phone": PHONE, "email": "zhang@example.com", **extra,
    }  # fmt: skip
    got = post(client, fields)
    assert got.status_code == 200, got.text
    [made] = got.json()
    return made


def error_of(response: Any, status: int) -> str:
    """The description of GeoReport's one error, checked to carry the HTTP status."""
    assert response.status_code == status, response.text
    [err] = response.json()
    assert err["code"] == status
    return err["description"]


def test_a_client_files_a_request_the_public_reads_it_staff_see_it(
    public: TestClient, db: ScratchDB, key: str, grid: str
) -> None:
    point = a_point_in(db, grid)
    made = report(public, key, point)
    number = made["service_request_id"]
    assert number.startswith(f"{dt.datetime.now(SHANGHAI).year}-")
    assert "7 working days" in made["service_notice"]

    got = public.get(f"{V2}/requests/{number}.json")
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
    # Nothing personal: not the reporter, not the text, not the exact point.
    for raw in (NAME[0], NAME[1], "张三", PHONE, "zhang@example.com", DESCRIPTION, "7号楼"):
        assert raw not in got.text
    assert str(point["lat"]) not in got.text and str(point["lon"]) not in got.text
    [req] = got.json()
    assert req["service_request_id"] == number and req["status"] == "open"
    assert req["service_code"] == "EXPOSED_GARBAGE"
    assert req["service_name"] == req["description"] == "Exposed garbage"
    assert req["agency_responsible"] is None and req["expected_datetime"] is None
    assert req["status_notes"].startswith("Received")
    assert req["address"] == owner(db, "SELECT name FROM grid WHERE code = %s", grid)[0][0]
    assert req["requested_datetime"].endswith("+08:00") and req["updated_datetime"]
    for name, exact in (("lat", point["lat"]), ("long", point["lon"])):
        assert abs(req[name] - exact) <= 0.00025 + 1e-9
        assert abs(req[name] * 2000 - round(req[name] * 2000)) < 1e-6  # on the 0.0005° grid
    assert req["media_url"] is None

    xml = public.get(f"{V2}/requests/{number}.xml")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    assert xml.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(xml.content)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == number
    assert root.findtext("request/status") == "open" and DESCRIPTION not in xml.text

    # Staff of the grid see the case as reported, reporter included.
    tokens = demo_tokens(db)
    case = ok(as_role(public, tokens, "grid_worker"), READ, n=number)["caseByNumber"]
    assert case["source"] == "OPEN311" and case["category"] == "EXPOSED_GARBAGE"
    assert case["description"] == DESCRIPTION and case["state"] == "REPORTED"
    assert case["reporterName"] == "张三" and case["reporterPhone"] == PHONE
    assert case["reporterCode"] == "open311:citizen-app"
    assert [(e["action"], e["workerCode"]) for e in case["events"]] == [
        ("REPORT", "open311:citizen-app")
    ]
    # The public reads no case in GraphQL.
    assert error(public, READ, n=number)["extensions"]["code"] == "FORBIDDEN"
    stored = owner(db, "SELECT source, client, reporter_name FROM grid_case WHERE number = %s",
                   number)  # fmt: skip
    assert stored == [("OPEN311", "citizen-app", "张三")]
    audited = owner(db, "SELECT a.worker_code, a.role, a.detail->>'source' FROM audit_entry a"
                    " JOIN grid_case c ON a.detail->>'case' = c.id::text WHERE c.number = %s",
                    number)  # fmt: skip
    assert audited == [("open311:citizen-app", "grid_center", "OPEN311")]

    # Closed: the public reads it closed, and the filters follow.
    owner(db, "UPDATE grid_case SET state = 'CLOSED', closed_at = now() WHERE number = %s", number)
    [req] = public.get(f"{V2}/requests/{number}.json").json()
    assert req["status"] == "closed" and req["status_notes"] == "Closed"
    listed = {r["service_request_id"]: r for r in public.get(f"{V2}/requests.json").json()}
    assert listed[number]["status"] == "closed"
    closed = public.get(f"{V2}/requests.json", params={"status": "closed"}).json()
    assert number in {r["service_request_id"] for r in closed}
    assert {r["status"] for r in closed} == {"closed"}
    opened = public.get(f"{V2}/requests.json", params={"status": "open"}).json()
    assert number not in {r["service_request_id"] for r in opened}
    assert {r["status"] for r in opened} <= {"open"}


def test_services_list_the_catalogue(public: TestClient, db: ScratchDB) -> None:
    got = public.get(f"{V2}/services.json")
    assert got.status_code == 200
    services = got.json()
    codes = [c for (c,) in owner(
        db, "SELECT code FROM case_category WHERE active AND public ORDER BY code")]  # fmt: skip
    assert [s["service_code"] for s in services] == codes
    assert "ASSISTANCE" not in codes and "EXPOSED_GARBAGE" in codes  # family matters stay off
    garbage = next(s for s in services if s["service_code"] == "EXPOSED_GARBAGE")
    assert garbage["service_name"] == "Exposed garbage" and garbage["metadata"] is False
    assert garbage["type"] == "realtime" and "暴露垃圾" in garbage["keywords"]
    assert garbage["group"] == "市容环卫所 sanitation station"
    assert "7 working days" in garbage["description"]

    root = ET.fromstring(public.get(f"{V2}/services.xml").content)
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == codes
    assert root.findtext("service/metadata") == "false"


def test_filters(public: TestClient, db: ScratchDB, key: str, grid: str) -> None:
    point = a_point_in(db, grid)
    noise = report(public, key, point, service_code="NOISE")["service_request_id"]
    parking = report(public, key, point, service_code="ILLEGAL_PARKING")["service_request_id"]

    def numbers(**params: Any) -> set[str]:
        got = public.get(f"{V2}/requests.json", params=params)
        assert got.status_code == 200, got.text
        return {r["service_request_id"] for r in got.json()}

    assert {noise, parking} <= numbers()
    only_noise = numbers(service_code="NOISE")
    assert noise in only_noise and parking not in only_noise
    assert {noise, parking} <= numbers(service_code="NOISE,ILLEGAL_PARKING")
    # Several at once by number; the other filters are then ignored.
    assert numbers(service_request_id=f"{noise},{parking}", service_code="OTHER") == {
        noise, parking
    }  # fmt: skip
    # Dates: ISO 8601 with an offset (an unencoded + arrives as a space, and is read as +).
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    assert {noise, parking} <= numbers(start_date=(now - hour).isoformat())
    assert not numbers(start_date=(now + hour).isoformat())
    assert not {noise, parking} & numbers(end_date=(now - hour).isoformat())
    later = (now + hour).astimezone(dt.timezone(dt.timedelta(hours=8)))
    raw = later.isoformat(timespec="seconds")
    got = public.get(f"{V2}/requests.json?end_date={raw}")  # "+08:00" arrives as " 08:00"
    assert {noise, parking} <= {r["service_request_id"] for r in got.json()}
    assert not {noise, parking} & numbers(end_date=(now - 200 * hour).isoformat())
    assert "90 days" in error_of(public.get(f"{V2}/requests.json", params={
        "start_date": (now - dt.timedelta(days=100)).isoformat(), "end_date": now.isoformat()
    }), 400)  # fmt: skip
    assert error_of(public.get(f"{V2}/requests.json?start_date=yesterday"), 400).startswith(
        "start_date:"
    )
    assert error_of(public.get(f"{V2}/requests.json?status=pending"), 400).startswith("status:")
    assert error_of(public.get(f"{V2}/requests.json?service_code=POTHOLE"), 400).startswith(
        "service_code:"
    )


def test_errors_in_georeport_format(public: TestClient, db: ScratchDB, key: str, grid: str) -> None:
    point = a_point_in(db, grid)
    good = {"api_key": key, "service_code": "NOISE", "lat": point["lat"], "long": point["lon"]}
    before = owner(db, "SELECT count(*) FROM grid_case")

    assert "api_key" in error_of(post(public, {**good, "api_key": "not-a-key"}), 403)
    assert "api_key" in error_of(post(public, {k: v for k, v in good.items() if k != "api_key"}),
                                 403)  # fmt: skip
    for missing in ("lat", "long", "service_code"):
        fields = {k: v for k, v in good.items() if k != missing}
        assert error_of(post(public, fields), 400).startswith(f"{missing}: required")
    only_address = {k: v for k, v in good.items() if k not in ("lat", "long")}
    message = error_of(post(public, {**only_address, "address_string": "天目西路 1 号"}), 400)
    assert message.startswith("lat: required") and "address_string" in message
    assert error_of(post(public, {**good, "lat": "north"}), 400).startswith("lat:")
    assert error_of(post(public, {**good, "service_code": "POTHOLE"}), 400).startswith(
        "service_code:"
    )
    outside = error_of(post(public, {**good, "lat": 0.5, "long": 0.5}), 400)
    assert outside.startswith("lat:") and "outside every grid" in outside
    assert error_of(post(public, {**good, "description": "x" * 4001}), 400).startswith(
        "description:"
    )
    assert owner(db, "SELECT count(*) FROM grid_case") == before  # nothing was written

    assert "2026-999999" in error_of(public.get(f"{V2}/requests/2026-999999.json"), 404)
    error_of(public.get(f"{V2}/requests/nothing.json"), 404)
    error_of(public.get(f"{V2}/requests.csv"), 404)
    xml = public.get(f"{V2}/requests/2026-999999.xml")
    assert xml.status_code == 404 and xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "errors" and root.findtext("error/code") == "404"
    # The body may be JSON too; a key in the query string is read as well.
    got = public.post(f"{V2}/requests.json?api_key={quote(key)}",
                      json={k: v for k, v in good.items() if k != "api_key"})  # fmt: skip
    assert got.status_code == 200 and got.json()[0]["service_request_id"]


def test_keys_are_kept_as_digests_rotated_and_revoked(
    public: TestClient, db: ScratchDB, grid: str
) -> None:
    point = a_point_in(db, grid)
    first = issue(db, "hotline-bridge")
    assert len(first) >= 43 and first.replace("-", "").replace("_", "").isalnum()
    [(digest, by)] = owner(
        db, "SELECT key_digest, created_by FROM open311_client WHERE name = 'hotline-bridge'"
    )
    assert bytes(digest) == hashlib.sha256(first.encode()).digest() and by
    assert first not in str(owner(db, "SELECT * FROM open311_client"))
    report(public, first, point)
    # A second key for the same client needs --rotate; the old key stops working.
    done = run_cli("--client", "hotline-bridge", db=db)
    assert done.returncode != 0 and "--rotate" in done.stderr and not done.stdout
    second = issue(db, "hotline-bridge", "--rotate")
    assert second != first
    assert "api_key" in error_of(post(public, {"api_key": first}), 403)
    report(public, second, point)
    # Revoked: refused, saying so; rotated again, back in service.
    done = run_cli("--client", "hotline-bridge", "--revoke", db=db)
    assert done.returncode == 0 and not done.stdout
    fields = {"api_key": second, "service_code": "NOISE", "lat": point["lat"], "long": point["lon"]}
    assert "revoked" in error_of(post(public, fields), 403)
    third = issue(db, "hotline-bridge", "--rotate")
    report(public, third, point)
    done = run_cli("--client", "nobody", "--revoke", db=db)
    assert done.returncode != 0 and "nobody" in done.stderr
    # The app itself can neither read the clients' digests nor issue keys.
    for sql in (
        "SELECT key_digest FROM open311_client",
        "INSERT INTO open311_client (name, key_digest) VALUES ('rogue', '\\x00'::bytea)",
    ):
        conn = psycopg2.connect(db.app_url.replace("+psycopg2", ""))
        try:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()


def test_rate_limited_in_georeport_format(db: ScratchDB) -> None:
    settings = db.settings(rate_limit_per_second=0.01, rate_limit_burst=1)
    with TestClient(create_app(settings)) as c:
        assert c.get(f"{V2}/services.json").status_code == 200
        got = c.get(f"{V2}/services.json")
        assert "too many requests" in error_of(got, 429) and got.headers["Retry-After"]
