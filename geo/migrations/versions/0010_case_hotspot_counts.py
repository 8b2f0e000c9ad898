"""case hotspots: counts of cases per cell and window, for every role (the public included)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Hotspots are aggregates: everyone who may read them gets the same counts, whatever
row-level security lets them read of ``grid_case`` (the public: nothing). Two ``SECURITY
DEFINER`` functions count the cases of an area per cell, like ``coverage_counts``, and return
counts only, never a case; the app withholds small counts from the public
(``geo.case_hotspots``).

- ``case_area_counts(scope, width, first_day, last_day, windows, categories)``: per grid
  (width 15) or micro-grid (18) code;
- ``case_hex_counts(scope, srid, edge, first_day, last_day, windows, categories)``: per hexagon
  (i, j) of PostGIS's ``ST_HexagonGrid(edge, …)`` in the projection ``srid`` (a UTM zone).

Both count, per window ``win``, the cases whose grid (micro-grid for an 18-digit scope) is
inside ``scope``, of one of ``categories`` (NULL: all), reported on the days ``first_day`` to
``last_day`` (``win`` 0) or in one of the ``windows`` windows of the same length just before
(``win`` 1 the latest of them), days counted in each case's subdistrict's time zone. Cases
merged into another (duplicates) and rejected ones are not counted. Rows with no case are not
returned.

A hexagon is found by arithmetic, not by a spatial join: ``ST_HexagonGrid`` puts the centre of
hexagon (i, j) at (1.5 i e, √3 e (j + ½ (|i| mod 2))) for the edge length e (flat-topped
hexagons in columns, odd columns half a hexagon higher), and hexagons are the Voronoi cells of
their centres, so a point's hexagon is the one of the nearer of the nearest centres of the two
columns its x falls between (tests/test_case_hotspots.py checks it against ST_HexagonGrid).
Hexagons under 25 m, or a projection that is not UTM, are refused: counts of tiny cells would
be locations.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The cases of the scope in the windows, with their window number; shared by both functions.
# Run with EXECUTE … USING: planned for the values of each call (a district's four months are a
# third of the table, read in time order; a grid's are a few rows of the grid-code index), where
# a cached plan would serve every scope with one plan. $1 the grid-code prefix, $2 the
# micro-grid (NULL: any), $3 the last day, $4 the days of a window, $5 and $6 the instants the
# windows span in every time zone of the scope, $7 the number of windows before, $8 the
# categories (NULL: all). A day is the case's subdistrict's.
# The groups are at most cells x windows, so hashing them beats sorting every case, which the
# planner, counting on a group per case, would do: enable_sort is off in the functions.
CASES = """
    WITH picked AS (
        SELECT c.location, c.grid_code, c.micro_grid_code,
               ($3 - (c.reported_at AT TIME ZONE sd.timezone)::date) / $4 AS win
        FROM grid_case c JOIN subdistrict sd ON sd.code = left(c.grid_code, 9)
        WHERE c.grid_code >= $1 AND c.grid_code < $1 || chr(1114111)
          AND ($2::text IS NULL OR c.micro_grid_code = $2)
          AND c.reported_at >= $5 AND c.reported_at < $6
          AND (c.reported_at AT TIME ZONE sd.timezone)::date
              BETWEEN $3 - ($7 + 1) * $4 + 1 AND $3
          AND ($8::text[] IS NULL OR c.category_code = ANY ($8))
          AND c.merged_into IS NULL AND c.state <> 'REJECTED'
    )"""

CHECKS = """
    IF last_day < first_day THEN
        RAISE EXCEPTION 'last_day % is before first_day %', last_day, first_day;
    END IF;
    IF windows IS NULL OR windows NOT BETWEEN 0 AND 12 THEN
        RAISE EXCEPTION 'windows must be 0 to 12, not %', windows;
    END IF;
    days := last_day - first_day + 1;
    SELECT min((first_day - windows * days)::timestamp AT TIME ZONE sd.timezone),
           max((last_day + 1)::timestamp AT TIME ZONE sd.timezone)
    INTO since, until
    FROM subdistrict sd
    WHERE sd.code >= left(scope, 9) AND sd.code < left(scope, 9) || chr(1114111);
    micro := CASE WHEN length(scope) > 15 THEN scope END;"""

DECLARE = """
    days integer;
    since timestamptz;
    until timestamptz;
    micro text;"""

USING = "left(scope, 15), micro, last_day, days, since, until, windows, categories"

# A point's hexagon, from its projected x and y ($9 the projection, $10 the column spacing
# 1.5 e, $11 the row spacing √3 e). OFFSET 0: each point is projected once (flattened, every use
# of x and y would project it again).
HEXAGON = """
    SELECT k.i, k.j, k.win, count(*)
    FROM (
        SELECT CASE WHEN t.d0 <= t.d1 THEN t.c0 ELSE t.c0 + 1 END AS i,
               CASE WHEN t.d0 <= t.d1 THEN t.r0 ELSE t.r1 END AS j, t.win
        FROM (
            SELECT t.c0, t.r0, t.r1, t.win,
                   (t.x - $10 * t.c0) ^ 2 + (t.y - $11 * (t.r0 + 0.5::float8 * (abs(t.c0) % 2))) ^ 2
                       AS d0,
                   (t.x - $10 * (t.c0 + 1)) ^ 2
                   + (t.y - $11 * (t.r1 + 0.5::float8 * (abs(t.c0 + 1) % 2))) ^ 2 AS d1
            FROM (
                SELECT t.x, t.y, t.win, t.c0,
                       round(t.y / $11 - 0.5::float8 * (abs(t.c0) % 2))::integer AS r0,
                       round(t.y / $11 - 0.5::float8 * (abs(t.c0 + 1) % 2))::integer AS r1
                FROM (
                    SELECT ST_X(q.pt) AS x, ST_Y(q.pt) AS y, q.win,
                           floor(ST_X(q.pt) / $10)::integer AS c0
                    FROM (SELECT ST_Transform(picked.location, $9) AS pt, picked.win
                          FROM picked OFFSET 0) q
                    OFFSET 0
                ) t
            ) t
        ) t
    ) k
    GROUP BY 1, 2, 3"""

UPGRADE = f"""
CREATE FUNCTION case_area_counts(scope text, width integer, first_day date, last_day date,
                                 windows integer, categories text[])
RETURNS TABLE (cell text, win integer, cases bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    SET enable_sort = off AS $$
DECLARE{DECLARE}
BEGIN
    IF width NOT IN (15, 18) OR width < length(scope) THEN
        RAISE EXCEPTION 'width % does not fit the scope %', width, scope;
    END IF;
    {CHECKS}
    RETURN QUERY EXECUTE $q$
    {CASES}
    SELECT CASE WHEN $9 = 15 THEN picked.grid_code ELSE picked.micro_grid_code END::text,
           picked.win, count(*)
    FROM picked
    WHERE $9 = 15 OR picked.micro_grid_code IS NOT NULL
    GROUP BY 1, 2
    $q$ USING {USING}, width;
END $$;

CREATE FUNCTION case_hex_counts(scope text, srid integer, edge double precision,
                                first_day date, last_day date, windows integer,
                                categories text[])
RETURNS TABLE (hex_i integer, hex_j integer, win integer, cases bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    SET enable_sort = off AS $$
DECLARE{DECLARE}
BEGIN
    IF edge IS NULL OR edge < 25 THEN
        RAISE EXCEPTION 'hexagons of % m: 25 m at least', edge;
    END IF;
    IF srid IS NULL OR NOT (srid BETWEEN 32601 AND 32660 OR srid BETWEEN 32701 AND 32760) THEN
        RAISE EXCEPTION 'SRID % is not a UTM zone', srid;
    END IF;
    {CHECKS}
    RETURN QUERY EXECUTE $q$
    {CASES}
    {HEXAGON}
    $q$ USING {USING}, srid, 1.5 * edge, sqrt(3.0::float8) * edge;
END $$;

REVOKE EXECUTE ON FUNCTION case_area_counts(text, integer, date, date, integer, text[])
    FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    case_hex_counts(text, integer, double precision, date, date, integer, text[]) FROM PUBLIC;
"""

APP_GRANTS = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
        GRANT EXECUTE ON FUNCTION
            case_area_counts(text, integer, date, date, integer, text[]) TO gridmap_app;
        GRANT EXECUTE ON FUNCTION
            case_hex_counts(text, integer, double precision, date, date, integer, text[])
            TO gridmap_app;
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(APP_GRANTS)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION case_hex_counts(text, integer, double precision, date, date, integer,"
        " text[])"
    )
    op.execute("DROP FUNCTION case_area_counts(text, integer, date, date, integer, text[])")
