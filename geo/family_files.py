"""Family files (一户一档): edits with optimistic concurrency, and the file as of any date.

An edit names the version it was based on; the household row is locked, the version compared,
the change made, the version bumped and the whole file as it now stands appended to
``family_file_history`` (with a baseline of how it stood before, on its first edit). So a stale
edit is refused instead of overwriting someone else's, and ``as of`` is one row of history.
Row-level security decides which households a caller may touch: others are "not found".
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo import queries as q
from geo.access import Caller
from geo.errors import BadInput, Conflict, NotFound
from geo.models import PERSON_FLAGS

CLASSES = ("A", "B", "C")
CHANNELS = ("DOOR", "PHONE", "WECHAT", "EMAIL", "ONLINE_GROUP")
VISIT_TIMES = ("WEEKDAY_DAYTIME", "WEEKDAY_EVENING", "WEEKEND")
REMOVALS = ("MOVED_OUT", "DIED", "OTHER")

# The file's fields, by their names in the stored snapshot and in GraphQL.
FILE_FIELDS = {
    "household_class": "householdClass",
    "contact_preference": "contactPreference",
    "visit_times": "visitTimes",
    "notes": "notes",
    "moved_in": "movedIn",
    "moved_out": "movedOut",
    "moved_out_reason": "movedOutReason",
}
MEMBER_FIELDS = ("name", "gender", "relation", "birth_year", "phone", *PERSON_FLAGS)

_MEMBER_JSON = ", ".join(f"'{c}', p.{c}" for c in ("id", "code", *MEMBER_FIELDS))
# The whole file as it stands, as stored in the history (ID numbers stay sealed).
SNAPSHOT = f"""
jsonb_build_object(
    {", ".join(f"'{k}', h.{c}" for c, k in FILE_FIELDS.items())},
    'members', coalesce((
        SELECT jsonb_agg(jsonb_build_object({_MEMBER_JSON},
                   'id_number_sealed', encode(p.id_number_sealed, 'base64'),
                   'id_number_masked', p.id_number_masked) ORDER BY p.code)
        FROM person p WHERE p.household_id = h.id), '[]'::jsonb))
"""

HISTORY = f"""
INSERT INTO family_file_history (household_id, household_code, version, at, worker_code, role,
                                 action, reason, file)
SELECT h.id, h.code, h.version, CAST(:at AS timestamptz), :worker, :role, :action, :reason,
       {SNAPSHOT}
FROM household h WHERE h.id = :id
"""

FILE_COLUMNS = (
    "t.id, t.code, t.building_id AS parent_id, t.unit, t.room, t.household_class,"
    " t.contact_preference, t.visit_times, t.notes, t.moved_in, t.moved_out,"
    " t.moved_out_reason, t.version, t.last_contact_at"
)


def current_file(*, session: Session, household_id: uuid.UUID) -> dict[str, Any] | None:
    """The file as it stands: the household's fields, ``version`` and ``members`` (person rows
    as ``geo.queries`` reads them). None: not in the caller's areas."""
    row = (
        session.execute(
            text(f"SELECT {FILE_COLUMNS} FROM household t WHERE t.id = :id"), {"id": household_id}
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    file = dict(row)
    file["members"] = q.persons_by_household(session=session, household_ids=[household_id])[
        household_id
    ]
    file["at"] = None
    return file


def file_as_of(
    *, session: Session, household_id: uuid.UUID, as_of: dt.date
) -> dict[str, Any] | None:
    """The file as it stood at the end of ``as_of`` (a day of the household's subdistrict), in
    the shape of ``current_file``. None: not in the caller's areas, or not moved in yet."""
    now = current_file(session=session, household_id=household_id)
    if now is None:
        return None
    zone = ZoneInfo(
        session.execute(
            text("SELECT timezone FROM subdistrict WHERE code = left(:code, 9)"),
            {"code": now["code"]},
        ).scalar_one()
    )
    today = dt.datetime.now(zone).date()
    day_end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), zone)
    if as_of > today:
        raise BadInput("asOf", f"{as_of} is in the future (today is {today})")
    stored = session.execute(
        text(
            "SELECT version, at, file FROM family_file_history"
            " WHERE household_id = :id AND at < :end ORDER BY version DESC LIMIT 1"
        ),
        {"id": household_id, "end": day_end},
    ).first()
    if stored is None:
        # Never edited by then: unless edited since, the file is as it stands.
        edited = session.execute(
            text("SELECT EXISTS (SELECT 1 FROM family_file_history WHERE household_id = :id)"),
            {"id": household_id},
        ).scalar()
        file = now if not edited else None
    else:
        file = _from_snapshot(now, stored.version, stored.file)
    if file is None or (file["moved_in"] is not None and file["moved_in"] > as_of):
        return None
    file["at"] = day_end
    return file


def _from_snapshot(now: dict[str, Any], version: int, snapshot: dict[str, Any]) -> dict[str, Any]:
    file = {k: v for k, v in now.items() if k not in FILE_FIELDS}
    for column, key in FILE_FIELDS.items():
        file[column] = snapshot.get(key)
    for column in ("moved_in", "moved_out"):
        if file[column] is not None:
            file[column] = dt.date.fromisoformat(file[column])
    file["version"] = version
    members = []
    for m in snapshot["members"]:
        member = dict(m)
        member["id"] = uuid.UUID(member["id"])
        member["parent_id"] = now["id"]
        sealed = member.pop("id_number_sealed")
        member["id_number_sealed"] = base64.b64decode(sealed) if sealed else None
        members.append(member)
    file["members"] = members
    return file


def history(*, session: Session, household_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every recorded change of a file, oldest first (the baseline has no time)."""
    rows = session.execute(
        text(
            "SELECT version, CASE WHEN at = '-infinity' THEN NULL ELSE at END AS at, worker_code,"
            " role, action, reason FROM family_file_history WHERE household_id = :id"
            " ORDER BY version"
        ),
        {"id": household_id},
    ).mappings()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------------------------


def _edit(
    session: Session,
    caller: Caller,
    household_id: uuid.UUID,
    version: int,
    action: str,
    change: Callable[[dict[str, Any]], list[str]],
    reason: str | None = None,
    argument: str = "input.householdId",
) -> dict[str, Any]:
    """Lock the household, check the version, make the change (which returns the fields it
    touched), bump the version, append the file to its history and audit the change."""
    row = (
        session.execute(
            text("SELECT id, code, version, moved_out FROM household WHERE id = :id FOR UPDATE"),
            {"id": household_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(argument, f"no household {household_id} in your areas")
    if row["moved_out"] is not None:
        raise BadInput(argument, f"household {row['code']} moved out on {row['moved_out']}")
    if row["version"] != version:
        raise Conflict(
            "input.version",
            f"the family file of {row['code']} is at version {row['version']}, not {version}: "
            "someone changed it since you loaded it; reload it and make your change again",
        )
    who = {"worker": caller.worker_code, "role": caller.role.value, "id": household_id}
    session.execute(
        text(
            HISTORY + " AND NOT EXISTS (SELECT 1 FROM family_file_history f"
            " WHERE f.household_id = h.id)"
        ),
        {**who, "at": "-infinity", "action": "BASELINE", "reason": None},
    )
    fields = change(dict(row))
    session.execute(
        text("UPDATE household SET version = version + 1 WHERE id = :id"), {"id": household_id}
    )
    session.execute(text(HISTORY), {**who, "at": "now", "action": action, "reason": reason})
    audit.record(
        session=session,
        caller=caller,
        request_id=uuid.uuid4(),
        action={"ADD_MEMBER": "create", "REMOVE_MEMBER": "delete"}.get(action, "update"),
        entries=[
            {
                "household_id": household_id,
                "household_code": row["code"],
                "fields": fields,
                "detail": {"action": action, "version": version + 1, "reason": reason},
            }
        ],
    )
    found = current_file(session=session, household_id=household_id)
    assert found is not None
    return found


def _set(session: Session, table: str, key: uuid.UUID, values: dict[str, Any]) -> None:
    if not values:
        return
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    session.execute(
        text(f"UPDATE {table} SET {assignments} WHERE id = :key"), {**values, "key": key}
    )


def check_file_values(values: dict[str, Any]) -> None:
    """Values of the family file's own fields (``input.<field>`` named on error)."""
    for column, allowed in (("household_class", CLASSES), ("contact_preference", CHANNELS)):
        if column in values and values[column] not in allowed:
            name = FILE_FIELDS[column]
            if values[column] is None:
                raise BadInput(f"input.{name}", "may not be null")
            raise BadInput(f"input.{name}", f"{values[column]!r}: one of {', '.join(allowed)}")
    if "visit_times" in values:
        times = values["visit_times"]
        if times is None:
            raise BadInput("input.visitTimes", "may not be null: [] for no preference")
        wrong = [t for t in times if t not in VISIT_TIMES]
        if wrong:
            raise BadInput("input.visitTimes", f"{wrong[0]!r}: one of {', '.join(VISIT_TIMES)}")
        values["visit_times"] = list(dict.fromkeys(times))


def update_file(
    *,
    session: Session,
    caller: Caller,
    household_id: uuid.UUID,
    version: int,
    values: dict[str, Any],
) -> dict[str, Any]:
    """Change the file's own fields (columns of ``FILE_FIELDS``; only those given)."""
    check_file_values(values)
    if not values:
        raise BadInput("input", "nothing to change: give at least one field besides the version")

    def change(row: dict[str, Any]) -> list[str]:
        _set(session, "household", household_id, values)
        return sorted(values)

    return _edit(session, caller, household_id, version, "UPDATE_FILE", change)


def _member_household(session: Session, member_id: uuid.UUID) -> uuid.UUID:
    found = session.execute(
        text("SELECT household_id FROM person WHERE id = :id"), {"id": member_id}
    ).scalar()
    if found is None:
        raise NotFound("input.memberId", f"no member {member_id} in your areas")
    return found


def check_member_values(values: dict[str, Any], *, new: bool) -> None:
    if new and not (values.get("name") or "").strip():
        raise BadInput("input.name", "a member needs a name")
    if "name" in values and not (values["name"] or "").strip():
        raise BadInput("input.name", "may not be empty")
    if values.get("gender") not in (None, "F", "M"):
        raise BadInput("input.gender", f"{values['gender']!r}: F or M")
    year = values.get("birth_year")
    if year is not None and not 1880 <= year <= dt.date.today().year:
        raise BadInput("input.birthYear", f"{year} is not a plausible year of birth")
    for flag in PERSON_FLAGS:
        if flag in values and values[flag] is None:
            values[flag] = False


def add_member(
    *,
    session: Session,
    caller: Caller,
    household_id: uuid.UUID,
    version: int,
    values: dict[str, Any],
    sealed: tuple[bytes, bytes, str] | None,
) -> tuple[dict[str, Any], uuid.UUID]:
    """A new member; codes are never reused, so the number follows every member ever recorded
    (the history remembers those who left)."""
    check_member_values(values, new=True)
    member_id = uuid.uuid4()

    def change(row: dict[str, Any]) -> list[str]:
        number = session.execute(
            text(
                "SELECT greatest("
                " (SELECT max(right(code, 2)::int) FROM person WHERE household_id = :id),"
                " (SELECT max(right(m ->> 'code', 2)::int) FROM family_file_history f,"
                "  jsonb_array_elements(f.file -> 'members') m WHERE f.household_id = :id))"
            ),
            {"id": household_id},
        ).scalar()
        code = f"{row['code']}-{(number or 0) + 1:02d}"
        columns = {"id": member_id, "code": code, "household_id": household_id, **values}
        if sealed is not None:
            columns.update(
                id_number_sealed=sealed[0], id_number_digest=sealed[1], id_number_masked=sealed[2]
            )
        names = ", ".join(columns)
        session.execute(
            text(f"INSERT INTO person ({names}) VALUES ({', '.join(':' + c for c in columns)})"),
            columns,
        )
        return ["members", *sorted(values), *(["id_number"] if sealed else [])]

    return _edit(session, caller, household_id, version, "ADD_MEMBER", change), member_id


def update_member(
    *,
    session: Session,
    caller: Caller,
    member_id: uuid.UUID,
    version: int,
    values: dict[str, Any],
    sealed: tuple[bytes, bytes, str] | None,
    clear_id_number: bool = False,
) -> dict[str, Any]:
    check_member_values(values, new=False)
    if not values and sealed is None and not clear_id_number:
        raise BadInput("input", "nothing to change: give at least one field besides the version")
    household_id = _member_household(session, member_id)

    def change(row: dict[str, Any]) -> list[str]:
        columns = dict(values)
        if sealed is not None or clear_id_number:
            s = sealed or (None, None, None)
            columns.update(id_number_sealed=s[0], id_number_digest=s[1], id_number_masked=s[2])
        _set(session, "person", member_id, columns)
        return sorted(values) + (["id_number"] if sealed or clear_id_number else [])

    return _edit(
        session, caller, household_id, version, "UPDATE_MEMBER", change, argument="input.memberId"
    )


def remove_member(
    *,
    session: Session,
    caller: Caller,
    member_id: uuid.UUID,
    version: int,
    reason: str,
    note: str | None,
) -> dict[str, Any]:
    """The member leaves the live file (moved out, died …); the history keeps them."""
    if reason not in REMOVALS:
        raise BadInput("input.reason", f"{reason!r}: one of {', '.join(REMOVALS)}")
    household_id = _member_household(session, member_id)

    def change(row: dict[str, Any]) -> list[str]:
        session.execute(text("DELETE FROM person WHERE id = :id"), {"id": member_id})
        return ["members"]

    why = reason + (f": {note.strip()}" if note and note.strip() else "")
    return _edit(
        session, caller, household_id, version, "REMOVE_MEMBER", change, why, "input.memberId"
    )


def move_out(
    *,
    session: Session,
    caller: Caller,
    household_id: uuid.UUID,
    version: int,
    on: dt.date | None,
    reason: str | None,
) -> dict[str, Any]:
    """The whole household leaves: the file is closed (no longer counted, visited or listed as
    overdue) and its members leave the live tables; the history keeps everything."""

    def change(row: dict[str, Any]) -> list[str]:
        today = session.execute(
            text(
                "SELECT (now() AT TIME ZONE timezone)::date FROM subdistrict"
                " WHERE code = left(:c, 9)"
            ),
            {"c": row["code"]},
        ).scalar_one()
        day = on or today
        if day > today:
            raise BadInput("input.movedOutOn", f"{day} is in the future (today is {today})")
        _set(session, "household", household_id, {"moved_out": day, "moved_out_reason": reason})
        session.execute(text("DELETE FROM person WHERE household_id = :id"), {"id": household_id})
        return ["moved_out", "members"]

    return _edit(session, caller, household_id, version, "MOVE_OUT", change, reason)
