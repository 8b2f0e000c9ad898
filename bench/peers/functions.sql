-- What PostGraphile's users add by hand so that it can answer the benchmark's queries; the
-- benchmark (bench/side_by_side.py) runs this file as the tables' owner before it starts
-- PostGraphile. Never part of a migration: the app does not use any of it.

-- Query 2: PostGraphile has no distance filter and no order by distance, so its users write a
-- set-returning function, which it exposes as a query field (buildingsNear). The lon/lat box
-- (the same one gridmap's geo.queries.Near.envelope draws) lets the GiST index narrow the search;
-- distances are metres on the WGS-84 spheroid, nearest first, ties by code, as gridmap orders.
CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.buildings_near(lon float8, lat float8, radius_m float8)
RETURNS TABLE (code text, geom geometry, distance_meters float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH here AS (
        SELECT ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS g,
               radius_m / 110574 * 1.01 AS dlat,
               radius_m / (111320 * greatest(cos(radians(least(abs(lat) + radius_m / 110574 * 1.01,
                                                               89.9))), 1e-6)) * 1.01 AS dlon
    )
    SELECT b.code, b.geom, ST_Distance(b.geom::geography, here.g::geography) AS distance_meters
    FROM building b, here
    WHERE b.geom && ST_Expand(here.g, here.dlon, here.dlat)
      AND ST_DWithin(b.geom::geography, here.g::geography, radius_m)
    ORDER BY distance_meters, b.code
$$;

-- Queries 1 and 4: households of an area, counted on the code index as gridmap counts them (a
-- household's code extends its area's). PostGraphile turns a STABLE function whose first argument
-- is a table's row into a computed column of that table's type, but only when the function lives
-- in the table's own schema: these two must be in public (bench/side_by_side.py drops them at the
-- end).
CREATE OR REPLACE FUNCTION public.grid_household_count(g public.grid) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT count(*)::int FROM public.household h
    WHERE h.code >= g.code AND h.code < g.code || chr(1114111)
$$;

CREATE OR REPLACE FUNCTION public.micro_grid_household_count(m public.micro_grid) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT count(*)::int FROM public.household h
    WHERE h.code >= m.code AND h.code < m.code || chr(1114111)
$$;
