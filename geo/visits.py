"""Recording visits: who visited which household, when, how, what was done and what was asked.

A visit is written once: the phone that sends it may retry on a bad network, so each carries an
idempotency key and a retry returns the visit already recorded. Night and weekend follow from the
visit's local time in the household's subdistrict. Demands raised on the visit and capable
residents found ("talents") are written in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo import audit, cases
from geo import queries as q
from geo.access import Caller, Role
from geo.errors import BadInput, Conflict, Forbidden, NotFound
from geo.family_files import CHANNELS

TASKS = (
    "SHOW_IDENTITY",
    "DELIVER_SERVICE",
    "KNOW_FAMILY",
    "PUBLICIZE",
    "ASK_DEMANDS",
    "FIND_TALENT",
)
# A phone's clock may run a little ahead of the server's.
CLOCK_SKEW = dt.timedelta(minutes=5)
NIGHT_FROM, NIGHT_UNTIL = dt.time(18, 0), dt.time(6, 0)
RESOLUTIONS = ("ANSWERED", "ESCALATED")
WILLINGNESS = ("VOLUNTEER", "PAID_WORK", "EITHER", "NOT_NOW")


@dataclass(frozen=True)
class DemandIn:
    text: str
    resolution: str  # ANSWERED or ESCALATED
    category: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class TalentIn:
    person_id: uuid.UUID
    skills: tuple[str, ...]
    willingness: str
    notes: str | None = None


@dataclass(frozen=True)
class VisitIn:
    household_id: uuid.UUID
    worker_id: uuid.UUID
    visited_at: dt.datetime
    mode: str
    idempotency_key: str
    tasks: tuple[str, ...] = ()
    notes: str | None = None
    demands: tuple[DemandIn, ...] = ()
    talents: tuple[TalentIn, ...] = field(default=())


VISIT_COLUMNS = (
    "v.id, v.household_id, v.household_code, v.worker_id, v.visited_at, v.mode, v.night,"
    " v.weekend, v.tasks, v.notes, v.warnings, v.idempotency_key, v.recorded_at, v.recorded_by"
)


def local_kind(visited_at: dt.datetime, zone: str) -> tuple[bool, bool]:
    """(night, weekend) of an instant in a time zone: the "four visits" of seed 04 count visits
    at night (18:00 to 06:00) and at weekends, when working families are in."""
    local = visited_at.astimezone(ZoneInfo(zone))
    night = local.time() >= NIGHT_FROM or local.time() < NIGHT_UNTIL
    return night, local.weekday() >= 5


def record_visit(
    *, session: Session, caller: Caller, visit: VisitIn
) -> tuple[dict[str, Any], bool]:
    """The visit row and whether it was recorded now (False: the key's earlier visit)."""
    _check_input(visit)
    earlier = _by_key(session, visit.idempotency_key)
    if earlier is not None:
        return _same_visit(earlier, visit), False
    household = _household(session, visit.household_id)
    worker = _worker(session, visit.worker_id, household)
    _check_caller(caller, visit.worker_id, worker)
    now = session.execute(text("SELECT now()")).scalar_one()
    if visit.visited_at > now + CLOCK_SKEW:
        raise BadInput(
            "input.visitedAt",
            f"{visit.visited_at.isoformat()} is in the future (the server's time is "
            f"{now.isoformat(timespec='seconds')}): record a visit after it happened",
        )
    night, weekend = local_kind(visit.visited_at, household["timezone"])
    warnings = _warnings(visit, household)
    try:
        with session.begin_nested():
            row = _insert(session, caller, visit, household, night, weekend, warnings)
    except IntegrityError:
        # Another request with the same key committed first: the retry lands on its visit.
        earlier = _by_key(session, visit.idempotency_key)
        if earlier is None:
            raise
        return _same_visit(earlier, visit), False
    _write_demands(session, caller, visit, household, row["id"])
    _write_talents(session, visit, household, row["id"])
    entry = {
        "household_id": household["id"],
        "household_code": household["code"],
        "fields": ["visit"]
        + (["demands"] if visit.demands else [])
        + (["talents"] if visit.talents else []),
        "detail": {"visit_id": str(row["id"]), "worker": worker["code"]},
    }
    request_id = uuid.uuid4()
    audit.record(
        session=session, caller=caller, request_id=request_id, action="create", entries=[entry]
    )
    if worker["id"] != caller.worker_id:
        audit.record(
            session=session, caller=caller, request_id=request_id, action="act_for", entries=[entry]
        )
    return row, True


def _check_input(visit: VisitIn) -> None:
    if visit.visited_at.tzinfo is None:
        raise BadInput("input.visitedAt", "give the time with its offset, e.g. +08:00")
    if visit.mode not in CHANNELS:
        raise BadInput("input.mode", f"{visit.mode!r} is not one of {', '.join(CHANNELS)}")
    key = visit.idempotency_key.strip()
    if not 8 <= len(key) <= 200:
        raise BadInput(
            "input.idempotencyKey", "8 to 200 characters, the same for every retry (a UUID)"
        )
    unknown = [t for t in visit.tasks if t not in TASKS]
    if unknown:
        raise BadInput("input.tasks", f"{unknown[0]!r} is not one of {', '.join(TASKS)}")
    for i, d in enumerate(visit.demands):
        where = f"input.demands[{i}]"
        if not d.text.strip():
            raise BadInput(f"{where}.text", "say what the household asked for")
        if d.resolution not in RESOLUTIONS:
            raise BadInput(f"{where}.resolution", "ANSWERED (on the spot) or ESCALATED")
        if d.resolution == "ANSWERED" and not (d.answer or "").strip():
            raise BadInput(f"{where}.answer", "a demand answered on the spot needs the answer")


def _by_key(session: Session, key: str) -> dict[str, Any] | None:
    return q.first_row(
        session, f"SELECT {VISIT_COLUMNS} FROM visit v WHERE v.idempotency_key = :k", k=key
    )


def visit_by_id(*, session: Session, visit_id: uuid.UUID) -> dict[str, Any] | None:
    return q.first_row(
        session, f"SELECT {VISIT_COLUMNS} FROM visit v WHERE v.id = :id", id=visit_id
    )


def _same_visit(earlier: dict[str, Any], visit: VisitIn) -> dict[str, Any]:
    if (earlier["household_id"], earlier["worker_id"]) != (visit.household_id, visit.worker_id):
        raise Conflict(
            "input.idempotencyKey",
            "this key was used for another visit (another household or worker): send a new key "
            "for a new visit, the same key only when retrying the same one",
        )
    return earlier


HOUSEHOLD = """
SELECT h.id, h.code, h.household_class, h.contact_preference, h.moved_out,
       left(h.code, 15) AS grid_code, left(h.code, 12) AS community_code, s.timezone,
       ST_X(h.location) AS lon, ST_Y(h.location) AS lat
FROM household h JOIN subdistrict s ON s.code = left(h.code, 9)
WHERE h.id = :id
"""


def _household(session: Session, household_id: uuid.UUID) -> dict[str, Any]:
    """The household, if the caller may see it (row-level security): else not found."""
    row = session.execute(text(HOUSEHOLD), {"id": household_id}).mappings().first()
    if row is None:
        raise NotFound("input.householdId", f"no household {household_id} in your areas")
    if row["moved_out"] is not None:
        raise BadInput(
            "input.householdId", f"household {row['code']} moved out on {row['moved_out']}"
        )
    return dict(row)


def _worker(session: Session, worker_id: uuid.UUID, household: dict[str, Any]) -> dict[str, Any]:
    """The visiting worker, who must be assigned to the household's grid (or be staff of its
    community, who visit too)."""
    row = (
        session.execute(
            text(
                "SELECT w.id, w.code, w.role::text AS role, c.code AS community_code,"
                " EXISTS (SELECT 1 FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id"
                "         WHERE wg.worker_id = w.id AND g.code = :grid) AS assigned,"
                " ARRAY(SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id"
                "       WHERE wg.worker_id = w.id) AS grids"
                " FROM worker w LEFT JOIN community c ON c.id = w.community_id WHERE w.id = :id"
            ),
            {"id": worker_id, "grid": household["grid_code"]},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("input.workerId", f"no worker {worker_id}")
    community_staff = (
        row["role"] == "COMMUNITY" and row["community_code"] == household["community_code"]
    )
    if not (row["assigned"] or community_staff):
        raise BadInput(
            "input.workerId",
            f"worker {row['code']} is not assigned to grid {household['grid_code']} of "
            f"household {household['code']}: record the visit for that grid's worker",
        )
    return dict(row)


def _check_caller(caller: Caller, worker_id: uuid.UUID, worker: dict[str, Any]) -> None:
    areas = worker["grids"] or ([worker["community_code"]] if worker["community_code"] else [])
    if caller.role is Role.PUBLIC or not caller.may_act_for(worker_id, areas):
        raise Forbidden(
            "input.workerId",
            f"you may record visits as yourself, not as worker {worker['code']} (a community or "
            "the grid center may record for the workers of its areas)",
        )


def _warnings(visit: VisitIn, household: dict[str, Any]) -> list[str]:
    warnings = []
    if visit.mode == "DOOR" and household["household_class"] == "A":
        warnings.append(door_to_class_a(household["code"], household["contact_preference"]))
    if visit.talents and "FIND_TALENT" not in visit.tasks:
        warnings.append("talents were recorded but FIND_TALENT is not among the tasks")
    if visit.demands and "ASK_DEMANDS" not in visit.tasks:
        warnings.append("demands were recorded but ASK_DEMANDS is not among the tasks")
    return warnings


def door_to_class_a(code: str, preferred: str) -> str:
    return f"household {code} is class A and does not want door visits: contact it by {preferred}"


def _insert(
    session: Session,
    caller: Caller,
    visit: VisitIn,
    household: dict[str, Any],
    night: bool,
    weekend: bool,
    warnings: list[str],
) -> dict[str, Any]:
    return dict(
        session.execute(
            text(
                "INSERT INTO visit AS v (household_id, household_code, worker_id, visited_at,"
                " mode, night, weekend, tasks, notes, warnings, idempotency_key, recorded_by)"
                " VALUES (:hid, :hcode, :wid, :at, :mode, :night, :weekend, :tasks, :notes,"
                " :warnings, :key, :by)"
                f" RETURNING {VISIT_COLUMNS}"
            ),
            {
                "hid": household["id"],
                "hcode": household["code"],
                "wid": visit.worker_id,
                "at": visit.visited_at,
                "mode": visit.mode,
                "night": night,
                "weekend": weekend,
                "tasks": list(dict.fromkeys(visit.tasks)),
                "notes": visit.notes,
                "warnings": warnings,
                "key": visit.idempotency_key,
                "by": caller.worker_code,
            },
        )
        .mappings()
        .one()
    )


def _write_demands(
    session: Session,
    caller: Caller,
    visit: VisitIn,
    household: dict[str, Any],
    visit_id: uuid.UUID,
) -> None:
    """The demands; one escalated becomes a case at the household's home, linked to the visit
    (its category from the catalogue, OTHER when none is given)."""
    for i, d in enumerate(visit.demands):
        if d.category is not None:
            cases.check_category(session, d.category, f"input.demands[{i}].category")
        demand_id = session.execute(
            text(
                "INSERT INTO demand (household_id, household_code, visit_id, text, category,"
                " resolution, answer, raised_at, closed_at)"
                " VALUES (:hid, :hcode, :vid, :text, :category, :resolution, :answer, :at,"
                " CASE WHEN :resolution = 'ANSWERED' THEN CAST(:at AS timestamptz) END)"
                " RETURNING id"
            ),
            {
                "hid": household["id"],
                "hcode": household["code"],
                "vid": visit_id,
                "text": d.text.strip(),
                "category": d.category,
                "resolution": d.resolution,
                "answer": d.answer,
                "at": visit.visited_at,
            },
        ).scalar_one()
        if d.resolution == "ESCALATED":
            cases.report_case(
                session=session, caller=caller, argument=f"input.demands[{i}]",
                case=cases.CaseIn(
                    source="VISIT", category=d.category or "OTHER", description=d.text,
                    lon=household["lon"], lat=household["lat"], reported_at=visit.visited_at,
                    visit_id=visit_id, demand_id=demand_id,
                ),
            )  # fmt: skip


def _write_talents(
    session: Session, visit: VisitIn, household: dict[str, Any], visit_id: uuid.UUID
) -> None:
    for i, t in enumerate(visit.talents):
        where = f"input.talents[{i}]"
        if t.willingness not in WILLINGNESS:
            raise BadInput(f"{where}.willingness", f"one of {', '.join(WILLINGNESS)}")
        member = session.execute(
            text("SELECT household_id FROM person WHERE id = :id"), {"id": t.person_id}
        ).scalar()
        if member != household["id"]:
            raise BadInput(f"{where}.memberId", "not a member of this household")
        session.execute(
            text(
                "INSERT INTO talent (household_id, household_code, person_id, skills,"
                " willingness, notes, visit_id, found_at)"
                " VALUES (:hid, :hcode, :pid, :skills, :willingness, :notes, :vid, :at)"
                " ON CONFLICT (person_id) DO UPDATE SET skills = EXCLUDED.skills,"
                " willingness = EXCLUDED.willingness,"
                " notes = coalesce(EXCLUDED.notes, talent.notes), visit_id = EXCLUDED.visit_id,"
                " updated_at = now()"
            ),
            {
                "hid": household["id"],
                "hcode": household["code"],
                "pid": t.person_id,
                "skills": sorted({s.strip() for s in t.skills if s.strip()}),
                "willingness": t.willingness,
                "notes": t.notes,
                "vid": visit_id,
                "at": visit.visited_at,
            },
        )


def visits_of(
    *, session: Session, household_ids: list[uuid.UUID], limit: int
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The latest ``limit`` visits of each household, newest first (for data loaders)."""
    rows = session.execute(
        text(
            f"SELECT x.* FROM unnest(CAST(:ids AS uuid[])) AS k(hid), LATERAL ("
            f" SELECT {VISIT_COLUMNS} FROM visit v WHERE v.household_id = k.hid"
            " ORDER BY v.visited_at DESC LIMIT :limit) x"
        ),
        {"ids": household_ids, "limit": limit},
    ).mappings()
    return q.group_rows(rows, "household_id", household_ids)


def demands_by_visit(
    *, session: Session, visit_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The demands raised on each visit, in the order raised (for data loaders)."""
    rows = session.execute(
        text(
            "SELECT id, visit_id, text, category, resolution, answer, raised_at, closed_at"
            " FROM demand WHERE visit_id = ANY(:ids) ORDER BY raised_at, id"
        ),
        {"ids": visit_ids},
    ).mappings()
    return q.group_rows(rows, "visit_id", visit_ids)


def open_demands(
    *, session: Session, household_id: uuid.UUID, at: dt.datetime | None
) -> list[dict[str, Any]]:
    """A household's demands that were open at ``at`` (now when None): escalated, not closed."""
    rows = session.execute(
        text(
            "SELECT id, visit_id, text, category, resolution, answer, raised_at, closed_at"
            " FROM demand WHERE household_id = :hid AND resolution = 'ESCALATED'"
            " AND (CAST(:at AS timestamptz) IS NULL OR raised_at < :at)"
            " AND (closed_at IS NULL"
            "      OR closed_at >= coalesce(CAST(:at AS timestamptz), 'infinity'))"
            " ORDER BY raised_at"
        ),
        {"hid": household_id, "at": at},
    )
    return [dict(r) for r in rows.mappings()]


def talents_page(
    *, session: Session, scope: str, first: int, after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Capable residents found on visits inside ``scope``, in household code order."""
    rows = session.execute(
        text(
            "SELECT t.id, t.household_id, t.household_code, t.person_id, t.skills, t.willingness,"
            " t.notes, t.found_at, t.updated_at, p.code AS person_code"
            " FROM talent t JOIN person p ON p.id = t.person_id"
            " WHERE t.household_code >= :scope AND t.household_code < :scope || chr(1114111)"
            " AND (CAST(:after AS text) IS NULL OR p.code > :after)"
            " ORDER BY p.code LIMIT :limit"
        ),
        {"scope": scope, "after": after, "limit": first + 1},
    ).mappings()
    found = [dict(r) for r in rows]
    return found[:first], len(found) > first


def talents_count(*, session: Session, scope: str) -> int:
    return session.execute(
        text(
            "SELECT count(*) FROM talent t WHERE t.person_id IS NOT NULL"
            " AND t.household_code >= :scope AND t.household_code < :scope || chr(1114111)"
        ),
        {"scope": scope},
    ).scalar_one()
