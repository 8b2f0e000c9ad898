"""Migrations upgrade a database that holds data, from the first revision to head, losing nothing.

A small but complete data set is written as the first revision's schema knows it (every table of
0001, with the columns later migrations transform), then the database is upgraded one revision
at a time, and (a copy of it) straight to head. After every step each row is still there with
the same value in every column that still exists (geometries compared as EWKB); the only column
a migration removes is the one whose data it moves (0002: plain ID numbers, sealed with the key
the caller passes); columns added to existing tables hold their documented defaults. At head,
upgrading again changes nothing, and the command line refuses to go back down.

The revisions come from Alembic's script directory, so new migrations are covered as they come.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import pytest
from alembic.script import ScriptDirectory
from conftest import Databases, ScratchDB
from cryptography.exceptions import InvalidTag
from psycopg2 import sql
from sqlalchemy.engine import make_url

from geo.migrate import alembic_config, current_revision, upgrade
from geo.pii import Vault, mask_id

# Not the settings' key: the sealed numbers show which key the migration used.
SECRET_KEY = "migration-test-secret-key-0123456789abcdef"

# Plain ID numbers as 0001 stored them, by person code: a lower-case check letter as an old
# import may have it (kept as it was: sealing must not alter what it seals), and no number.
ID_NUMBERS = {
    "310106015001001001001-1-0101-01": "310106194912310021",
    "310106015001001001001-1-0101-02": "31010619520315002x",
    "310106015001001001001-1-0102-01": "310106198807070035",
    "osm:way/4242-0-0201-01": None,
}

# Columns of the first revision's tables that a migration removes: (table, column) → the
# revision that moves the data elsewhere (checked in ``check_moved``).
DROPPED = {("person", "id_number"): "0002"}

# Columns a migration adds to a table that already has rows, with the value an existing row gets
# (migrations 0002, 0006, 0007). A column added by a future migration and not listed here is
# expected to hold its column default (NULL without one).
ADDED: dict[tuple[str, str], Any] = {
    ("worker", "password_hash"): None,
    ("worker", "token_epoch"): 0,
    ("household", "contact_preference"): "DOOR",
    ("household", "visit_times"): [],
    ("household", "notes"): None,
    ("household", "version"): 1,
    ("household", "moved_out"): None,
    ("household", "moved_out_reason"): None,
    ("household", "last_contact_at"): None,
    ("household", "last_preferred_contact_at"): None,
    # 0012: a building whose code is a source key keeps it as its source key.
    ("building", "source_key"): {"osm:way/4242", None},
    ("merchant", "contact"): None,
    ("merchant", "opening_hours"): None,
}
# Where 0002 moves the plain ID numbers (checked in ``check_moved``, not against a default).
SEALED = ("id_number_sealed", "id_number_digest", "id_number_masked")


def square(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"ST_Multi(ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}, 4326))"


# Every table of 0001, nested geometries, codes extending their parent's (the triggers check).
DATA_0001 = f"""
INSERT INTO demo_info (id, version, households, seed, loaded_at)
VALUES (1, 1, 5000, 2026, '2026-11-22 08:30:00+08');

INSERT INTO district (code, name, geom)
VALUES ('310106', '静安区', {square(121.40, 31.20, 121.50, 31.30)});

INSERT INTO subdistrict (code, name, district_id, timezone, geom)
SELECT '310106015', '天目西路街道', id, 'Asia/Shanghai', {square(121.44, 31.23, 121.47, 31.26)}
FROM district WHERE code = '310106';
INSERT INTO subdistrict (code, name, district_id, geom)
SELECT '310106016', '北站街道', id, {square(121.47, 31.23, 121.49, 31.26)}
FROM district WHERE code = '310106';

INSERT INTO community (code, name, subdistrict_id, geom, office)
SELECT '310106015001', '洪南山宅', id, {square(121.45, 31.24, 121.46, 31.25)},
       ST_SetSRID(ST_MakePoint(121.4553, 31.2447), 4326)
FROM subdistrict WHERE code = '310106015';
INSERT INTO community (code, name, subdistrict_id, geom)
SELECT '310106015002', '南北高架', id, {square(121.46, 31.24, 121.47, 31.25)}
FROM subdistrict WHERE code = '310106015';

INSERT INTO grid (code, name, community_id, geom)
SELECT '310106015001001', '第一网格', id, {square(121.45, 31.24, 121.455, 31.25)}
FROM community WHERE code = '310106015001';
INSERT INTO grid (code, community_id, geom)
SELECT '310106015001002', id, {square(121.455, 31.24, 121.46, 31.25)}
FROM community WHERE code = '310106015001';

INSERT INTO micro_grid (code, name, grid_id, geom)
SELECT '310106015001001001', '1号微网格', id, {square(121.45, 31.24, 121.455, 31.245)}
FROM grid WHERE code = '310106015001001';
INSERT INTO micro_grid (code, grid_id, geom)
SELECT '310106015001001002', id, {square(121.45, 31.245, 121.455, 31.25)}
FROM grid WHERE code = '310106015001001';

INSERT INTO building (code, name, address, levels, micro_grid_id, geom)
SELECT '310106015001001001001', '1号楼', '天目西路 1 号', 6, id,
       ST_MakeEnvelope(121.451, 31.241, 121.452, 31.242, 4326)
FROM micro_grid WHERE code = '310106015001001001';
INSERT INTO building (code, micro_grid_id, geom)
SELECT '310106015001001001002', id, {square(121.453, 31.241, 121.454, 31.242)}
FROM micro_grid WHERE code = '310106015001001001';
-- Not yet placed in a micro-grid: a source key, no parent.
INSERT INTO building (code, name, geom)
VALUES ('osm:way/4242', 'OSM 4242', ST_MakeEnvelope(121.451, 31.246, 121.452, 31.247, 4326));

INSERT INTO household (code, building_id, unit, room, household_class, moved_in, location)
SELECT '310106015001001001001-1-0101', id, '1', '0101', 'A', '2019-05-01',
       ST_SetSRID(ST_MakePoint(121.4512, 31.2412), 4326)
FROM building WHERE code = '310106015001001001001';
INSERT INTO household (code, building_id, room)
SELECT '310106015001001001001-1-0102', id, '0102'
FROM building WHERE code = '310106015001001001001';
INSERT INTO household (code, building_id, unit, room, household_class, location)
SELECT 'osm:way/4242-0-0201', id, '0', '0201', 'C',
       ST_SetSRID(ST_MakePoint(121.4515, 31.2465), 4326)
FROM building WHERE code = 'osm:way/4242';

INSERT INTO person (code, household_id, name, gender, relation, birth_year, phone, id_number,
                    elderly_living_alone, childless_elderly, bereaved, low_income, disabled,
                    entitled_group, seeking_work)
SELECT h.code || p.suffix, h.id, p.name, p.gender, p.relation, p.birth_year, p.phone,
       p.id_number, p.flags[1], p.flags[2], p.flags[3], p.flags[4], p.flags[5], p.flags[6],
       p.flags[7]
FROM (VALUES
    ('310106015001001001001-1-0101', '-01', '王秀英', 'F', '户主', 1949, '13800000001',
     '{ID_NUMBERS["310106015001001001001-1-0101-01"]}',
     ARRAY[true, true, false, true, false, false, false]),
    ('310106015001001001001-1-0101', '-02', '王建国', 'M', '子', 1952, NULL,
     '{ID_NUMBERS["310106015001001001001-1-0101-02"]}',
     ARRAY[false, false, true, false, true, true, false]),
    ('310106015001001001001-1-0102', '-01', '李明', 'M', '户主', 1988, '13900000002',
     '{ID_NUMBERS["310106015001001001001-1-0102-01"]}',
     ARRAY[false, false, false, false, false, false, true]),
    ('osm:way/4242-0-0201', '-01', '佚名', NULL, NULL, NULL, NULL, NULL,
     ARRAY[false, false, false, false, false, false, false])
) AS p(household, suffix, name, gender, relation, birth_year, phone, id_number, flags)
JOIN household h ON h.code = p.household;

INSERT INTO worker (code, name, phone, role, subdistrict_id, community_id, unit_code)
SELECT w.code, w.name, w.phone, w.role::worker_role, s.id, c.id, w.unit_code
FROM (VALUES
    ('WC0001', '张主任', '021-62000000', 'GRID_CENTER', NULL, NULL),
    ('WS0001', '陈书记', NULL, 'COMMUNITY', '310106015001', NULL),
    ('WG0001', '赵网格', '13700000003', 'GRID_WORKER', '310106015001', NULL),
    ('WL0001', '孙楼长', NULL, 'MICRO_GRID_LEADER', '310106015001', NULL),
    ('WD0001', '周科员', NULL, 'DEPARTMENT', NULL, 'U-HOUSING')
) AS w(code, name, phone, role, community, unit_code)
JOIN subdistrict s ON s.code = '310106015'
LEFT JOIN community c ON c.code = w.community;

INSERT INTO worker_grid (worker_id, grid_id)
SELECT w.id, g.id FROM worker w JOIN grid g ON g.code LIKE '310106015001%'
WHERE w.code = 'WG0001';

INSERT INTO merchant (code, name, category, address, employees, building_id, geom)
SELECT '91310106MA1FL0001X', '好邻居便利店', 'convenience', '天目西路 1 号底商', 4, id,
       ST_SetSRID(ST_MakePoint(121.4511, 31.2411), 4326)
FROM building WHERE code = '310106015001001001001';
INSERT INTO merchant (code, name, category, geom)
VALUES ('osm:n777', '街角咖啡', 'cafe', ST_SetSRID(ST_MakePoint(121.4525, 31.2435), 4326));
"""

# Rows of tables that later revisions create, written once the database is at that revision,
# so that the migrations after it are checked to keep them too (0004 turns audit_log into a
# view over a renamed table).
DATA_LATER = {
    "0002": """
        UPDATE worker SET password_hash = '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
                          token_epoch = 3
        WHERE code = 'WG0001';
        INSERT INTO audit_log (id, at, worker_code, role, action, household_id, household_code,
                               fields, remote, request_id, detail)
        SELECT '6f1d2c54-5a0e-4e4f-9d1e-0d6a4c1b2a01', '2026-11-23 10:00:00+08', 'WG0001',
               'grid_worker', 'update', id, code, '{phone,id_number}', '10.0.0.7',
               'a3c9e5d1-4b2f-4c8e-9f70-1e2d3c4b5a69', '{"reason": "moved in"}'
        FROM household WHERE code = '310106015001001001001-1-0101';
        INSERT INTO audit_log (role, action, request_id)
        VALUES ('grid_center', 'act_for', 'b4d0f6e2-5c30-4d9f-8a81-2f3e4d5c6b7a');
    """,
}

Snapshot = dict[str, dict[str, Any]]  # relation → {"columns": [...], "rows": [tuple, ...]}


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def revisions() -> list[str]:
    """Every revision, first to head (the history is linear)."""
    script = ScriptDirectory.from_config(alembic_config("postgresql://"))
    assert len(script.get_heads()) == 1, "the migrations have more than one head"
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


@contextmanager
def cursor(url: str) -> Iterator[Any]:
    """A cursor as the tables' owner, in a transaction committed at the end."""
    conn = psycopg2.connect(dsn(url))
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def execute(url: str, statements: str) -> None:
    with cursor(url) as cur:
        cur.execute(statements)


# The project's tables and views (not PostGIS's or pgRouting's, not alembic_version).
RELATIONS = """
SELECT c.relname, a.attname
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'p')
  AND c.relname <> 'alembic_version'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relname, a.attnum
"""


def snapshot(url: str) -> Snapshot:
    """Every row of every relation, each value as PostgreSQL's text form (a geometry's is its
    hex EWKB, a bytea's its hex: exact), rows sorted."""
    with cursor(url) as cur:
        cur.execute(RELATIONS)
        columns: dict[str, list[str]] = {}
        for relation, column in cur.fetchall():
            columns.setdefault(relation, []).append(column)
        found: Snapshot = {}
        for relation, names in columns.items():
            cur.execute(
                sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{}::text").format(sql.Identifier(n)) for n in names
                    ),
                    sql.Identifier(relation),
                )
            )
            rows = sorted(cur.fetchall(), key=lambda row: [(v is None, v or "") for v in row])
            found[relation] = {"columns": names, "rows": rows}
    return found


def project(table: dict[str, Any], columns: list[str]) -> list[dict[str, Any]]:
    index = [table["columns"].index(c) for c in columns]
    rows = [{c: row[i] for c, i in zip(columns, index, strict=True)} for row in table["rows"]]
    return sorted(rows, key=lambda row: [(v is None, v or "") for v in row.values()])


def assert_kept(before: Snapshot, after: Snapshot, dropped: set[tuple[str, str]]) -> None:
    """Every relation of ``before`` is in ``after`` with as many rows, and every row keeps its
    values in the columns that remain; only the columns in ``dropped`` may go."""
    assert set(before) <= set(after), f"relations gone: {sorted(set(before) - set(after))}"
    for relation, table in before.items():
        kept = [c for c in table["columns"] if c in after[relation]["columns"]]
        gone = {(relation, c) for c in table["columns"] if c not in kept}
        assert gone <= dropped, f"columns gone with their data: {sorted(gone - dropped)}"
        assert len(after[relation]["rows"]) == len(table["rows"]), f"rows of {relation}"
        assert project(after[relation], kept) == project(table, kept), f"values of {relation}"


def check_moved(url: str) -> None:
    """0002 sealed each plain ID number: it opens with the key the migration was given, its
    digest finds it, its masked form is the number's; no number, nothing sealed."""
    with cursor(url) as cur:
        cur.execute("SELECT code, id_number_sealed, id_number_digest, id_number_masked FROM person")
        rows = cur.fetchall()
    vault = Vault(SECRET_KEY)
    got = {code: (sealed, digest, masked) for code, sealed, digest, masked in rows}
    assert set(got) == set(ID_NUMBERS)
    for code, number in ID_NUMBERS.items():
        sealed, digest, masked = got[code]
        if number is None:
            assert (sealed, digest, masked) == (None, None, None), code
            continue
        assert sealed is not None and digest is not None, f"{code}: ID number not sealed"
        assert vault.open(bytes(sealed)) == number, code
        assert bytes(digest) == vault.digest(number) == vault.digest(number.upper()), code
        assert masked == mask_id(number), code
    sealed = next(s for s, _, _ in got.values() if s is not None)
    with pytest.raises(InvalidTag):  # sealed with the key passed to upgrade, not another
        Vault("some-other-key-" * 3).open(bytes(sealed))


def check_added(url: str, baseline: Snapshot) -> None:
    """Columns added to the first revision's tables hold, in every existing row, the value the
    migration documents (``ADDED``), else their column default."""
    with cursor(url) as cur:
        cur.execute(RELATIONS)
        added = [
            (relation, column)
            for relation, column in cur.fetchall()
            if relation in baseline and column not in baseline[relation]["columns"]
        ]
        unknown = sorted(set(ADDED) - set(added))
        assert not unknown, f"ADDED lists columns no migration adds: {unknown}"
        values: dict[tuple[str, str], set[Any]] = {}
        expected: dict[tuple[str, str], Any] = {}
        for relation, column in added:
            cur.execute(
                sql.SQL("SELECT DISTINCT {} FROM {}").format(
                    sql.Identifier(column), sql.Identifier(relation)
                )
            )
            values[relation, column] = {
                tuple(v) if isinstance(v, list) else v for (v,) in cur.fetchall()
            }
            if column in SEALED and relation == "person":
                continue
            if (relation, column) in ADDED:
                expected[relation, column] = ADDED[relation, column]
                continue
            cur.execute(
                "SELECT column_default FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = %s AND column_name = %s",
                (relation, column),
            )
            (default,) = cur.fetchone()
            if default is None:
                expected[relation, column] = None
            else:
                cur.execute(f"SELECT {default}")
                expected[relation, column] = cur.fetchone()[0]
        for key, value in expected.items():
            want = tuple(value) if isinstance(value, list) else value
            wanted = want if isinstance(want, set) else {want}
            assert values[key] == wanted, f"{key[0]}.{key[1]} of existing rows: {values[key]}"


# Everything of the schema a migration makes: an upgrade run again must leave it as it was.
SCHEMA = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
       || coalesce(column_default, '') || ' ' || is_nullable
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'constraint', conrelid::regclass || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'trigger', pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'policy', tablename || ' ' || policyname || ' ' || coalesce(qual, '') || ' '
       || coalesce(with_check, '') FROM pg_policies WHERE schemaname = 'public'
UNION ALL SELECT 'function', p.oid::regprocedure || ' ' || md5(p.prosrc) FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL SELECT 'grant', table_name || ' ' || grantee || ' ' || privilege_type
FROM information_schema.role_table_grants WHERE table_schema = 'public'
ORDER BY 1, 2
"""


def schema(url: str) -> list[tuple[str, str]]:
    with cursor(url) as cur:
        cur.execute(SCHEMA)
        return cur.fetchall()


@pytest.fixture(scope="module")
def at_first(databases: Databases) -> Iterator[tuple[ScratchDB, Snapshot]]:
    """A database at the first revision holding ``DATA_0001`` (a template: copied, never
    migrated further), and its rows."""
    first = revisions()[0]
    db = databases.make("migrations_first")
    upgrade(db.owner_url, first)
    assert current_revision(db.owner_url) == first
    execute(db.owner_url, DATA_0001)
    rows = snapshot(db.owner_url)
    assert all(table["rows"] for table in rows.values()), "a table of 0001 left empty"
    assert len(rows["person"]["rows"]) == len(ID_NUMBERS)
    yield db, rows
    databases.drop(db.name)


def test_upgrading_one_revision_at_a_time_loses_nothing(
    databases: Databases, at_first: tuple[ScratchDB, Snapshot]
) -> None:
    template, before = at_first
    db = databases.make("migrations_steps", template=template.name)
    try:
        for revision in revisions()[1:]:
            upgrade(db.owner_url, revision, secret_key=SECRET_KEY)
            assert current_revision(db.owner_url) == revision
            after = snapshot(db.owner_url)
            dropped = {key for key, at in DROPPED.items() if at == revision}
            assert_kept(before, after, dropped)
            if revision in DATA_LATER:
                execute(db.owner_url, DATA_LATER[revision])
                after = snapshot(db.owner_url)
            before = after
        check_moved(db.owner_url)
        # What 0002's data became at 0004: the same entries, in the table and through the view.
        assert len(before["audit_entry"]["rows"]) == 2
        assert project(before["audit_entry"], before["audit_log"]["columns"]) == project(
            before["audit_log"], before["audit_log"]["columns"]
        )
    finally:
        databases.drop(db.name)


def test_upgrading_straight_to_head_loses_nothing_and_goes_no_further(
    databases: Databases, at_first: tuple[ScratchDB, Snapshot]
) -> None:
    template, before = at_first
    db = databases.make("migrations_head", template=template.name)
    try:
        head = revisions()[-1]
        upgrade(db.owner_url, "head", secret_key=SECRET_KEY)
        assert current_revision(db.owner_url) == head
        at_head = snapshot(db.owner_url)
        assert_kept(before, at_head, set(DROPPED))
        check_moved(db.owner_url)
        check_added(db.owner_url, before)
        shape = schema(db.owner_url)

        # Again: nothing to do, nothing changed.
        upgrade(db.owner_url, "head", secret_key=SECRET_KEY)
        assert current_revision(db.owner_url) == head
        assert snapshot(db.owner_url) == at_head
        assert schema(db.owner_url) == shape

        # The command line: up to date at head, and it will not go back down.
        done = db.gridmap("db", "migrate")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"schema at {head} (head)"
        first = revisions()[0]
        done = db.gridmap("db", "migrate", "--revision", first)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert f"the schema is at {head}, past {first}" in done.stderr
        assert "only go up" in done.stderr
        assert current_revision(db.owner_url) == head
        assert snapshot(db.owner_url) == at_head
        assert schema(db.owner_url) == shape
    finally:
        databases.drop(db.name)
