"""Building imports: the figures issue 6 asks for.

    .venv/bin/python bench/imports.py                    # gridmap_bench_imports, 100,000 footprints
    .venv/bin/python bench/imports.py --rounds 3 --pipeline-rounds 1 --no-write
    .venv/bin/python bench/imports.py --file town.gpkg --key-field osm_id --name-field ''

Target: the importer's raw load step (bulk COPY into its staging table) no slower than GDAL's
``ogr2ogr`` loading the same file into the same PostGIS.

The database (``--database``, default ``gridmap_bench_imports``) is created when missing,
migrated to the head revision and loaded with the default demo (5,000 households, 300
micro-grids) as the other scripts do, and kept for the next run. The building file is made in a
temporary directory unless ``--file`` names one: ``--buildings`` footprints (100,000) as a
GeoPackage written with pyogrio, in WGS-84: rotated rectangles of 8–30 × 8–20 m (72 %),
L-shapes (25 %) and self-intersecting bow-ties (``--invalid``, 3 %, which the importer repairs),
a source key, a number of levels (1–7 mostly, some towers; 5 % empty) and a name (one in five);
98 % of them stand in the demo's micro-grids (in proportion to their areas), so placement has
work to do, 2 % around them, outside every grid. (100,000 footprints on the demo's 1.8 km²
overlap; nothing in the import looks at that.)

Timed, median over ``--rounds`` (5, alternating) after one warm-up of each:

1. ``ogr2ogr -f PostgreSQL PG:… FILE -nln bench_ogr -overwrite -lco GEOMETRY_NAME=geom
   -nlt PROMOTE_TO_MULTI``: GDAL's defaults otherwise (COPY, a GiST index on the geometry,
   100,000 features per transaction, a logged table); wall time of the process. For reference
   too with ``-lco UNLOGGED=ON -lco SPATIAL_INDEX=NONE``, which is what the staging table is
   (a temporary table is never WAL-logged, and has no index).
2. The importer's raw load step, in one transaction as the tables' owner: connect,
   ``importers.gis.read_layer`` (the key, name and levels fields), ``importers.geometry.from_wkb``
   (the WKB as read, nothing validated) and ``importers.staging.stage`` into its temporary
   table (fid, key, name, levels, geometry: COPY, then ANALYZE), commit.

Then the full pipeline, median over ``--pipeline-rounds`` (3): ``importers.sources.buildings``
with ``--key-field`` and ``--levels-field`` (read, validate and repair, stage, merge by key,
place in the micro-grids and number, commit): a first import after the file's buildings are
deleted (keys ``gis:<key>``; then ``VACUUM ANALYZE building``), and the same file again (all
unchanged); each split into its pieces. The imported buildings are deleted at the end.

Results: printed, and the section between the markers below in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402
import pyogrio  # noqa: E402
import pyogrio.raw  # noqa: E402
import pyproj  # noqa: E402
import shapely  # noqa: E402
import side_by_side as sbs  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import importers.gis  # noqa: E402
import importers.run  # noqa: E402
from api.settings import Settings  # noqa: E402
from geo.errors import BadInput  # noqa: E402
from importers import sources, spatial  # noqa: E402
from importers.geometry import M_PER_DEGREE, from_wkb  # noqa: E402
from importers.run import Options  # noqa: E402
from importers.sources import _number  # noqa: E402
from importers.staging import stage  # noqa: E402

BEGIN = "<!-- bench/imports.py: begin -->"
END = "<!-- bench/imports.py: end -->"
OGR_TABLE = "bench_ogr"
KEY_PREFIX = "bench-"
OUTSIDE = 0.02  # of the footprints, around the micro-grids rather than in them
L_SHAPES = 0.25
NO_LEVELS = 0.05
NAMED = 0.2
OGR_OPTIONS = ["-lco", "GEOMETRY_NAME=geom", "-nlt", "PROMOTE_TO_MULTI"]
OGR_LIKE_STAGING = ["-lco", "UNLOGGED=ON", "-lco", "SPATIAL_INDEX=NONE"]
RAW_COLUMNS = "fid bigint, key text, name text, levels smallint, geom geometry(Geometry, 4326)"


# --------------------------------------------------------------------------------------------
# the building file
# --------------------------------------------------------------------------------------------


def micro_grids(db: sbs.Database, scope: str = "") -> np.ndarray:
    """The micro-grids' outlines (those inside the area ``scope``, if given), in code order."""
    conn = psycopg2.connect(db.owner_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ST_AsBinary(geom) FROM micro_grid"
                " WHERE code >= %(s)s AND code < %(s)s || chr(1114111) ORDER BY code",
                {"s": scope},
            )
            return shapely.from_wkb([bytes(g) for (g,) in cur.fetchall()])
    finally:
        conn.close()


def _points_in(rng: np.random.Generator, area: Any, n: int, *, outside: bool = False,
               box: tuple[float, float, float, float] | None = None) -> np.ndarray:  # fmt: skip
    """``n`` uniform points in ``area`` (or in ``box`` and outside ``area``)."""
    x0, y0, x1, y1 = box or area.bounds
    shapely.prepare(area)
    found: list[np.ndarray] = []
    have = 0
    while have < n:
        xy = rng.uniform((x0, y0), (x1, y1), size=(2 * (n - have) + 16, 2))
        inside = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        xy = xy[~inside if outside else inside]
        found.append(xy)
        have += len(xy)
    return np.concatenate(found)[:n]


def footprints(rng: np.random.Generator, centres: np.ndarray, invalid: float) -> np.ndarray:
    """A footprint around each centre: rectangles, L-shapes and bow-ties, rotated."""
    n = len(centres)
    kind = rng.choice(3, size=n, p=[1 - L_SHAPES - invalid, L_SHAPES, invalid])
    w = rng.uniform(8, 30, n)
    h = rng.uniform(8, 20, n)
    a = rng.uniform(0.35, 0.65, n)  # where an L's notch starts, across and up
    b = rng.uniform(0.35, 0.65, n)
    one, zero = np.ones(n), np.zeros(n)
    templates = {
        0: [(zero, zero), (one, zero), (one, one), (zero, one), (zero, zero)],
        1: [(zero, zero), (one, zero), (one, b), (a, b), (a, one), (zero, one), (zero, zero)],
        2: [(zero, zero), (one, b), (one, zero), (zero, one), (zero, zero)],  # a lopsided bow-tie
    }
    angle = rng.uniform(0, np.pi / 2, n)
    cos, sin = np.cos(angle), np.sin(angle)
    lat = np.radians(centres[:, 1])
    out = np.empty(n, dtype=object)
    for k, template in templates.items():
        pick = kind == k
        if not pick.any():
            continue
        u = np.stack([x[pick] for x, _ in template], axis=1) - 0.5
        v = np.stack([y[pick] for _, y in template], axis=1) - 0.5
        mx, my = u * w[pick, None], v * h[pick, None]
        rx = mx * cos[pick, None] - my * sin[pick, None]
        ry = mx * sin[pick, None] + my * cos[pick, None]
        lon = centres[pick, 0, None] + rx / (M_PER_DEGREE * np.cos(lat[pick, None]))
        lat_ = centres[pick, 1, None] + ry / M_PER_DEGREE
        out[pick] = shapely.polygons(np.stack([lon, lat_], axis=2))
    return out


def generate(path: Path, grids: np.ndarray, n: int, invalid: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    outside = round(n * OUTSIDE)
    areas = shapely.area(grids)
    per_grid = rng.multinomial(n - outside, areas / areas.sum())
    centres = [_points_in(rng, g, k) for g, k in zip(grids, per_grid, strict=True) if k]
    union = shapely.union_all(grids)
    x0, y0, x1, y1 = union.bounds
    margin = 0.004  # about 400 m
    around = (x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    centres.append(_points_in(rng, union, outside, outside=True, box=around))
    xy = np.concatenate(centres)
    xy = xy[rng.permutation(len(xy))]
    geoms = footprints(rng, xy, invalid)
    levels = np.where(rng.random(n) < 0.85, rng.integers(1, 8, n), rng.integers(8, 34, n))
    no_levels = rng.random(n) < NO_LEVELS
    names = np.array([f"Block {i + 1}" if named else None
                      for i, named in enumerate(rng.random(n) < NAMED)], dtype=object)  # fmt: skip
    keys = np.array([f"{KEY_PREFIX}{i + 1:06d}" for i in range(n)], dtype=object)
    pyogrio.raw.write(
        path, geometry=shapely.to_wkb(geoms), field_data=[keys, names, levels.astype(np.int32)],
        fields=["key", "name", "levels"], field_mask=[None, None, no_levels],
        layer="buildings", driver="GPKG", geometry_type="Polygon",
        crs=pyproj.CRS.from_epsg(4326).to_wkt(),
    )  # fmt: skip
    return {
        "features": n,
        "invalid": int((~shapely.is_valid(geoms)).sum()),
        "outside": outside,
        "megabytes": path.stat().st_size / 2**20,
        "grids": len(grids),
        "grid_km2": float(
            sum(shapely.area(grids)) * M_PER_DEGREE**2 * np.cos(np.radians((y0 + y1) / 2)) / 1e6
        ),
    }


def describe_file(path: Path) -> dict[str, Any]:
    info = pyogrio.read_info(path)
    return {"features": int(info["features"]), "megabytes": path.stat().st_size / 2**20}


# --------------------------------------------------------------------------------------------
# the three loads
# --------------------------------------------------------------------------------------------


def ogr2ogr(db: sbs.Database, path: Path, extra: list[str]) -> float:
    url = make_url(db.owner_url)
    pg = f"PG:host={url.host} port={url.port or 5432} dbname={url.database} user={url.username}"
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    command = ["ogr2ogr", "-f", "PostgreSQL", pg, str(path), "-nln", OGR_TABLE, "-overwrite",
               *OGR_OPTIONS, *extra]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise sbs.BenchError(f"ogr2ogr failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def count_ogr(db: sbs.Database) -> tuple[int, str]:
    conn = psycopg2.connect(db.owner_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*), (SELECT relpersistence FROM pg_class WHERE relname = "
                        f"'{OGR_TABLE}') FROM {OGR_TABLE}")  # fmt: skip
            n, persistence = cur.fetchone()
            return int(n), persistence
    finally:
        conn.close()


def drop_ogr(db: sbs.Database) -> None:
    conn = psycopg2.connect(db.owner_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {OGR_TABLE}")
    finally:
        conn.close()


def raw_load(db: sbs.Database, path: Path, key: str | None, levels: str | None,
             name: str | None) -> dict[str, float]:  # fmt: skip
    """The importer's raw load step; seconds by piece and the rows staged."""
    asked = [c for c in (key, name, levels) if c]
    t: dict[str, float] = {}
    start = time.perf_counter()
    conn = importers.run.connect(db.owner_url)
    try:
        t["connect"] = time.perf_counter() - start
        mark = time.perf_counter()
        data = importers.gis.read_layer(path, columns=asked)
        t["read"] = time.perf_counter() - mark
        mark = time.perf_counter()
        geoms = from_wkb(data.wkb)
        t["from_wkb"] = time.perf_counter() - mark
        mark = time.perf_counter()
        none = [None] * len(data)
        rows = zip(data.fids, *(data.columns[c] if c else none for c in (key, name, levels)),
                   geoms, strict=True)  # fmt: skip
        with conn.cursor() as cur:
            stage(cur, "stage_raw", RAW_COLUMNS, rows)
            t["stage"] = time.perf_counter() - mark
            cur.execute("SELECT count(*) FROM stage_raw")
            t["rows"] = cur.fetchone()[0]
        mark = time.perf_counter()
        conn.commit()
        t["commit"] = time.perf_counter() - mark
    finally:
        conn.close()
    t["total"] = sum(v for k, v in t.items() if k != "rows")
    return t


@dataclass
class Probe:
    """The pieces of one ``sources.buildings`` call, by patching what it calls."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


@contextlib.contextmanager
def probing(probe: Probe) -> Iterator[None]:
    read_layer, prepare, stage_, connect = (importers.gis.read_layer, spatial.prepare,
                                            spatial.stage, importers.run.connect)  # fmt: skip

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                probe.seconds[name] += time.perf_counter() - start

        return wrapper

    class Cursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:
            kind = {spatial.MERGE_BUILDINGS: "merge", spatial.INSERT_BUILDINGS: "insert"}.get(
                query, "other SQL"
            )
            start = time.perf_counter()
            try:
                return super().execute(query, vars)
            finally:
                probe.seconds[kind] += time.perf_counter() - start

    def timed_connect(url: str) -> Any:
        conn = connect(url)
        conn.cursor_factory = Cursor
        return conn

    importers.gis.read_layer = timed("read", read_layer)  # type: ignore[assignment]
    spatial.prepare = timed("prepare", prepare)  # type: ignore[assignment]
    spatial.stage = timed("stage", stage_)  # type: ignore[assignment]
    importers.run.connect = timed_connect  # type: ignore[assignment]
    try:
        yield
    finally:
        importers.gis.read_layer, spatial.prepare = read_layer, prepare  # type: ignore[assignment]
        spatial.stage, importers.run.connect = stage_, connect  # type: ignore[assignment]


PIECES = (
    ("read", "read (`read_layer`)"),
    ("prepare", "validate and repair (`prepare`)"),
    ("stage", "stage (`stage`: COPY, ANALYZE)"),
    ("merge", "SQL: merge by key (`MERGE_BUILDINGS`)"),
    ("insert", "SQL: place, number, insert (`INSERT_BUILDINGS`)"),
    ("python", "Python, other SQL and commit"),
)


def pipeline(db: sbs.Database, path: Path, args: Any) -> dict[str, Any]:
    probe = Probe()
    start = time.perf_counter()
    with probing(probe):
        summary = sources.buildings(db.owner_url, path, Options(skip_invalid=args.skip_invalid),
                                    key_field=args.key_field, levels_field=args.levels_field,
                                    name_field=args.name_field)  # fmt: skip
    total = time.perf_counter() - start
    seconds = dict(probe.seconds)
    seconds["python"] = total - sum(seconds.get(k, 0.0) for k, _ in PIECES[:-1])
    seconds["total"] = total
    return {"seconds": seconds, "counts": dict(summary.counts.get("buildings", {})),
            "refused": len(summary.problems)}  # fmt: skip


def file_keys(path: Path, key_field: str) -> list[str]:
    data = importers.gis.read_layer(path, columns=[key_field])
    return [f"gis:{_number(k)}" for k in data.columns[key_field] if k not in (None, "")]


def delete_buildings(db: sbs.Database, keys: list[str]) -> int:
    conn = psycopg2.connect(db.owner_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM building WHERE source_key = ANY(%s)", (keys,))
            deleted = cur.rowcount
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE building")
    finally:
        conn.close()
    return deleted


def placed(db: sbs.Database, keys: list[str]) -> dict[str, int]:
    conn = psycopg2.connect(db.owner_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(micro_grid_id), count(*) FILTER (WHERE code ~ "
                        "'^[0-9]{21}$'), count(*) FILTER (WHERE GeometryType(geom) = "
                        "'MULTIPOLYGON' AND ST_NumGeometries(geom) > 1) FROM building "
                        "WHERE source_key = ANY(%s)", (keys,))  # fmt: skip
            n, in_grid, numbered, multi = cur.fetchone()
    finally:
        conn.close()
    return {"stored": n, "in_grid": in_grid, "numbered": numbered, "multipart": multi}


# --------------------------------------------------------------------------------------------
# measuring and reporting
# --------------------------------------------------------------------------------------------


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def gdal_version() -> str:
    try:
        done = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True)
    except OSError:
        return "?"
    found = re.search(r"GDAL (\S+?),", done.stdout)
    return found.group(1) if found else done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="gridmap_bench_imports", help="a local database name")
    parser.add_argument("--households", type=int, default=None,
                        help="the demo size when the database must be loaded (5,000)")  # fmt: skip
    parser.add_argument("--file", type=Path, help="a building file to load instead of one made up")
    parser.add_argument("--buildings", type=int, default=100_000, help="footprints to make up")
    parser.add_argument("--invalid", type=float, default=0.03, help="share of bow-ties")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--key-field", default="key", help="the file's key field (needed)")
    parser.add_argument("--levels-field", default="levels", help="'': none")
    parser.add_argument("--name-field", default="name", help="'': none")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="import the rest when the importer refuses rows")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="of ogr2ogr and the raw step")
    parser.add_argument("--pipeline-rounds", type=int, default=3)
    parser.add_argument("--patience", type=int, default=300,
                        help="seconds to wait for a quiet machine before measuring")  # fmt: skip
    parser.add_argument("--keep-file", type=Path, help="copy the made-up file here")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if not args.key_field:
        parser.error("--key-field is needed: the pipeline's buildings are found again by key")
    if args.pipeline_rounds < 1 and not args.no_write:
        parser.error("--pipeline-rounds 0 goes with --no-write")
    if shutil.which("ogr2ogr") is None:
        raise sbs.BenchError("no ogr2ogr: install Debian's gdal-bin (`make bench-imports` does)")

    settings = Settings()
    db = sbs.resolve_database(args.database, settings)
    scale = sbs.prepare_database(db, args.households, settings.secret_key)
    with tempfile.TemporaryDirectory(prefix="gridmap-bench-imports-") as tmp:
        if args.file:
            path = args.file.resolve()
            made = describe_file(path)
        else:
            path = Path(tmp) / "buildings.gpkg"
            start = time.perf_counter()
            made = generate(path, micro_grids(db), args.buildings, args.invalid, args.seed)
            took = time.perf_counter() - start
            print(f"made {path.name}: {made['features']:,} footprints ({made['invalid']:,} "
                  f"invalid, {made['outside']:,} outside the {made['grids']} micro-grids), "
                  f"{made['megabytes']:.1f} MiB, in {took:.1f} s")  # fmt: skip
            if args.keep_file:
                shutil.copyfile(path, args.keep_file)
        result = measure(db, path, args, made)
    result.update(scale=scale, made=made, args=args, file=args.file)
    report(result)
    if not args.no_write:
        write(result)
    return 0


def measure(db: sbs.Database, path: Path, args: Any, made: dict[str, Any]) -> dict[str, Any]:
    n = made["features"]
    fields = (args.key_field, args.levels_field, args.name_field)
    try:
        print("warm-up: ogr2ogr, the raw step")
        ogr2ogr(db, path, [])
        raw_load(db, path, *fields)
        load = sbs.wait_quiet(patience_s=args.patience)
        ogr: list[dict[str, float]] = []
        ogr_like: list[dict[str, float]] = []
        raw: list[dict[str, float]] = []
        for i in range(args.rounds):
            ogr.append({"total": ogr2ogr(db, path, [])})
            rows, persistence = count_ogr(db)
            if rows != n:
                raise sbs.BenchError(f"ogr2ogr loaded {rows:,} rows of {n:,}")
            ogr_like.append({"total": ogr2ogr(db, path, OGR_LIKE_STAGING)})
            rows_like, persistence_like = count_ogr(db)
            assert rows_like == n and persistence == "p" and persistence_like == "u"
            raw.append(raw_load(db, path, *fields))
            if raw[-1]["rows"] != n:
                raise sbs.BenchError(f"the raw step staged {raw[-1]['rows']:,} rows of {n:,}")
            print(f"round {i + 1}: ogr2ogr {ogr[-1]['total']:.2f} s, unlogged without index "
                  f"{ogr_like[-1]['total']:.2f} s, raw step {raw[-1]['total']:.2f} s (read "
                  f"{raw[-1]['read']:.2f}, from_wkb {raw[-1]['from_wkb']:.2f}, stage "
                  f"{raw[-1]['stage']:.2f})")  # fmt: skip
    finally:
        drop_ogr(db)

    keys = file_keys(path, args.key_field)
    delete_buildings(db, keys)
    first: list[dict[str, Any]] = []
    again: list[dict[str, Any]] = []
    stored: dict[str, int] = {}
    try:
        for i in range(args.pipeline_rounds):
            if i:
                delete_buildings(db, keys)
            first.append(pipeline(db, path, args))
            stored = placed(db, keys)
            again.append(pipeline(db, path, args))
            print(f"pipeline round {i + 1}: first import {first[-1]['seconds']['total']:.2f} s "
                  f"{first[-1]['counts']}, again {again[-1]['seconds']['total']:.2f} s "
                  f"{again[-1]['counts']}")  # fmt: skip
    finally:
        delete_buildings(db, keys)
    return {"load": load, "ogr": ogr, "ogr_like": ogr_like, "raw": raw, "first": first,
            "again": again, "stored": stored, "gdal": gdal_version()}  # fmt: skip


def _pipeline_median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r["seconds"].get(key, 0.0) for r in runs)


def rows_table(r: dict[str, Any]) -> list[tuple[str, float, float, str]]:
    """(what, median seconds, rows/s, ratio to ogr2ogr)."""
    n = r["made"]["features"]
    base = median(r["ogr"], "total")
    out = []
    for what, runs in (
        ("ogr2ogr (COPY, GiST index, logged table)", r["ogr"]),
        ("ogr2ogr, unlogged, no index (like the staging table)", r["ogr_like"]),
        ("raw step: read_layer + from_wkb + stage (COPY into a temporary table)", r["raw"]),
    ):
        s = median(runs, "total")
        out.append((what, s, n / s, f"{s / base:.2f}"))
    for what, runs in (("full pipeline, first import", r["first"]),
                       ("full pipeline, again (all unchanged)", r["again"])):  # fmt: skip
        if not runs:
            continue
        s = _pipeline_median(runs, "total")
        out.append((what, s, n / s, f"{s / base:.2f}"))
    return out


def report(r: dict[str, Any]) -> None:
    n = r["made"]["features"]
    print(f"\n{n:,} features, median of {r['args'].rounds} rounds ({r['args'].pipeline_rounds} "
          "for the pipeline)")  # fmt: skip
    print(f"  {'':<74} {'median':>8} {'rows/s':>9} {'ratio':>6}")
    for what, s, rate, ratio in rows_table(r):
        print(f"  {what:<74} {s:7.2f}s {rate:9,.0f} {ratio:>6}")
    raw = r["raw"]
    print(
        "  raw step by piece: "
        + ", ".join(
            f"{k} {median(raw, k):.2f} s"
            for k in ("connect", "read", "from_wkb", "stage", "commit")
        )
    )
    for label, runs in (("first import", r["first"]), ("again", r["again"])):
        if not runs:
            continue
        print(
            f"  {label} by piece: "
            + ", ".join(f"{k} {_pipeline_median(runs, k):.2f} s" for k, _ in PIECES)
        )
    ratio = median(raw, "total") / median(r["ogr"], "total")
    print(
        f"target: raw step no slower than ogr2ogr: {'met' if ratio <= 1 else 'MISSED'} "
        f"(ratio {ratio:.2f})"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v:,} {k}" for k, v in counts.items())


def write(r: dict[str, Any]) -> None:
    m = sbs.machine()
    scale, made, args = r["scale"], r["made"], r["args"]
    n = made["features"]
    ratio = median(r["raw"], "total") / median(r["ogr"], "total")
    if r["file"] is None:
        what = (
            f"a GeoPackage of {n:,} footprints ({made['megabytes']:.1f} MiB, made up by the "
            f"script: rotated rectangles and L-shapes, {made['invalid']:,} self-intersecting "
            f"bow-ties, key, name and levels fields), {n - made['outside']:,} of them in the "
            f"demo's {made['grids']} micro-grids ({made['grid_km2']:.1f} km², so they overlap), "
            f"{made['outside']:,} around them"
        )
    else:
        what = f"`{r['file'].name}` ({n:,} features, {made['megabytes']:.1f} MiB)"
    first, again = r["first"][-1], r["again"][-1]
    stored = r["stored"]
    lines = [
        BEGIN,
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `bench/imports.py` on "
        f"{m['nproc']} cores ({m['cpu']}, {m['memory_gib']} GiB, {m['os']}), load average "
        f"{r['load']:.2f}; Python {platform.python_version()}, PostgreSQL "
        f"{scale['postgresql'].split()[0]}, PostGIS {scale['postgis']}, GDAL {r['gdal']} "
        f"(`ogr2ogr` from Debian's gdal-bin; pyogrio {pyogrio.__version__} with GDAL "
        f"{pyogrio.__gdal_version_string__}), shapely {shapely.__version__}; database "
        f"`{scale['database']}` (the {scale['households']:,}-household demo), on the same "
        f"machine as the script. The file: {what}.",
        "",
        f"Median over {args.rounds} rounds (alternating, after a warm-up of each) for the loads, "
        f"{args.pipeline_rounds} for the pipeline; ratio: to `ogr2ogr`.",
        "",
        "| load | median | rows/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for i, (label, s, rate, ratio_) in enumerate(rows_table(r)):
        bold = "**" if i in (0, 2) else ""
        lines.append(f"| {label} | {bold}{s:.2f} s{bold} | {rate:,.0f} | {ratio_} |")
    raw = r["raw"]
    lines += [
        "",
        "Target: the raw load step no slower than `ogr2ogr` — "
        + ("**met**" if ratio <= 1 else "**missed**")
        + f" (ratio {ratio:.2f}).",
        "",
        f"- `ogr2ogr -f PostgreSQL PG:… FILE -nln {OGR_TABLE} -overwrite "
        f"{' '.join(OGR_OPTIONS)}`: GDAL's defaults otherwise (COPY, a GiST index, 100,000 "
        "features per transaction, a logged table), the process's wall time; the second row "
        f"adds `{' '.join(OGR_LIKE_STAGING)}`.",
        "- The raw step, one transaction as the tables' owner: connect "
        f"{median(raw, 'connect'):.2f} s, `read_layer` {median(raw, 'read'):.2f} s, "
        f"`from_wkb` {median(raw, 'from_wkb'):.2f} s (WKB as read, nothing validated), "
        f"`stage` {median(raw, 'stage'):.2f} s (`CREATE TEMP TABLE`, COPY of fid, key, name, "
        f"levels and EWKB hex, ANALYZE), commit {median(raw, 'commit'):.2f} s.",
        f"- The full pipeline, `importers.sources.buildings` (what `gridmap import buildings "
        f"FILE --key-field {args.key_field} --levels-field {args.levels_field} --name-field "
        f"{args.name_field}` runs): first into a building set without the file's keys (deleted, "
        f"then `VACUUM ANALYZE building`): {_counts(first['counts'])}; {stored.get('stored', 0):,} "
        f"stored, {stored.get('in_grid', 0):,} placed in a micro-grid (numbered: "
        f"{stored.get('numbered', 0):,}), {stored.get('multipart', 0):,} repaired into several "
        f"parts. Again: {_counts(again['counts'])}.",
        "",
        "| piece | first import | again |",
        "|---|---:|---:|",
    ]
    for key, label in PIECES:
        lines.append(f"| {label} | {_pipeline_median(r['first'], key):.2f} s | "
                     f"{_pipeline_median(r['again'], key):.2f} s |")  # fmt: skip
    lines.append(f"| **total** | **{_pipeline_median(r['first'], 'total'):.2f} s** | "
                 f"**{_pipeline_median(r['again'], 'total'):.2f} s** |")  # fmt: skip
    lines.append(END)
    sbs.write_section(BEGIN, END, "\n".join(lines), "Imports (issue 6)")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (sbs.BenchError, BadInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
