-- Query 1 as one statement: gridmap's whole answer (a grid, its first 10 micro-grids, their
-- buildings, each building's first 20 households), JSON built by PostgreSQL.
SELECT json_build_object('data', json_build_object('grid', (
    SELECT json_build_object(
        'code', g.code,
        'householdCount', (SELECT count(*) FROM household h
                           WHERE h.code >= g.code AND h.code < g.code || chr(1114111)),
        'geometry', ST_AsGeoJSON(g.geom, 7)::json,
        'microGrids', json_build_object('edges', (
            SELECT coalesce(json_agg(json_build_object('node', json_build_object(
                'code', m.code,
                'householdCount', (SELECT count(*) FROM household h
                                   WHERE h.code >= m.code AND h.code < m.code || chr(1114111)),
                'geometry', ST_AsGeoJSON(m.geom, 7)::json,
                'buildings', json_build_object('edges', (
                    SELECT coalesce(json_agg(json_build_object('node', json_build_object(
                        'code', b.code,
                        'householdCount', (SELECT count(*) FROM household h
                                           WHERE h.building_id = b.id),
                        'geometry', ST_AsGeoJSON(b.geom, 7)::json,
                        'households', json_build_object('edges', (
                            SELECT coalesce(json_agg(json_build_object('node', json_build_object(
                                'code', h.code,
                                'householdClass', h.household_class
                            )) ORDER BY h.code), '[]'::json)
                            FROM (SELECT code, household_class FROM household
                                  WHERE building_id = b.id ORDER BY code LIMIT 20) h
                        ))
                    )) ORDER BY b.code), '[]'::json)
                    FROM (SELECT id, code, geom FROM building
                          WHERE micro_grid_id = m.id ORDER BY code LIMIT 10) b
                ))
            )) ORDER BY m.code), '[]'::json)
            FROM (SELECT id, code, geom FROM micro_grid
                  WHERE grid_id = g.id ORDER BY code LIMIT 10) m
        ))
    )
    FROM grid g WHERE g.code = %(code)s
)))::text
