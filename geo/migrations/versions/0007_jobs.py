"""job openings, job seekers, offers and matches between residents and nearby merchants

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Seekers are residents: their rows (and the matches and events that name them) are personal
data, under row-level security by the household's code like the family files. Openings, offers
and merchants are public business information. Hours are weekly shifts (``SHIFTS`` in
geo/jobs.py); wages are yuan per hour.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SHIFTS = (
    "'WEEKDAY_MORNING', 'WEEKDAY_AFTERNOON', 'WEEKDAY_EVENING', 'WEEKEND_DAYTIME', "
    "'WEEKEND_EVENING'"
)
STATES = "'PROPOSED', 'CONTACTED', 'INTERVIEWED', 'HIRED', 'DECLINED'"
PERSONAL_TABLES = ("job_seeker", "job_match", "job_match_event")

UPGRADE = f"""
ALTER TABLE merchant
    ADD COLUMN contact text,
    ADD COLUMN opening_hours text;
-- Distances are metres on the spheroid: the index answers ST_DWithin on geography.
CREATE INDEX ix_merchant_geography ON merchant USING gist ((geom::geography));
CREATE INDEX ix_household_geography ON household USING gist ((location::geography));

CREATE TABLE job_opening (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The merchant's code plus a number: ``<merchant>-J01``.
    code text COLLATE "C" NOT NULL UNIQUE,
    merchant_id uuid NOT NULL REFERENCES merchant (id),
    title text NOT NULL CHECK (btrim(title) <> ''),
    skills text[] NOT NULL DEFAULT '{{}}',
    shifts text[] NOT NULL CHECK (shifts <@ ARRAY[{SHIFTS}] AND cardinality(shifts) > 0),
    weekly_hours integer NOT NULL CHECK (weekly_hours BETWEEN 1 AND 84),
    wage integer NOT NULL CHECK (wage > 0),
    headcount integer NOT NULL CHECK (headcount > 0),
    valid_from date NOT NULL,
    valid_until date,
    CHECK (valid_until IS NULL OR valid_until >= valid_from),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text
);
CREATE INDEX ix_job_opening_merchant ON job_opening (merchant_id);

CREATE TABLE job_seeker (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id uuid NOT NULL UNIQUE REFERENCES person (id) ON DELETE CASCADE,
    household_id uuid NOT NULL REFERENCES household (id),
    household_code text COLLATE "C" NOT NULL,
    skills text[] NOT NULL DEFAULT '{{}}',
    shifts text[] NOT NULL CHECK (shifts <@ ARRAY[{SHIFTS}] AND cardinality(shifts) > 0),
    weekly_hours integer NOT NULL CHECK (weekly_hours BETWEEN 1 AND 84),
    min_wage integer NOT NULL CHECK (min_wage >= 0),
    max_walk_meters integer NOT NULL CHECK (max_walk_meters BETWEEN 1 AND 20000),
    -- Matching needs the resident's consent: a seeker is only registered with it.
    consent boolean NOT NULL CHECK (consent),
    consent_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);
CREATE INDEX ix_job_seeker_household_code ON job_seeker (household_code);

CREATE TABLE offer (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id uuid NOT NULL REFERENCES merchant (id),
    title text NOT NULL CHECK (btrim(title) <> ''),
    description text,
    radius_meters integer NOT NULL CHECK (radius_meters BETWEEN 1 AND 20000),
    valid_from date NOT NULL,
    valid_until date,
    CHECK (valid_until IS NULL OR valid_until >= valid_from),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text
);
CREATE INDEX ix_offer_merchant ON offer (merchant_id);

CREATE TABLE job_match (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seeker_id uuid NOT NULL REFERENCES job_seeker (id) ON DELETE CASCADE,
    opening_id uuid NOT NULL REFERENCES job_opening (id),
    household_code text COLLATE "C" NOT NULL,
    state text NOT NULL CHECK (state IN ({STATES})),
    score double precision NOT NULL,
    distance_meters double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_job_match_opening ON job_match (opening_id) WHERE state <> 'DECLINED';
CREATE INDEX ix_job_match_household_code ON job_match (household_code);
-- One live proposal per seeker at a time; a pair is proposed once while it lives.
CREATE UNIQUE INDEX ux_job_match_live_seeker ON job_match (seeker_id)
    WHERE state IN ('PROPOSED', 'CONTACTED', 'INTERVIEWED');

CREATE TABLE job_match_event (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    match_id uuid NOT NULL REFERENCES job_match (id) ON DELETE CASCADE,
    household_code text COLLATE "C" NOT NULL,
    from_state text,
    to_state text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    worker_code text,
    note text
);
CREATE INDEX ix_job_match_event_match ON job_match_event (match_id, at);
"""

# Places taken in an opening (live proposals and hires) count matches of every area, which
# row-level security hides from most callers: a count, nothing else.
TAKEN = """
CREATE FUNCTION job_opening_taken(opening uuid) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT count(*) FROM job_match WHERE opening_id = opening AND state <> 'DECLINED'
$$;
REVOKE EXECUTE ON FUNCTION job_opening_taken(uuid) FROM PUBLIC;
"""

APP_GRANTS = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        GRANT EXECUTE ON FUNCTION job_opening_taken(uuid) TO gridmap_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON job_match_event FROM gridmap_app;
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in PERSONAL_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_in_callers_areas ON {table}"
            " USING (gridmap_covers(household_code)) WITH CHECK (gridmap_covers(household_code))"
        )
    op.execute(TAKEN)
    op.execute(APP_GRANTS)


def downgrade() -> None:
    op.execute("DROP FUNCTION job_opening_taken(uuid)")
    for table in ("job_match_event", "job_match", "offer", "job_seeker", "job_opening"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP INDEX ix_household_geography")
    op.execute("DROP INDEX ix_merchant_geography")
    op.execute("ALTER TABLE merchant DROP COLUMN opening_hours, DROP COLUMN contact")
