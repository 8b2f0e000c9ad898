-- Query 3 as one statement: the first 500 households of an area in code order (the code
-- index's range), each with its members in code order.
SELECT json_build_object('data', json_build_object('households', json_build_object('edges',
    coalesce(json_agg(json_build_object('node', json_build_object(
        'code', h.code,
        'householdClass', h.household_class,
        'members', (SELECT coalesce(json_agg(json_build_object(
                                'code', p.code,
                                'name', p.name,
                                'birthYear', p.birth_year
                            ) ORDER BY p.code), '[]'::json)
                    FROM person p WHERE p.household_id = h.id)
    )) ORDER BY h.code), '[]'::json)
)))::text
FROM (SELECT id, code, household_class FROM household
      WHERE code >= %(scope)s AND code < %(scope)s || chr(1114111)
      ORDER BY code LIMIT 500) h
