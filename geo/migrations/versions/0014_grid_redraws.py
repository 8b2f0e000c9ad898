"""grid redraws: applied drawings, the grids they retired, and the codes they changed

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

``gridmap grids draw`` without ``--dry-run`` (``geo/grids/apply.py``) redraws one community's
grids in one transaction. A grid whose buildings are unchanged keeps its code and its
micro-grids; every other grid is retired and new grids with new codes take its buildings. A code
names a place in the hierarchy (DESIGN.md), so a building moving to a new micro-grid gets a new
code, and so do its households and their members: the rows that carry those codes as text for
row-level security and prefix scans (visits, demands, talents, the family-file history, job
seekers and matches, walking-route stops, open cases) follow them. Audit logs keep the codes
they were written with: they record what was seen then.

- ``grid_drawing``: each applied drawing, its parameters and report;
- ``grid_history`` / ``micro_grid_history``: the retired grids and micro-grids, with their
  boundaries and the codes of the grids that took their buildings. Retired codes are never
  used again (``geo/grids/codes.py`` skips them);
- ``code_change``: old code → new code of every building, household and person a drawing moved,
  so files and people that still use an old code can be told its new one.

``gridmap_append_only`` lets the tables' owner rename codes in an append-only table during a
redraw (``SET LOCAL gridmap.recode = 'on'``); nobody else may update or delete its rows.
Geography is public and read-only to the app; ``code_change`` rows of households and persons are
visible only to callers who cover the old or the new code.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION gridmap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('gridmap.recode', true) = 'on'
       AND pg_has_role(current_user,
                       (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""

APPEND_ONLY_0006 = """
CREATE OR REPLACE FUNCTION gridmap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""

UPGRADE = """
CREATE TABLE grid_drawing (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    community_id uuid NOT NULL REFERENCES community (id),
    community_code text COLLATE "C" NOT NULL,
    drawn_at timestamptz NOT NULL DEFAULT now(),
    drawn_by text NOT NULL,
    target_households integer NOT NULL CHECK (target_households > 0),
    tolerance real NOT NULL CHECK (tolerance >= 0 AND tolerance < 1),
    -- Micro-grids merge small buildings up to this many households; null: one per building.
    micro_households integer CHECK (micro_households > 0),
    -- The proposal's report (as `--json` prints it) and what applying it changed.
    report jsonb NOT NULL
);
CREATE INDEX ix_grid_drawing_community ON grid_drawing (community_id, drawn_at);

CREATE TABLE grid_history (
    code text COLLATE "C" PRIMARY KEY CHECK (code ~ '^[0-9]{15}$'),
    name text,
    community_id uuid NOT NULL REFERENCES community (id),
    geom geometry(MultiPolygon, 4326) NOT NULL,
    retired_at timestamptz NOT NULL,
    retired_by uuid NOT NULL REFERENCES grid_drawing (id),
    households integer NOT NULL,
    -- The grids its buildings went to.
    successors text[] NOT NULL
);
CREATE INDEX ix_grid_history_community ON grid_history (community_id);

CREATE TABLE micro_grid_history (
    code text COLLATE "C" PRIMARY KEY CHECK (code ~ '^[0-9]{18}$'),
    name text,
    grid_code text COLLATE "C" NOT NULL,
    geom geometry(MultiPolygon, 4326) NOT NULL,
    retired_at timestamptz NOT NULL,
    retired_by uuid NOT NULL REFERENCES grid_drawing (id),
    CHECK (starts_with(code, grid_code))
);

CREATE TABLE code_change (
    kind text NOT NULL CHECK (kind IN ('building', 'household', 'person')),
    old_code text COLLATE "C" NOT NULL,
    new_code text COLLATE "C" NOT NULL,
    drawing_id uuid NOT NULL REFERENCES grid_drawing (id),
    PRIMARY KEY (kind, old_code)
);
CREATE INDEX ix_code_change_new ON code_change (new_code);
CREATE INDEX ix_code_change_drawing ON code_change (drawing_id);

ALTER TABLE code_change ENABLE ROW LEVEL SECURITY;
CREATE POLICY code_change_in_callers_areas ON code_change FOR SELECT
    USING (kind = 'building' OR gridmap_covers(old_code) OR gridmap_covers(new_code));

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE
            ON grid_drawing, grid_history, micro_grid_history, code_change FROM gridmap_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(APPEND_ONLY)
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE code_change, micro_grid_history, grid_history, grid_drawing")
    op.execute(APPEND_ONLY_0006)
