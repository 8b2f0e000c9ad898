"""audit reads: one row per request that read personal data, seen as one row per household

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

A page of 500 households cost 500 audit rows, each with four index entries: 15 ms per request,
more than the query. Reads are now kept as one ``audit_read`` row per request with the
households (ids, codes, and the fields read of each) in parallel arrays, found by household
through a GIN index. The log people and tests read is the view ``audit_log``: the other entries
(``audit_entry``, the former table) and every read expanded to one row per household, as before.
Both tables are append-only; the view shows the grid center only households in its areas.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
DROP POLICY audit_log_append ON audit_log;
DROP POLICY audit_log_grid_center ON audit_log;
ALTER TABLE audit_log RENAME TO audit_entry;
CREATE POLICY audit_entry_append ON audit_entry FOR INSERT WITH CHECK (true);
CREATE POLICY audit_entry_grid_center ON audit_entry FOR SELECT
    USING (current_setting('gridmap.role', true) = 'grid_center'
           AND (household_code IS NULL OR gridmap_covers(household_code)));

CREATE TABLE audit_read (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at timestamptz NOT NULL DEFAULT now(),
    worker_code text,
    role text NOT NULL,
    remote text,
    request_id uuid NOT NULL,
    household_ids uuid[] NOT NULL,
    household_codes text[] NOT NULL,
    -- The fields read of each household, comma-separated: fields[i] goes with household i.
    fields text[] NOT NULL,
    CHECK (cardinality(household_codes) = cardinality(household_ids)
           AND cardinality(fields) = cardinality(household_ids))
);
CREATE INDEX ix_audit_read_at ON audit_read (at);
CREATE INDEX ix_audit_read_worker ON audit_read (worker_code, at);
CREATE INDEX ix_audit_read_households ON audit_read USING gin (household_codes);
-- Statement triggers refuse even a change that would touch no row.
CREATE TRIGGER audit_read_append_only BEFORE UPDATE OR DELETE ON audit_read
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_read_no_truncate BEFORE TRUNCATE ON audit_read
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
ALTER TABLE audit_read ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_read_append ON audit_read FOR INSERT WITH CHECK (true);
CREATE POLICY audit_read_grid_center ON audit_read FOR SELECT
    USING (current_setting('gridmap.role', true) = 'grid_center');

CREATE VIEW audit_log WITH (security_invoker = true) AS
    SELECT id, at, worker_code, role, action, household_id, household_code, fields, remote,
           request_id, detail
    FROM audit_entry
    UNION ALL
    SELECT md5(r.id::text || '/' || e.n)::uuid, r.at, r.worker_code, r.role, 'read',
           e.household_id, e.household_code COLLATE "C", string_to_array(e.fields, ','),
           r.remote, r.request_id, NULL::jsonb
    FROM audit_read r,
         unnest(r.household_ids, r.household_codes, r.fields) WITH ORDINALITY
             AS e(household_id, household_code, fields, n)
    -- Row-level security binds the app role (the owner sees all): a household at a time.
    WHERE NOT row_security_active('audit_read') OR gridmap_covers(e.household_code);

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        REVOKE ALL ON audit_read, audit_log FROM gridmap_app;
        GRANT SELECT, INSERT ON audit_read TO gridmap_app;
        GRANT SELECT ON audit_log TO gridmap_app;
    END IF;
END $$;
"""

DOWNGRADE = """
DROP VIEW audit_log;
DROP TABLE audit_read;
DROP TRIGGER audit_entry_no_change ON audit_entry;
DROP POLICY audit_entry_append ON audit_entry;
DROP POLICY audit_entry_grid_center ON audit_entry;
ALTER TABLE audit_entry RENAME TO audit_log;
CREATE POLICY audit_log_append ON audit_log FOR INSERT WITH CHECK (true);
CREATE POLICY audit_log_grid_center ON audit_log FOR SELECT
    USING (current_setting('gridmap.role', true) = 'grid_center'
           AND (household_code IS NULL OR gridmap_covers(household_code)));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
