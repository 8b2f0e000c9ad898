"""Cases from hotline and 311 exports: the real Boston and New York files with no options
(checked against the files read independently), categories mapped or kept under OTHER, local
times, states, numbers and events; re-imports that change nothing, update what the file
changed and leave what the app changed; and files with errors that change nothing."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest
import shapely
from conftest import Databases, ScratchDB
from shapely.geometry import box

from geo.errors import BadInput
from importers.cases import STATE_NAMES, load_cases, load_category_map, parse_time, status_outcome
from importers.records import Feature
from importers.run import ImportFailed, Options, run
from importers.spatial import load_boundaries
from importers.tables import read_table

DATA = Path(__file__).parent / "data" / "cases"
BOSTON = DATA / "boston311-100.csv"
NEW_YORK = DATA / "nyc311_2024-04_soda_1000.csv"
NEW_YORK_ZONE = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC
# Test areas over parts of the samples (the rest falls outside every grid): Boston north of
# 42.30° with a micro-grid over its western half; New York west of 73.9° W.
BOSTON_GRID = box(-71.20, 42.30, -71.00, 42.40)
BOSTON_MICRO = box(-71.20, 42.30, -71.06, 42.40)
NEW_YORK_GRID = box(-74.30, 40.50, -73.90, 40.95)
COUNTED = ("grid_case", "case_event", "case_counter", "import_row")


@pytest.fixture(scope="module")
def db(databases: Databases, template_db: ScratchDB) -> Iterator[ScratchDB]:
    """One copy of the demo for the tests here (each keeps to its own areas and ids)."""
    made = databases.make("import_cases", template=template_db.name)
    yield made
    databases.drop(made.name)


def _rows(db: ScratchDB, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(db.owner_url.replace("postgresql+psycopg2", "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.commit()
        conn.close()


def _import(db: ScratchDB, rows: Any, path: Path = Path("cases.csv"), *,
            category_map: dict[str, str] | None = None, **options: Any) -> Any:  # fmt: skip
    """Rows (a table or a list) imported as the command line does, in one transaction."""
    opts = Options(**options)

    def load(cur: Any, summary: Any) -> None:
        load_cases(cur, rows, summary, opts, category_map=category_map)

    return run(db.owner_url, path, load, opts)


def _counts(summary: Any) -> dict[str, int]:
    return {k: v for k, v in summary.counts["cases"].items() if v}


def _state(db: ScratchDB) -> list[int]:
    return [_rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in COUNTED]


def _area(db: ScratchDB, district: str, grid: Any, micro: Any | None = None) -> str:
    """A district down to one grid (and a micro-grid) with made-up codes (``codes="free"``),
    its subdistrict in New York's time zone; the grid's code."""
    codes = [district, district + "001", district + "001001", district + "001001001"]
    outline = grid.buffer(0.05).envelope
    features = [
        Feature("boundaries", None, f"area {c}", (grid if len(c) == 15 else outline).wkb,
                {"code": c, "name": f"test {c}"})
        for c in codes
    ]  # fmt: skip
    if micro is not None:
        features.append(Feature("boundaries", None, "micro", micro.wkb,
                                {"code": codes[-1] + "001", "name": "micro"}))  # fmt: skip
    opts = Options(codes="free")
    run(db.owner_url, Path("areas.gpkg"),
        lambda cur, s: load_boundaries(cur, features, s, opts), opts)  # fmt: skip
    _rows(db, "UPDATE subdistrict SET timezone = 'America/New_York' WHERE code = %s", codes[1])
    return codes[-1]


def _raw(path: Path) -> list[dict[str, str]]:
    """The file as the csv module reads it, for expectations independent of the reader."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NEW_YORK_ZONE).astimezone(UTC)


def _check_file(db: ScratchDB, raw: list[dict[str, str]], columns: dict[str, str],
                grid: Any, grid_code: str, direct: dict[str, str]) -> tuple[int, int]:  # fmt: skip
    """Each row inside the test grid is a case as the file says (category, local times, state);
    ``direct``: the file's categories that are ours by name. (inserted, closed) expected."""
    cases = {
        r[0]: r[1:] for r in _rows(
            db, "SELECT external_id, category_code, source_category, reported_at, closed_at,"
            " state, grid_code, unit_code, dispatched_at, number, source FROM grid_case"
            " WHERE grid_code = %s", grid_code)
    }  # fmt: skip
    inside = closed = 0
    for row in raw:
        lat, lon = row[columns["lat"]], row[columns["lon"]]
        if not lat or not shapely.contains_xy(grid, float(lon), float(lat)):
            assert row[columns["id"]] not in cases
            continue
        inside += 1
        code, kept, reported, closed_at, state, in_grid, unit, dispatched, number, source = (
            cases[row[columns["id"]]])  # fmt: skip
        category = row[columns["category"]]
        assert (code, kept) == ((direct[category], None) if category in direct
                                else ("OTHER", category))  # fmt: skip
        assert reported == _local(row[columns["requested"]])
        assert number.startswith(f"{reported.astimezone(NEW_YORK_ZONE).year}-")
        assert (in_grid, unit, dispatched, source) == (grid_code, None, None, "HOTLINE_12345")
        if row[columns["status"]] == "Closed" or row[columns["closed"]]:
            closed += 1
            assert state == "CLOSED"
            assert closed_at == (_local(row[columns["closed"]]) if row[columns["closed"]]
                                 else reported)  # fmt: skip
        else:
            assert (state, closed_at) == ("REPORTED", None)
    assert len(cases) == inside
    return inside, closed


def test_boston_and_new_york_exports_import_with_no_options(db: ScratchDB) -> None:
    boston_grid = _area(db, "990001", BOSTON_GRID, BOSTON_MICRO)
    new_york_grid = _area(db, "990002", NEW_YORK_GRID)
    counters = dict(_rows(db, "SELECT year, last FROM case_counter"))

    # Boston: every row has coordinates; those outside the grid are counted, not imported.
    raw = _raw(BOSTON)
    boston = _import(db, read_table(BOSTON, "cases"), BOSTON)
    inside, closed = _check_file(
        db, raw, {"id": "case_enquiry_id", "lat": "latitude", "lon": "longitude",
                        "category": "type", "requested": "open_dt", "closed": "closed_dt",
                        "status": "case_status"},
        BOSTON_GRID, boston_grid, {},
    )  # fmt: skip
    assert 0 < inside < 100 and 0 < closed < inside
    assert _counts(boston) == {"read": 100, "inserted": inside, "outside": 100 - inside}
    assert not boston.problems
    # 2022 numbers in report-time order, in one block after what the counter had.
    numbers = [n for (n,) in _rows(db, "SELECT number FROM grid_case WHERE grid_code = %s"
                                   " ORDER BY reported_at, number", boston_grid)]  # fmt: skip
    first = counters.get(2022, 0) + 1
    assert numbers == [f"2022-{n:06d}" for n in range(first, first + inside)]
    micro = _rows(db, "SELECT count(*) FILTER (WHERE micro_grid_code IS NOT NULL),"
                  " count(*) FILTER (WHERE ST_X(location) < -71.06) FROM grid_case"
                  " WHERE grid_code = %s", boston_grid)[0]  # fmt: skip
    assert micro[0] == micro[1] > 0
    # The Needle Pickup of line 3: 11:18 and 11:42:16 in Boston (EST, UTC-5).
    needle = _rows(db, "SELECT description, reported_at, closed_at FROM grid_case"
                   " WHERE external_id = '101004130437'")  # fmt: skip
    assert needle == [("Needle Pickup\n42 Cross St  Boston  MA  02113",
                       dt.datetime(2022, 1, 19, 16, 18, tzinfo=UTC),
                       dt.datetime(2022, 1, 19, 16, 42, 16, tzinfo=UTC))]  # fmt: skip
    # Each case has its events, noted as imported: a REPORT, and a CLOSE when closed.
    events = Counter(_rows(db, "SELECT e.action, e.role, e.at = CASE e.action WHEN 'REPORT'"
                           " THEN c.reported_at ELSE c.closed_at END, e.note LIKE 'imported%%'"
                           " FROM case_event e JOIN grid_case c ON c.id = e.case_id"
                           " WHERE c.grid_code = %s", boston_grid))  # fmt: skip
    assert events == {("REPORT", "grid_center", True, True): inside,
                      ("CLOSE", "grid_center", True, True): closed}  # fmt: skip

    # New York: 23 rows without coordinates make the file fail as a whole by default.
    before = _state(db)
    with pytest.raises(ImportFailed) as failed:
        _import(db, read_table(NEW_YORK, "cases"), NEW_YORK)
    assert "23 rows refused" in str(failed.value)
    assert "nyc311_2024-04_soda_1000.csv line 5, lat: missing" in str(failed.value)
    assert _state(db) == before
    raw = _raw(NEW_YORK)
    new_york = _import(db, read_table(NEW_YORK, "cases"), NEW_YORK, skip_invalid=True)
    inside, closed = _check_file(
        db, raw, {"id": "unique_key", "lat": "latitude", "lon": "longitude",
                        "category": "complaint_type", "requested": "created_date",
                        "closed": "closed_date", "status": "status"},
        NEW_YORK_GRID, new_york_grid, {"Illegal Parking": "ILLEGAL_PARKING", "Noise": "NOISE"},
    )  # fmt: skip
    located = sum(1 for r in raw if r["latitude"])
    assert located == 977 and 0 < inside < located
    assert _counts(new_york) == {"read": 1000, "rejected": 23, "inserted": inside,
                                 "outside": located - inside}  # fmt: skip
    assert {(p.field, p.message.split(":")[0]) for p in new_york.problems} == {("lat", "missing")}
    # The one row closed without a closing time is closed at its report time, with a warning.
    assert any("closed without a closing (or update) time: 1 cases" in w for w in new_york.warnings)
    assert any("'Noise - Residential' (" in w for w in new_york.warnings)

    # Again: nothing changes, not even the bookkeeping.
    after = _state(db)
    again = _import(db, read_table(BOSTON, "cases"), BOSTON)
    assert _counts(again) == {"read": 100, "unchanged": 100 - _counts(boston)["outside"],
                              "outside": _counts(boston)["outside"]}  # fmt: skip
    again = _import(db, read_table(NEW_YORK, "cases"), NEW_YORK, skip_invalid=True)
    assert _counts(again) == {"read": 1000, "rejected": 23, "unchanged": inside,
                              "outside": located - inside}  # fmt: skip
    assert _state(db) == after


def _shanghai_rows(db: ScratchDB) -> tuple[str, list[tuple[str, dict[str, str]]]]:
    """A 12345 export of the demo district: Chinese forms and categories, and one row without
    a source id."""
    first_grid = ("SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p"
                  " FROM grid ORDER BY code LIMIT 1) g")  # fmt: skip
    grid, lon, lat = _rows(db, first_grid)[0]
    at = {"lon": str(lon), "lat": str(lat)}
    rows = [
        {"source_id": "T-1", "category": "噪声扰民", "description": "夜间施工噪声",
         "requested_at": "2024年4月1日 10:00", "status": "处理中"},
        {"source_id": "T-2", "category": "Noise - Residential", "description": "loud music",
         "requested_at": "2024/4/1 11:30", "closed_at": "2024/4/2 09:30:15", "status": "已办结",
         "reporter_name": "张三", "reporter_phone": "13800000000"},
        {"source_id": "T-3", "category": "楼道堆物", "description": "楼道堆放杂物",
         "requested_at": "2024-04-01T10:00:00+08:00", "status": "待受理",
         "address": "某某路1号"},
        {"category": "illegal  parking", "description": "占用消防通道",
         "requested_at": "04/01/2024 12:00:00 AM", "status": "Pending review"},
    ]  # fmt: skip
    return grid, [(f"12345.xlsx row {i + 2}", {**at, **r}) for i, r in enumerate(rows)]


def test_categories_times_states_and_what_changed(db: ScratchDB, tmp_path: Path) -> None:
    grid, rows = _shanghai_rows(db)
    mapping = tmp_path / "map.csv"
    mapping.write_text("source,category\nNoise - Residential,噪声扰民\n", encoding="utf-8-sig")
    category_map = load_category_map(mapping)
    assert category_map == {"Noise - Residential": "噪声扰民"}

    first = _import(db, rows, category_map=category_map)
    assert _counts(first) == {"read": 4, "inserted": 4}
    assert any("'Pending review' (1)" in w for w in first.warnings)
    cases = {r[0]: r[1:] for r in _rows(
        db, "SELECT external_id, category_code, source_category, state, reported_at,"
        " closed_at, grid_code, reporter_name, description FROM grid_case"
        " WHERE external_id LIKE 'T-%%' OR external_id LIKE 'sha1:%%'")}  # fmt: skip
    keyless = next(k for k in cases if k.startswith("sha1:"))
    assert cases["T-1"][:5] == ("NOISE", None, "REPORTED", dt.datetime(2024, 4, 1, 2, tzinfo=UTC),
                                None)  # fmt: skip
    assert cases["T-2"][:4] == ("NOISE", None, "CLOSED",
                                dt.datetime(2024, 4, 1, 3, 30, tzinfo=UTC))  # fmt: skip
    assert cases["T-2"][4] == dt.datetime(2024, 4, 2, 1, 30, 15, tzinfo=UTC)
    assert cases["T-2"][6] == "张三"
    assert cases["T-3"][:4] == ("OTHER", "楼道堆物", "REPORTED",
                                dt.datetime(2024, 4, 1, 2, tzinfo=UTC))  # fmt: skip
    assert cases["T-3"][7] == "楼道堆放杂物\n某某路1号"
    assert cases[keyless][:4] == ("ILLEGAL_PARKING", None, "REPORTED",
                                  dt.datetime(2024, 3, 31, 16, tzinfo=UTC))  # fmt: skip
    assert {c[5] for c in cases.values()} == {grid}

    # The hotline closes T-1: updated, with a CLOSE event; the row without an id is found again.
    rows[0][1].update(status="已办结", closed_at="2024-04-03 08:00")
    second = _import(db, rows, category_map=category_map)
    assert _counts(second) == {"read": 4, "updated": 1, "unchanged": 3}
    closing = _rows(db, "SELECT c.state, c.closed_at, e.action, e.from_state, e.at"
                    " FROM grid_case c JOIN case_event e ON e.case_id = c.id"
                    " WHERE c.external_id = 'T-1' ORDER BY e.at")  # fmt: skip
    assert closing == [
        ("CLOSED", dt.datetime(2024, 4, 3, tzinfo=UTC), "REPORT", None,
         dt.datetime(2024, 4, 1, 2, tzinfo=UTC)),
        ("CLOSED", dt.datetime(2024, 4, 3, tzinfo=UTC), "CLOSE", "REPORTED",
         dt.datetime(2024, 4, 3, tzinfo=UTC)),
    ]  # fmt: skip

    # The office rejects T-3 in the app; the hotline then closes it: a conflict, left as the
    # app has it and listed, unless the file is preferred.
    _rows(db, "UPDATE grid_case SET state = 'REJECTED', version = version + 1"
          " WHERE external_id = 'T-3'")  # fmt: skip
    unchanged = _import(db, rows, category_map=category_map)
    assert _counts(unchanged) == {"read": 4, "unchanged": 4}  # the file did not change
    rows[2][1].update(status="已办结", closed_at="2024-04-05 08:00")
    conflict = _import(db, rows, category_map=category_map)
    assert _counts(conflict) == {"read": 4, "unchanged": 4}
    assert any("case 2024-" in w and "T-3" in w and "REJECTED in the app, closed in the file" in w
               for w in conflict.warnings)  # fmt: skip
    state = "SELECT state FROM grid_case WHERE external_id = 'T-3'"
    assert _rows(db, state) == [("REJECTED",)]
    preferred = _import(db, rows, category_map=category_map, prefer_file=True)
    assert _counts(preferred) == {"read": 4, "updated": 1, "unchanged": 3}
    assert _rows(db, state) == [("CLOSED",)]

    # Without the map, T-2's category is kept under OTHER: the file's meaning changed.
    unmapped = _import(db, rows)
    assert _counts(unmapped) == {"read": 4, "updated": 1, "unchanged": 3}
    assert _rows(db, "SELECT category_code, source_category FROM grid_case"
                 " WHERE external_id = 'T-2'") == [("OTHER", "Noise - Residential")]  # fmt: skip


def _as_exported(db: ScratchDB, number: str, **changes: str) -> tuple[str, dict[str, str]]:
    """A case of the model as `gridmap export cases` writes it (states in Chinese)."""
    ((category, lat, lon, state, *rest),) = _rows(
        db, "SELECT CASE WHEN c.category_code = 'OTHER' THEN coalesce(c.source_category, '')"
        " ELSE k.name END, ST_Y(c.location), ST_X(c.location), c.state, c.description,"
        " c.reported_at, c.closed_at, c.reporter_name, c.reporter_phone"
        " FROM grid_case c JOIN case_category k ON k.code = c.category_code"
        " WHERE c.number = %s", number)  # fmt: skip
    description, reported, closed, name, phone = rest
    row = {"number": number, "category": category, "lat": repr(lat), "lon": repr(lon),
           "status": STATE_NAMES[state], "description": description,
           "requested_at": reported.isoformat(), "closed_at": closed and closed.isoformat(),
           "reporter_name": name, "reporter_phone": phone}  # fmt: skip
    return f"cases.xlsx row {number}", {k: v for k, v in {**row, **changes}.items() if v}


def test_states_compare_and_move_only_forward(db: ScratchDB) -> None:
    """Our own cases found by number (made in the app: no source id), states compared as open,
    closed or rejected; an import rejects only a reported case and reopens only when the file
    is preferred. Once a file has been found equal, the case counts as imported: the file's
    later changes apply unless the app changed it too."""
    pick = ("SELECT number FROM grid_case WHERE state = %s AND merged_into IS NULL"
            " AND external_id IS NULL ORDER BY number LIMIT 1")  # fmt: skip
    dispatched, reported, closed = (_rows(db, pick, s)[0][0]
                                    for s in ("DISPATCHED", "REPORTED", "CLOSED"))  # fmt: skip
    rows = [_as_exported(db, dispatched), _as_exported(db, reported, status="REPORTED"),
            _as_exported(db, closed)]  # fmt: skip
    before = _state(db)
    assert _counts(_import(db, rows)) == {"read": 3, "unchanged": 3}
    assert _state(db)[:2] == before[:2]  # no case, no event

    states = "SELECT number, state FROM grid_case WHERE number = ANY(%s) ORDER BY number"
    rows = [_as_exported(db, dispatched, status="已驳回"),
            _as_exported(db, reported, status="不予受理"),
            _as_exported(db, closed, status="处理中", closed_at="")]  # fmt: skip
    conflicts = _import(db, rows)
    assert _counts(conflicts) == {"read": 3, "updated": 1, "unchanged": 2}
    listed = "\n".join(conflicts.warnings)
    assert f"case {dispatched} is DISPATCHED in the app, rejected in the file: an import" \
           " rejects only a case still REPORTED" in listed
    assert f"case {closed} is CLOSED in the app, open in the file: reopened by an import" \
           " only with --prefer-file" in listed
    assert reported not in listed
    assert _rows(db, states, [dispatched, reported, closed]) == sorted([
        (dispatched, "DISPATCHED"), (reported, "REJECTED"), (closed, "CLOSED")])  # fmt: skip

    preferred = _import(db, rows, prefer_file=True)
    assert _counts(preferred) == {"read": 3, "updated": 1, "unchanged": 2}
    assert _rows(db, states, [dispatched, reported, closed]) == sorted([
        (dispatched, "DISPATCHED"), (reported, "REJECTED"), (closed, "REPORTED")])  # fmt: skip
    events = _rows(db, "SELECT c.number, e.action FROM case_event e JOIN grid_case c"
                   " ON c.id = e.case_id WHERE c.number = ANY(%s) AND e.note LIKE 'imported%%'",
                   [dispatched, reported, closed])  # fmt: skip
    assert sorted(events) == sorted([(reported, "REJECT"), (closed, "REOPEN")])
    assert _rows(db, "SELECT closed_at FROM grid_case WHERE number = %s", closed) == [(None,)]

    # A number we do not know: a new case keyed by its source id, else refused.
    _, row = _as_exported(db, dispatched)
    unknown = [("row 2", {**row, "number": "2099-000001", "status": "已驳回"}),
               ("row 3", {**row, "number": "2099-000002", "source_id": "N-1"})]  # fmt: skip
    with pytest.raises(ImportFailed) as failed:
        _import(db, unknown)
    ((where, field, message),) = [(p.where, p.field, p.message)
                                  for p in failed.value.summary.problems]  # fmt: skip
    assert (where, field) == ("row 2", "number")
    assert message.startswith("no case numbered 2099-000001")
    unknown[0][1]["source_id"] = "N-2"
    added = _import(db, unknown)
    assert _counts(added) == {"read": 2, "inserted": 2}
    assert _rows(db, "SELECT external_id, state, number <> '2099-000002' FROM grid_case"
                 " WHERE external_id IN ('N-1', 'N-2') ORDER BY 1") == [
        ("N-1", "REPORTED", True), ("N-2", "REJECTED", True)
    ]  # fmt: skip
    assert _rows(db, "SELECT e.action FROM case_event e JOIN grid_case c ON c.id = e.case_id"
                 " WHERE c.external_id = 'N-2' ORDER BY e.id") == [("REPORT",), ("REJECT",)]


def test_an_upload_places_cases_in_its_scope_only(db: ScratchDB) -> None:
    mine, theirs = "310106015001", "310106015002"
    point = ("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid"
             " WHERE starts_with(code, %s) ORDER BY code LIMIT 1) g")  # fmt: skip
    (x_mine, y_mine), (x_theirs, y_theirs) = _rows(db, point, mine)[0], _rows(db, point, theirs)[0]
    case = {"category": "噪声扰民", "description": "施工噪声", "requested_at": "2024-05-01 10:00"}
    ((number,),) = _rows(db, "SELECT number FROM grid_case WHERE starts_with(grid_code, %s)"
                         " ORDER BY number LIMIT 1", theirs)  # fmt: skip
    rows = [
        ("row 2", {**case, "source_id": "S-1", "lon": str(x_mine), "lat": str(y_mine)}),
        ("row 3", {**case, "source_id": "S-2", "lon": str(x_theirs), "lat": str(y_theirs)}),
        # A case of the other community, moved into ours by the file: not the file's to change.
        ("row 4", {**case, "number": number, "lon": str(x_mine), "lat": str(y_mine)}),
    ]
    before = _state(db)
    with pytest.raises(ImportFailed) as failed:
        _import(db, rows, scope=mine)
    ((where, field, message),) = [(p.where, p.field, p.message)
                                  for p in failed.value.summary.problems]  # fmt: skip
    assert (where, field) == ("row 4", "number")
    assert message.startswith(f"case {number} is in {theirs}") and "outside your area" in message
    assert _state(db) == before
    summary = _import(db, rows, scope=mine, skip_invalid=True)
    assert _counts(summary) == {"read": 3, "inserted": 1, "outside": 1, "rejected": 1}
    assert _rows(db, "SELECT external_id, left(grid_code, 12) FROM grid_case"
                 " WHERE external_id IN ('S-1', 'S-2')") == [("S-1", mine)]  # fmt: skip


def test_a_file_with_errors_changes_nothing(db: ScratchDB) -> None:
    _, rows = _shanghai_rows(db)
    good = {**rows[0][1], "source_id": "E-1"}
    bad = [
        ("row 3", {**good, "source_id": "B-1", "lat": "", "lon": ""}),
        ("row 4", {**good, "source_id": "B-2", "lat": "nan"}),
        ("row 5", {**good, "source_id": "B-3", "requested_at": ""}),
        ("row 6", {**good, "source_id": "B-4", "requested_at": "yesterday"}),
        ("row 7", {**good, "source_id": "B-5", "closed_at": "2024-03-01 10:00"}),
        ("row 8", {**good, "source_id": "B-6", "lat": good["lon"], "lon": good["lat"]}),
        ("row 9", {**good}),  # E-1 again
    ]
    before = _state(db)
    with pytest.raises(ImportFailed) as failed:
        _import(db, [("row 2", good), *bad])
    assert _state(db) == before
    problems = {(p.where, p.field): p.message for p in failed.value.summary.problems}
    assert set(problems) == {("row 3", "lat"), ("row 4", "geometry"), ("row 5", "requested_at"),
                             ("row 6", "requested_at"), ("row 7", "closed_at"),
                             ("row 8", "geometry"), ("row 9", "source_id")}  # fmt: skip
    assert "not finite" in problems["row 4", "geometry"]
    assert "before the case was reported" in problems["row 7", "closed_at"]
    assert "swapped" in problems["row 8", "geometry"]
    assert "E-1 appears again (first at row 2)" in problems["row 9", "source_id"]

    with pytest.raises(BadInput, match="'NOPE' \\(for 'x'\\) is not an active category"):
        _import(db, [("row 2", good)], category_map={"x": "NOPE"})
    assert _state(db) == before

    rest = _import(db, [("row 2", good), *bad], skip_invalid=True)
    assert _counts(rest) == {"read": 8, "inserted": 1, "rejected": 7}


def test_our_state_names_read_back_as_open_closed_or_rejected() -> None:
    for code, name in STATE_NAMES.items():
        expected = code if code in ("CLOSED", "REJECTED") else "OPEN"
        assert status_outcome(code) == status_outcome(name) == expected, code
    assert status_outcome("不予受理") == status_outcome("Rejected") == "REJECTED"
    assert status_outcome("In-Progress") == "OPEN" and status_outcome("Pending review") is None


def test_time_forms_and_category_map_files(tmp_path: Path) -> None:
    assert parse_time("2024-04-01T00:00:00.000") == dt.datetime(2024, 4, 1)
    assert parse_time("2023-01-01 00:14:00") == dt.datetime(2023, 1, 1, 0, 14)
    assert parse_time("2024-04-01T10:00:00Z") == dt.datetime(2024, 4, 1, 10, tzinfo=UTC)
    assert parse_time("2024-04-01 10:00:00+08:00").utcoffset() == dt.timedelta(hours=8)
    assert parse_time("04/01/2024 12:00:00 AM") == dt.datetime(2024, 4, 1)
    assert parse_time("4/1/2024 1:05 PM") == dt.datetime(2024, 4, 1, 13, 5)
    assert parse_time("2024年4月1日 10:00") == dt.datetime(2024, 4, 1, 10)
    assert parse_time("2024年4月1日10时30分") == dt.datetime(2024, 4, 1, 10, 30)
    assert parse_time("2024/4/1") == dt.datetime(2024, 4, 1)
    for wrong in ("13/01/2024 10:00", "2024-02-30", "04/01/2024 13:00 PM", "soon"):
        with pytest.raises(ValueError):
            parse_time(wrong)

    as_json = tmp_path / "map.json"
    as_json.write_text(json.dumps({"Noise - Residential": "NOISE"}), encoding="utf-8")
    assert load_category_map(as_json) == {"Noise - Residential": "NOISE"}
    gbk = tmp_path / "map.csv"
    gbk.write_bytes("source,category\n楼道堆物,其他\n".encode("gb18030"))
    assert load_category_map(gbk) == {"楼道堆物": "其他"}
    twice = tmp_path / "twice.csv"
    twice.write_text("source,category\nNoise,NOISE\nNoise,OTHER\n", encoding="utf-8")
    with pytest.raises(BadInput, match="line 3: 'Noise' is mapped to 'NOISE' already"):
        load_category_map(twice)
    headless = tmp_path / "headless.csv"
    headless.write_text("Noise,NOISE\n", encoding="utf-8")
    with pytest.raises(BadInput, match="header source,category"):
        load_category_map(headless)
