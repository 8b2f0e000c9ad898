"""Coordinate systems of imported files (``--crs``), converted to WGS-84 longitude/latitude.

GIS offices deliver projected EPSG systems (CGCS2000 Gauss-Kruger zones such as EPSG:4547), done by
pyproj. Coordinates copied from Chinese web maps are not WGS-84 at all: Amap and Tencent publish in
GCJ-02, a legally required non-linear offset of a few hundred metres, and Baidu adds its own on top
(BD-09); left as they are, a register's points land in the wrong building.

GCJ-02 / BD-09 follow the standard public algorithm (Krasovsky ``a = 6378245``, BD-09's
``x_pi = pi * 3000 / 180``), applied only inside the usual rectangle around China
(``out_of_china``: longitude 72.004–137.8347, latitude 0.8293–55.8271): points outside it pass
through unchanged, and neighbouring countries inside it are shifted like China. Import goes from
the file's system to WGS-84, so for gcj02 / bd09 it is the exact iterative inverse (< 1 mm); the
coarse inverse (within ~5 m) and the forward offsets are there for exports and tests.

x is always longitude / easting, whatever the EPSG axis order; everything takes numpy arrays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeVar

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geo.errors import BadInput

Floats = NDArray[np.float64]
G = TypeVar("G", shapely.Geometry, NDArray[np.object_])

ACCEPTED = (
    "an EPSG code (EPSG:4547, 4547, epsg:3857), wgs84 (= EPSG:4326), "
    "gcj02 / GCJ-02 (Amap, Tencent) or bd09 / BD-09 (Baidu)"
)

# --- GCJ-02 / BD-09 ------------------------------------------------------------------------------

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as in the published GCJ-02 algorithm
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # BD-09's constant
_CHINA = (72.004, 137.8347, 0.8293, 55.8271)  # lon min, lon max, lat min, lat max


def _floats(v: ArrayLike) -> Floats:
    return np.asarray(v, dtype=np.float64)


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where the GCJ-02 / BD-09 offsets do not apply (outside the rectangle; NaN too)."""
    lon, lat = _floats(lon), _floats(lat)
    lon_min, lon_max, lat_min, lat_max = _CHINA
    return ~((lon >= lon_min) & (lon <= lon_max) & (lat >= lat_min) & (lat <= lat_max))


def _gcj02_offset(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    """The GCJ-02 offset (degrees) at a WGS-84 point, with no China test."""
    x, y = lon - 105.0, lat - 35.0
    xpi, ypi = x * np.pi, y * np.pi
    common = 20.0 * np.sin(6.0 * xpi) + 20.0 * np.sin(2.0 * xpi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += (common + 20.0 * np.sin(ypi) + 40.0 * np.sin(ypi / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(ypi / 12.0) + 320.0 * np.sin(ypi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += (common + 20.0 * np.sin(xpi) + 40.0 * np.sin(xpi / 3.0)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(xpi / 12.0) + 300.0 * np.sin(xpi / 30.0)) * 2.0 / 3.0
    rad = np.radians(lat)
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / (_A * (1.0 - _EE) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def _wgs_to_gcj(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    dlon, dlat = _gcj02_offset(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_bd(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_to_gcj(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    """The published closed-form inverse of ``_gcj_to_bd`` (off by up to about 0.2 m)."""
    x, y = lon - 0.0065, lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _wgs_to_bd(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    return _gcj_to_bd(*_wgs_to_gcj(lon, lat))


Pair = Callable[[Floats, Floats], tuple[Floats, Floats]]

_TOLERANCE = 1e-10  # degrees, about 0.01 mm
_MAX_ROUNDS = 30


def _invert(forward: Pair, x: Floats, y: Floats, lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    """Solve ``forward(lon, lat) == (x, y)`` by fixed-point iteration from the guess (lon, lat).

    The offsets change by a few metres per kilometre, so each round shrinks the error about a
    thousandfold: three or four rounds reach the tolerance."""
    for _ in range(_MAX_ROUNDS):
        fx, fy = forward(lon, lat)
        ex, ey = fx - x, fy - y
        lon, lat = lon - ex, lat - ey
        if not (np.nanmax(np.abs(ex), initial=0.0) > _TOLERANCE
                or np.nanmax(np.abs(ey), initial=0.0) > _TOLERANCE):  # fmt: skip
            break
    return lon, lat


def _in_china(fn: Pair, lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """``fn`` on the points inside the China rectangle (decided on the input), the rest as is."""
    lon, lat = _floats(lon), _floats(lat)
    inside = ~out_of_china(lon, lat)
    if inside.all():
        return fn(lon, lat)
    x, y = lon.copy(), lat.copy()
    if inside.any():
        x[inside], y[inside] = fn(lon[inside], lat[inside])
    return x, y


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """WGS-84 → GCJ-02 (the published forward offset)."""
    return _in_china(_wgs_to_gcj, lon, lat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike, *, exact: bool = True) -> tuple[Floats, Floats]:
    """GCJ-02 → WGS-84: exact iterative inverse (< 1 mm), or with ``exact=False`` the coarse one
    (subtract the offset taken at the GCJ-02 point: within about 5 m)."""

    def coarse(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        dlon, dlat = _gcj02_offset(lon, lat)
        return lon - dlon, lat - dlat

    def iterative(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        return _invert(_wgs_to_gcj, lon, lat, *coarse(lon, lat))

    return _in_china(iterative if exact else coarse, lon, lat)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """GCJ-02 → BD-09 (Baidu's offset on top of GCJ-02)."""
    return _in_china(_gcj_to_bd, lon, lat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike, *, exact: bool = True) -> tuple[Floats, Floats]:
    """BD-09 → GCJ-02: iterated to the exact inverse, or the published closed form (≤ 0.2 m)."""

    def iterative(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        return _invert(_gcj_to_bd, lon, lat, *_bd_to_gcj(lon, lat))

    return _in_china(iterative if exact else _bd_to_gcj, lon, lat)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """WGS-84 → BD-09 (GCJ-02, then Baidu's offset)."""
    return _in_china(_wgs_to_bd, lon, lat)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike, *, exact: bool = True) -> tuple[Floats, Floats]:
    """BD-09 → WGS-84: the exact iterative inverse of ``wgs84_to_bd09``, or with ``exact=False``
    the published chain (closed-form BD-09 → GCJ-02, then the coarse GCJ-02 inverse: ~5 m)."""

    def coarse(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        glon, glat = _bd_to_gcj(lon, lat)
        dlon, dlat = _gcj02_offset(glon, glat)
        return glon - dlon, glat - dlat

    def iterative(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        return _invert(_wgs_to_bd, lon, lat, *coarse(lon, lat))

    return _in_china(iterative if exact else coarse, lon, lat)


# --- the --crs option ----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _transformer(epsg: int, to_wgs84: bool) -> Transformer:
    """One transformer per system and direction (pyproj transformers are thread-safe)."""
    src, dst = (epsg, 4326) if to_wgs84 else (4326, epsg)
    return Transformer.from_crs(src, dst, always_xy=True)


@dataclass(frozen=True)
class Crs:
    """A file's coordinate system: an EPSG code, or one of the Chinese offset systems."""

    kind: Literal["epsg", "gcj02", "bd09"]
    epsg: int | None = None  # for kind "epsg"

    def __str__(self) -> str:
        return f"EPSG:{self.epsg}" if self.kind == "epsg" else self.kind

    @property
    def _code(self) -> int:
        if self.epsg is None:
            raise ValueError(f"{self} has no EPSG code")
        return self.epsg

    @property
    def is_wgs84(self) -> bool:
        return self.kind == "epsg" and self.epsg == 4326

    def to_wgs84(self, x: ArrayLike, y: ArrayLike) -> tuple[Floats, Floats]:
        """(x, y) in this system (easting/longitude first) → WGS-84 (lon, lat), as arrays.
        Points an EPSG projection cannot convert come back as inf (pyproj's convention)."""
        if self.kind == "gcj02":
            return gcj02_to_wgs84(x, y)
        if self.kind == "bd09":
            return bd09_to_wgs84(x, y)
        x, y = _floats(x), _floats(y)
        if self.is_wgs84:
            return x.copy(), y.copy()
        lon, lat = _transformer(self._code, True).transform(x, y)
        return _floats(lon), _floats(lat)

    def from_wgs84(self, lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
        """WGS-84 (lon, lat) → (x, y) in this system: the forward offsets for gcj02 / bd09."""
        if self.kind == "gcj02":
            return wgs84_to_gcj02(lon, lat)
        if self.kind == "bd09":
            return wgs84_to_bd09(lon, lat)
        lon, lat = _floats(lon), _floats(lat)
        if self.is_wgs84:
            return lon.copy(), lat.copy()
        x, y = _transformer(self._code, False).transform(lon, lat)
        return _floats(x), _floats(y)

    def geometry_to_wgs84(self, geometry: G) -> G:
        """A shapely geometry (or an array of them) in this system → WGS-84, in one vectorised
        call over all vertices. The result is 2D (the model stores 2D geometries)."""
        if self.is_wgs84:
            return geometry
        return _transform(geometry, self.to_wgs84)

    def geometry_from_wgs84(self, geometry: G) -> G:
        """A WGS-84 shapely geometry (or an array of them) → this system, 2D."""
        if self.is_wgs84:
            return geometry
        return _transform(geometry, self.from_wgs84)


WGS84 = Crs("epsg", 4326)


def _transform(geometry: G, fn: Callable[[Floats, Floats], tuple[Floats, Floats]]) -> G:
    def coords(xy: Floats) -> Floats:
        x, y = fn(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))

    return shapely.transform(geometry, coords, include_z=False)


_EPSG = re.compile(r"(?:epsg:)?(\d{1,6})", re.IGNORECASE)
_NAMED = {"wgs84": WGS84, "gcj02": Crs("gcj02"), "bd09": Crs("bd09")}


def parse_crs(text: str) -> Crs:
    """The ``--crs`` option: ``EPSG:4547`` / ``4547`` / ``epsg:3857``, ``wgs84``, ``gcj02`` /
    ``GCJ-02``, ``bd09`` / ``BD-09`` (case, spaces, ``-`` and ``_`` do not matter in names).
    Raises ``BadInput("--crs", …)`` naming what is accepted."""
    cleaned = text.strip()
    named = _NAMED.get(re.sub(r"[\s_-]", "", cleaned).lower())
    if named is not None:
        return named
    match = _EPSG.fullmatch(cleaned.replace(" ", ""))
    if match is None:
        raise BadInput("--crs", f"{text!r} is not a coordinate system; use {ACCEPTED}")
    code = int(match.group(1))
    try:
        crs = CRS.from_epsg(code)
    except CRSError:
        raise BadInput("--crs", f"EPSG:{code} is not a known EPSG code; use {ACCEPTED}") from None
    if not (crs.is_geographic or crs.is_projected):
        raise BadInput(
            "--crs", f"EPSG:{code} ({crs.name}) is not a horizontal coordinate system; "
            f"use {ACCEPTED}"
        )  # fmt: skip
    try:
        _transformer(code, True)
    except Exception as e:  # pyproj raises ProjError / CRSError for systems it cannot convert
        raise BadInput(
            "--crs", f"EPSG:{code} ({crs.name}) cannot be converted to WGS-84: {e}"
        ) from e
    return Crs("epsg", code)
