"""`gridmap export households|visits|cases`: the file read back with openpyxl against what SQL
counts independently, the round trip through `gridmap import`, a worker's rights, the audit.

Every export writes an audit row, so the tests that export take a fresh copy of the demo."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ScratchDB
from openpyxl import load_workbook
from test_family_files import owner

from importers.headers import FIELDS, label, recognise

GRID_WORKER = "JA015-WG-0001"  # demo block head of grid 310106015001001
GRID_CENTER = "JA015-GC-0001"
DEPARTMENT = "JA015-BM-0001"
# Members who are the same person to the importer when the file has no ID numbers: the demo
# has one household with two members of one name and birth year (twins).
TWINS = """
SELECT left(p.code, 15) FROM person p
GROUP BY p.household_id, left(p.code, 15), p.name, p.birth_year HAVING count(*) > 1
ORDER BY 1 LIMIT 1
"""
CLEAN_GRIDS = """
SELECT g.code FROM grid g
WHERE EXISTS (SELECT 1 FROM household h WHERE starts_with(h.code, g.code))
  AND NOT EXISTS (SELECT 1 FROM person p WHERE starts_with(p.code, g.code)
                  GROUP BY p.household_id, p.name, p.birth_year HAVING count(*) > 1)
ORDER BY g.code
"""
# What a register import could change: households and members as they stand.
STATE = """
SELECT md5(string_agg(h::text || coalesce(p.members, ''), '|' ORDER BY h.code))
FROM household h
LEFT JOIN LATERAL (SELECT string_agg(p::text, ',' ORDER BY p.code) AS members
                   FROM person p WHERE p.household_id = h.id) p ON true
"""


def one(db: ScratchDB, query: str, *args: Any) -> Any:
    return owner(db, query, *args)[0][0]


def read_xlsx(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The header row and the rows as header → value, straight from openpyxl."""
    wb = load_workbook(path, read_only=True)
    try:
        rows = list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()
    header = [str(h) for h in rows[0]]
    # Trailing empty cells are not stored: a row may be shorter than the header.
    return header, [dict(zip(header, (*r, *[None] * (len(header) - len(r))), strict=True))
                    for r in rows[1:]]  # fmt: skip


def export(db: ScratchDB, *args: str) -> str:
    done = db.gridmap("export", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reimport(db: ScratchDB, kind: str, path: Path) -> dict[str, Any]:
    done = db.gridmap("import", kind, str(path), "--json")
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def expected_rows(db: ScratchDB, scope: str) -> int:
    """A row per member of the living households in scope, one per household without any."""
    return one(
        db,
        """
        SELECT coalesce(sum(greatest(
            (SELECT count(*) FROM person p WHERE p.household_id = h.id), 1)), 0)
        FROM household h WHERE starts_with(h.code, %s) AND h.moved_out IS NULL""",
        scope,
    )


def audit_entries(db: ScratchDB, kind: str) -> list[tuple[Any, ...]]:
    return owner(db, "SELECT worker_code, role, action, fields, detail FROM audit_log"
               " WHERE detail ->> 'export' = %s ORDER BY at", kind)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Households
# --------------------------------------------------------------------------------------------


def test_households_of_a_grid_read_back_and_reimport_unchanged(
    fresh_db: ScratchDB, tmp_path: Path
) -> None:
    grid = one(fresh_db, CLEAN_GRIDS)
    # A household without members (one row, member columns blank) and one moved out (left
    # out), made here: the demo has neither.
    empty = one(fresh_db, """
        INSERT INTO household (code, building_id, unit, room, location)
        SELECT b.code || '-9-9901', b.id, '9', '9901', ST_PointOnSurface(b.geom)
        FROM building b WHERE starts_with(b.code, %s) ORDER BY b.code LIMIT 1
        RETURNING code""", grid)  # fmt: skip
    gone = one(fresh_db, """
        UPDATE household SET moved_out = current_date - 1 WHERE code = (
            SELECT min(code) FROM household WHERE starts_with(code, %s)) RETURNING code""",
               grid)  # fmt: skip
    out = tmp_path / "households.xlsx"
    said = export(fresh_db, "households", "--scope", grid, "-o", str(out))
    rows_expected = expected_rows(fresh_db, grid)
    households = one(fresh_db, "SELECT count(*) FROM household WHERE starts_with(code, %s)"
                     " AND moved_out IS NULL", grid)  # fmt: skip
    assert f"wrote {rows_expected} rows to {out}" in said

    assert out.stat().st_mode & 0o777 == 0o600  # personal data: its owner's only
    header, rows = read_xlsx(out)
    assert header[:4] == ["户编号", "楼栋编码", "单元", "房号"]
    assert all(recognise("households", h) for h in header)
    assert len(rows) == rows_expected
    codes = {r["户编号"] for r in rows}
    assert len(codes) == households and gone not in codes and empty in codes
    (lonely,) = [r for r in rows if r["户编号"] == empty]
    assert lonely["姓名"] is None and lonely["独居老人"] is None and lonely["房号"] == "9901"
    members = [r for r in rows if r["姓名"] is not None]
    assert {r["性别"] for r in members} <= {"男", "女"}
    assert {r["低保"] for r in members} <= {"是", "否"}
    assert all(re.fullmatch(r"\d{11}", r["联系电话"]) for r in members if r["联系电话"])
    # ID numbers masked unless asked for: the importer reads them as blank (kept as they are).
    assert all(re.fullmatch(r"\d{6}\*{8}\d{3}[\dX]", r["身份证号"]) for r in members)

    (entry,) = audit_entries(fresh_db, "households")
    worker, role, action, fields, detail = entry
    assert (worker, role, action) == (None, "admin", "read")
    assert "name" in fields and "phone" in fields and "id_number" not in fields
    assert detail["scope"] == grid and detail["rows"] == rows_expected
    assert detail["households"] == households and detail["file"] == out.name
    read = one(fresh_db, "SELECT count(*) FROM audit_log WHERE action = 'read'"
               " AND request_id = (SELECT request_id FROM audit_entry"
               "                   WHERE detail ->> 'export' = 'households')"
               " AND household_code IS NOT NULL")  # fmt: skip
    assert read == households

    before = one(fresh_db, STATE)
    summary = reimport(fresh_db, "households", out)
    counts = summary["kinds"]["households"]
    assert counts["read"] == households
    assert counts["unchanged"] == households, summary
    assert counts["inserted"] == counts["updated"] == counts["rejected"] == 0
    assert summary["conflicts"] == [] and summary["problems"] == []
    assert one(fresh_db, STATE) == before


def test_english_headers_with_id_numbers_reimport_unchanged(
    fresh_db: ScratchDB, tmp_path: Path
) -> None:
    # The grid with the twins: ID numbers tell them apart.
    grid = one(fresh_db, TWINS)
    out = tmp_path / "households-en.xlsx"
    export(fresh_db, "households", "--scope", grid, "-o", str(out), "--english",
           "--with-id-numbers")  # fmt: skip
    header, rows = read_xlsx(out)
    assert header == [label("households", n, chinese=False) for n in (
        "code", "building", "unit", "room", "class", "moved_in", "contact_preference",
        "visit_times", "notes", "member_code", "name", "gender", "relation", "birth_year",
        "phone",
        "id_number", *list(FIELDS["households"])[-7:])]  # fmt: skip
    assert len(rows) == expected_rows(fresh_db, grid)
    assert all(re.fullmatch(r"\d{17}[\dX]", r["id_number"]) for r in rows)
    assert {r["gender"] for r in rows} <= {"M", "F"}
    (entry,) = audit_entries(fresh_db, "households")
    assert "id_number" in entry[3] and entry[4]["id_numbers"] is True

    before = one(fresh_db, STATE)
    summary = reimport(fresh_db, "households", out)
    counts = summary["kinds"]["households"]
    assert counts["unchanged"] == counts["read"] > 0, summary
    assert counts["inserted"] == counts["updated"] == counts["rejected"] == 0
    assert one(fresh_db, STATE) == before


def test_the_default_export_of_the_subdistrict_reimports_unchanged(
    fresh_db: ScratchDB, tmp_path: Path
) -> None:
    """ID numbers masked (read as blank): the member codes tell the demo's twins (one name,
    one birth year) apart."""
    twins = one(fresh_db, TWINS)
    subdistrict = twins[:9]
    out = tmp_path / "subdistrict.xlsx"
    export(fresh_db, "households", "--scope", subdistrict, "-o", str(out))
    header, rows = read_xlsx(out)
    assert "成员编号" in header
    coded = [r for r in rows if r["姓名"] is not None]
    assert all(r["成员编号"].startswith(r["户编号"] + "-") for r in coded)
    households = one(fresh_db, "SELECT count(*) FROM household WHERE starts_with(code, %s)"
                     " AND moved_out IS NULL", subdistrict)  # fmt: skip

    before = one(fresh_db, STATE)
    summary = reimport(fresh_db, "households", out)
    counts = summary["kinds"]["households"]
    assert counts["read"] == counts["unchanged"] == households, summary
    assert counts["inserted"] == counts["updated"] == counts["rejected"] == 0
    assert summary["problems"] == [] and summary["conflicts"] == []
    assert one(fresh_db, STATE) == before


# --------------------------------------------------------------------------------------------
# As a worker
# --------------------------------------------------------------------------------------------


def test_a_worker_exports_what_it_may_see(fresh_db: ScratchDB, tmp_path: Path) -> None:
    grids = [g for (g,) in owner(fresh_db, "SELECT g.code FROM worker w JOIN worker_grid wg ON"
                               " wg.worker_id = w.id JOIN grid g ON g.id = wg.grid_id"
                               " WHERE w.code = %s", GRID_WORKER)]  # fmt: skip
    subdistrict = grids[0][:9]
    out = tmp_path / "mine.xlsx"
    export(fresh_db, "households", "--scope", subdistrict, "-o", str(out), "--worker",
           GRID_WORKER)  # fmt: skip
    _, rows = read_xlsx(out)
    assert rows and all(r["户编号"].startswith(tuple(grids)) for r in rows)
    assert len(rows) == sum(expected_rows(fresh_db, g) for g in grids)
    assert any(r["联系电话"] and "*" not in r["联系电话"] for r in rows)  # read in full
    worker, role, *_ = audit_entries(fresh_db, "households")[-1]
    assert (worker, role) == (GRID_WORKER, "grid_worker")

    # The grid center oversees: every household of its subdistrict, phones masked.
    grid = grids[0]
    export(fresh_db, "households", "--scope", grid, "-o", str(out), "--worker", GRID_CENTER)
    _, rows = read_xlsx(out)
    assert len(rows) == expected_rows(fresh_db, grid)
    phones = [r["联系电话"] for r in rows if r["联系电话"]]
    assert phones and all(re.fullmatch(r"\d{3}\*{4}\d{4}", p) for p in phones)
    assert "phone" not in audit_entries(fresh_db, "households")[-1][3]
    refused = fresh_db.gridmap("export", "households", "--scope", grid, "-o", str(out),
                               "--worker", GRID_CENTER, "--with-id-numbers")  # fmt: skip
    assert refused.returncode != 0 and "masked only" in refused.stderr

    # Outside its areas, or a role without family files: an error, no file, no audit.
    other = one(fresh_db, "SELECT min(code) FROM grid WHERE NOT code = ANY(%s)", grids)
    for args, message in (
        (["households", "--scope", other, "--worker", GRID_WORKER], "outside the areas"),
        (["visits", "--scope", subdistrict, "--worker", DEPARTMENT], "reads no family files"),
    ):  # fmt: skip
        target = tmp_path / "refused.xlsx"
        done = fresh_db.gridmap("export", *args, "-o", str(target))
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert not target.exists()
    assert len(audit_entries(fresh_db, "households")) == 2
    assert audit_entries(fresh_db, "visits") == []
    assert list(tmp_path.glob(".*")) == []  # no partial file left behind


def test_bad_scope_or_file_is_a_clear_error(demo_db: ScratchDB, tmp_path: Path) -> None:
    out = tmp_path / "x.xlsx"
    for args, message in (
        (["--scope", "31010601", "-o", str(out)], "not an area code"),
        (["--scope", "310106999", "-o", str(out)], "no subdistrict has code '310106999'"),
        (["--scope", "310106015", "-o", str(tmp_path / "x.csv")], "FILE.xlsx"),
        (["--scope", "310106015", "-o", str(tmp_path / "nowhere" / "x.xlsx")], "no folder"),
        (["--scope", "310106015", "-o", str(out), "--worker", "NOBODY"], "NOBODY"),
    ):
        done = demo_db.gridmap("export", "households", *args)
        assert done.returncode != 0, args
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
    assert audit_entries(demo_db, "households") == []


# --------------------------------------------------------------------------------------------
# Visits and cases
# --------------------------------------------------------------------------------------------


def test_visits_of_a_community(fresh_db: ScratchDB, tmp_path: Path) -> None:
    community = "310106015001"
    out = tmp_path / "visits.xlsx"
    said = export(fresh_db, "visits", "--scope", community, "-o", str(out))
    count = one(fresh_db, "SELECT count(*) FROM visit WHERE starts_with(household_code, %s)",
                community)  # fmt: skip
    assert f"wrote {count} rows" in said
    header, rows = read_xlsx(out)
    assert header == [label("visits", n) for n in FIELDS["visits"]]
    assert header[:3] == ["户编号", "走访时间", "走访人工号"]
    assert len(rows) == count > 0
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", r["走访时间"]) for r in rows)
    assert [r["走访时间"] for r in rows] == sorted(r["走访时间"] for r in rows)
    assert {r["走访方式"] for r in rows} <= {"上门", "电话", "微信", "邮件", "线上群"}
    escalated = one(fresh_db, "SELECT count(*) FROM demand WHERE resolution = 'ESCALATED'"
                    " AND starts_with(household_code, %s)", community)  # fmt: skip
    assert sum(r["居民诉求"].count("已转事件") for r in rows if r["居民诉求"]) == escalated
    (entry,) = audit_entries(fresh_db, "visits")
    assert entry[4]["rows"] == count and entry[4]["scope"] == community


def test_cases_of_a_grid_read_back(fresh_db: ScratchDB, tmp_path: Path) -> None:
    grid = "310106015001001"
    out = tmp_path / "cases.xlsx"
    export(fresh_db, "cases", "--scope", grid, "-o", str(out))
    header, rows = read_xlsx(out)
    assert header == ["事件编号", "工单编号", "类别", "问题描述", "纬度", "经度", "受理时间",
                      "办结时间", "状态", "来电人", "来电号码"]  # fmt: skip
    cases = owner(fresh_db, "SELECT number, external_id FROM grid_case WHERE grid_code = %s"
                " ORDER BY reported_at, number", grid)  # fmt: skip
    assert [(r["事件编号"], r["工单编号"]) for r in rows] == cases and cases
    assert any(r["工单编号"] for r in rows) and not all(r["工单编号"] for r in rows)
    closed = [r for r in rows if r["状态"] == "已结案"]
    assert closed and all(r["办结时间"].endswith("+08:00") for r in closed)
    (entry,) = audit_entries(fresh_db, "cases")
    assert entry[4]["rows"] == len(cases)

    # A department sees the cases of its unit only.
    unit = one(fresh_db, "SELECT unit_code FROM worker WHERE code = %s", DEPARTMENT)
    export(fresh_db, "cases", "--scope", grid[:9], "-o", str(out), "--worker", DEPARTMENT,
           "--english")  # fmt: skip
    header, rows = read_xlsx(out)
    assert header[:2] == ["case_number", "service_request_id"]
    mine = one(fresh_db, "SELECT count(*) FROM grid_case WHERE unit_code = %s"
               " AND starts_with(grid_code, %s)", unit, grid[:9])  # fmt: skip
    assert len(rows) == mine


# What a case import could change: the cases and their events.
CASES_STATE = """
SELECT md5(string_agg(c::text, '|' ORDER BY c.number)), (SELECT count(*) FROM case_event)
FROM grid_case c
"""


@pytest.mark.parametrize("english", [False, True])
def test_the_cases_of_the_subdistrict_reimport_unchanged(
    fresh_db: ScratchDB, tmp_path: Path, english: bool
) -> None:
    """Every source and state (rejected ones, merged ones, the app's own cases without an
    external id) found again by number, whatever --source says, and compared unchanged."""
    subdistrict = "310106015"
    out = tmp_path / "cases.xlsx"
    export(fresh_db, "cases", "--scope", subdistrict, "-o", str(out),
           *(["--english"] if english else []))  # fmt: skip
    total = one(fresh_db, "SELECT count(*) FROM grid_case WHERE starts_with(grid_code, %s)",
                subdistrict)  # fmt: skip
    states = dict(owner(fresh_db, "SELECT state, count(*) FROM grid_case GROUP BY state"))
    assert states.keys() >= {"REPORTED", "REJECTED", "DISPATCHED", "CLOSED"}
    before = owner(fresh_db, CASES_STATE)
    summary = reimport(fresh_db, "cases", out)
    counts = summary["kinds"]["cases"]
    assert counts["read"] == counts["unchanged"] == total, summary
    assert counts["inserted"] == counts["updated"] == counts["rejected"] == 0
    assert counts["outside"] == 0
    assert summary["problems"] == []
    # No conflicts and no unknown statuses: only the OTHER cases' own categories are named.
    assert [w for w in summary["warnings"] if not w.startswith("categories not in")] == []
    assert owner(fresh_db, CASES_STATE) == before
    # …and again, now remembered as imported: still nothing.
    again = reimport(fresh_db, "cases", out)["kinds"]["cases"]
    assert again["unchanged"] == total and again["updated"] == again["inserted"] == 0
    assert owner(fresh_db, CASES_STATE) == before
