"""family files, visits, demands, talents, cadence policies and visit coverage

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

A family file is the household row (class, contact preference, visit times, notes, version) and
its members. Every edit bumps the version and appends the whole file as it stands after the edit
to ``family_file_history`` (a baseline first, at ``-infinity``, on a household's first edit), so
the file as of any date is one row. Visits keep the household's last contact on the household
row (a trigger), which makes today's coverage one pass over the households; a past date reads
the visits themselves. Every new table holding personal data is under row-level security by the
household's code, and the history is append-only like the audit log.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHANNELS = "'DOOR', 'PHONE', 'WECHAT', 'EMAIL', 'ONLINE_GROUP'"
VISIT_TIMES = "'WEEKDAY_DAYTIME', 'WEEKDAY_EVENING', 'WEEKEND'"
TASKS = (
    "'SHOW_IDENTITY', 'DELIVER_SERVICE', 'KNOW_FAMILY', 'PUBLICIZE', 'ASK_DEMANDS', 'FIND_TALENT'"
)

# Tables of personal data added here: each is shown only inside the caller's areas.
PERSONAL_TABLES = ("visit", "demand", "talent", "family_file_history")

UPGRADE = f"""
ALTER TABLE household
    ADD COLUMN contact_preference text NOT NULL DEFAULT 'DOOR'
        CONSTRAINT ck_household_contact_preference CHECK (contact_preference IN ({CHANNELS})),
    ADD COLUMN visit_times text[] NOT NULL DEFAULT '{{}}'
        CONSTRAINT ck_household_visit_times CHECK (visit_times <@ ARRAY[{VISIT_TIMES}]),
    ADD COLUMN notes text,
    ADD COLUMN version integer NOT NULL DEFAULT 1,
    ADD COLUMN moved_out date,
    ADD COLUMN moved_out_reason text,
    ADD COLUMN last_contact_at timestamptz,
    ADD COLUMN last_preferred_contact_at timestamptz;

CREATE FUNCTION gridmap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TABLE visit (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    household_id uuid NOT NULL REFERENCES household (id),
    household_code text COLLATE "C" NOT NULL,
    worker_id uuid NOT NULL REFERENCES worker (id),
    visited_at timestamptz NOT NULL,
    mode text NOT NULL CHECK (mode IN ({CHANNELS})),
    -- In the subdistrict's local time: after 18:00 or before 06:00; Saturday or Sunday.
    night boolean NOT NULL,
    weekend boolean NOT NULL,
    tasks text[] NOT NULL DEFAULT '{{}}' CHECK (tasks <@ ARRAY[{TASKS}]),
    notes text,
    warnings text[] NOT NULL DEFAULT '{{}}',
    idempotency_key text NOT NULL UNIQUE,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by text
);
CREATE INDEX ix_visit_household ON visit (household_id, visited_at DESC);
CREATE INDEX ix_visit_household_code ON visit (household_code, visited_at);
CREATE INDEX ix_visit_worker ON visit (worker_id, visited_at);
-- Today's coverage of a whole district reads this, not the households (a third of the size).
CREATE INDEX ix_household_contact ON household (code)
    INCLUDE (household_class, last_contact_at, last_preferred_contact_at, moved_in, moved_out);

CREATE TABLE demand (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    household_id uuid NOT NULL REFERENCES household (id),
    household_code text COLLATE "C" NOT NULL,
    visit_id uuid REFERENCES visit (id),
    text text NOT NULL CHECK (btrim(text) <> ''),
    -- A category of the case catalogue, when it has one.
    category text,
    resolution text NOT NULL CHECK (resolution IN ('ANSWERED', 'ESCALATED')),
    answer text,
    raised_at timestamptz NOT NULL,
    closed_at timestamptz
);
CREATE INDEX ix_demand_household ON demand (household_id, raised_at);
CREATE INDEX ix_demand_visit ON demand (visit_id);

CREATE TABLE talent (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    household_id uuid NOT NULL REFERENCES household (id),
    household_code text COLLATE "C" NOT NULL,
    -- Null once the member has left the household (the row stays: it was written by a person).
    person_id uuid UNIQUE REFERENCES person (id) ON DELETE SET NULL,
    skills text[] NOT NULL DEFAULT '{{}}',
    willingness text NOT NULL
        CHECK (willingness IN ('VOLUNTEER', 'PAID_WORK', 'EITHER', 'NOT_NOW')),
    notes text,
    visit_id uuid REFERENCES visit (id),
    found_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_talent_household_code ON talent (household_code);

CREATE TABLE family_file_history (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    household_id uuid NOT NULL REFERENCES household (id),
    household_code text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    -- '-infinity' for the baseline: the file as it stood before its first recorded edit.
    at timestamptz NOT NULL DEFAULT now(),
    worker_code text,
    role text,
    action text NOT NULL,
    reason text,
    file jsonb NOT NULL,
    UNIQUE (household_id, version)
);
CREATE TRIGGER family_file_history_append_only BEFORE UPDATE OR DELETE ON family_file_history
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_append_only();
CREATE TRIGGER family_file_history_no_truncate BEFORE TRUNCATE ON family_file_history
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_append_only();

CREATE TABLE cadence_policy (
    subdistrict_id uuid PRIMARY KEY REFERENCES subdistrict (id),
    class_a_days integer NOT NULL DEFAULT 182 CHECK (class_a_days BETWEEN 1 AND 3660),
    class_b_days integer NOT NULL DEFAULT 182 CHECK (class_b_days BETWEEN 1 AND 3660),
    class_c_days integer NOT NULL DEFAULT 30 CHECK (class_c_days BETWEEN 1 AND 3660),
    -- Households never contacted are overdue from the later of this day and their move-in day.
    starts_on date,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);
ALTER TABLE cadence_policy ENABLE ROW LEVEL SECURITY;
CREATE POLICY cadence_policy_read ON cadence_policy FOR SELECT USING (true);
CREATE POLICY cadence_policy_grid_center ON cadence_policy FOR ALL
    USING (current_setting('gridmap.role', true) = 'grid_center'
           AND gridmap_covers((SELECT code FROM subdistrict WHERE id = subdistrict_id)))
    WITH CHECK (current_setting('gridmap.role', true) = 'grid_center'
                AND gridmap_covers((SELECT code FROM subdistrict WHERE id = subdistrict_id)));

-- A visit moves the household's last contact (and last contact through its preferred channel)
-- forward; a new preference recomputes the latter from the visits.
CREATE FUNCTION visit_touches_household() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE household h
       SET last_contact_at = greatest(h.last_contact_at, NEW.visited_at),
           last_preferred_contact_at = CASE WHEN NEW.mode = h.contact_preference
               THEN greatest(h.last_preferred_contact_at, NEW.visited_at)
               ELSE h.last_preferred_contact_at END
     WHERE h.id = NEW.household_id;
    RETURN NULL;
END $$;
CREATE TRIGGER visit_touches_household AFTER INSERT ON visit
    FOR EACH ROW EXECUTE FUNCTION visit_touches_household();

CREATE FUNCTION household_preference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.contact_preference IS DISTINCT FROM OLD.contact_preference THEN
        NEW.last_preferred_contact_at := (
            SELECT max(v.visited_at) FROM visit v
            WHERE v.household_id = NEW.id AND v.mode = NEW.contact_preference);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER household_preference_changed BEFORE UPDATE OF contact_preference ON household
    FOR EACH ROW EXECUTE FUNCTION household_preference_changed();
"""

# The households counted in an area are those living there: moved-out files stay, uncounted.
COUNTS = {
    "area_households(text)": """
        SELECT count(*) FROM household h WHERE h.code >= $1 AND h.code < $1 || chr(1114111)
        AND h.moved_out IS NULL""",
    "building_households(uuid)": """
        SELECT count(*) FROM household h WHERE h.building_id = $1 AND h.moved_out IS NULL""",
}
COUNTS_0003 = {
    "area_households(text)": """
        SELECT count(*) FROM household h WHERE h.code >= $1 AND h.code < $1 || chr(1114111)""",
    "building_households(uuid)": """
        SELECT count(*) FROM household h WHERE h.building_id = $1""",
}
BATCH_COUNTS = """
CREATE OR REPLACE FUNCTION area_household_counts(codes text[])
RETURNS TABLE (code text, households bigint, residents bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT a.code,
      (SELECT count(*) FROM household h
        WHERE h.code >= a.code AND h.code < a.code || chr(1114111){live}),
      (SELECT count(*) FROM person p
        WHERE p.code >= a.code AND p.code < a.code || chr(1114111))
    FROM unnest(codes) AS a(code)
$$;
CREATE OR REPLACE FUNCTION building_household_counts(ids uuid[])
RETURNS TABLE (id uuid, households bigint, residents bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT b.id,
      (SELECT count(*) FROM household h WHERE h.building_id = b.id{live}),
      (SELECT count(*) FROM household h JOIN person p ON p.household_id = h.id
        WHERE h.building_id = b.id)
    FROM unnest(ids) AS b(id)
$$;
"""

# Each household's contact status as of a day of its subdistrict: the class and channel it had
# then, its last contact up to the end of that day, the day it falls due, and whether it is
# contacted within its class's cadence. Today reads the household row; a past day reads the
# visits and the file's history. Invoker's rights: row-level security applies to the caller.
STATUS = """
CREATE FUNCTION household_contact_status(scope text, as_of date)
RETURNS TABLE (household_id uuid, code text, household_class text, last_contact_at timestamptz,
               due_on date, contacted boolean, days_overdue integer)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    WITH policy AS (
        SELECT s.code AS subdistrict, s.timezone,
               (now() AT TIME ZONE s.timezone)::date <= as_of AS today,
               (as_of + 1)::timestamp AT TIME ZONE s.timezone AS day_end,
               coalesce(p.class_a_days, 182) AS a_days,
               coalesce(p.class_b_days, 182) AS b_days,
               coalesce(p.class_c_days, 30) AS c_days,
               p.starts_on
        FROM subdistrict s LEFT JOIN cadence_policy p ON p.subdistrict_id = s.id
        WHERE s.code >= left(scope, 9) AND s.code < left(scope, 9) || chr(1114111)
    ), live AS (
        SELECT h.id, h.code, h.moved_in, pol.*,
               CASE WHEN pol.today THEN h.household_class ELSE coalesce(
                   (SELECT f.file ->> 'householdClass' FROM family_file_history f
                     WHERE f.household_id = h.id AND f.at < pol.day_end
                     ORDER BY f.version DESC LIMIT 1), h.household_class) END AS cls,
               CASE WHEN pol.today THEN h.contact_preference ELSE coalesce(
                   (SELECT f.file ->> 'contactPreference' FROM family_file_history f
                     WHERE f.household_id = h.id AND f.at < pol.day_end
                     ORDER BY f.version DESC LIMIT 1), h.contact_preference) END AS channel,
               h.last_contact_at, h.last_preferred_contact_at
        FROM household h
        JOIN policy pol ON pol.subdistrict = left(h.code, 9)
        WHERE h.code >= scope AND h.code < scope || chr(1114111)
          AND (h.moved_in IS NULL OR h.moved_in <= as_of)
          AND (h.moved_out IS NULL OR h.moved_out > as_of)
    ), last AS (
        SELECT l.*,
               CASE WHEN l.today THEN
                   CASE WHEN l.cls = 'A' THEN l.last_preferred_contact_at ELSE l.last_contact_at END
               ELSE (SELECT max(v.visited_at) FROM visit v
                      WHERE v.household_id = l.id AND v.visited_at < l.day_end
                        AND (l.cls <> 'A' OR v.mode = l.channel))
               END AS last_at,
               CASE l.cls WHEN 'A' THEN l.a_days WHEN 'C' THEN l.c_days ELSE l.b_days END AS days
        FROM live l
    ), due AS (
        SELECT t.*,
               CASE WHEN t.last_at IS NOT NULL
                    THEN (t.last_at AT TIME ZONE t.timezone)::date + t.days
                    ELSE coalesce(greatest(t.moved_in, t.starts_on), as_of) END AS due_on
        FROM last t
    )
    SELECT d.id, d.code, d.cls, d.last_at, d.due_on,
           d.last_at IS NOT NULL AND d.due_on >= as_of,
           CASE WHEN d.last_at IS NOT NULL AND d.due_on >= as_of THEN 0
                ELSE greatest(as_of - d.due_on, 0) END
    FROM due d
$$;

-- Coverage counts per cell (the code's first `width` characters): aggregates, so they count
-- past row-level security like the area counts do. One subdistrict at a time, so its cutoffs
-- are constants: today reads the households' last contacts cell by cell (ranges of the
-- covering index ix_household_contact: no hashing of a million codes), a past day the visits
-- within the longest cadence, and the class and channel of the files edited since from their
-- history. Counting a contacted household takes
-- one visit in its window, not its last contact: the two agree with household_contact_status.
CREATE FUNCTION coverage_counts(scope text, width integer, as_of date)
RETURNS TABLE (cell text, households bigint, contacted bigint,
               overdue_a bigint, overdue_b bigint, overdue_c bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    s record;
BEGIN
    FOR s IN
        SELECT CASE WHEN length(scope) > 9 THEN scope ELSE sd.code END AS lo,
               (now() AT TIME ZONE sd.timezone)::date <= as_of AS today,
               (as_of + 1)::timestamp AT TIME ZONE sd.timezone AS day_end,
               (as_of - coalesce(p.class_a_days, 182))::timestamp AT TIME ZONE sd.timezone AS cut_a,
               (as_of - coalesce(p.class_b_days, 182))::timestamp AT TIME ZONE sd.timezone AS cut_b,
               (as_of - coalesce(p.class_c_days, 30))::timestamp AT TIME ZONE sd.timezone AS cut_c
        FROM subdistrict sd LEFT JOIN cadence_policy p ON p.subdistrict_id = sd.id
        WHERE sd.code >= left(scope, 9) AND sd.code < left(scope, 9) || chr(1114111)
    LOOP
        IF s.today THEN
            -- Cell by cell: each a range of the covering index, counted without hashing.
            RETURN QUERY
            SELECT c.code::text, x.*
            FROM (SELECT g.code FROM grid g WHERE width = 15
                    AND g.code >= s.lo AND g.code < s.lo || chr(1114111)
                  UNION ALL
                  SELECT m.code FROM micro_grid m WHERE width = 18
                    AND m.code >= s.lo AND m.code < s.lo || chr(1114111)
                  UNION ALL
                  SELECT b.code FROM building b WHERE width = 21
                    AND b.code >= s.lo AND b.code < s.lo || chr(1114111)) c,
            LATERAL (
                SELECT count(*) AS n, count(*) FILTER (WHERE k.ok) AS n_ok,
                       count(*) FILTER (WHERE NOT k.ok AND k.cls = 'A') AS n_a,
                       count(*) FILTER (WHERE NOT k.ok AND k.cls = 'B') AS n_b,
                       count(*) FILTER (WHERE NOT k.ok AND k.cls = 'C') AS n_c
                FROM (SELECT h.household_class AS cls, coalesce(CASE h.household_class
                          WHEN 'A' THEN h.last_preferred_contact_at >= s.cut_a
                          WHEN 'C' THEN h.last_contact_at >= s.cut_c
                          ELSE h.last_contact_at >= s.cut_b END, false) AS ok
                      FROM household h
                      WHERE h.code >= c.code AND h.code < c.code || chr(1114111)
                        AND (h.moved_in IS NULL OR h.moved_in <= as_of)
                        AND h.moved_out IS NULL) k
            ) x
            WHERE x.n > 0;
        ELSE
            RETURN QUERY
            WITH changed AS (
                -- Files edited since: their class and channel as they stood then.
                SELECT DISTINCT ON (f.household_id) f.household_id,
                       f.file ->> 'householdClass' AS cls, f.file ->> 'contactPreference' AS channel
                FROM family_file_history f
                WHERE f.household_code >= s.lo AND f.household_code < s.lo || chr(1114111)
                  AND f.at < s.day_end
                  AND EXISTS (SELECT 1 FROM family_file_history g
                              WHERE g.household_id = f.household_id AND g.at >= s.day_end)
                ORDER BY f.household_id, f.version DESC
            ), hh AS (
                SELECT h.id, h.code, coalesce(ch.cls, h.household_class) AS cls,
                       coalesce(ch.channel, h.contact_preference) AS channel
                FROM household h LEFT JOIN changed ch ON ch.household_id = h.id
                WHERE h.code >= s.lo AND h.code < s.lo || chr(1114111)
                  AND (h.moved_in IS NULL OR h.moved_in <= as_of)
                  AND (h.moved_out IS NULL OR h.moved_out > as_of)
            ), seen AS (
                -- The last contact through each channel within the longest cadence.
                SELECT v.household_id, v.mode, max(v.visited_at) AS last_at
                FROM visit v
                WHERE v.household_code >= s.lo AND v.household_code < s.lo || chr(1114111)
                  AND v.visited_at >= least(s.cut_a, s.cut_b, s.cut_c)
                  AND v.visited_at < s.day_end
                GROUP BY 1, 2
            ), ok AS (
                SELECT DISTINCT seen.household_id FROM seen JOIN hh ON hh.id = seen.household_id
                WHERE seen.last_at >= CASE hh.cls WHEN 'A' THEN s.cut_a WHEN 'C' THEN s.cut_c
                                                  ELSE s.cut_b END
                  AND (hh.cls <> 'A' OR seen.mode = hh.channel)
            )
            SELECT left(hh.code, width), count(*), count(ok.household_id),
                   count(*) FILTER (WHERE ok.household_id IS NULL AND hh.cls = 'A'),
                   count(*) FILTER (WHERE ok.household_id IS NULL AND hh.cls = 'B'),
                   count(*) FILTER (WHERE ok.household_id IS NULL AND hh.cls = 'C')
            FROM hh LEFT JOIN ok ON ok.household_id = hh.id
            GROUP BY 1;
        END IF;
    END LOOP;
END $$;
REVOKE EXECUTE ON FUNCTION coverage_counts(text, integer, date) FROM PUBLIC;
"""

APP_GRANTS = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        GRANT EXECUTE ON FUNCTION coverage_counts(text, integer, date) TO gridmap_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON family_file_history FROM gridmap_app;
    END IF;
END $$
"""


def _counts(bodies: dict[str, str], live: str) -> None:
    for signature, body in bodies.items():
        op.execute(
            f"CREATE OR REPLACE FUNCTION {signature} RETURNS bigint LANGUAGE sql STABLE"
            f" SECURITY DEFINER SET search_path = public, pg_temp AS $${body}$$"
        )
    op.execute(BATCH_COUNTS.format(live=live))


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in PERSONAL_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_in_callers_areas ON {table}"
            " USING (gridmap_covers(household_code)) WITH CHECK (gridmap_covers(household_code))"
        )
    _counts(COUNTS, " AND h.moved_out IS NULL")
    op.execute(STATUS)
    op.execute(APP_GRANTS)


def downgrade() -> None:
    op.execute("DROP FUNCTION coverage_counts(text, integer, date)")
    op.execute("DROP FUNCTION household_contact_status(text, date)")
    _counts(COUNTS_0003, "")
    op.execute("DROP TRIGGER household_preference_changed ON household")
    op.execute("DROP FUNCTION household_preference_changed()")
    for table in ("cadence_policy", "family_file_history", "talent", "demand", "visit"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION visit_touches_household()")
    op.execute("DROP FUNCTION gridmap_append_only()")
    for column in (
        "last_preferred_contact_at", "last_contact_at", "moved_out_reason", "moved_out",
        "version", "notes", "visit_times", "contact_preference",
    ):  # fmt: skip
        op.execute(f"ALTER TABLE household DROP COLUMN {column}")
