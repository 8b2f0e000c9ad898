"""GeoJSON coming in from clients: RFC 7946 geometries in lon/lat (EPSG:4326)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.errors import BadInput

GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}


def parse_geometry(value: Any, *, argument: str) -> BaseGeometry:
    """A valid shapely geometry from a GeoJSON object (a Feature's geometry is taken too).

    Raises ``BadInput`` naming ``argument`` for anything that is not a valid geometry with
    longitudes in [-180, 180] and latitudes in [-90, 90].
    """
    if not isinstance(value, dict):
        raise BadInput(argument, "expected a GeoJSON geometry object")
    if value.get("type") == "Feature":
        value = value.get("geometry")
        if not isinstance(value, dict):
            raise BadInput(argument, "the Feature has no geometry")
    kind = value.get("type")
    if kind not in GEOMETRY_TYPES:
        raise BadInput(
            argument,
            f"unknown GeoJSON geometry type {kind!r}; expected one of "
            + ", ".join(sorted(GEOMETRY_TYPES)),
        )
    try:
        geom = shape(value)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise BadInput(argument, f"malformed {kind} coordinates ({exc})") from None
    if geom.is_empty:
        raise BadInput(argument, f"the {kind} is empty")
    coords = shapely.get_coordinates(geom)
    if not all(math.isfinite(c) for c in coords.flat):
        raise BadInput(argument, "coordinates must be finite numbers")
    lon, lat = coords[:, 0], coords[:, 1]
    if lon.min() < -180 or lon.max() > 180 or lat.min() < -90 or lat.max() > 90:
        raise BadInput(
            argument,
            "coordinates out of range: GeoJSON is [longitude, latitude] with longitude in "
            "[-180, 180] and latitude in [-90, 90]",
        )
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise BadInput(argument, f"invalid {kind}: {reason}")
    return geom


def to_geojson_text(geom: BaseGeometry) -> str:
    """For ``ST_GeomFromGeoJSON``: PostGIS builds the geometry, shapely only checked it."""
    return orjson.dumps(shapely.geometry.mapping(geom)).decode()


def check_point(lon: float, lat: float, *, prefix: str = "") -> None:
    """``prefix`` names the input object holding ``lon`` and ``lat`` (e.g. ``near.``)."""
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise BadInput(f"{prefix}lon", f"longitude {lon} is out of range [-180, 180]")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise BadInput(f"{prefix}lat", f"latitude {lat} is out of range [-90, 90]")
