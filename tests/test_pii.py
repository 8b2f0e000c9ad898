"""ID numbers at rest: a dump of the database alone reveals none, and a database from before
they were sealed is sealed by its migration, losing nothing."""

from __future__ import annotations

import re
import subprocess
import uuid

import psycopg2
from conftest import Databases, ScratchDB
from sqlalchemy.engine import make_url

from api.settings import Settings
from geo.migrate import upgrade
from geo.pii import Vault, mask_id, mask_phone

ID_NUMBER = re.compile(rb"\d{17}[\dX]")


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_a_dump_reveals_no_id_number(demo_db: ScratchDB) -> None:
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--table=person", dsn(demo_db.owner_url)],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    vault = Vault(Settings().secret_key)
    conn = psycopg2.connect(dsn(demo_db.owner_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id_number_sealed FROM person")
            numbers = [vault.open(bytes(sealed)) for (sealed,) in cur.fetchall()]
    finally:
        conn.close()
    assert len(numbers) > 10_000 and all(ID_NUMBER.fullmatch(n.encode()) for n in numbers)
    assert b"310106015" in dump  # the persons are there …
    # Every run of 18 ID-number characters in the dump (codes make plenty of them) …
    candidates = {m.group(1).decode() for m in re.finditer(rb"(?=(\d{17}[\dX]))", dump)}
    assert "310106015001001001" in candidates
    assert not candidates & set(numbers)  # … and none is an ID number


def test_masks() -> None:
    assert mask_id("31010619900101123X") == "310106********123X"
    assert mask_phone("13812345678") == "138****5678"
    vault = Vault("k" * 40)
    sealed, digest, masked = vault.seal("31010619900101123X")
    assert vault.open(sealed) == "31010619900101123X" and masked == "310106********123X"
    assert digest == vault.digest("31010619900101123x")  # found whatever the case of the X
    assert Vault("j" * 40).digest("31010619900101123X") != digest  # keyed


def test_migrating_a_database_with_plain_id_numbers_seals_them(databases: Databases) -> None:
    db: ScratchDB = databases.make("plain_ids")
    upgrade(db.owner_url, "0001")
    number = "310106194912310021"
    conn = psycopg2.connect(dsn(db.owner_url))
    try:
        with conn, conn.cursor() as cur:
            square = "ST_Multi(ST_MakeEnvelope(121.45, 31.24, 121.46, 31.25, 4326))"
            ids = [str(uuid.uuid4()) for _ in range(7)]
            cur.execute(f"INSERT INTO district VALUES (%s, '310106', 'd', {square})", (ids[0],))
            cur.execute(f"INSERT INTO subdistrict VALUES (%s, '310106015', 's', %s,"
                        f" 'Asia/Shanghai', {square})", (ids[1], ids[0]))  # fmt: skip
            cur.execute(f"INSERT INTO community VALUES (%s, '310106015001', 'c', %s, {square})",
                        (ids[2], ids[1]))  # fmt: skip
            cur.execute(f"INSERT INTO grid VALUES (%s, '310106015001001', 'g', %s, {square})",
                        (ids[3], ids[2]))  # fmt: skip
            cur.execute(f"INSERT INTO micro_grid VALUES (%s, '310106015001001001', 'm', %s,"
                        f" {square})", (ids[4], ids[3]))  # fmt: skip
            cur.execute("INSERT INTO building (id, code, micro_grid_id, geom) VALUES (%s,"
                        " '310106015001001001001', %s, ST_MakeEnvelope(121.451, 31.241, 121.452,"
                        " 31.242, 4326))", (ids[5], ids[4]))  # fmt: skip
            home = "310106015001001001001-1-0101"
            cur.execute("INSERT INTO household (id, code, building_id, room) VALUES"
                        " (%s, %s, %s, '0101')", (ids[6], home, ids[5]))  # fmt: skip
            cur.execute("INSERT INTO person (code, household_id, name, id_number) VALUES"
                        " (%s, %s, '张三', %s)", (home + "-01", ids[6], number))  # fmt: skip
    finally:
        conn.close()
    upgrade(db.owner_url)
    conn = psycopg2.connect(dsn(db.owner_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT name, id_number_sealed, id_number_digest, id_number_masked"
                        " FROM person")  # fmt: skip
            name, sealed, digest, masked = cur.fetchone()
            cur.execute("SELECT count(*) FROM information_schema.columns"
                        " WHERE table_name = 'person' AND column_name = 'id_number'")  # fmt: skip
            plain_columns = cur.fetchone()[0]
    finally:
        conn.close()
    vault = Vault(Settings().secret_key)
    assert name == "张三" and vault.open(bytes(sealed)) == number
    assert bytes(digest) == vault.digest(number) and masked == mask_id(number)
    assert plain_columns == 0
