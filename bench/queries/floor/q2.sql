-- Query 2 as one statement: buildings within a radius of a point, nearest first (ties by code),
-- with the distance in metres on the WGS-84 spheroid; the lon/lat box lets the GiST index narrow
-- the search first, as gridmap's geo.queries.Near.envelope does.
WITH arg AS (
    SELECT CAST(%(lon)s AS float8) AS lon, CAST(%(lat)s AS float8) AS lat,
           CAST(%(meters)s AS float8) AS meters
), here AS (
    SELECT ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS g, meters,
           meters / 110574 * 1.01 AS dlat,
           meters / (111320 * greatest(cos(radians(least(abs(lat) + meters / 110574 * 1.01,
                                                         89.9))), 1e-6)) * 1.01 AS dlon
    FROM arg
), near AS (
    SELECT b.code, b.geom, ST_Distance(b.geom::geography, here.g::geography) AS distance
    FROM building b, here
    WHERE b.geom && ST_Expand(here.g, here.dlon, here.dlat)
      AND ST_DWithin(b.geom::geography, here.g::geography, here.meters)
    ORDER BY distance, b.code
    LIMIT 500
)
SELECT json_build_object('data', json_build_object('buildings', json_build_object('edges',
    coalesce(json_agg(json_build_object('node', json_build_object(
        'code', n.code,
        'distanceMeters', n.distance,
        'geometry', ST_AsGeoJSON(n.geom, 7)::json
    )) ORDER BY n.distance, n.code), '[]'::json)
)))::text
FROM near n
