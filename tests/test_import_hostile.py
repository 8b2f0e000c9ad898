"""Malformed and hostile files through `gridmap import`: each refused (or repaired) with a message
naming the file, in bounded time, and the database as it was."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from conftest import ScratchDB
from openpyxl import Workbook
from test_family_files import owner

DATA = Path(__file__).parent / "data"
COUNTS = "SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM merchant)," \
    " (SELECT count(*) FROM street), (SELECT count(*) FROM household)," \
    " (SELECT count(*) FROM grid_case), (SELECT count(*) FROM community)"


def _counts(db: ScratchDB) -> tuple[Any, ...]:
    return owner(db, COUNTS)[0]


def _truncated_pbf(tmp: Path) -> Path:
    data = (DATA / "osm" / "Helsinki.osm.pbf").read_bytes()
    path = tmp / "cut.osm.pbf"
    path.write_bytes(data[: len(data) // 2])
    return path


def _bomb(tmp: Path) -> Path:
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    path = tmp / "bomb.osm"
    path.write_text(f'<?xml version="1.0"?><!DOCTYPE osm [<!ENTITY lol0 "lol">{lol}]>'
                    '<osm version="0.6"><node id="1" lat="1" lon="1"><tag k="shop" '
                    'v="&lol9;"/></node></osm>')  # fmt: skip
    return path


def _one_line(tmp: Path) -> Path:
    path = tmp / "one-line.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("category,lat,lon,description\n")
        chunk = "x" * (1 << 20)
        for _ in range(100):  # 100 MB with no line break
            f.write(chunk)
    return path


def _binary(tmp: Path) -> Path:
    path = tmp / "households.csv"
    path.write_bytes(gzip.compress(b"building,room,name\n" * 1000))
    return path


def _nan(tmp: Path) -> Path:
    path = tmp / "cases.csv"
    path.write_text("id,category,lat,long,requested_datetime,description\n"
                    "1,Noise,NaN,121.44,2026-01-01T10:00:00+08:00,loud\n"
                    "2,Noise,31.22,Infinity,2026-01-01T10:00:00+08:00,loud\n")  # fmt: skip
    return path


def _enormous(tmp: Path) -> Path:
    n = 300_000
    angles = np.linspace(0, 2 * math.pi, n, endpoint=False)
    ring = np.column_stack([121.44 + 0.001 * np.cos(angles), 31.22 + 0.001 * np.sin(angles)])
    path = tmp / "enormous.geojson"
    pyogrio.raw.write(path, geometry=np.array([shapely.Polygon(ring).wkb], dtype=object),
                      field_data=[np.array(["310106015001"])], fields=["CODE"],
                      geometry_type="Polygon", crs="EPSG:4326")  # fmt: skip
    return path


def _formulas(tmp: Path) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(["商户编码", "名称", "类别", "纬度", "经度"])
    sheet.append(["M-1", "面馆", "餐饮", "=31.2+0.01", "121.44"])
    path = tmp / "merchants.xlsx"
    book.save(path)
    return path


CASES = [
    ("truncated PBF", _truncated_pbf, ["osm"], "cut.osm.pbf: not a readable OpenStreetMap"),
    ("XML entity bomb", _bomb, ["osm"], "bomb.osm: not a readable OpenStreetMap"),
    ("100 MB single-line CSV", _one_line, ["cases"], "one-line.csv"),
    ("binary, not text", _binary, ["households"], "households.csv"),
    ("NaN and Infinity coordinates", _nan, ["cases"], "not finite"),
    ("300,000-vertex polygon", _enormous,
     ["boundaries", "--level", "community", "--code-field", "CODE"], "more than 200,000"),
    ("Excel formula without a saved value", _formulas, ["merchants"], "is a formula"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "make", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_hostile_files_are_refused_and_change_nothing(
    fresh_db: ScratchDB, tmp_path: Path, what: str, make: Any, args: list[str], message: str
) -> None:
    before = _counts(fresh_db)
    path = make(tmp_path)
    done = fresh_db.gridmap("import", args[0], str(path), *args[1:], timeout=60)
    assert done.returncode != 0, done.stdout
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _counts(fresh_db) == before
