"""Geometries of a file made fit for the model, all at once (arrays, not a loop per feature):
to WGS-84, finite, in range, of the right type, valid (repaired or refused), not absurdly large.
What is refused is named by feature and why; what is repaired is counted."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from importers.summary import Summary

# No real footprint or boundary has more; a hostile file may, and GEOS would grind on it.
MAX_VERTICES = 200_000
# A building larger than this (a big airport terminal is about 1 km²) is a drawing mistake.
MAX_FOOTPRINT_M2 = 2_000_000.0
M_PER_DEGREE = 111_320.0

POLYGONAL = ("Polygon", "MultiPolygon")
TYPES = {
    "polygon": POLYGONAL,
    "point": ("Point",),
}


def from_wkb(wkbs: Sequence[bytes | None]) -> np.ndarray:
    """Unreadable WKB becomes None (refused by `prepare`), not an exception mid-file."""
    with warnings.catch_warnings():  # NaN coordinates: refused by `prepare`, by name
        warnings.simplefilter("ignore", RuntimeWarning)
        return shapely.from_wkb(np.array(wkbs, dtype=object), on_invalid="ignore")


def prepare(
    kind: str,
    geoms: np.ndarray,
    wheres: Sequence[str],
    summary: Summary,
    *,
    shape: str,
    crs: Any = None,
    repair: bool = True,
) -> list[BaseGeometry | None]:
    """WGS-84 geometries fit to store, None where the feature was refused (with a Problem).
    ``shape`` is "polygon" (footprints, boundaries: MultiPolygons come out) or "point";
    ``crs`` the importers.crs.Crs the file is in (None: WGS-84)."""
    geoms = np.asarray(geoms, dtype=object)
    out: list[BaseGeometry | None] = list(geoms)

    def refuse(i: int, message: str) -> None:
        out[i] = None
        summary.reject(kind, wheres[i], "geometry", message)

    for i in np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms)):
        refuse(int(i), "no geometry (empty or unreadable)")
    alive = np.array([g is not None for g in out], dtype=bool)

    counts = np.zeros(len(out), dtype=np.int64)
    counts[alive] = shapely.get_num_coordinates(geoms[alive])
    for i in np.flatnonzero(counts > MAX_VERTICES):
        refuse(int(i), f"{counts[i]:,} vertices: more than {MAX_VERTICES:,}, refused")
    alive = np.array([g is not None for g in out], dtype=bool)

    if crs is not None and not crs.is_wgs84:
        converted = crs.geometry_to_wgs84(np.array(out, dtype=object)[alive])
        for i, g in zip(np.flatnonzero(alive), converted, strict=True):
            out[int(i)] = g
    geoms = np.array(out, dtype=object)
    coords, index = shapely.get_coordinates(geoms[alive], return_index=True)
    bad = np.zeros(int(alive.sum()), dtype=bool)
    if len(coords):
        np.logical_or.at(bad, index, ~np.isfinite(coords).all(axis=1))
    for i in np.flatnonzero(alive)[bad]:
        refuse(int(i), "coordinates are not finite numbers (NaN or Infinity), or are outside "
               "what the coordinate system can convert")
    alive = np.array([g is not None for g in out], dtype=bool)

    for i in np.flatnonzero(alive):
        problem = range_problem(out[i])
        if problem:
            refuse(int(i), problem)
        elif out[i].geom_type not in TYPES[shape]:
            refuse(int(i), f"a {out[i].geom_type}, where a {shape} was expected")
    alive = np.array([g is not None for g in out], dtype=bool)

    live = np.array(out, dtype=object)[alive]
    valid = shapely.is_valid(live) if len(live) else np.array([], dtype=bool)
    for i, ok in zip(np.flatnonzero(alive), valid, strict=True):
        if ok:
            continue
        reason = shapely.is_valid_reason(out[i])
        fixed = _polygonal(shapely.make_valid(out[i])) if repair and shape == "polygon" else None
        if fixed is None:
            what = "invalid geometry" if not repair else "invalid geometry that cannot be repaired"
            refuse(int(i), f"{what} ({reason})")
        else:
            out[i] = fixed
            summary.count(kind, "repaired")

    if shape == "polygon":
        for i, g in enumerate(out):
            if g is None:
                continue
            if g.geom_type == "Polygon":
                out[i] = g = shapely.MultiPolygon([g])
            if kind == "buildings" and _area_m2(g) > MAX_FOOTPRINT_M2:
                refuse(i, f"a footprint of {_area_m2(g) / 1e6:.1f} km²: larger than any building")
    return out


def range_problem(geom: BaseGeometry) -> str | None:
    """Why these are not WGS-84 longitudes and latitudes: swapped, or projected metres."""
    x0, y0, x1, y1 = geom.bounds
    if -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90:
        return None
    if -90 <= x0 <= x1 <= 90 and -180 <= y0 <= y1 <= 180:
        return (f"latitude {max(abs(y0), abs(y1)):g} is out of range (-90…90): are longitude "
                "and latitude swapped?")  # fmt: skip
    return (f"coordinates ({x0:g}, {y0:g}) are not WGS-84 longitude/latitude: is the file in a "
            "projected CRS? Name it with --crs (an EPSG code, gcj02 or bd09)")  # fmt: skip


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in POLYGONAL and not p.is_empty]
    polygons = [q for p in parts for q in shapely.get_parts(p)]
    if not polygons:
        return None
    fixed = shapely.MultiPolygon(polygons)
    return fixed if fixed.is_valid else None


def _area_m2(geom: BaseGeometry) -> float:
    lat = geom.centroid.y
    return geom.area * M_PER_DEGREE**2 * np.cos(np.radians(lat))


def points(lons: Sequence[float | None], lats: Sequence[float | None]) -> np.ndarray:
    """Points from number columns; a missing number gives None (refused as "no geometry")."""
    out = np.empty(len(lons), dtype=object)
    for i, (x, y) in enumerate(zip(lons, lats, strict=True)):
        out[i] = None if x is None or y is None else shapely.Point(x, y)
    return out
