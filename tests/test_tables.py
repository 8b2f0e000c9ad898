"""Registers read into canonical fields (importers/tables.py): the real 311 exports and licence
register with no options, Chinese registers in GB18030 and Excel, mappings, and files that
must be refused cleanly. No database."""

from __future__ import annotations

import csv
import datetime as dt
import time
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import pytest

from geo.errors import BadInput
from importers.headers import FIELDS, KINDS, label, recognise
from importers.tables import (
    FIELD_LIMIT,
    load_mapping,
    parse_mapping,
    read_table,
    split_list,
    write_xlsx,
)

DATA = Path(__file__).parent / "data"
BOSTON = DATA / "cases" / "boston311-100.csv"
NYC = DATA / "cases" / "nyc311_2024-04_soda_1000.csv"
CHICAGO = DATA / "merchants" / "chicago_business_licenses_ward29.csv"


def raw_records(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The file read independently: (first line of the record, the record by header)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        out = []
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return out
            out.append((start, dict(zip(header, row, strict=True))))


def expected(raw: dict[str, str], columns: dict[str, str]) -> dict[str, str]:
    return {name: raw[h].strip() for name, h in columns.items() if raw[h].strip()}


def check_against_raw(path: Path, kind: str, columns: dict[str, str]) -> list:
    table = read_table(path, kind)
    assert {name: table.header_of(name) for name in table.fields} == columns
    rows = list(table)
    raw = raw_records(path)
    assert len(rows) == len(raw)
    for (where, values), (start, record) in zip(rows, raw, strict=True):
        assert where == f"{path.name} line {start}"
        assert values == expected(record, columns)
        assert values.problems == []
    return rows


def test_boston_recognised_with_no_options() -> None:
    columns = {
        "source_id": "case_enquiry_id",
        "category": "type",
        "description": "case_title",
        "lat": "latitude",
        "lon": "longitude",
        "requested_at": "open_dt",
        "closed_at": "closed_dt",
        "status": "case_status",
        "address": "location",
    }
    rows = check_against_raw(BOSTON, "cases", columns)
    assert rows[1] == (
        "boston311-100.csv line 3",
        {
            "source_id": "101004130437",
            "category": "Needle Pickup",
            "description": "Needle Pickup",
            "lat": "42.3634",
            "lon": "-71.0566",
            "requested_at": "2022-01-19 11:18:00",
            "closed_at": "2022-01-19 11:42:16",
            "status": "Closed",
            "address": "42 Cross St  Boston  MA  02113",
        },
    )
    assert "address" not in rows[0][1]  # Boston writes " " for nothing
    table = read_table(BOSTON, "cases")
    assert table.missing() == [] and table.shadowed == {}
    assert {"reason", "subject", "target_dt", "source"} <= set(table.unrecognised)
    assert table.encoding == "utf-8-sig" and table.delimiter == ","


def test_nyc_recognised_with_line_breaks_inside_quoted_fields() -> None:
    columns = {
        "source_id": "unique_key",
        "category": "complaint_type",
        "description": "descriptor",
        "lat": "latitude",
        "lon": "longitude",
        "requested_at": "created_date",
        "closed_at": "closed_date",
        "status": "status",
        "address": "incident_address",
    }
    rows = check_against_raw(NYC, "cases", columns)
    assert len(rows) == 1000
    # 977 records span three lines: rows are named by their first line.
    assert [where for where, _ in rows[:3]] == [f"{NYC.name} line {n}" for n in (2, 5, 6)]
    assert rows[-1][0] == f"{NYC.name} line 2953"
    assert sum(1 for _, v in rows if "lat" not in v) == 23
    table = read_table(NYC, "cases")
    # Two headers spell an address: incident_address is listed first, location is shadowed.
    assert table.shadowed == {"location": "address"}
    # Read the multi-line column itself: the line breaks are kept inside the value.
    mapped = read_table(NYC, "cases", mapping={"address": "location"})
    raw = raw_records(NYC)
    (where, values) = next(iter(mapped))
    assert where == f"{NYC.name} line 2"
    assert values["address"] == raw[0][1]["location"].strip()
    assert "\n" in values["address"] and values["address"].endswith("-73.7379342313789)")
    assert mapped.shadowed == {"incident_address": "address"}


def test_chicago_licences_recognised_as_merchants() -> None:
    columns = {
        "code": "LICENSE NUMBER",
        "name": "DOING BUSINESS AS NAME",
        "category": "LICENSE DESCRIPTION",
        "address": "ADDRESS",
        "lat": "LATITUDE",
        "lon": "LONGITUDE",
    }
    rows = check_against_raw(CHICAGO, "merchants", columns)
    assert rows[0][1]["name"] == "LIBERTY TAX SERVICE"
    assert rows[0][1]["code"] == "1543954"
    table = read_table(CHICAGO, "merchants")
    assert table.shadowed == {"LEGAL NAME": "name", "BUSINESS ACTIVITY": "category"}
    assert "ID" in table.unrecognised and "LICENSE ID" in table.unrecognised


def test_gb18030_chinese_register_with_title_row_and_semicolons(tmp_path: Path) -> None:
    text = (
        "幸福里社区居民登记表;;;;;;\r\n"
        "楼栋编码;单元;房号;户类别;*姓名;性别;身份证号;出生日期（年/月/日）;独居老人\r\n"
        '110105001001001001;2;0302;C;王䶮;女;="110105195003010021";1950-03-01;是\r\n'
        "\r\n"
        '110105001001001001;2;"03\r\n02";B; 李四 ;男;;;\r\n'
    )
    path = tmp_path / "居民.csv"
    path.write_bytes(text.encode("gb18030"))
    table = read_table(path, "households")
    assert table.encoding == "gb18030" and table.delimiter == ";"
    assert table.header_number == 2
    assert table.fields == [
        "building", "unit", "room", "class", "name", "gender", "birth_date", "id_number",
        "elderly_living_alone",
    ]  # fmt: skip
    rows = list(table)
    assert rows[0] == (
        "居民.csv line 3",
        {
            "building": "110105001001001001",
            "unit": "2",
            "room": "0302",
            "class": "C",
            "name": "王䶮",
            "gender": "女",
            "id_number": "110105195003010021",
            "birth_date": "1950-03-01",
            "elderly_living_alone": "是",
        },
    )
    assert rows[1][0] == "居民.csv line 5"  # the blank line 4 is skipped
    assert rows[1][1]["name"] == "李四" and rows[1][1]["room"] == "03\r\n02"
    assert "id_number" not in rows[1][1]
    assert table.missing() == []
    # Forced to read it as UTF-8, it is refused naming the line.
    with pytest.raises(BadInput, match=r"居民\.csv line 1: not readable as utf-8"):
        read_table(path, "households", encoding="utf-8")


def test_utf8_bom_tab_separated(tmp_path: Path) -> None:
    path = tmp_path / "workers.txt"
    path.write_bytes(
        "\ufeff工号\t姓名\t手机号\t角色\t社区编码\t网格编码\n"
        "W001\t张三\t13800138000\tGRID_WORKER\t110105001001\t"
        "110105001001001；110105001001002、110105001001003\n".encode()
    )
    table = read_table(path, "workers")
    assert table.encoding == "utf-8-sig" and table.delimiter == "\t"
    assert table.headers[0] == "工号" and table.unrecognised == []
    ((where, values),) = list(table)
    assert where == "workers.txt line 2"
    assert values["code"] == "W001" and values["phone"] == "13800138000"
    assert split_list(values["grids"]) == [
        "110105001001001", "110105001001002", "110105001001003",
    ]  # fmt: skip
    assert split_list("a, b;c 、d") == ["a", "b", "c", "d"] and split_list(None) == []
    # Excel's "Unicode text": UTF-16 with its byte-order mark, tab separated.
    path.write_bytes("工号\t姓名\t角色\r\nW002\t李四\tCOMMUNITY\r\n".encode("utf-16"))
    table = read_table(path, "workers")
    assert table.encoding == "utf-16" and table.delimiter == "\t"
    assert list(table) == [("workers.txt line 2", {"code": "W002", "name": "李四",
                                                    "role": "COMMUNITY"})]  # fmt: skip


def test_header_spellings_normalised() -> None:
    assert recognise("cases", "Case_Status") == ("status", 2)
    assert recognise("cases", "CreatedDate")[0] == "requested_at"
    assert recognise("cases", "Created Date")[0] == "requested_at"
    assert recognise("cases", "SRType")[0] == "category"
    assert recognise("cases", "ＬＡＴＩＴＵＤＥ")[0] == "lat"  # full-width
    assert recognise("cases", "Latitude (WGS84)")[0] == "lat"
    assert recognise("cases", "updated_datetime")[0] == "updated_at"  # not a closing time
    assert recognise("openings", "工资（元/月）")[0] == "monthly_wage"
    assert recognise("openings", "工资(元/小时)")[0] == "wage"
    assert recognise("households", " 与户主 关系 ")[0] == "relation"
    assert recognise("cases", "x_coordinate_state_plane") is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chinese", [True, False])
def test_export_labels_read_back(kind: str, chinese: bool) -> None:
    labels = [label(kind, name, chinese=chinese) for name in FIELDS[kind]]
    assert len(set(labels)) == len(labels)
    for name, text in zip(FIELDS[kind], labels, strict=True):
        assert recognise(kind, text) == (name, FIELDS[kind][name].index(text))


def excel(path: Path, rows: list[list], title: str | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    if title:
        ws.title = title
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def test_xlsx_dates_numbers_and_formulas(tmp_path: Path) -> None:
    path = excel(
        tmp_path / "households.xlsx",
        [
            ["幸福里社区居民登记表"],
            [],
            ["楼栋编码", "单元", "房号", "姓名", "出生日期", "出生年份", "入住日期", "电话",
             "备注"],
            ["110105001001001001", 2, "0302", "王五", dt.date(1950, 3, 1), "=YEAR(E4)",
             dt.datetime(2020, 5, 1, 9, 30), 13800138000, 39.9042],
            [None] * 9,
            ["110105001001001001", 2, "0303", "赵六", dt.datetime(1960, 1, 2), 1960,
             "#N/A", 1.0, "=1+1"],
        ],
    )  # fmt: skip
    table = read_table(path, "households")
    assert table.header_number == 3 and table.sheet == "Sheet" and table.encoding is None
    rows = list(table)
    assert [where for where, _ in rows] == ["households.xlsx row 4", "households.xlsx row 6"]
    first, second = rows[0][1], rows[1][1]
    assert first == {
        "building": "110105001001001001",
        "unit": "2",
        "room": "0302",
        "moved_in": "2020-05-01T09:30:00",
        "notes": "39.9042",
        "name": "王五",
        "birth_date": "1950-03-01",
        "phone": "13800138000",
    }
    # openpyxl saves formulas without values: the cell is left out, the row carries why.
    ((name, message),) = first.problems
    assert name == "birth_year" and "F4 is a formula (=YEAR(E4)) without a saved value" in message
    assert second["birth_date"] == "1960-01-02" and second["birth_year"] == "1960"
    assert second["phone"] == "1"
    # "#N/A" typed in moved_in is an error value; the formula in notes is the problem too.
    assert {n for n, _ in second.problems} == {"moved_in", "notes"}
    assert "moved_in" not in second


def test_xlsx_formula_with_saved_value_is_read(tmp_path: Path) -> None:
    """As Excel saves it: the formula and its value."""
    made = excel(
        tmp_path / "made.xlsx", [["楼栋编码", "房号", "出生年份"], ["B1", "101", "=1949+1"]]
    )
    path = tmp_path / "saved.xlsx"
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert b"<f>1949+1</f><v /></c>" in data
                data = data.replace(b"<f>1949+1</f><v />", b"<f>1949+1</f><v>1950</v>")
            dst.writestr(item, data)
    ((_, values),) = list(read_table(path, "households"))
    assert values == {"building": "B1", "room": "101", "birth_year": "1950"}
    assert values.problems == []


def test_xlsx_sheet_choice(tmp_path: Path) -> None:
    path = tmp_path / "cases.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["说明"])
    ws = wb.create_sheet("2024")
    ws.append(["工单编号", "问题类型", "纬度", "经度", "受理时间"])
    ws.append(["A1", "噪声扰民", 39.98, 116.47, dt.datetime(2024, 4, 16, 8, 0, 5)])
    wb.save(path)
    table = read_table(path, "cases", sheet="2024")
    ((where, values),) = list(table)
    assert where == "cases.xlsx sheet 2024 row 2"
    assert values == {
        "source_id": "A1",
        "category": "噪声扰民",
        "lat": "39.98",
        "lon": "116.47",
        "requested_at": "2024-04-16T08:00:05",
    }
    with pytest.raises(BadInput, match=r"cases\.xlsx: no sheet '2023'; the sheets are Sheet, 2024"):
        read_table(path, "cases", sheet="2023")
    # The first sheet by default: a note, no columns for cases.
    with pytest.raises(BadInput, match=r"cases\.xlsx: no column for category .* lat .* lon"):
        read_table(path, "cases").require()


def test_mapping_overrides_spellings(tmp_path: Path) -> None:
    table = read_table(BOSTON, "cases", mapping={"category": "reason", "description": "subject"})
    assert table.header_of("category") == "reason"
    assert table.shadowed == {"type": "category", "case_title": "description"}
    raw = raw_records(BOSTON)
    for (_, values), (_, record) in zip(table, raw, strict=True):
        assert values["category"] == record["reason"]
        assert values["description"] == record["subject"]
    # A file of its own: field = header lines; the header matched as spellings are.
    mapping_file = tmp_path / "boston.map"
    mapping_file.write_text("# Boston by reason\ncategory = REASON\n\nlat=latitude\n")
    assert load_mapping(mapping_file) == {"category": "REASON", "lat": "latitude"}
    table = read_table(BOSTON, "cases", mapping=load_mapping(mapping_file))
    assert table.header_of("category") == "reason"
    assert parse_mapping(["lat=Y_COORD", " lon = X COORD "]) == {"lat": "Y_COORD", "lon": "X COORD"}


def test_mapping_errors(tmp_path: Path) -> None:
    with pytest.raises(
        BadInput, match=r"mapping: no field latitude in cases; the fields are .*lat"
    ):
        read_table(BOSTON, "cases", mapping={"latitude": "Y"})
    with pytest.raises(BadInput, match=r"boston311-100\.csv: mapping lat=Y_COORD: no such column"):
        read_table(BOSTON, "cases", mapping={"lat": "Y_COORD"})
    path = tmp_path / "two.csv"
    path.write_text("Y Coord,y_coord,lon,category\n1,2,3,x\n")
    with pytest.raises(BadInput, match=r"mapping lat=Y-COORD: ambiguous, .*columns A .*B"):
        read_table(path, "cases", mapping={"lat": "Y-COORD"})
    assert read_table(path, "cases", mapping={"lat": "y_coord"}).columns["lat"] == 1  # exact
    with pytest.raises(BadInput, match=r"--map: lat mapped twice"):
        parse_mapping(["lat=a", "lat=b"])
    with pytest.raises(BadInput, match=r"--map: 'lat': write field=header"):
        parse_mapping(["lat"])
    mapping_file = tmp_path / "m.txt"
    mapping_file.write_text("lat = a\nlat = b\n")
    with pytest.raises(BadInput, match=r"m\.txt line 2: lat mapped twice"):
        load_mapping(mapping_file)
    with pytest.raises(BadInput, match=r"kind: unknown kind 'parcels'"):
        read_table(BOSTON, "parcels")


def test_two_headers_for_one_field_pick_by_priority(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("location,Address,lat,long,Type,service_name\nL,A,1,2,T,S\n")
    table = read_table(path, "cases")
    ((_, values),) = list(table)
    assert values["address"] == "A" and values["category"] == "S"
    assert table.shadowed == {"location": "address", "Type": "category"}


def test_missing_columns_refused_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "hotline.csv"
    path.write_text("工单编号,问题类型,纬度,地址\n1,噪声,39.9,x\n")
    table = read_table(path, "cases")
    assert table.missing() == ["lon"] and table.missing(["category", "lat"]) == []
    with pytest.raises(BadInput, match=r"hotline\.csv: no column for lon \(lon: lon, 经度, long"):
        table.require()
    assert read_table(path, "households").missing() == ["building|lat+lon", "room"]


def test_extra_values_are_a_row_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("code,name,lat,lon\nM1,Shop, Inc,1,2\nM2,Ok,1,2,,\n")
    rows = list(read_table(path, "merchants"))
    assert "1 value(s) beyond the 4 columns" in rows[0][1].problems[0][1]
    assert rows[1][1].problems == []


def test_unreadable_files_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(BadInput, match=r"empty\.csv: empty: no header row"):
        read_table(empty, "cases")
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    with pytest.raises(BadInput, match=r"old\.xls: an Excel 97-2003 \(\.xls\) workbook"):
        read_table(xls, "cases")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(BadInput, match=r"broken\.xlsx: not a readable Excel \.xlsx workbook"):
        read_table(broken, "cases")
    with pytest.raises(BadInput, match=r"no such file"):
        read_table(tmp_path / "nothing.csv", "cases")


def test_quote_left_open_refused_naming_lines(tmp_path: Path) -> None:
    path = tmp_path / "open.csv"
    with path.open("w") as f:
        f.write('id,category,lat,lon\n1,a,1,2\n2,"b,1,2\n')
        line = "x" * 999 + "\n"
        for _ in range(FIELD_LIMIT // 1000 + 10):
            f.write(line)
    table = read_table(path, "cases")
    message = r"open\.csv line \d+: a value longer than 1,048,576 characters: a quote left open\?"
    with pytest.raises(BadInput, match=message + r" \(in the record from line 3\)"):
        list(table)


def test_huge_single_line_refused_quickly_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    chunk = b"abc," * (1 << 18)  # 1 MiB, no line break anywhere
    with path.open("wb") as f:
        for _ in range(100):
            f.write(chunk)
    assert path.stat().st_size == 100 << 20
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(BadInput, match=r"huge\.csv line 1: longer than 4,194,304 characters"):
            read_table(path, "cases")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 40 << 20, f"peak {peak:,} bytes"


def test_write_xlsx_round_trip(tmp_path: Path) -> None:
    people = [
        {
            "building": "110105001001001001",
            "unit": "2",
            "room": "0302",
            "class": "C",
            "moved_in": dt.date(2020, 5, 1),
            "name": "王五",
            "birth_year": 1950,
            "phone": "13800138000",
            "id_number": "11010519500301002X",
            "elderly_living_alone": True,
            "notes": '=HYPERLINK("http://example.invalid")\x07',
        },
        {"building": "110105001001001001", "room": "0303", "name": "赵六", "low_income": False},
    ]
    fields = ["building", "unit", "room", "class", "moved_in", "name", "birth_year", "phone",
              "id_number", "elderly_living_alone", "low_income", "notes"]  # fmt: skip
    path = tmp_path / "out.xlsx"
    assert write_xlsx(path, "households", people, fields=fields) == 2
    header = next(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert header[:4] == ("楼栋编码", "单元", "房号", "户类别")
    table = read_table(path, "households")
    assert table.fields == [
        "building", "unit", "room", "class", "moved_in", "notes", "name", "birth_year", "phone",
        "id_number", "elderly_living_alone", "low_income",
    ]  # fmt: skip
    assert table.unrecognised == [] and table.missing() == []
    (_, first), (_, second) = list(table)
    assert first == {
        "building": "110105001001001001",
        "unit": "2",
        "room": "0302",
        "class": "C",
        "moved_in": "2020-05-01",
        "notes": '=HYPERLINK("http://example.invalid")',  # text, never a formula
        "name": "王五",
        "birth_year": "1950",
        "phone": "13800138000",
        "id_number": "11010519500301002X",
        "elderly_living_alone": "TRUE",
    }
    assert first.problems == [] and second.problems == []
    assert second == {
        "building": "110105001001001001",
        "room": "0303",
        "name": "赵六",
        "low_income": "FALSE",
    }

    beijing = dt.timezone(dt.timedelta(hours=8))
    cases = [
        {
            "source_id": "2026-000123",
            "category": "NOISE",
            "lat": 39.98,
            "lon": 116.47,
            "requested_at": dt.datetime(2026, 4, 1, 8, 30, tzinfo=beijing),
            "closed_at": dt.datetime(2026, 4, 2, 9, 0, 1),
        }
    ]
    english = tmp_path / "cases.xlsx"
    write_xlsx(english, "cases", cases, chinese=False)
    header = next(openpyxl.load_workbook(english).active.iter_rows(values_only=True))
    assert header == ("service_request_id", "service_name", "lat", "lon",
                      "requested_datetime", "closed_datetime")  # fmt: skip
    ((_, values),) = list(read_table(english, "cases"))
    assert values == {
        "source_id": "2026-000123",
        "category": "NOISE",
        "lat": "39.98",
        "lon": "116.47",
        "requested_at": "2026-04-01T08:30:00+08:00",
        "closed_at": "2026-04-02T09:00:01",
    }
    with pytest.raises(ValueError, match="no field colour in cases"):
        write_xlsx(tmp_path / "x.xlsx", "cases", [{"colour": "red"}])
    assert write_xlsx(tmp_path / "none.xlsx", "workers", [], fields=["code", "name"]) == 0
    assert read_table(tmp_path / "none.xlsx", "workers").fields == ["code", "name"]
