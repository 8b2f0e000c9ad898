"""cases: the closed loop from whistle to closure, the category catalogue, units, holidays

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

A case (``grid_case``: ``case`` is an SQL keyword) is reported at a point; the grid and
micro-grid that contain it are found when it is reported and kept as codes, which row-level
security reads: staff see the cases of their areas, a department the cases dispatched to its
unit. Every step is a row of ``case_event`` (append-only, like the audit log), photos are kept
by the app in ``case_photo``. The catalogue (categories with their default unit and time limit)
and the units are public reference data, seeded here with the usual ones and changed by the
grid center. Time limits count from dispatch, in calendar hours or in working days (Monday to
Friday, less the ``holiday`` rows that are days off, plus those that are make-up working days).
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SOURCES = "'GRID_WHISTLE', 'HOTLINE_12345', 'VISIT', 'RESIDENT_ONLINE', 'OPEN311'"
STATES = (
    "'REPORTED', 'ACCEPTED', 'REJECTED', 'DISPATCHED', 'HANDLED', 'RETURNED', 'VERIFIED', "
    "'CLOSED'"
)

UNITS = (
    ("U-HOUSING", "房管办", "housing office"),
    ("U-URBAN", "城管中队", "urban management squad"),
    ("U-SANITATION", "市容环卫所", "sanitation station"),
    ("U-MARKET", "市场监管所", "market supervision office"),
    ("U-UTILITY", "水电燃气服务站", "water, power and gas service station"),
    ("U-CIVIL", "社区事务受理中心", "community affairs centre"),
    ("U-GREEN", "绿化市容所", "landscaping office"),
    ("U-POLICE", "派出所", "police station"),
)
# code, name, English name, public wording (Open311), default unit, limit, HOURS|WORKING_DAYS.
# Hotline practice: 2 hours for emergencies, 24 hours for water, power, gas and heating, 7
# (working) days for general matters, 15 for complex ones.
CATEGORIES = (
    ("EMERGENCY", "紧急险情", "emergency hazard", "Emergency hazard", "U-POLICE", 2, "HOURS"),
    ("UTILITY_OUTAGE", "水电燃气暖故障", "water, power, gas or heating failure",
     "Utility failure", "U-UTILITY", 24, "HOURS"),
    ("GREEN_LAND_VEGETABLES", "毁绿种菜", "vegetables planted on public green land",
     "Vegetables on public green land", "U-GREEN", 7, "WORKING_DAYS"),
    ("MOSQUITOES", "蚊虫孳生", "mosquitoes and pests", "Mosquitoes and pests", "U-SANITATION",
     7, "WORKING_DAYS"),
    ("GARBAGE_SORTING", "垃圾分类", "garbage sorting", "Garbage sorting", "U-SANITATION", 7,
     "WORKING_DAYS"),
    ("EXPOSED_GARBAGE", "暴露垃圾", "exposed garbage", "Exposed garbage", "U-SANITATION", 7,
     "WORKING_DAYS"),
    ("ILLEGAL_PARKING", "违章停车", "illegal parking", "Illegal parking", "U-URBAN", 7,
     "WORKING_DAYS"),
    ("STREET_VENDING", "占道经营", "street vending on the pavement", "Street vending",
     "U-URBAN", 7, "WORKING_DAYS"),
    ("NOISE", "噪声扰民", "noise", "Noise", "U-URBAN", 7, "WORKING_DAYS"),
    ("ILLEGAL_CONSTRUCTION", "违法搭建", "illegal construction", "Illegal construction",
     "U-URBAN", 15, "WORKING_DAYS"),
    ("FACILITY_REPAIR", "设施报修", "facility repair", "Facility repair", "U-HOUSING", 7,
     "WORKING_DAYS"),
    ("PROPERTY_DISPUTE", "物业纠纷", "property management dispute", "Property dispute",
     "U-HOUSING", 15, "WORKING_DAYS"),
    ("NEIGHBOUR_DISPUTE", "邻里纠纷", "dispute between neighbours", "Neighbour dispute",
     "U-CIVIL", 15, "WORKING_DAYS"),
    ("FOOD_SAFETY", "食品安全", "food safety", "Food safety", "U-MARKET", 7, "WORKING_DAYS"),
    ("ASSISTANCE", "困难帮扶", "help for a family in difficulty", "Assistance request",
     "U-CIVIL", 15, "WORKING_DAYS"),
    ("OTHER", "其他", "other", "Other request", "U-CIVIL", 7, "WORKING_DAYS"),
)  # fmt: skip

UPGRADE = f"""
CREATE TABLE unit (
    code text COLLATE "C" PRIMARY KEY,
    name text NOT NULL CHECK (btrim(name) <> ''),
    name_en text
);

CREATE TABLE case_category (
    code text COLLATE "C" PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9_]*$'),
    name text NOT NULL CHECK (btrim(name) <> ''),
    name_en text NOT NULL,
    -- What the public reads of a case of this category (Open311): never its description.
    public_name text NOT NULL,
    default_unit text NOT NULL REFERENCES unit (code),
    time_limit integer NOT NULL CHECK (time_limit > 0),
    time_unit text NOT NULL CHECK (time_unit IN ('HOURS', 'WORKING_DAYS')),
    active boolean NOT NULL DEFAULT true,
    -- Listed in the public Open311 feed (family matters are not).
    public boolean NOT NULL DEFAULT true
);

-- Exceptions to Monday–Friday: a weekday off (a public holiday), or a weekend day worked (调休).
CREATE TABLE holiday (
    day date PRIMARY KEY,
    working boolean NOT NULL DEFAULT false,
    name text NOT NULL
);

-- Case numbers run per year: ``2026-000123``.
CREATE TABLE case_counter (
    year integer PRIMARY KEY,
    last integer NOT NULL
);

CREATE TABLE grid_case (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number text COLLATE "C" NOT NULL UNIQUE CHECK (number ~ '^[0-9]{{4}}-[0-9]{{6,}}$'),
    source text NOT NULL CHECK (source IN ({SOURCES})),
    category_code text NOT NULL REFERENCES case_category (code),
    -- An import's own category name, kept when it maps to OTHER.
    source_category text,
    description text NOT NULL CHECK (btrim(description) <> ''),
    location geometry(Point, 4326) NOT NULL,
    grid_code text COLLATE "C" NOT NULL,
    micro_grid_code text COLLATE "C",
    -- Who reported it: a worker's staff number, or a resident (hotline, online): personal.
    reporter_code text,
    reporter_name text,
    reporter_phone text,
    -- The unit responsible, from dispatch on (the category's default unless the office chose).
    unit_code text REFERENCES unit (code),
    priority text NOT NULL DEFAULT 'NORMAL' CHECK (priority IN ('NORMAL', 'URGENT')),
    state text NOT NULL CHECK (state IN ({STATES})),
    reported_at timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    deadline timestamptz,
    handled_at timestamptz,
    closed_at timestamptz,
    returned_count integer NOT NULL DEFAULT 0,
    merged_into uuid REFERENCES grid_case (id),
    visit_id uuid REFERENCES visit (id),
    demand_id uuid REFERENCES demand (id),
    -- The id the case has in the system it came from (a hotline export, an Open311 client).
    external_id text,
    client text,
    version integer NOT NULL DEFAULT 1,
    CHECK ((state = 'CLOSED') = (closed_at IS NOT NULL)),
    CHECK (merged_into IS NULL OR (state = 'CLOSED' AND merged_into <> id)),
    CHECK (micro_grid_code IS NULL OR starts_with(micro_grid_code, grid_code)),
    CHECK ((dispatched_at IS NULL) = (unit_code IS NULL))
);
CREATE INDEX ix_grid_case_grid ON grid_case (grid_code, reported_at);
CREATE INDEX ix_grid_case_reported ON grid_case (reported_at);
CREATE INDEX ix_grid_case_closed ON grid_case (closed_at);
CREATE INDEX ix_grid_case_location ON grid_case USING gist (location);
CREATE INDEX ix_grid_case_unit ON grid_case (unit_code, state);
CREATE INDEX ix_grid_case_open ON grid_case (category_code)
    WHERE state NOT IN ('CLOSED', 'REJECTED');
CREATE UNIQUE INDEX ix_grid_case_external ON grid_case (source, coalesce(client, ''), external_id)
    WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX ix_grid_case_demand ON grid_case (demand_id) WHERE demand_id IS NOT NULL;

CREATE TABLE case_event (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id uuid NOT NULL REFERENCES grid_case (id),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    action text NOT NULL,
    from_state text,
    to_state text,
    worker_code text,
    role text NOT NULL,
    unit_code text,
    note text
);
CREATE INDEX ix_case_event_case ON case_event (case_id, at);
CREATE TRIGGER case_event_append_only BEFORE UPDATE OR DELETE ON case_event
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_append_only();
CREATE TRIGGER case_event_no_truncate BEFORE TRUNCATE ON case_event
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_append_only();

CREATE TABLE case_photo (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id uuid NOT NULL REFERENCES grid_case (id),
    stage text NOT NULL CHECK (stage IN ('REPORT', 'HANDLING', 'VERIFICATION')),
    content_type text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    bytes bytea NOT NULL,
    sha256 bytea NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    uploaded_by text
);
CREATE INDEX ix_case_photo_case ON case_photo (case_id);

-- Open311 clients: the key is shown once; only its digest is kept.
CREATE TABLE open311_client (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    key_digest bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text,
    revoked_at timestamptz
);

-- Who sees a case: staff covering its grid; a department, the cases dispatched to its unit
-- (a case has a unit from its dispatch on).
CREATE FUNCTION gridmap_sees_case(grid_code text, unit_code text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT gridmap_covers(grid_code)
        OR (current_setting('gridmap.role', true) = 'department'
            AND unit_code = nullif(current_setting('gridmap.unit', true), ''))
$$;
-- The catalogue, the units and the calendar: read by all, changed by a grid center.
CREATE FUNCTION gridmap_is_center() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_setting('gridmap.role', true) = 'grid_center'
$$;
ALTER TABLE grid_case ENABLE ROW LEVEL SECURITY;
CREATE POLICY grid_case_seen ON grid_case
    USING (gridmap_sees_case(grid_code, unit_code))
    WITH CHECK (gridmap_sees_case(grid_code, unit_code));
ALTER TABLE unit ENABLE ROW LEVEL SECURITY;
CREATE POLICY unit_read ON unit FOR SELECT USING (true);
CREATE POLICY unit_write ON unit FOR ALL USING (gridmap_is_center())
    WITH CHECK (gridmap_is_center());
ALTER TABLE case_category ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_category_read ON case_category FOR SELECT USING (true);
CREATE POLICY case_category_write ON case_category FOR ALL USING (gridmap_is_center())
    WITH CHECK (gridmap_is_center());
ALTER TABLE holiday ENABLE ROW LEVEL SECURITY;
CREATE POLICY holiday_read ON holiday FOR SELECT USING (true);
CREATE POLICY holiday_write ON holiday FOR ALL USING (gridmap_is_center())
    WITH CHECK (gridmap_is_center());
ALTER TABLE case_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_event_of_seen_case ON case_event
    USING (EXISTS (SELECT 1 FROM grid_case c WHERE c.id = case_id))
    WITH CHECK (EXISTS (SELECT 1 FROM grid_case c WHERE c.id = case_id));
ALTER TABLE case_photo ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_photo_of_seen_case ON case_photo
    USING (EXISTS (SELECT 1 FROM grid_case c WHERE c.id = case_id))
    WITH CHECK (EXISTS (SELECT 1 FROM grid_case c WHERE c.id = case_id));

-- The next number of a year, for anyone who may report (the counter itself is not readable).
CREATE FUNCTION next_case_number(year integer) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO case_counter AS c (year, last) VALUES (year, 1)
    ON CONFLICT (year) DO UPDATE SET last = c.last + 1
    RETURNING year || '-' || lpad(last::text, 6, '0')
$$;
REVOKE EXECUTE ON FUNCTION next_case_number(integer) FROM PUBLIC;
"""

APP_GRANTS = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        GRANT EXECUTE ON FUNCTION next_case_number(integer) TO gridmap_app;
        REVOKE ALL ON case_counter FROM gridmap_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON case_event FROM gridmap_app;
        REVOKE DELETE, TRUNCATE ON grid_case, case_photo FROM gridmap_app;
        REVOKE DELETE ON unit, case_category FROM gridmap_app;
        REVOKE ALL ON open311_client FROM gridmap_app;
    END IF;
END $$
"""


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(
        "INSERT INTO unit (code, name, name_en) VALUES "
        + ", ".join(f"({', '.join(_literal(v) for v in row)})" for row in UNITS)
    )
    op.execute(
        "INSERT INTO case_category (code, name, name_en, public_name, default_unit, time_limit,"
        " time_unit) VALUES "
        + ", ".join(f"({', '.join(_literal(v) for v in row)})" for row in CATEGORIES)
    )
    op.execute(
        "UPDATE case_category SET public = false"
        " WHERE code IN ('ASSISTANCE', 'NEIGHBOUR_DISPUTE', 'PROPERTY_DISPUTE')"
    )
    op.execute(APP_GRANTS)


def downgrade() -> None:
    op.execute("DROP FUNCTION next_case_number(integer)")
    for table in ("open311_client", "case_photo", "case_event", "grid_case", "case_counter",
                  "holiday", "case_category", "unit"):  # fmt: skip
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION gridmap_sees_case(text, text)")
    op.execute("DROP FUNCTION gridmap_is_center()")
