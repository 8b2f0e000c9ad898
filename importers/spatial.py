"""Buildings, merchants and area boundaries into the model: staged by COPY, then merged by SQL
(matched by source key or code, updated only where something changed, placed by containment).
Buildings and merchants outside every grid are kept and wait for grids to be drawn."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from importers import codes
from importers.geometry import from_wkb, prepare
from importers.records import Feature
from importers.run import Options
from importers.staging import stage
from importers.summary import Summary


def _merge(cur: Any, kind: str, summary: Summary, merge: str, insert: str) -> None:
    """Update the matched rows that changed (``merge`` answers updated and matched counts),
    then insert the new ones, and count all three."""
    cur.execute(merge)
    updated, matched = cur.fetchone()
    cur.execute(insert)
    summary.count(kind, "inserted", cur.rowcount)
    summary.count(kind, "updated", updated)
    summary.count(kind, "unchanged", matched - updated)


def _unique(kind: str, features: Sequence[Feature], summary: Summary) -> list[Feature]:
    """The first feature of each key. A repeat with the same values (a register listing a
    licence once per renewal) changes nothing and is counted unchanged; a repeat that differs
    is refused, naming the first. (Readers count what they read.)"""
    seen: dict[str, Feature] = {}
    out = []
    for f in features:
        first = seen.get(f.key) if f.key is not None else None
        if first is not None:
            if (first.wkb, first.fields) == (f.wkb, f.fields):
                summary.count(kind, "unchanged")
            else:
                summary.reject(kind, f.where, "key",
                               f"{f.key} appears again with other values (first at {first.where})")
            continue
        if f.key is not None:
            seen[f.key] = f
        out.append(f)
    return out


def _geometries(
    kind: str, features: Sequence[Feature], summary: Summary, shape: str, options: Options
) -> list[tuple[Feature, BaseGeometry]]:
    geoms = prepare(
        kind, from_wkb([f.wkb for f in features]), [f.where for f in features], summary,
        shape=shape, crs=options.crs, repair=options.repair,
    )  # fmt: skip
    return [(f, g) for f, g in zip(features, geoms, strict=True) if g is not None]


def geometry_key(prefix: str, geom: BaseGeometry) -> str:
    """A source key for a file without one: the same footprint gets the same key again."""
    return f"{prefix}:{hashlib.sha1(geom.wkb).hexdigest()[:20]}"


MERGE_BUILDINGS = """
WITH changed AS (
    UPDATE building b SET name = s.name, address = s.address, levels = s.levels, geom = s.geom
    FROM stage_building s
    WHERE b.source_key = s.key
      AND ((b.name, b.address, b.levels) IS DISTINCT FROM (s.name, s.address, s.levels)
           OR NOT ST_OrderingEquals(b.geom, s.geom))
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed),
       (SELECT count(*) FROM stage_building s JOIN building b ON b.source_key = s.key)
"""

# New buildings inside a micro-grid take its code and the next numbers, west to east and north
# to south; outside every micro-grid their source key is their code until grids are drawn.
INSERT_BUILDINGS = """
WITH placed AS MATERIALIZED (
    SELECT s.*, mg.id AS micro_grid_id, mg.code AS micro_grid_code
    FROM stage_building s
    LEFT JOIN LATERAL (
        SELECT id, code FROM micro_grid m WHERE ST_Contains(m.geom, ST_PointOnSurface(s.geom))
        ORDER BY code LIMIT 1
    ) mg ON true
    WHERE NOT EXISTS (SELECT 1 FROM building b WHERE b.source_key = s.key)
), top AS (
    SELECT b.micro_grid_id, max(right(b.code, 3)::int) AS top FROM building b
    WHERE b.micro_grid_id IN (SELECT micro_grid_id FROM placed) AND b.code ~ '^[0-9]{21}$'
    GROUP BY b.micro_grid_id
), numbered AS MATERIALIZED (
    SELECT placed.*, coalesce(top.top, 0) + row_number() OVER (
               PARTITION BY placed.micro_grid_id
               ORDER BY ST_X(ST_Centroid(geom)), -ST_Y(ST_Centroid(geom)), n) AS number
    FROM placed LEFT JOIN top USING (micro_grid_id)
)
INSERT INTO building (code, source_key, name, address, levels, micro_grid_id, geom)
SELECT CASE WHEN micro_grid_id IS NOT NULL AND number <= 999
            THEN micro_grid_code || lpad(number::text, 3, '0') ELSE key END,
       key, name, address, levels,
       CASE WHEN number <= 999 THEN micro_grid_id END, geom
FROM numbered
"""


def load_buildings(
    cur: Any, features: Sequence[Feature], summary: Summary, options: Options
) -> None:
    kind = "buildings"
    summary.touch(kind)
    rows = []
    for f, g in _geometries(kind, _unique(kind, features, summary), summary, "polygon", options):
        levels = f.fields.get("levels")
        if levels is not None and not (isinstance(levels, int) and 1 <= levels <= 200):
            summary.reject(kind, f.where, "levels", f"{levels!r} is not a number of levels 1…200")
            continue
        key = f.key or geometry_key("gis", g)
        rows.append((len(rows), f.where, key, f.fields.get("name"), f.fields.get("address"),
                     levels, g))  # fmt: skip
    stage(cur, "stage_building", "n integer, where_ text, key text, name text, address text,"
          " levels smallint, geom geometry(MultiPolygon, 4326)", rows)  # fmt: skip
    _merge(cur, kind, summary, MERGE_BUILDINGS, INSERT_BUILDINGS)


MERGE_MERCHANTS = """
WITH changed AS (
    UPDATE merchant m SET name = s.name, category = s.category, address = s.address,
           employees = s.employees, geom = s.geom,
           building_id = (SELECT b.id FROM building b WHERE ST_Contains(b.geom, s.geom)
                          ORDER BY b.code LIMIT 1)
    FROM stage_merchant s
    WHERE m.code = s.code
      AND ((m.name, m.category, m.address, m.employees)
               IS DISTINCT FROM (s.name, s.category, s.address, s.employees)
           OR NOT ST_OrderingEquals(m.geom, s.geom))
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed),
       (SELECT count(*) FROM stage_merchant s JOIN merchant m ON m.code = s.code)
"""

INSERT_MERCHANTS = """
INSERT INTO merchant (code, name, category, address, employees, building_id, geom)
SELECT s.code, s.name, s.category, s.address, s.employees,
       (SELECT b.id FROM building b WHERE ST_Contains(b.geom, s.geom) ORDER BY b.code LIMIT 1),
       s.geom
FROM stage_merchant s
WHERE NOT EXISTS (SELECT 1 FROM merchant m WHERE m.code = s.code)
"""


def load_merchants(
    cur: Any, features: Sequence[Feature], summary: Summary, options: Options
) -> None:
    """Merchants by code (a licence number, or ``osm:n123``); the building they stand in."""
    kind = "merchants"
    summary.touch(kind)
    rows = []
    for f, g in _geometries(kind, _unique(kind, features, summary), summary, "point", options):
        problem = _required(f, ("name", "category"))
        employees = f.fields.get("employees")
        if problem:
            summary.reject(kind, f.where, problem, "missing")
        elif f.key is None:
            summary.reject(kind, f.where, "code", "missing (the business-licence number)")
        elif employees is not None and not (isinstance(employees, int) and employees >= 0):
            summary.reject(kind, f.where, "employees", f"{employees!r} is not a head count")
        else:
            rows.append((f.where, f.key, f.fields["name"], f.fields["category"],
                         f.fields.get("address"), employees, g))  # fmt: skip
    stage(cur, "stage_merchant", "where_ text, code text, name text, category text, address text,"
          " employees integer, geom geometry(Point, 4326)", rows)  # fmt: skip
    if options.scope:
        _within_scope(cur, options.scope, summary)
    _merge(cur, kind, summary, MERGE_MERCHANTS, INSERT_MERCHANTS)


MERGE_STREETS = """
WITH changed AS (
    UPDATE street t SET name = s.name, highway = s.highway, geom = s.geom
    FROM stage_street s
    WHERE t.source_key = s.key
      AND ((t.name, t.highway) IS DISTINCT FROM (s.name, s.highway)
           OR NOT ST_OrderingEquals(t.geom, s.geom))
    RETURNING 1
), added AS (
    INSERT INTO street (source_key, name, highway, geom)
    SELECT key, name, highway, geom FROM stage_street s
    WHERE NOT EXISTS (SELECT 1 FROM street t WHERE t.source_key = s.key)
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM added),
       (SELECT count(*) FROM stage_street s JOIN street t ON t.source_key = s.key)
"""


def load_streets(cur: Any, features: Sequence[Feature], summary: Summary) -> None:
    """Streets and footpaths by key with their highway class (OpenStreetMap's, in WGS-84);
    lines that collapse to a point are refused."""
    kind = "streets"
    summary.touch(kind)
    rows = []
    for f in _unique(kind, features, summary):
        line = shapely.from_wkb(f.wkb) if f.wkb else None
        if line is None or line.geom_type != "LineString" or not line.is_valid:
            summary.reject(kind, f.where, "geometry", "not a line of two or more points")
            continue
        rows.append((f.key, f.fields.get("name"), f.fields["highway"], line))
    stage(cur, "stage_street", "key text, name text, highway text,"
          " geom geometry(LineString, 4326)", rows)  # fmt: skip
    cur.execute(MERGE_STREETS)
    updated, inserted, matched = cur.fetchone()
    summary.count(kind, "inserted", inserted)
    summary.count(kind, "updated", updated)
    summary.count(kind, "unchanged", matched - updated)


def _within_scope(cur: Any, scope: str, summary: Summary) -> None:
    """An upload limited to an area (api.schema.imports): merchants standing outside it are not
    imported (outside), and one whose licence belongs to a merchant outside it is refused."""
    level = codes.level_of(scope)
    if level is None:
        raise ValueError(f"scope {scope!r} is not an area code")
    inside = (f"EXISTS (SELECT 1 FROM {level} a WHERE a.code = %(scope)s"
              " AND ST_Covers(a.geom, {}))")
    cur.execute(f"DELETE FROM stage_merchant s WHERE NOT {inside.format('s.geom')}",
                {"scope": scope})  # fmt: skip
    summary.count("merchants", "outside", cur.rowcount)
    cur.execute(f"SELECT s.where_, s.code FROM stage_merchant s JOIN merchant m ON m.code = s.code"
                f" WHERE NOT {inside.format('m.geom')}", {"scope": scope})  # fmt: skip
    for where, code in cur.fetchall():
        summary.reject("merchants", where, "code", f"{code} is a merchant outside your area")
    cur.execute(f"DELETE FROM stage_merchant s USING merchant m WHERE m.code = s.code"
                f" AND NOT {inside.format('m.geom')}", {"scope": scope})  # fmt: skip


def _required(f: Feature, fields: Sequence[str]) -> str | None:
    return next((k for k in fields if not str(f.fields.get(k) or "").strip()), None)


PARENT_IDS = {
    "subdistrict": ("district", "district_id"),
    "community": ("subdistrict", "subdistrict_id"),
    "grid": ("community", "community_id"),
    "micro_grid": ("grid", "grid_id"),
}


def load_boundaries(
    cur: Any, features: Sequence[Feature], summary: Summary, options: Options, *,
    lenient: bool = False,
) -> None:
    """Areas by code at the level its width says (or the one given as ``fields['level']``);
    the parent is the area whose code is the prefix, already in the database. ``lenient``
    (OpenStreetMap, whose boundaries are a by-product): areas whose code is not valid for this
    system, or whose parent is missing, are skipped and counted as outside, not refused."""
    kind = "boundaries"
    summary.touch(kind)
    by_level: dict[str, list[tuple[Feature, str, BaseGeometry]]] = {}
    skipped: list[str] = []
    coded = []
    for f in features:
        code = str(f.fields.get("code") or "").strip()
        level = f.fields.get("level") or codes.level_of(code)
        problem = _code_problem(code, level, options.codes)
        if problem and lenient:
            skipped.append(f"{f.where} ({problem})")
        elif problem:
            summary.reject(kind, f.where, "code", problem)
        else:
            f.fields.update(code=code, level=level)
            coded.append(f)
    for f, g in _geometries(kind, _unique(kind, coded, summary), summary, "polygon", options):
        by_level.setdefault(f.fields["level"], []).append((f, f.fields["code"], g))
    for level in codes.LEVELS:  # parents first
        if level in by_level:
            skipped += _merge_areas(cur, level, by_level[level], summary, lenient)
    if skipped:
        summary.count(kind, "outside", len(skipped))
        summary.warnings.append(f"{len(skipped):,} boundaries skipped, not usable here: "
                                + "; ".join(skipped[:5]) + (" …" if len(skipped) > 5 else ""))


def _code_problem(code: str, level: str | None, mode: str) -> str | None:
    if not code:
        return "missing"
    width = codes.LEVELS.get(level or "")
    if width is None:
        return f"{code!r} is not a {'/'.join(str(w) for w in codes.LEVELS.values())}-digit code"
    if len(code) != width or not code.isascii() or not code.isdigit():
        return f"{code!r} is not a {width}-digit {level} code"
    return codes.national_problem(level, code) if mode == "national" else None


def _merge_areas(
    cur: Any, level: str, rows: list[tuple[Feature, str, BaseGeometry]], summary: Summary,
    lenient: bool,
) -> list[str]:
    """Merge one level; returns the areas skipped (lenient) for want of a parent."""
    kind = "boundaries"
    parent = PARENT_IDS.get(level)
    table = f"stage_{level}"
    skipped: list[str] = []
    stage(cur, table, "where_ text, code text, name text, geom geometry(MultiPolygon, 4326)",
          ((f.where, code, f.fields.get("name"), g) for f, code, g in rows))  # fmt: skip
    if parent:
        parent_table, parent_column = parent
        width = codes.LEVELS[parent_table]
        cur.execute(
            f"SELECT where_, code FROM {table} s WHERE NOT EXISTS ("
            f" SELECT 1 FROM {parent_table} p WHERE p.code = left(s.code, {width}))"
        )
        orphans = cur.fetchall()
        for where, code in orphans:
            problem = (f"its parent {parent_table.replace('_', '-')} {code[:width]} is not in "
                       "the database: import that level first")  # fmt: skip
            if lenient:
                skipped.append(f"{where} ({problem})")
            else:
                summary.reject(kind, where, "code", problem)
        cur.execute(f"DELETE FROM {table} s WHERE NOT EXISTS ("
                    f" SELECT 1 FROM {parent_table} p WHERE p.code = left(s.code, {width}))")
        set_parent = f", {parent_column} = p.id"
        parent_join = f"JOIN {parent_table} p ON p.code = left(s.code, {width})"
        parent_cols, parent_vals = f", {parent_column}", ", p.id"
    else:
        set_parent = parent_join = parent_cols = parent_vals = ""
    name = "coalesce(s.name, a.name)" if level in ("grid", "micro_grid") else "s.name"
    cur.execute(f"""
        WITH changed AS (
            UPDATE {level} a SET name = {name}, geom = s.geom {set_parent}
            FROM {table} s {parent_join}
            WHERE a.code = s.code
              AND (a.name IS DISTINCT FROM {name} OR NOT ST_OrderingEquals(a.geom, s.geom))
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM changed),
               (SELECT count(*) FROM {table} s JOIN {level} a ON a.code = s.code)
    """)
    updated, matched = cur.fetchone()
    cur.execute(f"""
        INSERT INTO {level} (code, name, geom {parent_cols})
        SELECT s.code, coalesce(s.name, s.code), s.geom {parent_vals}
        FROM {table} s {parent_join}
        WHERE NOT EXISTS (SELECT 1 FROM {level} a WHERE a.code = s.code)
    """)
    summary.count(kind, "inserted", cur.rowcount)
    summary.count(kind, "updated", updated)
    summary.count(kind, "unchanged", matched - updated)
    return skipped
