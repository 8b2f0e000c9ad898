"""spatial model

Revision ID: 0001
Revises:
Create Date: 2026-11-22

The whole hierarchy, workers and merchants; triggers keeping every code an extension of its
parent's code (what makes counting by code prefix right); privileges for the app role.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# (table, parent table, foreign key, separator): a child's code is its parent's code, the
# separator, and its own part. Buildings without a micro-grid keep a source key (no parent row).
CODE_PARENTS = [
    ("subdistrict", "district", "district_id", ""),
    ("community", "subdistrict", "subdistrict_id", ""),
    ("grid", "community", "community_id", ""),
    ("micro_grid", "grid", "grid_id", ""),
    ("building", "micro_grid", "micro_grid_id", ""),
    ("household", "building", "building_id", "-"),
    ("person", "household", "household_id", "-"),
]

# One set-based check per statement (not per row), so bulk COPY stays fast.
CODE_PREFIX_CHECK = """
CREATE FUNCTION check_code_prefix() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    EXECUTE format(
        'SELECT n.code, p.code AS parent_code FROM new_rows n JOIN %I p ON p.id = n.%I'
        ' WHERE NOT starts_with(n.code, p.code || %L) OR length(n.code) <= length(p.code) + %s'
        ' LIMIT 1',
        TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], length(TG_ARGV[2])) INTO bad;
    IF bad.code IS NOT NULL THEN
        RAISE EXCEPTION 'code % of % does not extend its %''s code %',
            bad.code, TG_TABLE_NAME, TG_ARGV[0], bad.parent_code || TG_ARGV[2]
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$
"""

# The app serves requests as gridmap_app (created by the local cluster): it owns nothing, so
# row-level security applies to it. Later migrations' tables get the same grants by default.
APP_ROLE_PRIVILEGES = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        GRANT USAGE ON SCHEMA public TO gridmap_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gridmap_app;
        REVOKE INSERT, UPDATE, DELETE ON alembic_version, demo_info FROM gridmap_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gridmap_app;
    END IF;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "demo_info",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_info")),
    )
    op.create_geospatial_table(
        "district",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('MULTIPOLYGON')", name=op.f("ck_district_geom_type")
        ),
        sa.CheckConstraint("code ~ '^[0-9]{6}$'", name=op.f("ck_district_code_format")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_district_geom_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_district_geom_srid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_district")),
        sa.UniqueConstraint("code", name=op.f("uq_district_code")),
    )
    op.create_geospatial_index(
        "idx_district_geom",
        "district",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_table(
        "subdistrict",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("district_id", sa.UUID(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default=sa.text("'Asia/Shanghai'"), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('MULTIPOLYGON')", name=op.f("ck_subdistrict_geom_type")
        ),
        sa.CheckConstraint("code ~ '^[0-9]{9}$'", name=op.f("ck_subdistrict_code_format")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_subdistrict_geom_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_subdistrict_geom_srid")),
        sa.ForeignKeyConstraint(
            ["district_id"], ["district.id"], name=op.f("fk_subdistrict_district_id_district")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subdistrict")),
        sa.UniqueConstraint("code", name=op.f("uq_subdistrict_code")),
    )
    op.create_geospatial_index(
        "idx_subdistrict_geom",
        "subdistrict",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_subdistrict_district_id"), "subdistrict", ["district_id"], unique=False
    )
    op.create_geospatial_table(
        "community",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("subdistrict_id", sa.UUID(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "office",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('MULTIPOLYGON')", name=op.f("ck_community_geom_type")
        ),
        sa.CheckConstraint(
            "GeometryType(office) IN ('POINT')", name=op.f("ck_community_office_type")
        ),
        sa.CheckConstraint("code ~ '^[0-9]{12}$'", name=op.f("ck_community_code_format")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_community_geom_valid")),
        sa.CheckConstraint("ST_IsValid(office)", name=op.f("ck_community_office_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_community_geom_srid")),
        sa.CheckConstraint("ST_SRID(office) = 4326", name=op.f("ck_community_office_srid")),
        sa.ForeignKeyConstraint(
            ["subdistrict_id"],
            ["subdistrict.id"],
            name=op.f("fk_community_subdistrict_id_subdistrict"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_community")),
        sa.UniqueConstraint("code", name=op.f("uq_community_code")),
    )
    op.create_geospatial_index(
        "idx_community_geom",
        "community",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_community_office",
        "community",
        ["office"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_community_subdistrict_id"), "community", ["subdistrict_id"], unique=False
    )
    op.create_geospatial_table(
        "grid",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("community_id", sa.UUID(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('MULTIPOLYGON')", name=op.f("ck_grid_geom_type")
        ),
        sa.CheckConstraint("code ~ '^[0-9]{15}$'", name=op.f("ck_grid_code_format")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_grid_geom_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_grid_geom_srid")),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_grid_community_id_community")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid")),
        sa.UniqueConstraint("code", name=op.f("uq_grid_code")),
    )
    op.create_geospatial_index(
        "idx_grid_geom", "grid", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index(op.f("ix_grid_community_id"), "grid", ["community_id"], unique=False)
    op.create_table(
        "worker",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "GRID_CENTER",
                "COMMUNITY",
                "GRID_WORKER",
                "MICRO_GRID_LEADER",
                "DEPARTMENT",
                name="worker_role",
            ),
            nullable=False,
        ),
        sa.Column("subdistrict_id", sa.UUID(), nullable=False),
        sa.Column("community_id", sa.UUID(), nullable=True),
        sa.Column("unit_code", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(role = 'DEPARTMENT') = (unit_code IS NOT NULL)",
            name=op.f("ck_worker_unit_code_for_department"),
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_worker_community_id_community")
        ),
        sa.ForeignKeyConstraint(
            ["subdistrict_id"],
            ["subdistrict.id"],
            name=op.f("fk_worker_subdistrict_id_subdistrict"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
        sa.UniqueConstraint("code", name=op.f("uq_worker_code")),
    )
    op.create_index(op.f("ix_worker_community_id"), "worker", ["community_id"], unique=False)
    op.create_index(op.f("ix_worker_subdistrict_id"), "worker", ["subdistrict_id"], unique=False)
    op.create_geospatial_table(
        "micro_grid",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("grid_id", sa.UUID(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('MULTIPOLYGON')", name=op.f("ck_micro_grid_geom_type")
        ),
        sa.CheckConstraint("code ~ '^[0-9]{18}$'", name=op.f("ck_micro_grid_code_format")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_micro_grid_geom_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_micro_grid_geom_srid")),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], name=op.f("fk_micro_grid_grid_id_grid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_micro_grid")),
        sa.UniqueConstraint("code", name=op.f("uq_micro_grid_code")),
    )
    op.create_geospatial_index(
        "idx_micro_grid_geom",
        "micro_grid",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_micro_grid_grid_id"), "micro_grid", ["grid_id"], unique=False)
    op.create_table(
        "worker_grid",
        sa.Column("worker_id", sa.UUID(), nullable=False),
        sa.Column("grid_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_worker_grid_grid_id_grid"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
            name=op.f("fk_worker_grid_worker_id_worker"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("worker_id", "grid_id", name=op.f("pk_worker_grid")),
    )
    op.create_index(op.f("ix_worker_grid_grid_id"), "worker_grid", ["grid_id"], unique=False)
    op.create_geospatial_table(
        "building",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("levels", sa.SmallInteger(), nullable=True),
        sa.Column("micro_grid_id", sa.UUID(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')", name=op.f("ck_building_geom_type")
        ),
        sa.CheckConstraint(
            "code ~ '^([0-9]{21}|[a-z][a-z0-9_]*:[^[:space:]]+)$'",
            name=op.f("ck_building_code_format"),
        ),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_building_geom_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_building_geom_srid")),
        sa.CheckConstraint(
            "levels IS NULL OR levels BETWEEN 1 AND 200", name=op.f("ck_building_levels_range")
        ),
        sa.ForeignKeyConstraint(
            ["micro_grid_id"], ["micro_grid.id"], name=op.f("fk_building_micro_grid_id_micro_grid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_building")),
        sa.UniqueConstraint("code", name=op.f("uq_building_code")),
    )
    op.create_geospatial_index(
        "idx_building_geom",
        "building",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_building_micro_grid_id"), "building", ["micro_grid_id"], unique=False)
    op.create_geospatial_table(
        "household",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("building_id", sa.UUID(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("room", sa.Text(), nullable=False),
        sa.Column(
            "household_class", sa.String(length=1), server_default=sa.text("'B'"), nullable=False
        ),
        sa.Column("moved_in", sa.Date(), nullable=True),
        sa.Column(
            "location",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.CheckConstraint(
            "GeometryType(location) IN ('POINT')", name=op.f("ck_household_location_type")
        ),
        sa.CheckConstraint("household_class IN ('A', 'B', 'C')", name=op.f("ck_household_class")),
        sa.CheckConstraint("ST_IsValid(location)", name=op.f("ck_household_location_valid")),
        sa.CheckConstraint("ST_SRID(location) = 4326", name=op.f("ck_household_location_srid")),
        sa.ForeignKeyConstraint(
            ["building_id"], ["building.id"], name=op.f("fk_household_building_id_building")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household")),
        sa.UniqueConstraint("code", name=op.f("uq_household_code")),
    )
    op.create_geospatial_index(
        "idx_household_location",
        "household",
        ["location"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_household_building_id"), "household", ["building_id"], unique=False)
    op.create_geospatial_table(
        "merchant",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("building_id", sa.UUID(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint("GeometryType(geom) IN ('POINT')", name=op.f("ck_merchant_geom_type")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_merchant_geom_valid")),
        sa.CheckConstraint("ST_SRID(geom) = 4326", name=op.f("ck_merchant_geom_srid")),
        sa.CheckConstraint(
            "employees IS NULL OR employees >= 0", name=op.f("ck_merchant_employees")
        ),
        sa.ForeignKeyConstraint(
            ["building_id"], ["building.id"], name=op.f("fk_merchant_building_id_building")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant")),
        sa.UniqueConstraint("code", name=op.f("uq_merchant_code")),
    )
    op.create_geospatial_index(
        "idx_merchant_geom",
        "merchant",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_merchant_building_id"), "merchant", ["building_id"], unique=False)
    op.create_table(
        "person",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(collation="C"), nullable=False),
        sa.Column("household_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("gender", sa.String(length=1), nullable=True),
        sa.Column("relation", sa.Text(), nullable=True),
        sa.Column("birth_year", sa.SmallInteger(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("id_number", sa.Text(), nullable=True),
        sa.Column(
            "elderly_living_alone", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "childless_elderly", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("bereaved", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("low_income", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("entitled_group", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("seeking_work", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint("gender IS NULL OR gender IN ('F', 'M')", name=op.f("ck_person_gender")),
        sa.CheckConstraint(
            "birth_year IS NULL OR birth_year BETWEEN 1880 AND 2200",
            name=op.f("ck_person_birth_year"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_person_household_id_household")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("code", name=op.f("uq_person_code")),
    )
    op.create_index(op.f("ix_person_household_id"), "person", ["household_id"], unique=False)

    op.execute(CODE_PREFIX_CHECK)
    for table, parent, column, separator in CODE_PARENTS:
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_code_extends_parent_{event.lower()}"
                f" AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows"
                f" FOR EACH STATEMENT EXECUTE FUNCTION check_code_prefix"
                f"('{parent}', '{column}', '{separator}')"
            )
    op.execute(APP_ROLE_PRIVILEGES)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS check_code_prefix() CASCADE")
    op.drop_index(op.f("ix_person_household_id"), table_name="person")
    op.drop_table("person")
    op.drop_index(op.f("ix_merchant_building_id"), table_name="merchant")
    op.drop_geospatial_index(
        "idx_merchant_geom", table_name="merchant", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("merchant")
    op.drop_index(op.f("ix_household_building_id"), table_name="household")
    op.drop_geospatial_index(
        "idx_household_location",
        table_name="household",
        postgresql_using="gist",
        column_name="location",
    )
    op.drop_geospatial_table("household")
    op.drop_index(op.f("ix_building_micro_grid_id"), table_name="building")
    op.drop_geospatial_index(
        "idx_building_geom", table_name="building", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("building")
    op.drop_index(op.f("ix_worker_grid_grid_id"), table_name="worker_grid")
    op.drop_table("worker_grid")
    op.drop_index(op.f("ix_micro_grid_grid_id"), table_name="micro_grid")
    op.drop_geospatial_index(
        "idx_micro_grid_geom", table_name="micro_grid", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("micro_grid")
    op.drop_index(op.f("ix_worker_subdistrict_id"), table_name="worker")
    op.drop_index(op.f("ix_worker_community_id"), table_name="worker")
    op.drop_table("worker")
    op.drop_index(op.f("ix_grid_community_id"), table_name="grid")
    op.drop_geospatial_index(
        "idx_grid_geom", table_name="grid", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("grid")
    op.drop_index(op.f("ix_community_subdistrict_id"), table_name="community")
    op.drop_geospatial_index(
        "idx_community_office",
        table_name="community",
        postgresql_using="gist",
        column_name="office",
    )
    op.drop_geospatial_index(
        "idx_community_geom", table_name="community", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("community")
    op.drop_index(op.f("ix_subdistrict_district_id"), table_name="subdistrict")
    op.drop_geospatial_index(
        "idx_subdistrict_geom",
        table_name="subdistrict",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("subdistrict")
    op.drop_geospatial_index(
        "idx_district_geom", table_name="district", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("district")
    op.drop_table("demo_info")
