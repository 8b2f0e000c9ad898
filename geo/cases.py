"""Cases: the closed loop from a grid worker's whistle (or a hotline call, a visit, a resident
online, an Open311 client) to closure.

A case is reported at a point; the grid and micro-grid containing it are found then. It moves
through the states below, each step made only by the roles the loop gives it and kept as an
event (append-only). The deadline comes from the category's time limit, counted from dispatch
in calendar hours or in working days (``holiday`` rows are the exceptions to Monday–Friday).
Row-level security (migration 0009) decides which cases a caller sees at all; the checks here
say who may take which step, with an error a person can act on.

| from → to | who |
|---|---|
| (new) → REPORTED | grid_worker, micro_grid_leader, community, grid_center; imports, Open311 |
| REPORTED → ACCEPTED or REJECTED (with reason) | community, grid_center |
| ACCEPTED → DISPATCHED (to a unit) | community, grid_center |
| DISPATCHED → HANDLED | department of that unit |
| HANDLED → VERIFIED or RETURNED (with reason) | the grid's grid_worker, community |
| RETURNED → HANDLED | department of that unit |
| VERIFIED → CLOSED | community, grid_center |
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo import audit
from geo import queries as q
from geo.access import Caller, Role
from geo.errors import BadInput, Conflict, Forbidden, NotFound
from geo.geojson import check_point

SOURCES = ("GRID_WHISTLE", "HOTLINE_12345", "VISIT", "RESIDENT_ONLINE", "OPEN311")
STATES = ("REPORTED", "ACCEPTED", "REJECTED", "DISPATCHED", "HANDLED", "RETURNED", "VERIFIED",
          "CLOSED")  # fmt: skip
OPEN_STATES = ("REPORTED", "ACCEPTED", "DISPATCHED", "HANDLED", "RETURNED", "VERIFIED")
PRIORITIES = ("NORMAL", "URGENT")
PHOTO_STAGES = ("REPORT", "HANDLING", "VERIFICATION")
PHOTO_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n",
               "image/webp": b"RIFF"}  # fmt: skip
MAX_PHOTO_BYTES = 5 * 1024 * 1024
REPORTERS = (Role.GRID_WORKER, Role.MICRO_GRID_LEADER, Role.COMMUNITY, Role.GRID_CENTER)
OFFICE = (Role.COMMUNITY, Role.GRID_CENTER)
# (from, to) → the action recorded and who may take the step ("unit": a department of the
# case's unit; "grid": the grid's grid worker or the community).
TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("REPORTED", "ACCEPTED"): ("ACCEPT", "office"),
    ("REPORTED", "REJECTED"): ("REJECT", "office"),
    ("ACCEPTED", "DISPATCHED"): ("DISPATCH", "office"),
    ("DISPATCHED", "HANDLED"): ("HANDLE", "unit"),
    ("HANDLED", "VERIFIED"): ("VERIFY", "grid"),
    ("HANDLED", "RETURNED"): ("RETURN", "grid"),
    ("RETURNED", "HANDLED"): ("HANDLE", "unit"),
    ("VERIFIED", "CLOSED"): ("CLOSE", "office"),
}
NEEDS_NOTE = {"REJECTED": "the reason", "RETURNED": "what is still wrong"}
WHO = {
    "office": "the community or the grid center",
    "unit": "the department of the case's unit",
    "grid": "the grid's grid worker or the community",
}
DUPLICATE_RADIUS_M = 100.0

CASE_COLUMNS = """
c.id, c.number, c.source, c.category_code, c.source_category, c.description,
ST_X(c.location) AS lon, ST_Y(c.location) AS lat, c.grid_code, c.micro_grid_code,
c.reporter_code, c.reporter_name, c.reporter_phone, c.unit_code, c.priority, c.state,
c.reported_at, c.dispatched_at, c.deadline, c.handled_at, c.closed_at, c.returned_count,
c.merged_into, c.visit_id, c.demand_id, c.external_id, c.version,
c.deadline IS NOT NULL AND c.state IN ('DISPATCHED', 'RETURNED') AND c.deadline < now()
    AS overdue
"""


@dataclass(frozen=True)
class PhotoIn:
    stage: str
    content_type: str
    data_base64: str


@dataclass(frozen=True)
class CaseIn:
    source: str
    category: str
    description: str
    lon: float
    lat: float
    priority: str = "NORMAL"
    reporter_name: str | None = None
    reporter_phone: str | None = None
    photos: Sequence[PhotoIn] = ()
    # Imports and integrations.
    reported_at: dt.datetime | None = None
    external_id: str | None = None
    client: str | None = None
    source_category: str | None = None
    visit_id: uuid.UUID | None = None
    demand_id: uuid.UUID | None = None
    # The same for every retry of one report: the retry returns the case reported first.
    idempotency_key: str | None = None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def case_by_id(*, session: Session, case_id: uuid.UUID) -> dict[str, Any] | None:
    """The case if the caller may see it (row-level security), else None."""
    return q.first_row(session, f"SELECT {CASE_COLUMNS} FROM grid_case c WHERE c.id = :id",
                       id=case_id)  # fmt: skip


def case_by_number(*, session: Session, number: str) -> dict[str, Any] | None:
    return q.first_row(session, f"SELECT {CASE_COLUMNS} FROM grid_case c WHERE c.number = :n",
                       n=number)  # fmt: skip


@dataclass(frozen=True)
class CaseFilter:
    """Which cases a list holds (besides row-level security: only those the caller sees).
    ``first_day``/``last_day``: local days of the report, in the case's subdistrict."""

    scope: str | None = None
    states: Sequence[str] = ()
    categories: Sequence[str] = ()
    sources: Sequence[str] = ()
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    overdue: bool | None = None
    within: str | None = None  # GeoJSON text
    near: tuple[float, float, float] | None = None  # lon, lat, metres


def cases_page(
    *, session: Session, where: CaseFilter, first: int, after: tuple[Any, ...] | None
) -> q.Page:
    """The cases the caller sees, newest first (``after``: the last row's (reported_at,
    number))."""
    clauses, params = _where(session, where)
    if after is not None:
        clauses += " AND (c.reported_at, c.number) < (CAST(:a0 AS timestamptz), :a1)"
        params.update(a0=after[0], a1=after[1])
    rows = session.execute(
        text(
            f"SELECT {CASE_COLUMNS} FROM grid_case c WHERE {clauses}"
            " ORDER BY c.reported_at DESC, c.number DESC LIMIT :limit"
        ),
        {**params, "limit": first + 1},
    ).mappings()
    found = [dict(r) for r in rows]
    return q.Page(found[:first], len(found) > first)


def cases_count(*, session: Session, where: CaseFilter) -> int:
    clauses, params = _where(session, where)
    return session.execute(
        text(f"SELECT count(*) FROM grid_case c WHERE {clauses}"), params
    ).scalar_one()


def reported_since(
    *,
    session: Session,
    scope: str,
    since: dt.datetime,
    exclude: Sequence[uuid.UUID] = (),
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The cases in ``scope`` the caller sees that were reported at or after ``since``, oldest
    first, but those in ``exclude`` (already pushed): what a ``caseReported`` subscription
    polls for. At most ``limit``; the next call, excluding these, goes on."""
    clauses, params = _where(session, CaseFilter(scope=scope))
    rows = session.execute(
        text(
            f"SELECT {CASE_COLUMNS} FROM grid_case c WHERE {clauses}"
            " AND c.reported_at >= :since AND NOT c.id = ANY(CAST(:exclude AS uuid[]))"
            " ORDER BY c.reported_at, c.number LIMIT :limit"
        ),
        {**params, "since": since, "exclude": [str(i) for i in exclude], "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def _where(session: Session, where: CaseFilter) -> tuple[str, dict[str, Any]]:
    _check_values("filter.states", where.states, STATES)
    _check_values("filter.sources", where.sources, SOURCES)
    if where.first_day and where.last_day and where.first_day > where.last_day:
        raise BadInput("filter.from", f"{where.first_day} is after to ({where.last_day})")
    clauses: list[str] = []
    params: dict[str, Any] = {}
    scope = where.scope
    if scope is not None:
        q.area_by_code(session=session, code=scope, argument="filter.scope")
        params["scope"] = scope
        if len(scope) >= 15:  # one grid: its index gives the newest first
            clauses.append("c.grid_code = left(:scope, 15)")
        else:
            clauses += ["c.grid_code >= :scope", "c.grid_code < :scope || chr(1114111)"]
        if len(scope) > 15:
            clauses.append("c.micro_grid_code = :scope")
    for name, column in (("states", "state"), ("categories", "category_code"),
                         ("sources", "source")):  # fmt: skip
        values = list(getattr(where, name))
        if values:
            clauses.append(f"c.{column} = ANY(:{name})")
            params[name] = values
    local = "(SELECT s.timezone FROM subdistrict s WHERE s.code = left(c.grid_code, 9))"
    if where.first_day:
        clauses.append(f"c.reported_at >= CAST(:first_day AS timestamp) AT TIME ZONE {local}")
        params["first_day"] = where.first_day
    if where.last_day:
        clauses.append(
            "c.reported_at < (CAST(:last_day AS timestamp) + interval '1 day')"
            f" AT TIME ZONE {local}"
        )
        params["last_day"] = where.last_day
    if where.overdue is not None:
        clauses.append(
            ("" if where.overdue else "NOT ")
            + "(c.deadline IS NOT NULL AND c.state IN ('DISPATCHED', 'RETURNED')"
            " AND c.deadline < now())"
        )
    if where.within is not None:
        clauses.append("ST_Within(c.location, ST_SetSRID(ST_GeomFromGeoJSON(:within), 4326))")
        params["within"] = where.within
    if where.near is not None:
        clauses.append(
            "ST_DWithin(c.location::geography,"
            " ST_SetSRID(ST_MakePoint(:near_lon, :near_lat), 4326)::geography, :near_m)"
        )
        params.update(near_lon=where.near[0], near_lat=where.near[1], near_m=where.near[2])
    return " AND ".join(clauses) or "true", params


def case_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["reported_at"].isoformat(), row["number"])


def events(*, session: Session, case_ids: Sequence[uuid.UUID]) -> dict[Any, list[dict[str, Any]]]:
    rows = session.execute(
        text(
            "SELECT e.case_id, e.id, e.at, e.action, e.from_state, e.to_state, e.worker_code,"
            " e.role, e.unit_code, e.note FROM case_event e WHERE e.case_id = ANY(:ids)"
            " ORDER BY e.case_id, e.at, e.id"
        ),
        {"ids": list(case_ids)},
    ).mappings()
    return q.group_rows(rows, "case_id", case_ids)


def photos(*, session: Session, case_ids: Sequence[uuid.UUID]) -> dict[Any, list[dict[str, Any]]]:
    rows = session.execute(
        text(
            "SELECT p.case_id, p.id, p.stage, p.content_type, length(p.bytes) AS size,"
            " p.uploaded_at, p.uploaded_by FROM case_photo p WHERE p.case_id = ANY(:ids)"
            " ORDER BY p.case_id, p.uploaded_at, p.id"
        ),
        {"ids": list(case_ids)},
    ).mappings()
    return q.group_rows(rows, "case_id", case_ids)


def photo(*, session: Session, number: str, photo_id: uuid.UUID) -> tuple[str, bytes]:
    """A photo's content type and bytes, if the caller may see its case."""
    row = session.execute(
        text(
            "SELECT p.content_type, p.bytes FROM case_photo p JOIN grid_case c ON c.id = p.case_id"
            " WHERE c.number = :n AND p.id = :id"
        ),
        {"n": number, "id": photo_id},
    ).first()
    if row is None:
        raise NotFound("photo", f"no photo {photo_id} of a case {number} you may see")
    return row[0], bytes(row[1])


def categories(*, session: Session, include_inactive: bool = False) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT code, name, name_en, public_name, default_unit, time_limit, time_unit, active,"
            " public FROM case_category WHERE active OR :all ORDER BY code"
        ),
        {"all": include_inactive},
    ).mappings()
    return [dict(r) for r in rows]


def units(*, session: Session) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(text("SELECT * FROM unit ORDER BY code")).mappings()]


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------

CONTAINING = """
SELECT g.code AS grid_code, m.code AS micro_grid_code, s.timezone
FROM grid g
JOIN subdistrict s ON s.code = left(g.code, 9)
LEFT JOIN LATERAL (
    SELECT m.code FROM micro_grid m
    WHERE m.grid_id = g.id AND ST_Covers(m.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
    ORDER BY m.code LIMIT 1
) m ON true
WHERE ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
ORDER BY g.code LIMIT 1
"""


def report_case(
    *, session: Session, caller: Caller, case: CaseIn, argument: str = "input"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Report a case; the case and the open cases of its category nearby that may be the same
    (for the reporter to merge or keep)."""
    if caller.role not in REPORTERS:
        raise Forbidden(argument, "cases are reported by grid staff (or imported)")
    _check_choice(f"{argument}.source", case.source, SOURCES)
    _check_choice(f"{argument}.priority", case.priority, PRIORITIES)
    if not case.description.strip():
        raise BadInput(f"{argument}.description", "say what is wrong, and where")
    check_point(case.lon, case.lat, prefix=f"{argument}.")
    category = check_category(session, case.category, f"{argument}.category")
    where = session.execute(text(CONTAINING), {"lon": case.lon, "lat": case.lat}).mappings().first()
    if where is None:
        raise BadInput(
            f"{argument}.lon", f"({case.lon}, {case.lat}) is outside every grid: report "
            "a case where it is, inside the district"
        )  # fmt: skip
    if not caller.covers(where["grid_code"]):
        raise Forbidden(
            f"{argument}.lon", f"the point is in grid {where['grid_code']}, outside your "
            "areas: its own grid's staff report it"
        )  # fmt: skip
    photos_in = [_photo_bytes(p, f"{argument}.photos[{i}]") for i, p in enumerate(case.photos)]
    key = _check_key(case.idempotency_key, argument)
    if key is not None:
        earlier = _case_by_key(session, key, caller, case, argument)
        if earlier is not None:
            return earlier, possible_duplicates(session=session, case=earlier)
    reported_at = case.reported_at or session.execute(text("SELECT now()")).scalar_one()
    year = reported_at.astimezone(ZoneInfo(where["timezone"])).year
    try:
        with session.begin_nested():
            row = _insert_case(session, caller, case, category, where, reported_at, year, key)
    except IntegrityError:
        # Another request with the same key committed first: the retry lands on its case.
        earlier = _case_by_key(session, key, caller, case, argument) if key else None
        if earlier is None:
            raise
        return earlier, possible_duplicates(session=session, case=earlier)
    _event(session, caller, row, "REPORT", None, "REPORTED", None, at=reported_at)
    for stage, content_type, data in photos_in:
        _store_photo(session, caller, row, stage, content_type, data)
    _audit(session, caller, row, "create", source=case.source)
    found = case_by_id(session=session, case_id=row)
    assert found is not None
    return found, possible_duplicates(session=session, case=found)


def _check_key(key: str | None, argument: str) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not 8 <= len(key) <= 200:
        raise BadInput(
            f"{argument}.idempotencyKey", "8 to 200 characters, the same for every retry (a UUID)"
        )
    return key


def _case_by_key(
    session: Session, key: str, caller: Caller, case: CaseIn, argument: str
) -> dict[str, Any] | None:
    """The case an earlier try with this key reported, if the same reporter sent the same
    report; a key used for anything else is a conflict, never someone else's case."""
    found = q.first_row(session, "SELECT id, reporter_code, category_code, description"
                        " FROM grid_case WHERE idempotency_key = :k", k=key)  # fmt: skip
    if found is None:
        taken = session.execute(text("SELECT gridmap_case_key_taken(:k)"), {"k": key})
        if not taken.scalar_one():
            return None
    elif (found["reporter_code"], found["description"]) == (
        caller.worker_code, case.description.strip()
    ):
        return case_by_id(session=session, case_id=found["id"])
    raise Conflict(
        f"{argument}.idempotencyKey",
        "this key was used for another report: send a new key for a new case, the same key "
        "only when retrying the same one",
    )


def _insert_case(
    session: Session, caller: Caller, case: CaseIn, category: dict[str, Any],
    where: Any, reported_at: dt.datetime, year: int, key: str | None,
) -> uuid.UUID:  # fmt: skip
    return session.execute(
        text(
            "INSERT INTO grid_case (number, source, category_code, source_category, description,"
            " location, grid_code, micro_grid_code, reporter_code, reporter_name,"
            " reporter_phone, unit_code, priority, state, reported_at, visit_id, demand_id,"
            " external_id, client, idempotency_key)"
            " VALUES (next_case_number(:year), :source, :category, :source_category,"
            " :description, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :grid, :micro,"
            " :reporter, :name, :phone, :unit, :priority, 'REPORTED', :at, :visit, :demand,"
            " :external, :client, :key) RETURNING id"
        ),
        {
            "year": year, "source": case.source, "category": category["code"],
            "source_category": case.source_category, "description": case.description.strip(),
            "lon": case.lon, "lat": case.lat, "grid": where["grid_code"],
            "micro": where["micro_grid_code"], "reporter": caller.worker_code,
            "name": case.reporter_name, "phone": case.reporter_phone,
            "unit": None, "priority": case.priority, "at": reported_at,
            "visit": case.visit_id, "demand": case.demand_id, "external": case.external_id,
            "client": case.client, "key": key,
        },
    ).scalar_one()  # fmt: skip


def possible_duplicates(
    *, session: Session, case: dict[str, Any], radius_m: float = DUPLICATE_RADIUS_M
) -> list[dict[str, Any]]:
    """Open cases of the same category within ``radius_m`` (that the caller sees), nearest
    first."""
    rows = session.execute(
        text(
            f"SELECT {CASE_COLUMNS},"
            " ST_Distance(c.location::geography, o.location::geography) AS distance_m"
            " FROM grid_case o JOIN grid_case c ON c.id <> o.id"
            " AND c.category_code = o.category_code AND c.state = ANY(:open)"
            " AND ST_DWithin(c.location::geography, o.location::geography, :r)"
            " WHERE o.id = :id ORDER BY distance_m, c.number LIMIT 20"
        ),
        {"id": case["id"], "open": list(OPEN_STATES), "r": radius_m},
    ).mappings()
    return [dict(r) for r in rows]


def check_category(session: Session, code: str, argument: str) -> dict[str, Any]:
    row = session.execute(
        text("SELECT * FROM case_category WHERE code = :c AND active"), {"c": code}
    ).mappings().first()  # fmt: skip
    if row is None:
        known = session.execute(
            text("SELECT string_agg(code, ', ' ORDER BY code) FROM case_category WHERE active")
        ).scalar_one()
        raise BadInput(argument, f"{code!r} is not a category of the catalogue: one of {known}")
    return dict(row)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def transition(
    *,
    session: Session,
    caller: Caller,
    case_id: uuid.UUID,
    to: str,
    note: str | None = None,
    unit_code: str | None = None,
    photos: Sequence[PhotoIn] = (),
) -> dict[str, Any]:
    """Move a case one step along the loop, or say why it may not move."""
    _check_choice("input.to", to, STATES)
    case = _locked(session, case_id)
    step = TRANSITIONS.get((case["state"], to))
    if step is None:
        nexts = [b for a, b in TRANSITIONS if a == case["state"]]
        raise Conflict(
            "input.to", f"case {case['number']} is {case['state']}: it can move to "
            + (" or ".join(nexts) if nexts else "no other state") + f", not to {to}"
        )  # fmt: skip
    action, who = step
    if not _may(caller, who, case):
        raise Forbidden("input.to", f"{case['state']} → {to} is for {WHO[who]}")
    note = (note or "").strip() or None
    if to in NEEDS_NOTE and note is None:
        raise BadInput("input.note", f"{to} needs {NEEDS_NOTE[to]}")
    photos_in = [_photo_bytes(p, f"input.photos[{i}]") for i, p in enumerate(photos)]
    sets = ["state = :to", "version = version + 1"]
    params: dict[str, Any] = {"id": case_id, "to": to}
    if to == "DISPATCHED":
        unit = unit_code or session.execute(
            text("SELECT default_unit FROM case_category WHERE code = :c"),
            {"c": case["category_code"]},
        ).scalar_one()
        if session.execute(text("SELECT 1 FROM unit WHERE code = :u"), {"u": unit}).first() is None:
            raise BadInput("input.unitCode", f"{unit!r} is not a unit: see `units`")
        now = session.execute(text("SELECT now()")).scalar_one()
        sets += ["unit_code = :unit", "dispatched_at = :now", "deadline = :deadline"]
        params.update(unit=unit, now=now, deadline=deadline(session, case, now))
    elif to == "HANDLED":
        sets.append("handled_at = now()")
    elif to == "RETURNED":
        sets.append("returned_count = returned_count + 1")
    elif to == "CLOSED":
        sets.append("closed_at = now()")
    session.execute(text(f"UPDATE grid_case SET {', '.join(sets)} WHERE id = :id"), params)
    _event(session, caller, case_id, action, case["state"], to, note,
           unit_code=params.get("unit"))  # fmt: skip
    stage = {"HANDLED": "HANDLING", "VERIFIED": "VERIFICATION"}.get(to, "REPORT")
    for _, content_type, data in photos_in:
        _store_photo(session, caller, case_id, stage, content_type, data)
    _close_demand(session, case_id, to)
    _audit(session, caller, case_id, "update", step=action, to=to)
    found = case_by_id(session=session, case_id=case_id)
    if found is None:  # dispatched away from a department that may no longer see it
        found = {**case, "state": to}
    return found


def merge(
    *, session: Session, caller: Caller, case_id: uuid.UUID, into_id: uuid.UUID, note: str | None
) -> dict[str, Any]:
    """Close a duplicate with a link to the case it repeats (which goes on)."""
    if caller.role not in OFFICE:
        raise Forbidden("input.caseId", f"merging cases is for {WHO['office']}")
    if case_id == into_id:
        raise BadInput("input.intoId", "a case cannot be merged into itself")
    case = _locked(session, case_id)
    into = _locked(session, into_id, "input.intoId")
    for which, c in (("input.caseId", case), ("input.intoId", into)):
        if c["state"] not in OPEN_STATES:
            raise Conflict(which, f"case {c['number']} is {c['state']}: only open cases merge")
    session.execute(
        text(
            "UPDATE grid_case SET state = 'CLOSED', closed_at = now(), merged_into = :into,"
            " version = version + 1 WHERE id = :id"
        ),
        {"id": case_id, "into": into_id},
    )
    _event(session, caller, case_id, "MERGE", case["state"], "CLOSED",
           f"merged into {into['number']}" + (f": {note.strip()}" if note else ""))  # fmt: skip
    _close_demand(session, case_id, "CLOSED")
    _audit(session, caller, case_id, "update", step="MERGE", into=str(into_id))
    found = case_by_id(session=session, case_id=case_id)
    assert found is not None
    return found


def add_photo(
    *, session: Session, caller: Caller, case_id: uuid.UUID, photo: PhotoIn
) -> dict[str, Any]:
    _locked(session, case_id)
    _, content_type, data = _photo_bytes(photo, "input")
    _check_choice("input.stage", photo.stage, PHOTO_STAGES)
    _store_photo(session, caller, case_id, photo.stage, content_type, data)
    _event(session, caller, case_id, "PHOTO", None, None, photo.stage)
    _audit(session, caller, case_id, "update", step="PHOTO")
    found = case_by_id(session=session, case_id=case_id)
    assert found is not None
    return found


def _locked(session: Session, case_id: uuid.UUID, argument: str = "input.caseId") -> dict:
    row = session.execute(
        text(
            "SELECT c.id, c.number, c.state, c.grid_code, c.unit_code, c.category_code,"
            " c.demand_id, s.timezone FROM grid_case c"
            " JOIN subdistrict s ON s.code = left(c.grid_code, 9)"
            " WHERE c.id = :id FOR UPDATE OF c"
        ),
        {"id": case_id},
    ).mappings().first()  # fmt: skip
    if row is None:
        raise NotFound(argument, f"no case {case_id} that you may see")
    return dict(row)


def _may(caller: Caller, who: str, case: dict[str, Any]) -> bool:
    if who == "unit":
        return caller.role is Role.DEPARTMENT and caller.unit_code == case["unit_code"]
    if who == "grid":
        return caller.role in (Role.GRID_WORKER, Role.COMMUNITY) and caller.covers(
            case["grid_code"]
        )
    return caller.role in OFFICE and caller.covers(case["grid_code"])


def _event(
    session: Session,
    caller: Caller,
    case_id: uuid.UUID,
    action: str,
    from_state: str | None,
    to_state: str | None,
    note: str | None,
    *,
    unit_code: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    session.execute(
        text(
            "INSERT INTO case_event (case_id, at, action, from_state, to_state, worker_code,"
            " role, unit_code, note)"
            " VALUES (:c, coalesce(:at, clock_timestamp()), :a, :f, :t, :w, :r, :u, :n)"
        ),
        {"c": case_id, "at": at, "a": action, "f": from_state, "t": to_state,
         "w": caller.worker_code, "r": caller.role.value,
         "u": unit_code or caller.unit_code, "n": note},
    )  # fmt: skip


def _audit(
    session: Session, caller: Caller, case_id: uuid.UUID, action: str, **detail: Any
) -> None:
    """Changes to cases go to the audit log like changes to family files."""
    audit.record(
        session=session, caller=caller, request_id=uuid.uuid4(), action=action,
        entries=[{"household_id": None, "household_code": None, "fields": ["case"],
                  "detail": {"case": str(case_id), **detail}}],
    )  # fmt: skip


def _close_demand(session: Session, case_id: uuid.UUID, to: str) -> None:
    """A demand escalated from a visit is closed when its case is (or is rejected)."""
    if to in ("CLOSED", "REJECTED"):
        session.execute(
            text(
                "UPDATE demand d SET closed_at = now() FROM grid_case c"
                " WHERE c.id = :id AND d.id = c.demand_id AND d.closed_at IS NULL"
            ),
            {"id": case_id},
        )


# --------------------------------------------------------------------------------------------
# Deadlines
# --------------------------------------------------------------------------------------------


def deadline(session: Session, case: dict[str, Any], dispatched_at: dt.datetime) -> dt.datetime:
    """When the case must be handled: its category's limit from dispatch, in calendar hours, or
    to the end (24:00 local) of the n-th working day after the dispatch day."""
    limit, unit = session.execute(
        text("SELECT time_limit, time_unit FROM case_category WHERE code = :c"),
        {"c": case["category_code"]},
    ).one()
    if unit == "HOURS":
        return dispatched_at + dt.timedelta(hours=limit)
    zone = ZoneInfo(case["timezone"])
    start = dispatched_at.astimezone(zone).date()
    exceptions = dict(
        session.execute(
            text("SELECT day, working FROM holiday WHERE day > :d AND day <= :d + :span"),
            {"d": start, "span": 3 * limit + 60},
        ).all()
    )
    return working_day_end(start, limit, exceptions, zone)


def working_day_end(
    start: dt.date, days: int, exceptions: dict[dt.date, bool], zone: ZoneInfo
) -> dt.datetime:
    """The end of the ``days``-th working day after ``start`` (Monday–Friday unless
    ``exceptions`` says a day is off (False) or worked (True))."""
    day, left = start, days
    while left:
        day += dt.timedelta(days=1)
        if exceptions.get(day, day.isoweekday() <= 5):
            left -= 1
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------


def _photo_bytes(photo: PhotoIn, argument: str) -> tuple[str, str, bytes]:
    _check_choice(f"{argument}.stage", photo.stage, PHOTO_STAGES)
    magic = PHOTO_TYPES.get(photo.content_type)
    if magic is None:
        raise BadInput(f"{argument}.contentType", f"one of {', '.join(PHOTO_TYPES)}")
    if len(photo.data_base64) > MAX_PHOTO_BYTES * 4 // 3 + 8:
        raise BadInput(f"{argument}.dataBase64", f"larger than {MAX_PHOTO_BYTES // 2**20} MB")
    try:
        data = base64.b64decode(photo.data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{argument}.dataBase64", "not base64") from None
    if not data.startswith(magic):
        raise BadInput(f"{argument}.dataBase64", f"not a {photo.content_type} image")
    return photo.stage, photo.content_type, data


def _store_photo(
    session: Session, caller: Caller, case_id: uuid.UUID, stage: str, content_type: str,
    data: bytes,
) -> None:  # fmt: skip
    session.execute(
        text(
            "INSERT INTO case_photo (case_id, stage, content_type, bytes, sha256, uploaded_by)"
            " VALUES (:c, :s, :t, :b, :h, :w)"
        ),
        {"c": case_id, "s": stage, "t": content_type, "b": data,
         "h": hashlib.sha256(data).digest(), "w": caller.worker_code},
    )  # fmt: skip


def _check_choice(argument: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise BadInput(argument, f"{value!r} is not one of {', '.join(allowed)}")


def _check_values(argument: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    for v in values:
        _check_choice(argument, v, allowed)


# --------------------------------------------------------------------------------------------
# The catalogue and the holiday calendar (the grid center's)
# --------------------------------------------------------------------------------------------

TIME_UNITS = ("HOURS", "WORKING_DAYS")


@dataclass(frozen=True)
class CategoryIn:
    code: str
    name: str
    name_en: str
    public_name: str
    default_unit: str
    time_limit: int
    time_unit: str
    active: bool = True
    public: bool = True


def set_category(*, session: Session, caller: Caller, category: CategoryIn) -> dict[str, Any]:
    """Add a category or change one (cases keep theirs; a category is retired, never deleted)."""
    _require_center(caller)
    code = category.code.strip().upper()
    if not code.replace("_", "").isalnum() or not code[:1].isalpha():
        raise BadInput("input.code", f"{category.code!r}: letters, digits and _, e.g. NOISE")
    for name in ("name", "name_en", "public_name"):
        if not getattr(category, name).strip():
            raise BadInput(f"input.{_camel(name)}", "required")
    _check_choice("input.timeUnit", category.time_unit, TIME_UNITS)
    if code == "OTHER" and not category.active:
        raise BadInput("input.active", "OTHER is the catch-all: it stays active")
    if not 1 <= category.time_limit <= (720 if category.time_unit == "HOURS" else 90):
        raise BadInput("input.timeLimit", f"{category.time_limit} is out of range: 1 to 720 "
                       "hours or 1 to 90 working days")  # fmt: skip
    if session.execute(
        text("SELECT 1 FROM unit WHERE code = :u"), {"u": category.default_unit}
    ).first() is None:  # fmt: skip
        raise BadInput("input.defaultUnit", f"{category.default_unit!r} is not a unit")
    session.execute(
        text(
            "INSERT INTO case_category AS c (code, name, name_en, public_name, default_unit,"
            " time_limit, time_unit, active, public) VALUES (:code, :name, :name_en,"
            " :public_name, :default_unit, :time_limit, :time_unit, :active, :public)"
            " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en,"
            " public_name = EXCLUDED.public_name, default_unit = EXCLUDED.default_unit,"
            " time_limit = EXCLUDED.time_limit, time_unit = EXCLUDED.time_unit,"
            " active = EXCLUDED.active, public = EXCLUDED.public"
        ),
        {**category.__dict__, "code": code},
    )
    audit.record(
        session=session, caller=caller, request_id=uuid.uuid4(), action="update",
        entries=[{"household_id": None, "household_code": None, "fields": ["case_category"],
                  "detail": {"category": code}}],
    )  # fmt: skip
    return next(c for c in categories(session=session, include_inactive=True) if c["code"] == code)


def holidays(*, session: Session, year: int) -> list[dict[str, Any]]:
    if not 1 <= year <= 9999:  # a date's range
        raise BadInput("year", f"{year} is out of range (1 to 9999)")
    rows = session.execute(
        text(
            "SELECT day, working, name FROM holiday"
            " WHERE day >= make_date(:y, 1, 1) AND day < make_date(:y + 1, 1, 1) ORDER BY day"
        ),
        {"y": year},
    ).mappings()
    return [dict(r) for r in rows]


def set_holidays(
    *, session: Session, caller: Caller, year: int, days: Sequence[tuple[dt.date, bool, str]]
) -> list[dict[str, Any]]:
    """Replace a year's exceptions to Monday–Friday: days off, and weekend days worked (调休).
    Deadlines already set stay as they are."""
    _require_center(caller)
    if not 2000 <= year <= 2100:
        raise BadInput("input.year", f"{year} is out of range")
    seen: set[dt.date] = set()
    for i, (day, working, name) in enumerate(days):
        where = f"input.days[{i}]"
        if day.year != year:
            raise BadInput(f"{where}.day", f"{day} is not in {year}")
        if day in seen:
            raise BadInput(f"{where}.day", f"{day} is given twice")
        seen.add(day)
        if working == (day.isoweekday() <= 5):
            kind = "a working weekday" if working else "a weekend day off"
            raise BadInput(f"{where}.working", f"{day} is {kind} anyway: list exceptions only")
        if not name.strip():
            raise BadInput(f"{where}.name", "name it (e.g. 国庆节 or 国庆调休)")
    session.execute(
        text("DELETE FROM holiday WHERE day >= make_date(:y, 1, 1)"
             " AND day < make_date(:y + 1, 1, 1)"), {"y": year},
    )  # fmt: skip
    for day, working, name in days:
        session.execute(
            text("INSERT INTO holiday (day, working, name) VALUES (:d, :w, :n)"),
            {"d": day, "w": working, "n": name.strip()},
        )
    audit.record(
        session=session, caller=caller, request_id=uuid.uuid4(), action="update",
        entries=[{"household_id": None, "household_code": None, "fields": ["holiday"],
                  "detail": {"year": year, "days": len(days)}}],
    )  # fmt: skip
    return holidays(session=session, year=year)


def _require_center(caller: Caller) -> None:
    if caller.role is not Role.GRID_CENTER:
        raise Forbidden("input", "the catalogue and the holiday calendar are the grid center's")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
