"""row counts and a cheaper policy: for compiled queries, which read many rows in one statement

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

A compiled query builds each area's JSON object in one SQL expression, so it counts one row at a
time and only what was asked for (households, or residents, not always both). The counts are
public aggregates over rows that row-level security hides from most callers: SECURITY DEFINER,
with a fixed search path.

``gridmap_covers`` keeps its meaning but loses its sub-select, which made each call run a
function scan (about 5 µs a row). It is PL/pgSQL rather than an inlinable SQL expression on
purpose: inlined, its prefix test gets the planner's default selectivity, so small tables are
scanned whole and sorted instead of read in code order from the index (a page of households:
14 ms, not 20).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "area_households(text)": """
        SELECT count(*) FROM household h WHERE h.code >= $1 AND h.code < $1 || chr(1114111)""",
    "area_residents(text)": """
        SELECT count(*) FROM person p WHERE p.code >= $1 AND p.code < $1 || chr(1114111)""",
    "building_households(uuid)": """
        SELECT count(*) FROM household h WHERE h.building_id = $1""",
    "building_residents(uuid)": """
        SELECT count(*) FROM household h JOIN person p ON p.household_id = h.id
        WHERE h.building_id = $1""",
}


COVERS = """
CREATE OR REPLACE FUNCTION gridmap_covers(code text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN current_setting('gridmap.role', true)
               IN ('grid_center', 'community', 'grid_worker', 'micro_grid_leader')
       AND code ^@ ANY (string_to_array(nullif(current_setting('gridmap.areas', true), ''), ','));
END $$
"""

COVERS_0002 = """
CREATE OR REPLACE FUNCTION gridmap_covers(code text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_setting('gridmap.role', true)
               IN ('grid_center', 'community', 'grid_worker', 'micro_grid_leader')
       AND EXISTS (
           SELECT 1
           FROM unnest(string_to_array(nullif(current_setting('gridmap.areas', true), ''), ','))
                AS a(prefix)
           WHERE starts_with(code, a.prefix))
$$
"""


def upgrade() -> None:
    op.execute(COVERS)
    for signature, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {signature} RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER"
            f" SET search_path = public, pg_temp AS $${body}$$"
        )
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN "
        + " ".join(f"GRANT EXECUTE ON FUNCTION {s} TO gridmap_app;" for s in FUNCTIONS)
        + " END IF; END $$"
    )


def downgrade() -> None:
    op.execute(COVERS_0002)
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
