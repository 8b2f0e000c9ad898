"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) on the case loop, in JSON and
XML (``.json`` or ``.xml`` at the end of the path):

- ``GET /open311/v2/services.json``: the case catalogue (``service_code`` = category code);
- ``GET /open311/v2/requests.json``: cases as the public may read them (``geo.open311``): no
  reporter, the category's public wording for a description, the point rounded to 0.0005°;
  at most 1000, newest first;
- ``GET /open311/v2/requests/{service_request_id}.json``: one case;
- ``POST /open311/v2/requests.json``: file a case with a client's ``api_key`` (issued by
  ``gridmap open311 key --client NAME``).

GET is public (credentials are not read) and rate-limited by address; POST by client once the
key is known (by address while it is not). Errors are GeoReport's list of ``code`` and
``description`` with the same HTTP status: 400 naming the field, 403 for a bad or revoked key,
404 for an unknown request, 429 with Retry-After.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.limits import BodyTooLarge, RateLimiter, read_body
from api.web import Refused, rate_limit
from geo import cases, open311
from geo.access import PUBLIC, Caller
from geo.db import scoped_session
from geo.errors import BadInput, GridmapError, NotFound

FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
STATUS = {"BAD_USER_INPUT": 400, "FORBIDDEN": 403, "NOT_FOUND": 404, "CONFLICT": 409}
BODY_BYTES = 65_536  # 4,000 characters of Chinese, percent-encoded, and the rest
NUMBER = re.compile(r"^[0-9]{4}-[0-9]{6,}$")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
NAME_CHARS = 64
PHONE_CHARS = 32
UNIT_WORDS = {"HOURS": "hours", "WORKING_DAYS": "working days"}
READ_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}


class Open311Error(Exception):
    def __init__(self, status: int, description: str, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.headers = headers or {}


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------


def _format(request: Request) -> str:
    fmt = request.path_params.get("format", "")
    if fmt not in FORMATS:
        raise Open311Error(404, f"no format {fmt!r}: ask for .json or .xml")
    return fmt


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(
    fmt: str, rows: list[dict[str, Any]], root: str, item: str, status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """A GeoReport list: a JSON array, or ``<root><item>…</item></root>`` in XML."""
    if fmt == "json":
        body = orjson.dumps(rows)
    else:
        top = ET.Element(root)
        for row in rows:
            element = ET.SubElement(top, item)
            for name, value in row.items():
                ET.SubElement(element, name).text = None if value is None else _text(value)
        body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
            top, encoding="utf-8", xml_declaration=False
        )
    return Response(body, status, headers=headers, media_type=FORMATS[fmt])


def error_response(fmt: str, exc: Open311Error) -> Response:
    rows = [{"code": exc.status, "description": exc.description}]
    return render(fmt, rows, "errors", "error", exc.status, exc.headers)


async def answer(
    request: Request, work: Callable[[Request, str], Any], *, public: bool = True
) -> Response:
    """Run ``work(request, fmt)`` (a coroutine function) and answer its errors GeoReport's
    way; ``public``: rate-limited by the client's address first."""
    fmt = request.path_params.get("format", "")
    fmt = fmt if fmt in FORMATS else "json"
    try:
        fmt = _format(request)
        if public:
            rate_limit(request, PUBLIC)
        return await work(request, fmt)
    except Open311Error as exc:
        return error_response(fmt, exc)
    except Refused as exc:
        return error_response(fmt, Open311Error(exc.status, exc.message, exc.headers))
    except GridmapError as exc:
        return error_response(fmt, Open311Error(STATUS.get(exc.code, 400), exc.message))


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------


def service_json(row: dict[str, Any]) -> dict[str, Any]:
    limit = f"{row['time_limit']} {UNIT_WORDS[row['time_unit']]}"
    return {
        "service_code": row["code"],
        "service_name": row["public_name"],
        "description": f"{row['name']} {row['name_en']}: handled within {limit} of dispatch",
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join(dict.fromkeys((row["name"], row["name_en"]))),
        "group": open311.agency(row["unit_name"], row["unit_name_en"]),
    }


async def open311_services(request: Request) -> Response:
    """``GET /open311/v2/services.{json,xml}``."""

    async def work(request: Request, fmt: str) -> Response:
        def read(engine: Engine) -> list[dict[str, Any]]:
            with scoped_session(engine, PUBLIC.settings()) as session:
                return open311.services(session=session)

        rows = await run_in_threadpool(read, request.app.state.engine)
        return render(fmt, [service_json(r) for r in rows], "services", "service",
                      headers=READ_HEADERS)  # fmt: skip

    return await answer(request, work)


# --------------------------------------------------------------------------------------------
# Reading requests
# --------------------------------------------------------------------------------------------


def _when(value: dt.datetime | None, zone: str) -> str | None:
    return value.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds") if value else None


def request_json(row: dict[str, Any]) -> dict[str, Any]:
    """What anyone reads of a case: no reporter, no description, the point rounded."""
    zone = row["timezone"]
    return {
        "service_request_id": row["number"],
        "status": open311.status_of(row["state"]),
        "status_notes": open311.status_notes(row),
        "service_name": row["service_name"],
        "service_code": row["service_code"],
        "description": row["service_name"],
        "agency_responsible": row["agency"],
        "service_notice": None,
        "requested_datetime": _when(row["requested_at"], zone),
        "updated_datetime": _when(row["updated_at"], zone),
        "expected_datetime": _when(row["expected_at"], zone),
        "address": row["area"],
        "address_id": None,
        "zipcode": None,
        "lat": float(row["lat"]),
        "long": float(row["lon"]),
        "media_url": None,
    }


def _list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(items)) or None


def parse_datetime(value: str | None, name: str, zone: str) -> dt.datetime | None:
    """ISO 8601 with an offset (``2026-11-30T08:00:00+08:00`` or ``…Z``); without one, the
    server's time zone. An unencoded ``+`` of the offset arrives as a space: read as ``+``."""
    if value is None or not value.strip():
        return None
    value = re.sub(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", value.strip())
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(name, f"{value!r} is not an ISO 8601 date and time, like "
                       "2026-11-30T08:00:00+08:00") from None  # fmt: skip
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(zone))


def request_filter(params: Any, zone: str, known: set[str]) -> open311.RequestFilter:
    numbers = _list(params.get("service_request_id"))
    if numbers is not None:
        if len(numbers) > open311.MAX_RESULTS:
            raise BadInput("service_request_id", f"at most {open311.MAX_RESULTS} at once")
        return open311.RequestFilter(numbers=numbers)
    codes = _list(params.get("service_code"))
    for code in codes or ():
        if code not in known:
            raise BadInput("service_code", f"{code!r} is not a service: see services.json")
    statuses = _list(params.get("status"))
    states: list[str] = []
    for status in statuses or ():
        if status.lower() not in open311.STATUS_STATES:
            raise BadInput("status", f"{status!r}: open or closed (or both: open,closed)")
        states += open311.STATUS_STATES[status.lower()]
    return open311.RequestFilter(
        services=codes, states=states or None,
        start=parse_datetime(params.get("start_date"), "start_date", zone),
        end=parse_datetime(params.get("end_date"), "end_date", zone),
    )  # fmt: skip


async def open311_requests(request: Request) -> Response:
    """``GET`` (public) or ``POST`` (with an ``api_key``) ``/open311/v2/requests.{json,xml}``."""
    if request.method == "POST":
        return await answer(request, file_request, public=False)

    async def work(request: Request, fmt: str) -> Response:
        zone = request.app.state.settings.timezone

        def read(engine: Engine) -> list[dict[str, Any]]:
            with scoped_session(engine, PUBLIC.settings()) as session:
                known = {
                    c["code"] for c in cases.categories(session=session, include_inactive=True)
                }
                where = request_filter(request.query_params, zone, known)
                return open311.public_requests(session=session, where=where)

        rows = await run_in_threadpool(read, request.app.state.engine)
        return render(fmt, [request_json(r) for r in rows], "service_requests", "request",
                      headers=READ_HEADERS)  # fmt: skip

    return await answer(request, work)


async def open311_request(request: Request) -> Response:
    """``GET /open311/v2/requests/{service_request_id}.{json,xml}``: a list of one."""

    async def work(request: Request, fmt: str) -> Response:
        number = request.path_params["number"]

        def read(engine: Engine) -> list[dict[str, Any]]:
            if NUMBER.match(number):
                with scoped_session(engine, PUBLIC.settings()) as session:
                    where = open311.RequestFilter(numbers=[number])
                    return open311.public_requests(session=session, where=where)
            return []

        rows = await run_in_threadpool(read, request.app.state.engine)
        if not rows:
            raise NotFound("service_request_id", f"no request {number!r}")
        return render(fmt, [request_json(r) for r in rows], "service_requests", "request",
                      headers=READ_HEADERS)  # fmt: skip

    return await answer(request, work)


# --------------------------------------------------------------------------------------------
# Filing a request
# --------------------------------------------------------------------------------------------


async def read_fields(request: Request) -> dict[str, str]:
    """The fields of a POST: the query string's, then the body's (urlencoded, as GeoReport
    says, or a JSON object), the first value of each."""
    fields = {k: v for k, v in request.query_params.items()}
    try:
        body = await read_body(request, BODY_BYTES)
    except BodyTooLarge as exc:
        raise Open311Error(413, str(exc)) from None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            sent = json.loads(body or b"{}")
        except ValueError:
            raise Open311Error(400, "the body is not JSON") from None
        if not isinstance(sent, dict):
            raise Open311Error(400, "the body is not a JSON object")
        fields.update({k: "" if v is None else str(v) for k, v in sent.items()})
    elif kind in ("", "application/x-www-form-urlencoded"):
        text = body.decode("utf-8", errors="replace")
        fields.update({k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()})
    else:
        raise Open311Error(
            415, f"send the fields as application/x-www-form-urlencoded (or JSON), not {kind}"
        )
    return fields


def _short(fields: dict[str, str], name: str, limit: int) -> str | None:
    value = (fields.get(name) or "").strip()
    if len(value) > limit:
        raise BadInput(name, f"at most {limit} characters")
    return value or None


def _coordinate(fields: dict[str, str], name: str) -> float:
    value = (fields.get(name) or "").strip()
    if not value:
        more = " (address_string alone is not enough here)" if fields.get("address_string") else ""
        raise BadInput(name, f"required: the request's position, lat and long in WGS84{more}")
    try:
        return float(value)
    except ValueError:
        raise BadInput(name, f"{value!r} is not a number of degrees") from None


def reporter_name(first: str | None, last: str | None) -> str | None:
    """张 + 三 → 张三 (family name first, no space); John + Smith → John Smith."""
    if first and last and (CJK.search(first) or CJK.search(last)):
        return last + first
    return " ".join(n for n in (first, last) if n) or None


def request_in(fields: dict[str, str]) -> open311.RequestIn:
    service_code = (fields.get("service_code") or "").strip()
    if not service_code:
        raise BadInput("service_code", "required: one of services.json's service_code")
    lat, lon = _coordinate(fields, "lat"), _coordinate(fields, "long")
    return open311.RequestIn(
        service_code=service_code, lat=lat, lon=lon, description=fields.get("description"),
        reporter_name=reporter_name(
            _short(fields, "first_name", NAME_CHARS), _short(fields, "last_name", NAME_CHARS)
        ),
        reporter_phone=_short(fields, "phone", PHONE_CHARS),
    )  # fmt: skip


def service_notice(case: dict[str, Any], category: dict[str, Any]) -> str:
    limit = f"{category['time_limit']} {UNIT_WORDS[category['time_unit']]}"
    return (
        f"Received as case {case['number']}: the community accepts it and assigns it to the "
        f"responsible unit, which handles it within {limit}"
    )


def _ip_key(request: Request) -> str:
    return f"ip:{request.client.host if request.client else '-'}"


async def file_request(request: Request, fmt: str) -> Response:
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.wait(_ip_key(request))
    if wait:  # before the key is looked up: guessing keys costs the guesser
        rate_limit(request, PUBLIC)
    fields = await read_fields(request)
    key = (fields.get("api_key") or "").strip()
    if not key:
        rate_limit(request, PUBLIC)
        raise Open311Error(403, "api_key: required, as issued by the grid center")
    engine: Engine = request.app.state.engine
    remote = request.client.host if request.client else None

    def client_of() -> open311.Client:
        with scoped_session(engine, PUBLIC.settings()) as session:
            return open311.client_by_key(session=session, key=key)

    try:
        client = await run_in_threadpool(client_of)
    except GridmapError:
        rate_limit(request, PUBLIC)
        raise
    rate_limit(request, Caller(PUBLIC.role, worker_code=f"open311:{client.name}"))
    wanted = request_in(fields)

    def file() -> tuple[dict[str, Any], dict[str, Any]]:
        with scoped_session(engine, PUBLIC.settings()) as session:
            _, case, category = open311.file_request(
                session=session, key=key, request=wanted, remote=remote
            )
            return case, category

    case, category = await run_in_threadpool(file)
    row = {
        "service_request_id": case["number"],
        "service_notice": service_notice(case, category),
        "account_id": None,
    }
    return render(fmt, [row], "service_requests", "request")
