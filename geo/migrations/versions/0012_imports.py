"""imports: buildings' source keys, streets, what each import last wrote; cases' retry keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

A building placed in a micro-grid takes a code of its micro-grid (``<micro-grid>001``); the key
it has in the file it came from (``osm:w123``, a GIS file's key field) stays in ``source_key``,
so importing the file again finds it.

``street`` keeps the streets and footpaths imported from OpenStreetMap with their highway class
(the walking network is built from all of them, and grids are drawn along the major ones); public
geography, which the app reads and never writes.

``import_row`` remembers, for every row a register import wrote, a digest of the file's values
and of the row as written: the next import tells "the file changed" from "a worker changed it
in the app since", and lists the second as a conflict instead of overwriting it. Bookkeeping of
the command line (the tables' owner): the app role has no access.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE building ADD COLUMN source_key text COLLATE "C" UNIQUE
    CHECK (source_key ~ '^[a-z][a-z0-9_]*:[^[:space:]]+$');
UPDATE building SET source_key = code WHERE code !~ '^[0-9]{21}$';

-- A report retried (a phone on a poor network, the app killed mid-request) lands once.
ALTER TABLE grid_case ADD COLUMN idempotency_key text UNIQUE
    CHECK (length(idempotency_key) BETWEEN 8 AND 200);

-- Case numbers past 999,999 in a year (a big import) grow a digit instead of being cut.
CREATE OR REPLACE FUNCTION next_case_number(year integer) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
    INSERT INTO case_counter AS c (year, last) VALUES (year, 1)
    ON CONFLICT (year) DO UPDATE SET last = c.last + 1
    RETURNING year || '-' || lpad(last::text, greatest(6, length(last::text)), '0')
$fn$;

-- Whether a key is taken by a case the caller may not see (a conflict, not a 500).
CREATE FUNCTION gridmap_case_key_taken(k text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $fn$ SELECT EXISTS (SELECT 1 FROM grid_case WHERE idempotency_key = k) $fn$;
REVOKE EXECUTE ON FUNCTION gridmap_case_key_taken(text) FROM PUBLIC;

CREATE TABLE street (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source_key text COLLATE "C" NOT NULL UNIQUE,
    name text,
    highway text NOT NULL,
    geom geometry(LineString, 4326) NOT NULL CHECK (ST_IsValid(geom))
);
CREATE INDEX ix_street_geom ON street USING gist (geom);

CREATE TABLE import_row (
    kind text NOT NULL,
    key text COLLATE "C" NOT NULL,
    file_digest text NOT NULL,
    row_digest text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        REVOKE ALL ON import_row FROM gridmap_app;
        GRANT EXECUTE ON FUNCTION gridmap_case_key_taken(text) TO gridmap_app;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON street FROM gridmap_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE import_row")
    op.execute("DROP TABLE street")
    op.execute("DROP FUNCTION gridmap_case_key_taken(text)")
    op.execute("ALTER TABLE grid_case DROP COLUMN idempotency_key")
    op.execute("ALTER TABLE building DROP COLUMN source_key")
