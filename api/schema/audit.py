"""The audit log, for the grid center: who read or changed which household's personal data."""

from __future__ import annotations

import datetime as dt
import uuid

import strawberry

from api.schema.context import Info
from api.schema.relay import DEFAULT_PAGE, Connection, check_first, decode_cursor, make_connection
from geo import audit
from geo.access import Role
from geo.errors import Forbidden


@strawberry.type(description="One entry of the append-only audit log.")
class AuditEntry:
    id: strawberry.ID
    at: dt.datetime
    worker_code: str | None
    role: str
    action: str
    household_code: str | None
    fields: list[str]
    remote: str | None
    request_id: uuid.UUID


async def audit_log(
    info: Info,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    household_code: str | None = None,
    worker_code: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Connection[AuditEntry]:
    """Newest first; the grid center sees the entries of households in its areas."""
    if info.context.caller.role is not Role.GRID_CENTER:
        raise Forbidden("the audit log is for the grid center")
    check_first(first)
    where = audit.AuditFilter(household_code, worker_code, since, until)
    page = await info.context.db.run(
        audit.audit_page, first=first, after=decode_cursor(after), where=where
    )
    keys = [(r["at"].isoformat(), str(r["id"])) for r in page.rows]
    entries = [
        AuditEntry(
            id=strawberry.ID(str(r["id"])),
            at=r["at"],
            worker_code=r["worker_code"],
            role=r["role"],
            action=r["action"],
            household_code=r["household_code"],
            fields=list(r["fields"]),
            remote=r["remote"],
            request_id=r["request_id"],
        )
        for r in page.rows
    ]

    async def total() -> int:
        return await info.context.db.run(audit.audit_count, where=where)

    return make_connection(
        entries, keys, has_next=page.has_next, has_previous=after is not None, total=total
    )
