"""security: credentials, sealed ID numbers, row-level security, aggregates, the audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The app role owns nothing, so these policies bind it; the owner (migrations, the demo loader)
is not bound. Aggregates the public may see come from SECURITY DEFINER functions that return
counts only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from psycopg2.extras import execute_values

from geo.migrate import secret_key_of
from geo.pii import Vault

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Tables holding personal data: every one gets a policy keyed on the caller's areas.
PERSONAL_TABLES = ("household", "person")

COVERS = """
CREATE FUNCTION gridmap_covers(code text) RETURNS boolean
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

AREA_COUNTS = """
CREATE FUNCTION area_household_counts(codes text[])
RETURNS TABLE (code text, households bigint, residents bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT a.code,
      (SELECT count(*) FROM household h
        WHERE h.code >= a.code AND h.code < a.code || chr(1114111)),
      (SELECT count(*) FROM person p
        WHERE p.code >= a.code AND p.code < a.code || chr(1114111))
    FROM unnest(codes) AS a(code)
$$
"""

BUILDING_COUNTS = """
CREATE FUNCTION building_household_counts(ids uuid[])
RETURNS TABLE (id uuid, households bigint, residents bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT b.id,
      (SELECT count(*) FROM household h WHERE h.building_id = b.id),
      (SELECT count(*) FROM household h JOIN person p ON p.household_id = h.id
        WHERE h.building_id = b.id)
    FROM unnest(ids) AS b(id)
$$
"""

AUDIT_LOG = """
CREATE TABLE audit_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at timestamptz NOT NULL DEFAULT now(),
    worker_code text,
    role text NOT NULL,
    action text NOT NULL CHECK (action IN ('read', 'create', 'update', 'delete', 'act_for')),
    household_id uuid,
    household_code text COLLATE "C",
    fields text[] NOT NULL DEFAULT '{}',
    remote text,
    request_id uuid NOT NULL,
    detail jsonb
);
CREATE INDEX ix_audit_log_at ON audit_log (at);
CREATE INDEX ix_audit_log_household ON audit_log (household_id, at);
CREATE INDEX ix_audit_log_worker ON audit_log (worker_code, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_append ON audit_log FOR INSERT WITH CHECK (true);
CREATE POLICY audit_log_grid_center ON audit_log FOR SELECT
    USING (current_setting('gridmap.role', true) = 'grid_center'
           AND (household_code IS NULL OR gridmap_covers(household_code)));
"""

APP_GRANTS = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM gridmap_app;
        GRANT SELECT, INSERT ON audit_log TO gridmap_app;
        GRANT EXECUTE ON FUNCTION area_household_counts(text[]) TO gridmap_app;
        GRANT EXECUTE ON FUNCTION building_household_counts(uuid[]) TO gridmap_app;
    END IF;
END $$
"""


def upgrade() -> None:
    op.add_column("worker", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column(
        "worker",
        sa.Column("token_epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("person", sa.Column("id_number_sealed", sa.LargeBinary(), nullable=True))
    op.add_column("person", sa.Column("id_number_digest", sa.LargeBinary(), nullable=True))
    op.add_column("person", sa.Column("id_number_masked", sa.Text(), nullable=True))
    _seal_id_numbers()
    op.drop_column("person", "id_number")
    op.create_index(op.f("ix_person_id_number_digest"), "person", ["id_number_digest"])
    op.execute(COVERS)
    for table in PERSONAL_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_in_callers_areas ON {table}"
            " USING (gridmap_covers(code)) WITH CHECK (gridmap_covers(code))"
        )
    op.execute(AREA_COUNTS)
    op.execute(BUILDING_COUNTS)
    for fn in ("area_household_counts(text[])", "building_household_counts(uuid[])"):
        op.execute(f"REVOKE EXECUTE ON FUNCTION {fn} FROM PUBLIC")
    op.execute(AUDIT_LOG)
    op.execute(APP_GRANTS)


def _seal_id_numbers() -> None:
    """Existing plain ID numbers become sealed ones, in batches, within the migration."""
    connection = op.get_bind().connection.dbapi_connection
    vault = Vault(secret_key_of(op.get_context().config))
    with connection.cursor(name="plain_id_numbers") as read, connection.cursor() as write:
        read.itersize = 10_000
        read.execute("SELECT id, id_number FROM person WHERE id_number IS NOT NULL")
        while batch := read.fetchmany(10_000):
            execute_values(
                write,
                "UPDATE person p SET id_number_sealed = v.s, id_number_digest = v.d,"
                " id_number_masked = v.m FROM (VALUES %s) AS v(id, s, d, m)"
                " WHERE p.id = v.id::uuid",
                [(str(pid), *vault.seal(number)) for pid, number in batch],
            )


def downgrade() -> None:
    op.execute("DROP TABLE audit_log")
    op.execute("DROP FUNCTION audit_log_is_append_only()")
    op.execute("DROP FUNCTION building_household_counts(uuid[])")
    op.execute("DROP FUNCTION area_household_counts(text[])")
    for table in PERSONAL_TABLES:
        op.execute(f"DROP POLICY {table}_in_callers_areas ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION gridmap_covers(text)")
    op.drop_index(op.f("ix_person_id_number_digest"), table_name="person")
    # Sealed numbers cannot come back as plain text without the key: they are dropped.
    op.add_column("person", sa.Column("id_number", sa.Text(), nullable=True))
    for column in ("id_number_masked", "id_number_digest", "id_number_sealed"):
        op.drop_column("person", column)
    op.drop_column("worker", "token_epoch")
    op.drop_column("worker", "password_hash")
