"""past-day coverage: the contacted households of a small scope counted once, not per household

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

``coverage_counts`` (0006) answers a past day by joining the scope's households to the set of
those contacted in time (``ok``). For a grid the planner estimates one to three households in the
code range (narrower than a histogram bucket), so it ran ``ok`` again for every household: one
grid as of 90 days ago took 1.9 s at 5,000,000 households, 13 ms at 1,000,000 (BENCHMARKS.md,
"How cost grows"). Materialising ``ok`` computes it once: 23 ms at 5,000,000, and a sub-district
is no slower. Only that word changes, so the body is taken from the database and edited in place.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

EDIT = """
DO $$
DECLARE
    body text := pg_get_functiondef('coverage_counts(text, integer, date)'::regprocedure);
BEGIN
    IF position('{old}' IN body) = 0 THEN
        RAISE EXCEPTION 'coverage_counts has no "{old}": not the function this migration edits';
    END IF;
    EXECUTE replace(body, '{old}', '{new}');
END $$
"""

PLAIN, MATERIALIZED = "), ok AS (", "), ok AS MATERIALIZED ("


def upgrade() -> None:
    op.execute(EDIT.format(old=PLAIN, new=MATERIALIZED))


def downgrade() -> None:
    op.execute(EDIT.format(old=MATERIALIZED, new=PLAIN))
