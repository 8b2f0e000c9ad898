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
  so files and people that still use an old code can be told its new one
  (``code_whereabouts(code)``: a sentence for error messages).

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

-- The code now of a building, household or person, following every redraw since `code`.
CREATE FUNCTION gridmap_code_now(kind text, code text) RETURNS text
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    WITH RECURSIVE chain(code, n) AS (
        SELECT $2 COLLATE "C", 0
        UNION ALL
        SELECT c.new_code, chain.n + 1 FROM chain
        JOIN code_change c ON c.kind = $1 AND c.old_code = chain.code
        WHERE chain.n < 1000)
    SELECT code FROM chain ORDER BY n DESC LIMIT 1
$$;

-- The grid and micro-grid a point lies in, among a community's grids now (the nearest grid for a
-- point outside them all): where an open case goes when its grid is retired.
CREATE FUNCTION gridmap_grid_at(location geometry, community uuid,
                                OUT grid_code text, OUT micro_grid_code text)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT g.code, (SELECT mg.code FROM micro_grid mg
                    WHERE mg.grid_id = g.id AND ST_Covers(mg.geom, $1)
                    ORDER BY mg.code LIMIT 1)
    FROM grid g WHERE g.community_id = $2
    ORDER BY g.geom <-> $1, g.code LIMIT 1
$$;

-- A row written with a code a redraw has just changed (the writer read it before the redraw
-- committed, and waited on its locks to write) gets the code now: statement-level, so a bulk
-- load pays one check.
CREATE FUNCTION gridmap_follow_household_codes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    stale text[];
    was text := coalesce(current_setting('gridmap.recode', true), '');
BEGIN
    SELECT array_agg(DISTINCT n.household_code) INTO stale FROM new_rows n
    WHERE EXISTS (SELECT 1 FROM code_change c
                  WHERE c.kind = 'household' AND c.old_code = n.household_code);
    IF stale IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('gridmap.recode', 'on', true);
    EXECUTE format('UPDATE %I SET household_code = gridmap_code_now(''household'','
                   ' household_code) WHERE household_code = ANY($1)', TG_TABLE_NAME) USING stale;
    PERFORM set_config('gridmap.recode', was, true);
    RETURN NULL;
END $$;

CREATE FUNCTION gridmap_follow_grid_codes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE grid_case c SET (grid_code, micro_grid_code) =
        (SELECT * FROM gridmap_grid_at(c.location, h.community_id))
    FROM new_rows n JOIN grid_history h ON h.code = n.grid_code
    WHERE c.id = n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER grid_case_follows_grid_codes AFTER INSERT ON grid_case
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION gridmap_follow_grid_codes();

-- Where a code that names nothing now went, for error messages; null if it never existed.
-- Not SECURITY DEFINER: row-level security on code_change applies to the caller.
CREATE FUNCTION code_whereabouts(text) RETURNS text
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT CASE WHEN length($1) = 15 THEN 'retired' ELSE 'retired with grid ' || h.code END
           || ' on ' || (h.retired_at AT TIME ZONE s.timezone)::date
           || ' by a grid redraw; its households are now in grid '
           || array_to_string(h.successors, ', ')
    FROM grid_history h JOIN subdistrict s ON s.code = left(h.code, 9)
    WHERE h.code = left($1, 15) AND length($1) IN (15, 18)
    UNION ALL
    SELECT 'now ' || c.new_code || ' (changed on '
           || (g.drawn_at AT TIME ZONE s.timezone)::date || ' by a grid redraw)'
    FROM code_change c JOIN grid_drawing g ON g.id = c.drawing_id
    JOIN subdistrict s ON s.code = left(g.community_code, 9)
    WHERE c.old_code = $1
    LIMIT 1
$$;

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE
            ON grid_drawing, grid_history, micro_grid_history, code_change FROM gridmap_app;
    END IF;
END $$;
"""


# The tables that carry a household's code as text (geo/grids/apply.py recodes them too).
HOUSEHOLD_CODE_TABLES = (
    "visit", "demand", "talent", "family_file_history", "job_seeker", "job_match",
    "job_match_event", "route_stop", "route_skip",
)  # fmt: skip


def upgrade() -> None:
    op.execute(APPEND_ONLY)
    op.execute(UPGRADE)
    for table in HOUSEHOLD_CODE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_follows_household_codes AFTER INSERT ON {table}"
            " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
            " EXECUTE FUNCTION gridmap_follow_household_codes()"
        )


def downgrade() -> None:
    for table in HOUSEHOLD_CODE_TABLES:
        op.execute(f"DROP TRIGGER {table}_follows_household_codes ON {table}")
    op.execute("DROP TRIGGER grid_case_follows_grid_codes ON grid_case")
    op.execute("DROP FUNCTION gridmap_follow_household_codes(), gridmap_follow_grid_codes(),"
               " gridmap_grid_at(geometry, uuid), gridmap_code_now(text, text)")
    op.execute("DROP FUNCTION code_whereabouts(text)")
    op.execute("DROP TABLE code_change, micro_grid_history, grid_history, grid_drawing")
    op.execute(APPEND_ONLY_0006)
