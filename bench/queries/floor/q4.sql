-- Query 4 as one statement: every grid of an area in code order, with its geometry and its
-- household count (on the code index: a household's code extends its grid's).
SELECT json_build_object('data', json_build_object('grids', json_build_object('edges',
    coalesce(json_agg(json_build_object('node', json_build_object(
        'code', g.code,
        'householdCount', (SELECT count(*) FROM household h
                           WHERE h.code >= g.code AND h.code < g.code || chr(1114111)),
        'geometry', ST_AsGeoJSON(g.geom, 7)::json
    )) ORDER BY g.code), '[]'::json)
)))::text
FROM (SELECT code, geom FROM grid
      WHERE code >= %(scope)s AND code < %(scope)s || chr(1114111)
      ORDER BY code LIMIT 500) g
