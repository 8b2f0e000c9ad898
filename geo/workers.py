"""Workers as callers: their role, the areas they cover, their credentials."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from geo import queries as q
from geo.access import Role
from geo.errors import NotFound

# The areas a worker covers, as code prefixes: the grid center its subdistrict, a community its
# community, block heads and micro-grid leaders their grids, departments none (they see cases).
WORKER_FOR_AUTH = """
SELECT w.id, w.code, w.name, w.role::text AS role, w.unit_code, w.token_epoch, w.password_hash,
  CASE w.role
    WHEN 'GRID_CENTER' THEN ARRAY[s.code]
    WHEN 'COMMUNITY' THEN ARRAY[c.code]
    WHEN 'DEPARTMENT' THEN ARRAY[]::text[]
    ELSE ARRAY(SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id
               WHERE wg.worker_id = w.id ORDER BY g.code)
  END AS areas
FROM worker w
JOIN subdistrict s ON s.id = w.subdistrict_id
LEFT JOIN community c ON c.id = w.community_id
"""


def caller_role(worker_role: str) -> Role:
    return Role(worker_role.lower())


def worker_for_auth(
    *, connection: Connection | Session, worker_id: uuid.UUID
) -> dict[str, Any] | None:
    return q.first_row(connection, WORKER_FOR_AUTH + " WHERE w.id = :id", id=worker_id)


def worker_by_code(*, connection: Connection | Session, code: str) -> dict[str, Any]:
    row = connection.execute(text(WORKER_FOR_AUTH + " WHERE w.code = :code"), {"code": code})
    found = row.mappings().first()
    if found is None:
        raise NotFound("worker", f"no worker has staff number {code!r}")
    return dict(found)


def revoke_tokens(*, connection: Connection | Session, code: str) -> int:
    """Invalidate every token and session of a worker; the new epoch."""
    epoch = connection.execute(
        text(
            "UPDATE worker SET token_epoch = token_epoch + 1 WHERE code = :code"
            " RETURNING token_epoch"
        ),
        {"code": code},
    ).scalar()
    if epoch is None:
        raise NotFound("worker", f"no worker has staff number {code!r}")
    return epoch


def set_password(*, connection: Connection | Session, code: str, password_hash: str) -> None:
    done = connection.execute(
        text("UPDATE worker SET password_hash = :h WHERE code = :code"),
        {"h": password_hash, "code": code},
    )
    if done.rowcount == 0:
        raise NotFound("worker", f"no worker has staff number {code!r}")
