"""open311: what the public reads of cases (GeoReport v2), and checking a client's key

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

Row-level security shows the public no case at all. ``open311_requests`` (``SECURITY
DEFINER``) returns the public part of the cases that match, newest first, at most 1000: the
number, the state, the category and its public wording, the unit once dispatched, the grid's
name, the case it was merged into, the times (the last event's for ``updated_at``) and the
point rounded to 1/2000 of a degree (about 50 m). Never the description, the reporter, a note
or the exact point. Filters left NULL do not filter; ``numbers`` given, the others are
ignored by the caller (``geo.open311``), not here.

The app may not read ``open311_client`` (migration 0009): ``open311_client_by_digest`` (also
``SECURITY DEFINER``) returns the name and revocation of the client whose key has that SHA-256
digest, if any. Keys are issued and revoked by the grid center as the tables' owner
(``gridmap open311 key``).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SIGNATURE = "open311_requests(text[], text[], text[], timestamptz, timestamptz, integer)"
CLIENT = "open311_client_by_digest(bytea)"

UPGRADE = f"""
CREATE FUNCTION open311_requests(numbers text[], services text[], states text[],
                                 start_at timestamptz, end_at timestamptz, max_rows integer)
RETURNS TABLE (number text, state text, service_code text, service_name text,
               unit_name text, unit_name_en text, area text, merged_into text,
               requested_at timestamptz, updated_at timestamptz, expected_at timestamptz,
               lat numeric, lon numeric, timezone text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.number, c.state, c.category_code, k.public_name, u.name, u.name_en, g.name,
           m.number, c.reported_at, coalesce(e.last_at, c.reported_at), c.deadline,
           (round(ST_Y(c.location)::numeric * 2000) / 2000)::numeric(9, 4),
           (round(ST_X(c.location)::numeric * 2000) / 2000)::numeric(10, 4),
           s.timezone
    FROM grid_case c
    JOIN case_category k ON k.code = c.category_code
    JOIN subdistrict s ON s.code = left(c.grid_code, 9)
    LEFT JOIN grid g ON g.code = c.grid_code
    LEFT JOIN unit u ON u.code = c.unit_code
    LEFT JOIN grid_case m ON m.id = c.merged_into
    LEFT JOIN LATERAL (
        SELECT max(ev.at) AS last_at FROM case_event ev WHERE ev.case_id = c.id
    ) e ON true
    WHERE k.public
      AND (numbers IS NULL OR c.number = ANY (numbers))
      AND (services IS NULL OR c.category_code = ANY (services))
      AND (states IS NULL OR c.state = ANY (states))
      AND (start_at IS NULL OR c.reported_at >= start_at)
      AND (end_at IS NULL OR c.reported_at <= end_at)
    ORDER BY c.reported_at DESC, c.number DESC
    LIMIT greatest(0, least(coalesce(max_rows, 1000), 1000))
$$;
REVOKE EXECUTE ON FUNCTION {SIGNATURE} FROM PUBLIC;

CREATE FUNCTION open311_client_by_digest(digest bytea)
RETURNS TABLE (name text, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.name, c.revoked_at FROM open311_client c WHERE c.key_digest = digest
$$;
REVOKE EXECUTE ON FUNCTION {CLIENT} FROM PUBLIC;
"""

APP_GRANTS = f"""
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        GRANT EXECUTE ON FUNCTION {SIGNATURE} TO gridmap_app;
        GRANT EXECUTE ON FUNCTION {CLIENT} TO gridmap_app;
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(APP_GRANTS)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {CLIENT}")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
