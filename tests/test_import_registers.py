"""Registers into the model: households with their members, workers with their grids and job
openings, read from Excel files with Chinese headers; idempotent, all or nothing, and conflicts
with what workers changed in the app listed instead of overwritten."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import Databases, ScratchDB
from openpyxl import Workbook
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from test_family_files import owner

from api.settings import Settings
from geo import family_files
from geo.access import Caller, Role
from geo.demo import id_check_digit
from geo.pii import Vault
from importers.registers import (
    load_households,
    load_openings,
    load_workers,
    parse_birth_year,
    parse_date,
    parse_id_number,
)
from importers.run import ImportFailed, Options, run
from importers.summary import Summary
from importers.tables import read_table

VAULT = Vault(Settings().secret_key)


@pytest.fixture(scope="module")
def db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    """One copy of the demo for the module (copies are slow on a busy machine): each test
    works on households, workers and merchants of its own."""
    scratch = databases.make("registers", template=template_db.name)
    yield scratch
    databases.drop(scratch.name)


def xlsx(path: Path, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """A register as grid workers keep it: a title row above the header, as they often do."""
    wb = Workbook()
    ws = wb.active
    ws.append(["XX街道 人口登记表"])
    ws.append(list(headers))
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    return path


def load(
    db: ScratchDB,
    path: Path,
    kind: str,
    loader: Callable[..., None],
    **options: Any,
) -> Summary:
    opts = Options(**options)
    return run(
        db.owner_url,
        path,
        lambda cur, summary: loader(cur, read_table(path, kind), summary, opts),
        opts,
    )


def counts(summary: Summary, kind: str) -> dict[str, int]:
    return {k: v for k, v in summary.as_json()["kinds"][kind].items() if v}


def id_number(region: str, born: str, serial: str) -> str:
    first = region + born + serial
    return first + id_check_digit(first)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def test_dates_birth_years_and_id_numbers_in_their_usual_forms() -> None:
    for text in ("2023-05-01", "2023/5/1", "2023.5.1", "2023年5月1日", "20230501",
                 "2023-05-01T00:00:00"):  # fmt: skip
        assert parse_date(text) == dt.date(2023, 5, 1), text
    with pytest.raises(ValueError, match="not a day of the calendar"):
        parse_date("2023-02-30")
    assert [parse_birth_year(t) for t in ("1980", "1980年", "1980年5月", "1980-05-06")] == [
        1980
    ] * 4
    number = id_number("310106", "19800506", "124")
    assert parse_id_number(number.lower()) == (number, 1980, "F")  # 17th digit even: female
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    with pytest.raises(ValueError, match="check digit") as err:
        parse_id_number(wrong)
    assert wrong not in str(err.value)  # messages go to logs: the number is masked
    assert parse_id_number("E12345678") == ("E12345678", None, None)  # a passport


# --------------------------------------------------------------------------------------------
# Households
# --------------------------------------------------------------------------------------------

HEADERS = ["楼栋编码", "经度", "纬度", "单元", "房号", "户类别", "入住日期", "姓名", "性别",
           "与户主关系", "出生日期", "联系电话", "身份证号", "独居老人"]  # fmt: skip


def buildings(db: ScratchDB) -> tuple[str, str, tuple[float, float]]:
    """Two buildings inside grids, and a point inside the second one."""
    (a, _, _), (b, x, y) = owner(
        db,
        "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM building"
        " WHERE micro_grid_id IS NOT NULL ORDER BY code LIMIT 2",
    )
    # A building far from every grid (an OSM footprint imported before grids were drawn).
    owner(
        db,
        "INSERT INTO building (code, source_key, geom) VALUES ('osm:w42', 'osm:w42',"
        " ST_GeomFromText('POLYGON((100 10, 100.001 10, 100.001 10.001, 100 10.001, 100 10))',"
        " 4326)) ON CONFLICT (code) DO NOTHING",
    )
    return a, b, (x, y)


def register(
    a: str, b: str, xy: tuple[float, float], changes: dict[tuple[int, str], Any] | None = None
) -> list[list[Any]]:
    """Three households in grids (the third found by coordinates) and one outside every grid."""
    head = id_number("310106", "19500304", "215")
    rows = [
        [a, None, None, "8", "101", "B", "2015/3/1", "王建国", "男", "户主", None, "13800000001",
         head, "否"],
        [a, None, None, "8", "101", None, None, "李秀英", "女", "配偶", "1952年7月8日", None,
         None, None],
        [a, None, None, "8", "102室", "丙", None, "张桂兰", "女", "户主", "1938-01-02",
         "13800000002", None, "是"],
        [None, xy[0], xy[1], "8单元", "0201", "A", "2020-10-01", "陈明", "男", "户主", "1990",
         "13800000003", None, None],
        ["osm:w42", None, None, "1", "101", None, None, "远方", None, "户主", None, None, None,
         None],
    ]  # fmt: skip
    for (row, column), value in (changes or {}).items():
        rows[row][HEADERS.index(column)] = value
    return rows


def household(db: ScratchDB, code: str) -> tuple[Any, ...]:
    return owner(db, "SELECT household_class, version, notes FROM household WHERE code = %s", code)[
        0
    ]


def members(db: ScratchDB, code: str) -> list[tuple[Any, ...]]:
    return owner(
        db,
        "SELECT p.code, p.name, p.gender, p.birth_year, p.phone, p.elderly_living_alone,"
        " p.id_number_sealed, p.id_number_masked FROM person p JOIN household h"
        " ON h.id = p.household_id WHERE h.code = %s ORDER BY p.code",
        code,
    )


def test_households_import_update_and_conflict(db: ScratchDB, tmp_path: Path) -> None:
    a, b, xy = buildings(db)
    path = xlsx(tmp_path / "households.xlsx", HEADERS, register(a, b, xy))
    summary = load(db, path, "households", load_households)
    assert counts(summary, "households") == {"read": 4, "inserted": 3, "outside": 1}
    assert not summary.problems and not summary.conflicts

    first, second = f"{a}-8-0101", f"{a}-8-0102"
    assert household(db, first) == ("B", 1, None)
    assert household(db, second)[0] == "C"  # 丙
    (located,) = owner(db, "SELECT code FROM household WHERE code LIKE %s", b + "-8-%")
    assert located == (f"{b}-8-0201",)
    head, spouse = members(db, first)
    assert head[:6] == (f"{first}-01", "王建国", "M", 1950, "13800000001", False)
    assert VAULT.open(bytes(head[6])) == id_number("310106", "19500304", "215")
    assert head[7].startswith("310106") and "*" in head[7]
    assert spouse[:4] == (f"{first}-02", "李秀英", "F", 1952) and spouse[6] is None
    assert members(db, second)[0][5] is True  # 独居老人: 是
    assert not owner(db, "SELECT 1 FROM household WHERE code LIKE %s", "osm:w42%")
    (created,) = owner(
        db, "SELECT count(*) FROM audit_log WHERE role = 'import' AND action = 'create'"
    )[0]
    assert created == 3

    # The same file again: nothing changes.
    again = load(db, path, "households", load_households)
    assert counts(again, "households") == {"read": 4, "unchanged": 3, "outside": 1}
    assert household(db, first)[1] == 1

    # A newer register: the first household becomes class C and gains a member.
    spouse_id = id_number("310106", "19520708", "226")
    newer = register(a, b, xy, {(0, "户类别"): "C", (1, "身份证号"): spouse_id})
    newer.insert(2, [a, None, None, "8", "101", None, None, "王小明", "男", "子女", "2010-01-01",
                     None, None, None])  # fmt: skip
    path = xlsx(tmp_path / "households-2.xlsx", HEADERS, newer)
    summary = load(db, path, "households", load_households)
    assert counts(summary, "households") == {"read": 4, "updated": 1, "unchanged": 2, "outside": 1}
    assert household(db, first)[:2] == ("C", 2)
    *_, spouse, son = members(db, first)
    assert son[:2] == (f"{first}-03", "王小明")
    assert spouse[:2] == (f"{first}-02", "李秀英") and VAULT.open(bytes(spouse[6])) == spouse_id
    history = owner(
        db,
        "SELECT f.version, f.action, f.role FROM family_file_history f JOIN household h"
        " ON h.id = f.household_id WHERE h.code = %s ORDER BY version",
        first,
    )
    assert history == [(1, "BASELINE", "import"), (2, "IMPORT", "import")]

    # A worker changes the second household in the app; then the register changes its phone.
    engine = create_engine(db.owner_url)
    with Session(engine) as session, session.begin():
        (hid,) = owner(db, "SELECT id FROM household WHERE code = %s", second)[0]
        family_files.update_file(
            session=session, caller=Caller(Role.GRID_CENTER, worker_code="JA015-GC-0001"),
            household_id=uuid.UUID(str(hid)), version=1, values={"notes": "女儿每周来看望"},
        )  # fmt: skip
    engine.dispose()
    newest = [*newer]
    newest[3] = [*newest[3]]
    newest[3][HEADERS.index("联系电话")] = "13900000002"
    path = xlsx(tmp_path / "households-3.xlsx", HEADERS, newest)
    summary = load(db, path, "households", load_households)
    assert counts(summary, "households") == {"read": 4, "unchanged": 3, "outside": 1}
    assert len(summary.conflicts) == 1 and second in summary.conflicts[0]
    assert "households-3.xlsx row 6" in summary.conflicts[0]
    assert members(db, second)[0][4] == "13800000002"  # left as it was
    assert household(db, second)[1:] == (2, "女儿每周来看望")

    # --prefer-file takes the file's phone, and keeps the app's notes (not in the file).
    summary = load(db, path, "households", load_households, prefer_file=True)
    assert counts(summary, "households") == {"read": 4, "updated": 1, "unchanged": 2, "outside": 1}
    assert not summary.conflicts
    assert members(db, second)[0][4] == "13900000002"
    assert household(db, second)[1:] == (3, "女儿每周来看望")
    # …after which the same file is unchanged again.
    summary = load(db, path, "households", load_households)
    assert counts(summary, "households") == {"read": 4, "unchanged": 3, "outside": 1}


def test_a_bad_row_changes_nothing_unless_skipped(db: ScratchDB, tmp_path: Path) -> None:
    a, b, xy = buildings(db)
    rows = register(a, b, xy, {(1, "出生日期"): "1952年13月", (2, "楼栋编码"): a[:-3] + "999"})
    for row in rows:
        row[HEADERS.index("单元")] = "7"  # other flats than the test above
    path = xlsx(tmp_path / "bad.xlsx", HEADERS, rows)
    tally = "SELECT (SELECT count(*) FROM household), (SELECT count(*) FROM person)"
    before = owner(db, tally)
    with pytest.raises(ImportFailed) as failed:
        load(db, path, "households", load_households)
    problems = [(p.where, p.field) for p in failed.value.summary.problems]
    assert problems == [("bad.xlsx row 4", "birth_date"), ("bad.xlsx row 5", "building")]
    assert "1952年13月" in failed.value.message
    assert owner(db, tally) == before

    # --skip-invalid: the third household imports; the first is refused whole (both rows).
    summary = load(db, path, "households", load_households, skip_invalid=True,
                   rejects=tmp_path / "bad.rejects.csv")  # fmt: skip
    assert counts(summary, "households") == {
        "read": 4, "inserted": 1, "rejected": 2, "outside": 1
    }  # fmt: skip
    assert owner(db, tally) == [(before[0][0] + 1, before[0][1] + 1)]
    assert "birth_date" in (tmp_path / "bad.rejects.csv").read_text(encoding="utf-8-sig")


def test_a_household_made_in_the_app(db: ScratchDB, tmp_path: Path) -> None:
    """Never imported: a conflict when the file differs, unchanged (and remembered) when equal;
    after that the file's changes apply."""
    people = owner(
        db,
        "SELECT b.code, h.unit, h.room, h.code, p.name, p.gender, p.relation, p.birth_year,"
        " p.phone FROM household h JOIN building b ON b.id = h.building_id JOIN person p"
        " ON p.household_id = h.id WHERE p.phone IS NOT NULL ORDER BY h.code, p.code LIMIT 1",
    )
    building, unit, room, code, name, gender, relation, year, phone = people[0]
    headers = ["楼栋编码", "单元", "房号", "姓名", "性别", "与户主关系", "出生年份", "联系电话"]
    same = [building, unit, room, name, gender, relation, year, phone]
    other = [*same[:-1], "13912345678"]

    def imported(row: list[Any], name: str, **options: Any) -> Summary:
        return load(db, xlsx(tmp_path / name, headers, [row]), "households",
                    load_households, **options)  # fmt: skip

    differs = imported(other, "a.xlsx")
    assert counts(differs, "households") == {"read": 1, "unchanged": 1}
    assert "made in the app" in differs.conflicts[0] and code in differs.conflicts[0]
    equal = imported(same, "b.xlsx")
    assert counts(equal, "households") == {"read": 1, "unchanged": 1} and not equal.conflicts
    changed = imported(other, "c.xlsx")
    assert counts(changed, "households") == {"read": 1, "updated": 1}
    # A masked phone (an export for a role that may not read it) keeps the phone.
    masked = imported([*same[:-1], "139****5678"], "d.xlsx")
    assert counts(masked, "households") == {"read": 1, "unchanged": 1} and not masked.conflicts
    assert owner(db, "SELECT phone FROM person WHERE household_id ="
                 " (SELECT id FROM household WHERE code = %s) AND name = %s", code, name) == [
        ("13912345678",)
    ]  # fmt: skip

    # The family moves out in the app: the register never reopens the file, even preferred.
    engine = create_engine(db.owner_url)
    with Session(engine) as session, session.begin():
        (hid, version) = owner(db, "SELECT id, version FROM household WHERE code = %s", code)[0]
        family_files.move_out(
            session=session, caller=Caller(Role.GRID_CENTER, worker_code="JA015-GC-0001"),
            household_id=uuid.UUID(str(hid)), version=version, on=None, reason="搬离",
        )  # fmt: skip
    engine.dispose()
    gone = imported(same, "e.xlsx", prefer_file=True)
    assert counts(gone, "households") == {"read": 1, "unchanged": 1}
    assert "moved out" in gone.conflicts[0]
    assert owner(db, "SELECT count(*) FROM person p JOIN household h ON h.id = p.household_id"
                 " WHERE h.code = %s", code) == [(0,)]  # fmt: skip


def test_member_codes_tell_members_apart(db: ScratchDB, tmp_path: Path) -> None:
    """Twins of one name and birth year, without ID numbers: told apart by their member codes
    (kept for a new household), and a code of no member of the household is refused."""
    a, _, _ = buildings(db)
    home, other = f"{a}-5-0101", f"{a}-5-0102"
    headers = ["楼栋编码", "单元", "房号", "成员编号", "姓名", "性别", "与户主关系", "出生年份",
               "联系电话"]  # fmt: skip
    rows = [
        [a, "5", "101", None, "周立", "男", "户主", 1985, None],
        [a, "5", "101", f"{home}-03", "周安", "女", "子女", 2025, None],
        [a, "5", "101", f"{home}-04", "周安", "女", "子女", 2025, None],
    ]  # fmt: skip
    path = xlsx(tmp_path / "twins.xlsx", headers, rows)
    assert counts(load(db, path, "households", load_households), "households") == {
        "read": 1, "inserted": 1}  # fmt: skip
    assert [m[:2] for m in members(db, home)] == [
        (f"{home}-03", "周安"), (f"{home}-04", "周安"), (f"{home}-05", "周立")]  # fmt: skip
    again = load(db, path, "households", load_households)
    assert counts(again, "households") == {"read": 1, "unchanged": 1}

    # One twin's phone changes: that twin, not the first of the name.
    rows[2][-1] = "13700000004"
    path = xlsx(tmp_path / "twins-2.xlsx", headers, rows)
    assert counts(load(db, path, "households", load_households), "households") == {
        "read": 1, "updated": 1}  # fmt: skip
    assert [m[4] for m in members(db, home)] == [None, "13700000004", None]

    # Without the codes the twins are one member twice; a code of another household, or of no
    # member of this one, is refused with its row.
    uncoded = [[*r[:3], None, *r[4:]] for r in rows]
    with pytest.raises(ImportFailed) as failed:
        load(db, xlsx(tmp_path / "uncoded.xlsx", headers, uncoded), "households",
             load_households)  # fmt: skip
    ((where, field, message),) = [(p.where, p.field, p.message)
                                  for p in failed.value.summary.problems]  # fmt: skip
    assert (where, field) == ("uncoded.xlsx row 5", "name") and "the same member" in message
    wrong = [
        [a, "5", "101", f"{home}-09", "周安", "女", "子女", 2025, None],
        [a, "5", "102", f"{home}-01", "吴乐", "男", "户主", 1990, None],
    ]  # fmt: skip
    with pytest.raises(ImportFailed) as failed:
        load(db, xlsx(tmp_path / "wrong.xlsx", headers, wrong), "households", load_households)
    problems = {(p.where, p.field): p.message for p in failed.value.summary.problems}
    assert set(problems) == {("wrong.xlsx row 3", "member_code"),
                             ("wrong.xlsx row 4", "member_code")}  # fmt: skip
    assert f"no member {home}-09 in household {home}" in problems["wrong.xlsx row 3", "member_code"]
    assert f"not a member of household {other}" in problems["wrong.xlsx row 4", "member_code"]
    assert not owner(db, "SELECT 1 FROM household WHERE code = %s", other)


# --------------------------------------------------------------------------------------------
# Workers and openings
# --------------------------------------------------------------------------------------------

WORKER_HEADERS = ["工号", "姓名", "联系电话", "角色", "社区编码", "网格编码", "单位"]


def test_workers_with_their_grids(db: ScratchDB, tmp_path: Path) -> None:
    (demo_code, demo_grids), *_ = owner(
        db,
        "SELECT w.code, array_agg(g.code ORDER BY g.code) FROM worker w"
        " JOIN worker_grid wg ON wg.worker_id = w.id JOIN grid g ON g.id = wg.grid_id"
        " WHERE w.role = 'GRID_WORKER' GROUP BY w.code ORDER BY w.code LIMIT 1",
    )
    community = demo_grids[0][:12]
    grids = [g for (g,) in owner(db, "SELECT code FROM grid WHERE code LIKE %s"
                                 " ORDER BY code", community + "%")]  # fmt: skip
    rows = [
        ["JA015-WG-9001", "赵网格", "13700000001", "网格员", community, f"{grids[0]}、{grids[1]}",
         None],
        ["JA015-GC-9001", "钱中心", None, "网格中心", community[:9], None, None],
        ["JA015-BM-9001", "孙房管", None, "部门", community[:9], None, "房管办"],
        # A demo worker moved to another grid: made in the app, so a conflict.
        [demo_code, "改名", None, "GRID_WORKER", community, grids[-1], None],
    ]  # fmt: skip
    path = xlsx(tmp_path / "workers.xlsx", WORKER_HEADERS, rows)
    summary = load(db, path, "workers", load_workers)
    assert counts(summary, "workers") == {"read": 4, "inserted": 3, "unchanged": 1}
    assert len(summary.conflicts) == 1 and demo_code in summary.conflicts[0]
    found = owner(
        db,
        "SELECT w.code, w.role::text, c.code, w.unit_code, ARRAY(SELECT g.code FROM worker_grid wg"
        " JOIN grid g ON g.id = wg.grid_id WHERE wg.worker_id = w.id ORDER BY g.code)"
        " FROM worker w LEFT JOIN community c ON c.id = w.community_id"
        " WHERE w.code LIKE 'JA015-__-9001' ORDER BY w.code",
    )
    assert found == [
        ("JA015-BM-9001", "DEPARTMENT", None, "U-HOUSING", []),
        ("JA015-GC-9001", "GRID_CENTER", None, None, []),
        ("JA015-WG-9001", "GRID_WORKER", community, None, grids[:2]),
    ]

    again = load(db, path, "workers", load_workers)
    assert counts(again, "workers") == {"read": 4, "unchanged": 4} and len(again.conflicts) == 1
    preferred = load(db, path, "workers", load_workers, prefer_file=True)
    assert counts(preferred, "workers") == {"read": 4, "updated": 1, "unchanged": 3}
    assert owner(
        db,
        "SELECT w.name, array_agg(g.code) FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
        " JOIN grid g ON g.id = wg.grid_id WHERE w.code = %s GROUP BY w.name",
        demo_code,
    ) == [("改名", [grids[-1]])]

    # A grid of another community, and an unknown one: refused with their rows named.
    rows[0][WORKER_HEADERS.index("网格编码")] = "310106015999001"
    rows[1][WORKER_HEADERS.index("角色")] = "厨师"
    with pytest.raises(ImportFailed) as failed:
        load(db, xlsx(tmp_path / "w2.xlsx", WORKER_HEADERS, rows), "workers", load_workers)
    assert [(p.where, p.field) for p in failed.value.summary.problems] == [
        ("w2.xlsx row 3", "grids"), ("w2.xlsx row 4", "role")
    ]  # fmt: skip


OPENING_HEADERS = ["商户编码", "岗位名称", "技能要求", "班次", "每周工时", "时薪", "招聘人数",
                   "开始日期", "截止日期"]  # fmt: skip


def test_openings_numbered_after_the_merchants_own(db: ScratchDB, tmp_path: Path) -> None:
    ((merchant, last),) = owner(
        db,
        "SELECT m.code, max(o.code) FROM merchant m JOIN job_opening o ON o.merchant_id = m.id"
        " GROUP BY m.code ORDER BY count(*) DESC, m.code LIMIT 1",
    )
    number = int(last.rsplit("-J", 1)[1])
    rows = [
        [merchant, "理货员", "搬运;收银", "工作日上午、WEEKEND_DAYTIME", "20", "22元", "2",
         "2026/12/1", None],
        [merchant, "夜班保安", None, "工作日晚上", "15", "25", "1", None, "2027-03-31"],
    ]  # fmt: skip
    path = xlsx(tmp_path / "openings.xlsx", OPENING_HEADERS, rows)
    summary = load(db, path, "openings", load_openings)
    assert counts(summary, "openings") == {"read": 2, "inserted": 2}
    assert owner(
        db,
        "SELECT code, title, skills, shifts, weekly_hours, wage, headcount, valid_from"
        " FROM job_opening WHERE code > %s AND code LIKE %s ORDER BY code",
        last, merchant + "-J%",
    ) == [
        (f"{merchant}-J{number + 1:02d}", "理货员", ["搬运", "收银"],
         ["WEEKDAY_MORNING", "WEEKEND_DAYTIME"], 20, 22, 2, dt.date(2026, 12, 1)),
        (f"{merchant}-J{number + 2:02d}", "夜班保安", [], ["WEEKDAY_EVENING"], 15, 25, 1,
         dt.date.today()),
    ]  # fmt: skip
    again = load(db, path, "openings", load_openings)
    assert counts(again, "openings") == {"read": 2, "unchanged": 2}

    rows[1][5] = "28"  # a raise: the file changed, the app did not
    rows.append(["91310000XXXXXXXXXX", "店员", None, "周末白天", "8", "20", "1", None, None])
    path = xlsx(tmp_path / "openings-2.xlsx", OPENING_HEADERS, rows)
    with pytest.raises(ImportFailed) as failed:
        load(db, path, "openings", load_openings)
    (problem,) = failed.value.summary.problems
    assert (problem.where, problem.field) == ("openings-2.xlsx row 5", "merchant")
    assert "unknown merchant" in problem.message
    summary = load(db, path, "openings", load_openings, skip_invalid=True)
    assert counts(summary, "openings") == {"read": 3, "updated": 1, "unchanged": 1, "rejected": 1}


# --------------------------------------------------------------------------------------------
# Uploads limited to an area (Options.scope: a grid center's or a community's own)
# --------------------------------------------------------------------------------------------

MINE, THEIRS = "310106015001", "310106015002"  # two communities of the demo


def test_an_upload_keeps_to_its_scope(db: ScratchDB, tmp_path: Path) -> None:
    ((mine, theirs),) = owner(
        db,
        "SELECT min(b.code) FILTER (WHERE starts_with(b.code, %s)),"
        " min(b.code) FILTER (WHERE starts_with(b.code, %s))"
        " FROM building b WHERE b.micro_grid_id IS NOT NULL",
        MINE, THEIRS,
    )  # fmt: skip
    ((x, y),) = owner(db, "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p"
                      " FROM building WHERE code = %s) b", theirs)  # fmt: skip
    # Households: those of another community are outside, found by code or by coordinates.
    headers = ["楼栋编码", "经度", "纬度", "单元", "房号", "姓名"]
    rows = [[mine, None, None, "66", "101", "甲"], [theirs, None, None, "66", "101", "乙"],
            [None, x, y, "66", "102", "丙"]]  # fmt: skip
    path = xlsx(tmp_path / "scoped.xlsx", headers, rows)
    summary = load(db, path, "households", load_households, scope=MINE)
    assert counts(summary, "households") == {"read": 3, "inserted": 1, "outside": 2}
    assert not summary.problems
    assert owner(db, "SELECT code FROM household WHERE code LIKE %s ORDER BY code",
                 "%-66-____") == [(f"{mine}-66-0101",)]  # fmt: skip

    # Workers: new ones in the scope only, and none outside it touched.
    ((grid,), (theirs_worker,)) = owner(
        db,
        "(SELECT code FROM grid WHERE starts_with(code, %s) ORDER BY code LIMIT 1) UNION ALL"
        " (SELECT w.code FROM worker w JOIN community c ON c.id = w.community_id"
        "  WHERE c.code = %s ORDER BY w.code LIMIT 1)",
        MINE, THEIRS,
    )  # fmt: skip
    rows = [
        ["JA015-WG-9101", "周网格", None, "网格员", MINE, grid, None],
        ["JA015-WG-9102", "吴网格", None, "网格员", THEIRS, None, None],
        ["JA015-GC-9101", "郑中心", None, "网格中心", MINE[:9], None, None],
        [theirs_worker, "改名", None, "网格员", MINE, None, None],
    ]  # fmt: skip
    path = xlsx(tmp_path / "scoped-workers.xlsx", WORKER_HEADERS, rows)
    with pytest.raises(ImportFailed) as failed:
        load(db, path, "workers", load_workers, scope=MINE)
    problems = {(p.where, p.field): p.message for p in failed.value.summary.problems}
    assert problems == {
        ("scoped-workers.xlsx row 4", "community"):
            f"community {THEIRS} is outside your area ({MINE})",
        ("scoped-workers.xlsx row 5", "subdistrict"):
            f"subdistrict {MINE[:9]} is outside your area ({MINE})",
        ("scoped-workers.xlsx row 6", "code"):
            f"staff number {theirs_worker} belongs to community {THEIRS}, outside your area",
    }  # fmt: skip
    summary = load(db, path, "workers", load_workers, scope=MINE, skip_invalid=True)
    assert counts(summary, "workers") == {"read": 4, "inserted": 1, "rejected": 3}
    assert owner(db, "SELECT name FROM worker WHERE code = %s", theirs_worker) != [("改名",)]

    # Openings: of merchants in a building of the scope, or standing in its area (a merchant
    # outside every grid); not of others.
    ((inside, outside),) = owner(
        db,
        "SELECT min(m.code) FILTER (WHERE starts_with(g.code, %s)),"
        " min(m.code) FILTER (WHERE starts_with(g.code, %s)) FROM merchant m"
        " JOIN building b ON b.id = m.building_id JOIN micro_grid g ON g.id = b.micro_grid_id",
        MINE, THEIRS,
    )  # fmt: skip
    owner(
        db,
        "INSERT INTO merchant (code, name, category, geom) SELECT 'T-SCOPE-1', '流动摊位',"
        " 'retail', ST_PointOnSurface(geom) FROM community WHERE code = %s UNION ALL"
        " SELECT 'T-SCOPE-2', '远方小店', 'retail', ST_SetSRID(ST_Point(100, 10), 4326)",
        MINE,
    )  # fmt: skip
    rows = [[code, "店员", None, "周末白天", "8", "20", "1", None, None]
            for code in (inside, "T-SCOPE-1", outside, "T-SCOPE-2")]  # fmt: skip
    path = xlsx(tmp_path / "scoped-openings.xlsx", OPENING_HEADERS, rows)
    summary = load(db, path, "openings", load_openings, scope=MINE, skip_invalid=True)
    assert counts(summary, "openings") == {"read": 4, "inserted": 2, "rejected": 2}
    (name,) = owner(db, "SELECT name FROM merchant WHERE code = %s", outside)[0]
    assert [(p.where, p.field, p.message) for p in summary.problems] == [
        ("scoped-openings.xlsx row 5", "merchant",
         f"{outside} ({name}) is a merchant outside your area"),
        ("scoped-openings.xlsx row 6", "merchant",
         "T-SCOPE-2 (远方小店) is a merchant outside your area"),
    ]  # fmt: skip
