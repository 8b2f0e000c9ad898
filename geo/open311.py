"""Open311 (GeoReport v2) clients: their keys, the requests they file, and what the public
reads of cases.

The public sees no row of ``grid_case`` (row-level security), so the public listing is read
through ``open311_requests`` (migration 0011), a ``SECURITY DEFINER`` function that returns only
public columns: the number, the state, the category, the unit once dispatched, the grid's name,
the times, and the point rounded to ``ROUND_DEGREES``. Never the description, the reporter, or
the exact point.

A client files a request as a grid-center caller of the one grid that contains the point
(worker code ``open311:<client>``): ``geo.cases.report_case`` then checks and writes the case as
for staff, under row-level security, with its event and audit entries.

Keys are 32 random bytes (urlsafe base64), shown once; only their SHA-256 digest is kept. A key
has 256 bits of entropy, so a digest cannot be reversed by guessing, and no secret is needed to
check it: rotating the settings' secret key does not break every client. The app may not read
``open311_client``: it checks a key through ``open311_client_by_digest`` (migration 0011).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from geo import cases
from geo.access import Caller, Role
from geo.db import set_scope
from geo.errors import BadInput, Conflict, Forbidden, NotFound

MAX_RESULTS = 1000
DEFAULT_DAYS = 90
MAX_DAYS = 90
# Coordinates the public reads are rounded to 1/2000 of a degree: about 55 m north-south and
# 47 m east-west in Shanghai (31° N).
ROUND_DEGREES = 0.0005
MAX_DESCRIPTION = 4000
CLIENT_NAME_CHARS = 64
OPEN = frozenset(cases.OPEN_STATES)
CLOSED_STATES = ("CLOSED", "REJECTED")
STATUS_STATES = {"open": tuple(cases.OPEN_STATES), "closed": CLOSED_STATES}
# What the public reads of each state (``status_notes``): never a staff note.
STATE_NOTES = {
    "REPORTED": "Received, waiting to be accepted",
    "ACCEPTED": "Accepted, waiting to be assigned",
    "DISPATCHED": "Assigned to {agency}",
    "HANDLED": "Handled, waiting to be checked on site",
    "RETURNED": "Checked on site: being handled again",
    "VERIFIED": "Checked on site, about to be closed",
    "CLOSED": "Closed",
    "REJECTED": "Not accepted",
}


@dataclass(frozen=True)
class Client:
    name: str

    def caller(self, grid_code: str, remote: str | None = None) -> Caller:
        """Who files a request of this client at a point of ``grid_code``: the grid center of
        that one grid, so row-level security and the audit log apply as for staff."""
        return Caller(
            Role.GRID_CENTER, worker_code=f"open311:{self.name}", areas=(grid_code,),
            remote=remote,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Keys (issued by the grid center with `gridmap open311 key`, as the tables' owner)
# --------------------------------------------------------------------------------------------


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.strip().encode()).digest()


def check_client_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > CLIENT_NAME_CHARS or not name.isprintable():
        raise BadInput(
            "--client", f"a name of 1 to {CLIENT_NAME_CHARS} printable characters, like citizen-app"
        )
    return name


def issue_key(
    *, connection: Connection, client: str, created_by: str | None, rotate: bool = False
) -> str:
    """A new key for ``client``: a new client, or (``rotate``) a new key replacing the old one,
    which stops working at once (a revoked client is reinstated). Returns the key: it is not
    kept and cannot be shown again."""
    client = check_client_name(client)
    key = secrets.token_urlsafe(32)
    params = {"name": client, "digest": key_digest(key), "by": created_by}
    if rotate:
        done = connection.execute(
            text(
                "UPDATE open311_client SET key_digest = :digest, created_at = now(),"
                " created_by = :by, revoked_at = NULL WHERE name = :name"
            ),
            params,
        ).rowcount
        if not done:
            raise NotFound("--client", f"no Open311 client {client!r}: leave out --rotate")
        return key
    done = connection.execute(
        text(
            "INSERT INTO open311_client (name, key_digest, created_by)"
            " VALUES (:name, :digest, :by) ON CONFLICT (name) DO NOTHING"
        ),
        params,
    ).rowcount
    if not done:
        raise Conflict("--client", f"the Open311 client {client!r} has a key: --rotate replaces it")
    return key


def revoke_key(*, connection: Connection, client: str) -> None:
    done = connection.execute(
        text(
            "UPDATE open311_client SET revoked_at = coalesce(revoked_at, now()) WHERE name = :name"
        ),
        {"name": client.strip()},
    ).rowcount
    if not done:
        raise NotFound("--client", f"no Open311 client {client.strip()!r}")


def client_by_key(*, session: Session, key: str) -> Client:
    """The client whose key this is; ``Forbidden`` for an unknown or revoked key."""
    row = session.execute(
        text("SELECT name, revoked_at FROM open311_client_by_digest(:d)"), {"d": key_digest(key)}
    ).first()
    if row is None:
        raise Forbidden("api_key", "not a key of this server: ask the grid center for one")
    if row.revoked_at is not None:
        raise Forbidden("api_key", "this key was revoked: ask the grid center for a new one")
    return Client(row.name)


# --------------------------------------------------------------------------------------------
# Services (the case catalogue) and what the public reads of requests
# --------------------------------------------------------------------------------------------


def services(*, session: Session) -> list[dict[str, Any]]:
    """The active categories with their default unit, in code order."""
    rows = session.execute(
        text(
            "SELECT k.code, k.name, k.name_en, k.public_name, k.time_limit, k.time_unit,"
            " u.name AS unit_name, u.name_en AS unit_name_en"
            " FROM case_category k JOIN unit u ON u.code = k.default_unit"
            " WHERE k.active AND k.public ORDER BY k.code"
        )
    ).mappings()
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class RequestFilter:
    numbers: Sequence[str] | None = None  # all other filters are ignored when given
    services: Sequence[str] | None = None
    states: Sequence[str] | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None


def date_window(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The requested-datetime range searched: the last 90 days by default, 90 days from
    ``start`` or up to ``end`` when only one is given; at most 90 days."""
    span = dt.timedelta(days=DEFAULT_DAYS)
    if start is None and end is None:
        return now - span, now
    if start is None:
        assert end is not None
        return end - span, end
    if end is None:
        return start, start + span
    if end < start:
        raise BadInput("end_date", "is before start_date")
    if end - start > dt.timedelta(days=MAX_DAYS):
        raise BadInput("end_date", f"a search spans at most {MAX_DAYS} days")
    return start, end


def public_requests(*, session: Session, where: RequestFilter) -> list[dict[str, Any]]:
    """What anyone may read of the cases that match, newest first, at most ``MAX_RESULTS``."""
    if where.numbers is not None:
        params: dict[str, Any] = {
            "numbers": list(where.numbers), "services": None, "states": None,
            "start": None, "end": None,
        }  # fmt: skip
    else:
        now = session.execute(text("SELECT now()")).scalar_one()
        start, end = date_window(where.start, where.end, now)
        params = {
            "numbers": None,
            "services": list(where.services) if where.services else None,
            "states": list(where.states) if where.states else None,
            "start": start, "end": end,
        }  # fmt: skip
    rows = session.execute(
        text(
            "SELECT * FROM open311_requests(CAST(:numbers AS text[]), CAST(:services AS text[]),"
            " CAST(:states AS text[]), :start, :end, :limit)"
        ),
        {**params, "limit": MAX_RESULTS},
    ).mappings()
    return [{**r, "agency": agency(r["unit_name"], r["unit_name_en"])} for r in rows]


def agency(name: str | None, name_en: str | None) -> str | None:
    """A unit as the public reads it: its name, and its English name (``城管中队 urban
    management squad``)."""
    return " ".join(n for n in (name, name_en) if n) or None


def status_of(state: str) -> str:
    return "open" if state in OPEN else "closed"


def status_notes(row: dict[str, Any]) -> str:
    if row["merged_into"]:
        return f"Closed as a duplicate of {row['merged_into']}"
    return STATE_NOTES[row["state"]].format(agency=row["agency"] or "the responsible unit")


# --------------------------------------------------------------------------------------------
# Filing a request
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestIn:
    service_code: str
    lat: float
    lon: float
    description: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None


def containing_grid(session: Session, lon: float, lat: float) -> str:
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise BadInput("lat", f"latitude {lat} is out of range [-90, 90]")
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise BadInput("long", f"longitude {lon} is out of range [-180, 180]")
    code = session.execute(
        text(
            "SELECT g.code FROM grid g"
            " WHERE ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            " ORDER BY g.code LIMIT 1"
        ),
        {"lon": lon, "lat": lat},
    ).scalar()
    if code is None:
        raise BadInput(
            "lat", f"({lat}, {lon}) is outside every grid of this server: requests are taken "
            "inside the district it serves"
        )  # fmt: skip
    return str(code)


def file_request(
    *, session: Session, key: str, request: RequestIn, remote: str | None = None
) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    """File a request as the client whose key this is: the client, the case and its category
    (``case_category``). The session's transaction is
    the public's when called, and is the client's (of the point's grid) from then on."""
    client = client_by_key(session=session, key=key)
    category = cases.check_category(session, request.service_code, "service_code")
    grid_code = containing_grid(session, request.lon, request.lat)
    description = (request.description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise BadInput("description", f"at most {MAX_DESCRIPTION} characters")
    caller = client.caller(grid_code, remote)
    set_scope(session, caller.settings())
    case, _ = cases.report_case(
        session=session, caller=caller, argument="request",
        case=cases.CaseIn(
            source="OPEN311", category=category["code"],
            # A request without a description still needs one: the category says what.
            description=description or f"{category['name']} ({category['public_name']})",
            lon=request.lon, lat=request.lat, client=client.name,
            reporter_name=request.reporter_name, reporter_phone=request.reporter_phone,
        ),
    )  # fmt: skip
    return client, case, category
