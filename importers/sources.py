"""Each kind of file, from its reader to its loaders, inside one `importers.run.run`: what
`gridmap import …` and the upload mutation call."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyproj
import shapely
from tqdm import tqdm

from geo.errors import BadInput
from importers import spatial
from importers.crs import Crs, parse_crs
from importers.records import Feature
from importers.run import Options, run
from importers.summary import Summary

# A storey, for buildings that give a height but no levels.
STOREY_M = 3.0


@contextmanager
def _bar(progress: bool, what: str, unit: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (none when output is piped), fed with the count so far."""
    with tqdm(desc=what, unit=f" {unit}", disable=not progress or None, leave=False,
              unit_scale=True) as bar:  # fmt: skip
        yield lambda n: bar.update(n - bar.n)


def osm(owner_url: str, path: Path, options: Options, *, progress: bool = False,
        network: bool = True) -> Summary:  # fmt: skip
    """Buildings, merchants and boundaries merged; the streets rebuild the walking network."""
    from importers.osm import read_osm

    def load(cur: Any, summary: Summary) -> None:
        read: dict[str, list[Feature]] = {}
        with _bar(progress, path.name, "objects") as update:
            for f in read_osm(path, summary, progress=update):
                read.setdefault(f.kind, []).append(f)
        if read.get("boundaries"):
            spatial.load_boundaries(cur, read["boundaries"], summary, options, lenient=True)
        if "buildings" in summary.counts:
            spatial.load_buildings(cur, read.get("buildings", []), summary, options)
        if "merchants" in summary.counts:
            spatial.load_merchants(cur, read.get("merchants", []), summary, options)
        if "streets" in summary.counts:
            if network:
                _streets(cur, read.get("streets", []), summary)
            else:
                spatial.load_streets(cur, read.get("streets", []), summary)

    return run(owner_url, path, load, options)


def _streets(cur: Any, features: Sequence[Feature], summary: Summary) -> None:
    """The streets merged by key; the walking network rebuilt from every stored street when
    they changed (walkable ones only: motorways are left out)."""
    from geo import network
    from geo.network import Street

    before = sum(summary.counts["streets"][k] for k in ("inserted", "updated"))
    spatial.load_streets(cur, features, summary)
    if sum(summary.counts["streets"][k] for k in ("inserted", "updated")) == before:
        return
    cur.execute("SELECT highway, ST_AsBinary(geom) FROM street ORDER BY source_key")
    network.build(cur, [Street(shapely.from_wkb(bytes(g)), h) for h, g in cur.fetchall()])


def _file_crs(options: Options, declared: str | None) -> Options:
    """--crs wins; else what the file declares (GDAL's EPSG code or WKT); else WGS-84."""
    if options.crs is not None or not declared:
        return options
    try:
        crs: Crs = parse_crs(declared)
    except BadInput:
        epsg = pyproj.CRS.from_user_input(declared).to_epsg()
        if epsg is None:
            problem = f"the file's coordinate system has no EPSG code ({declared[:80]}…)"
            raise BadInput("--crs", problem + ": name it with --crs") from None
        crs = parse_crs(f"EPSG:{epsg}")
    return dataclasses.replace(options, crs=crs)


def _number(value: Any) -> Any:
    """A GIS attribute as an integer where it is one (12-digit codes in numeric fields)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def buildings(owner_url: str, path: Path, options: Options, *, progress: bool = False,
              key_field: str | None = None, levels_field: str | None = None,
              height_field: str | None = None, name_field: str | None = None,
              address_field: str | None = None, layer: str | None = None) -> Summary:  # fmt: skip
    from importers.gis import read_layer

    fields = {"key": key_field, "levels": levels_field, "height": height_field,
              "name": name_field, "address": address_field}  # fmt: skip
    asked = {k: v for k, v in fields.items() if v}
    data = read_layer(path, layer=layer, columns=list(asked.values()))
    options = _file_crs(options, data.crs)
    columns = {k: data.columns[v] for k, v in asked.items()}

    def value(name: str, i: int) -> Any:
        v = columns[name][i] if name in columns else None
        return None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else v

    features = []
    for i in range(len(data)):
        levels = _number(value("levels", i))
        height = value("height", i)
        if levels is None and isinstance(height, int | float) and height > 0:
            levels = max(1, round(height / STOREY_M))
        key = value("key", i)
        features.append(Feature(
            "buildings", f"gis:{_number(key)}" if key is not None else None, data.where(i),
            data.wkb[i], {"name": value("name", i), "address": value("address", i),
                          "levels": levels}))

    def load(cur: Any, summary: Summary) -> None:
        summary.count("buildings", "read", len(features))
        spatial.load_buildings(cur, features, summary, options)

    return run(owner_url, path, load, options)


def boundaries(owner_url: str, path: Path, options: Options, *, level: str, code_field: str,
               name_field: str | None = None, layer: str | None = None,
               progress: bool = False) -> Summary:  # fmt: skip
    from importers.gis import read_layer

    columns = [code_field, *([name_field] if name_field else [])]
    data = read_layer(path, layer=layer, columns=columns)
    options = _file_crs(options, data.crs)
    codes = data.columns[code_field]
    names = data.columns[name_field] if name_field else [None] * len(data)
    features = [
        Feature("boundaries", None, data.where(i), data.wkb[i],
                {"code": None if codes[i] is None else str(_number(codes[i])),
                 "name": names[i], "level": level})
        for i in range(len(data))
    ]

    def load(cur: Any, summary: Summary) -> None:
        summary.count("boundaries", "read", len(features))
        spatial.load_boundaries(cur, features, summary, options)

    return run(owner_url, path, load, options)


def register(owner_url: str, path: Path, kind: str, options: Options, *,
             progress: bool = False, mapping: Iterable[str] = (),
             mapping_file: Path | None = None, sheet: str | None = None,
             encoding: str | None = None, category_map: Path | None = None,
             source: str = "HOTLINE_12345") -> Summary:  # fmt: skip
    """A register (CSV or Excel) of ``kind``: households, workers, merchants, openings, cases."""
    from importers import cases, registers
    from importers.tables import load_mapping, parse_mapping, read_table

    columns = load_mapping(mapping_file) if mapping_file else {}
    columns.update(parse_mapping(mapping))
    table = read_table(path, kind, mapping=columns, sheet=sheet, encoding=encoding)
    table.require()
    categories = cases.load_category_map(category_map) if category_map else None

    def load(cur: Any, summary: Summary) -> None:
        if table.unrecognised:
            more = len(table.unrecognised) - 8
            shown = ", ".join(table.unrecognised[:8]) + (f" and {more} more" if more > 0 else "")
            summary.warnings.append(f"columns not read: {shown} (name them with --map "
                                    "FIELD=HEADER if they hold a field)")
        with _bar(progress, path.name, "rows") as update:
            rows = _rows(table, kind, summary, update)
            if kind == "households":
                registers.load_households(cur, rows, summary, options)
            elif kind == "workers":
                registers.load_workers(cur, rows, summary, options)
            elif kind == "openings":
                registers.load_openings(cur, rows, summary, options)
            elif kind == "cases":
                cases.load_cases(cur, rows, summary, options, source=source,
                                 category_map=categories)  # fmt: skip
            else:
                summary.touch("merchants")
                spatial.load_merchants(cur, list(_merchants(rows, summary)), summary, options)

    return run(owner_url, path, load, options, rows=lambda: iter(table))


def _rows(table: Any, kind: str, summary: Summary,
          update: Callable[[int], None]) -> Iterator[tuple[str, dict[str, str]]]:  # fmt: skip
    """The table's rows; those the reader found broken (an Excel error, a formula without a
    value, stray columns) are refused here, by row and field."""
    n = 0
    for where, values in table:
        n += 1
        if n % 1000 == 0:
            update(n)
        if values.problems:
            field, message = values.problems[0]
            summary.count(kind, "read")
            summary.reject(kind, where, field, message)
            continue
        yield where, values
    update(n)


def _merchants(rows: Iterable[tuple[str, dict[str, str]]],
               summary: Summary) -> Iterator[Feature]:  # fmt: skip
    for where, v in rows:
        summary.count("merchants", "read")
        try:
            lon, lat = _float(v, "lon"), _float(v, "lat")
            employees = v.get("employees")
            fields = {"name": v.get("name"), "category": v.get("category"),
                      "address": v.get("address"),
                      "employees": None if not employees else _int(employees, "employees")}
        except _Refused as exc:
            summary.reject("merchants", where, exc.field, exc.message)
            continue
        point = None if lon is None or lat is None else shapely.Point(lon, lat).wkb
        yield Feature("merchants", v.get("code") or None, where, point, fields)


class _Refused(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _float(v: dict[str, str], name: str) -> float | None:
    text = v.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise _Refused(name, f"{text!r} is not a number") from None


def _int(text: str, name: str) -> int:
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        raise _Refused(name, f"{text!r} is not a whole number") from None
    if not number.is_integer():
        raise _Refused(name, f"{text!r} is not a whole number")
    return int(number)
