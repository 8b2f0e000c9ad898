"""`gridmap grids draw` applied to the demo: one transaction that retires the old grids into
history, draws new grids and micro-grids, gives moved buildings, households and members new
codes that every table carrying them follows (so row-level security keeps working), moves
workers and open cases, never reuses a retired code, and changes nothing when run again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shapely
from conftest import ScratchDB, as_role, demo_tokens
from gq import error, ok
from starlette.testclient import TestClient
from test_family_files import UPDATE, owner

from api.app import create_app
from api.schema.relay import global_id
from geo.grids.apply import HOUSEHOLD_CODE_TABLES
from geo.grids.micro import group

COMMUNITY = "310106015001"

HOUSEHOLD = """query($id: ID!) { node(id: $id) { ... on Household {
  code visits(last: 100) { visitedAt } familyFile { history { action workerCode } } } } }"""


def draw(db: ScratchDB, *args: str) -> Any:
    done = db.gridmap("grids", "draw", "--community", COMMUNITY, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_applying_a_drawing_moves_everything_that_hangs_on_the_codes(
    fresh_db: ScratchDB, tmp_path: Path
) -> None:
    db = fresh_db
    tokens = demo_tokens(db)
    worker = tokens["grid_worker"]["worker"]
    (old_grid,) = owner(db, "SELECT g.code FROM grid g JOIN worker_grid wg ON wg.grid_id = g.id"
                        " JOIN worker w ON w.id = wg.worker_id WHERE w.code = %s", worker)[0]
    # The grid worker edits one family file per building of their grid: history to follow.
    edited = owner(db, "SELECT DISTINCT ON (h.building_id) h.id::text FROM household h"
                   " WHERE left(h.code, 15) = %s ORDER BY h.building_id, h.code", old_grid)
    with TestClient(create_app(db.settings())) as public:
        as_worker = as_role(public, tokens, "grid_worker")
        for (hid,) in edited:
            ok(as_worker, UPDATE, input={"householdId": global_id("Household", hid),
                                         "version": 1, "notes": "before the redraw"})
    old_grids = dict(owner(db, "SELECT code, ST_AsText(geom) FROM grid WHERE code LIKE %s",
                           COMMUNITY + "%"))
    open_cases = owner(db, "SELECT number FROM grid_case WHERE left(grid_code, 12) = %s"
                       " AND state NOT IN ('CLOSED', 'REJECTED')", COMMUNITY)
    closed = dict(owner(db, "SELECT number, grid_code FROM grid_case WHERE left(grid_code, 12)"
                        " = %s AND state IN ('CLOSED', 'REJECTED')", COMMUNITY))
    codes = dict(owner(db, "SELECT id::text, code FROM household WHERE code LIKE %s",
                       COMMUNITY + "%"))
    register = tmp_path / "households.xlsx"
    exported = db.gridmap("export", "households", "--scope", COMMUNITY, "-o", str(register))
    assert exported.returncode == 0, exported.stderr

    proposal = draw(db, "--target-households", "300", "--dry-run", "--map", "/dev/null")
    done = draw(db, "--target-households", "300")
    assert [g["code"] for g in done["grids"]] == [g["code"] for g in proposal["grids"]]
    applied = done["applied"]
    assert sorted(applied["retired"]) == sorted(old_grids) and not applied["kept"]
    new = {g["code"]: g["households"] for g in done["grids"]}
    assert sorted(applied["created"]) == sorted(new) and not set(new) & set(old_grids)

    # The new grids tile the community; each holds the households the report says.
    rows = owner(db, "SELECT g.code, ST_AsText(g.geom), (SELECT count(*) FROM household h"
                 " WHERE left(h.code, 15) = g.code AND h.moved_out IS NULL) FROM grid g"
                 " WHERE g.code LIKE %s", COMMUNITY + "%")
    assert {c: n for c, _, n in rows} == new
    grids = [shapely.from_wkt(w) for _, w, _ in rows]
    community = shapely.from_wkt(owner(db, "SELECT ST_AsText(geom) FROM community"
                                       " WHERE code = %s", COMMUNITY)[0][0])
    assert shapely.union_all(grids).symmetric_difference(community).area < 1e-6 * community.area
    assert sum(g.area for g in grids) < community.area * (1 + 1e-6)  # no overlaps
    # One micro-grid per building, inside its grid; codes extend their parents'.
    assert owner(db, "SELECT count(*), count(DISTINCT mg.id), bool_and(starts_with(b.code,"
                 " mg.code) AND starts_with(mg.code, g.code) AND ST_CoveredBy(ST_PointOnSurface"
                 "(b.geom), mg.geom) AND ST_Area(ST_Difference(mg.geom, g.geom)) < 1e-12)"
                 " FROM building b JOIN micro_grid mg ON mg.id = b.micro_grid_id"
                 " JOIN grid g ON g.id = mg.grid_id WHERE g.code LIKE %s",
                 COMMUNITY + "%")[0] == (90, 90, True)  # fmt: skip

    # Every household got its new code, kept in code_change, and every table follows it.
    now = dict(owner(db, "SELECT id::text, code FROM household WHERE id = ANY(%s::uuid[])",
                     list(codes)))
    assert set(now.values()).isdisjoint(codes.values())
    changed = dict(owner(db, "SELECT old_code, new_code FROM code_change WHERE kind ="
                         " 'household'"))
    assert changed == {codes[h]: now[h] for h in codes}
    # (Every table with a household_code but the audit logs carries the recoding trigger.)
    tables = [t for (t,) in owner(db, HOUSEHOLD_CODE_TABLES)]
    assert tables == [t for (t,) in owner(
        db, "SELECT table_name FROM information_schema.columns WHERE column_name ="
        " 'household_code' AND table_schema = 'public' AND table_name NOT LIKE 'audit%%'"
        " ORDER BY 1")]  # fmt: skip
    for table in tables:
        assert owner(db, f"SELECT count(*) FROM {table} WHERE household_code ^@ %s AND"
                     " household_code NOT IN (SELECT code FROM household)", COMMUNITY) == [(0,)]
    assert owner(db, "SELECT count(*) FROM person p JOIN household h ON h.id = p.household_id"
                 " WHERE NOT starts_with(p.code, h.code || '-')") == [(0,)]

    # A write that read a code before the redraw committed (and waited on its locks) lands
    # with the code now: a visit, and a case in a retired grid.
    hid = next(iter(codes))
    owner(db, "INSERT INTO visit (household_id, household_code, worker_id, visited_at, mode,"
          " night, weekend, idempotency_key) SELECT %s, %s, id, now(), 'DOOR', false, false,"
          " 'late' FROM worker LIMIT 1", hid, codes[hid])  # fmt: skip
    assert owner(db, "SELECT household_code FROM visit WHERE idempotency_key = 'late'") == [
        (now[hid],)]  # fmt: skip
    owner(db, "INSERT INTO grid_case (number, source, category_code, description, location,"
          " grid_code, state, reported_at, deadline) SELECT '2026-999999', source,"
          " category_code, description, location, grid_code, 'REPORTED', now(), now() +"
          " interval '1 day' FROM grid_case WHERE number = %s", next(iter(closed)))  # fmt: skip
    assert owner(db, "SELECT count(*) FROM grid_case c JOIN grid g ON g.code = c.grid_code"
                 " AND ST_Covers(g.geom, c.location) WHERE number = '2026-999999'") == [(1,)]

    # The old grids are history, with the grids that took their households.
    history = owner(db, "SELECT code, ST_AsText(geom), successors FROM grid_history")
    assert {c: shapely.from_wkt(w).equals(shapely.from_wkt(old_grids[c]))
            for c, w, _ in history} == dict.fromkeys(old_grids, True)  # fmt: skip
    assert all(s and set(s) <= set(new) for _, _, s in history)
    assert owner(db, "SELECT count(*) FROM micro_grid_history") == [(90,)]
    # Open cases now lie in the new grids; closed ones keep the grid they were handled in.
    assert owner(db, "SELECT count(*) FROM grid_case c JOIN grid g ON g.code = c.grid_code"
                 " JOIN micro_grid mg ON mg.code = c.micro_grid_code AND mg.grid_id = g.id"
                 " WHERE c.number = ANY(%s) AND ST_Covers(g.geom, c.location)",
                 [n for (n,) in open_cases]) == [(len(open_cases),)]  # fmt: skip
    assert dict(owner(db, "SELECT number, grid_code FROM grid_case WHERE number = ANY(%s)",
                      list(closed))) == closed  # fmt: skip

    # The grid worker now works the new grid that took most of their households, and reads
    # the visits and family-file history of those households under their new codes (global
    # IDs do not change).
    (heir,) = [m["to"] for m in applied["workers"] if m["worker"] == worker]
    mine = [hid for (hid,) in edited if now[hid].startswith(heir)]
    assert mine
    with TestClient(create_app(db.settings())) as public:
        as_worker = as_role(public, demo_tokens(db), "grid_worker")
        for hid in mine:
            node = ok(as_worker, HOUSEHOLD, id=global_id("Household", hid))["node"]
            assert node["code"] == now[hid]
            assert len(node["visits"]) == owner(
                db, "SELECT least(count(*), 100) FROM visit WHERE household_id = %s", hid)[0][0] > 0
            assert node["familyFile"]["history"][0]["workerCode"] == worker
        # Old codes are not found, and the answer says where they went.
        (hid, *_) = mine
        said = error(as_worker, "query($c: String!) { household(code: $c) { code } }",
                     c=codes[hid])["message"]  # fmt: skip
        assert f"now {now[hid]}" in said, said
        said = error(as_worker, "query($c: String!) { grid(code: $c) { code } }",
                     c=old_grid)["message"]  # fmt: skip
        assert "retired" in said and heir in said, said

    # A register exported before the redraw imports unchanged: its old codes read as the new.
    again = db.gridmap("import", "households", str(register), "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    counts = result["kinds"]["households"]
    assert counts["read"] == len(codes) and counts["unchanged"] == len(codes), counts
    assert any("grid redraw" in w for w in result["warnings"])
    # A workers register naming a retired grid is refused with where its households went.
    workers = tmp_path / "workers.csv"
    workers.write_text("工号,姓名,角色,社区编码,网格编码\n"
                       f"JA015-WG-9001,赵网格,网格员,{COMMUNITY},{old_grid}\n", encoding="utf-8")
    refused = db.gridmap("import", "workers", str(workers))
    assert refused.returncode != 0, refused.stdout
    assert f"grid {old_grid}: retired on" in refused.stderr and heir in refused.stderr, \
        refused.stderr  # fmt: skip

    # Drawing the same again changes nothing; another target retires these codes for good.
    again = draw(db, "--target-households", "300")
    assert again["applied"]["kept"] == sorted(new) and not again["applied"]["created"]
    assert owner(db, "SELECT count(*) FROM grid_drawing") == [(1,)]
    third = draw(db, "--target-households", "450", "--micro-households", "40")
    assert set(third["applied"]["retired"]) == set(new)
    retired = {c for (c,) in owner(db, "SELECT code FROM grid_history")}
    assert retired == set(old_grids) | set(new)
    assert min(third["applied"]["created"]) > max(retired)
    # Merged micro-grids: small buildings together, up to 40 households (or one building).
    for n, buildings in owner(db, "SELECT sum((SELECT count(*) FROM household h WHERE"
                              " h.building_id = b.id AND h.moved_out IS NULL)), count(*)"
                              " FROM building b JOIN micro_grid mg ON mg.id = b.micro_grid_id"
                              " WHERE mg.code LIKE %s GROUP BY mg.id", COMMUNITY + "%"):
        assert n <= 40 or buildings == 1


def test_micro_grids_merge_small_neighbours_in_reading_order() -> None:
    # Five 10 m squares in a row, west to east: a (10 households), b (10), c (35), d (5), e (50).
    cells = {k: shapely.box(i * 1e-4, 0, (i + 1) * 1e-4, 1e-4) for i, k in enumerate("abcde")}
    households = {"a": 10, "b": 10, "c": 35, "d": 5, "e": 50}
    neighbours = {k: {n for n in cells if n != k and cells[n].touches(cells[k])} for k in cells}
    assert group(list("edcba"), households, cells, neighbours) == [[k] for k in "abcde"]
    assert group(list("edcba"), households, cells, neighbours, 40) == [
        ["a", "b"], ["c", "d"], ["e"]
    ]


def test_a_building_imported_twice_is_named_and_nothing_changes(fresh_db: ScratchDB) -> None:
    owner(fresh_db, "INSERT INTO building (code, geom) SELECT 'osm:w1', geom FROM building"
          " WHERE code LIKE %s ORDER BY code LIMIT 1", COMMUNITY + "%")
    before = owner(fresh_db, "SELECT code FROM grid ORDER BY code")
    done = fresh_db.gridmap("grids", "draw", "--community", COMMUNITY, "--target-households",
                            "300")  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "on the same ground" in done.stderr and "osm:w1" in done.stderr, done.stderr
    assert owner(fresh_db, "SELECT code FROM grid ORDER BY code") == before
    assert owner(fresh_db, "SELECT count(*) FROM grid_drawing") == [(0,)]
