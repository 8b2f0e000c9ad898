"""importers/crs.py: the --crs option, GCJ-02 / BD-09 against published reference points, EPSG
conversions against formulas written out here (not pyproj), and shapely geometries."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import Point, Polygon

from geo.errors import BadInput
from importers.crs import (
    WGS84,
    Crs,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    parse_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

DATA = Path(__file__).parent / "data" / "crs"
GEOD = Geod(ellps="WGS84")


def rows(name: str, kind: str) -> list[dict[str, float]]:
    with (DATA / name).open(encoding="utf-8") as f:
        found = [
            {k: float(v) for k, v in row.items() if k not in ("kind", "place")}
            for row in csv.DictReader(f)
            if row["kind"] == kind
        ]
    assert found, f"no {kind} rows in {name}"
    return found


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


GCJ = rows("reference_points.csv", "wgs84_to_gcj02")


@pytest.mark.parametrize("p", GCJ)
def test_gcj02_forward_reproduces_the_reference_to_1e_6_degrees(p: dict[str, float]) -> None:
    lon, lat = wgs84_to_gcj02(p["lng_a"], p["lat_a"])
    assert abs(lon - p["lng_b"]) < 1e-6 and abs(lat - p["lat_b"]) < 1e-6
    lon, lat = parse_crs("gcj02").from_wgs84(p["lng_a"], p["lat_a"])
    assert abs(lon - p["lng_b"]) < 1e-6 and abs(lat - p["lat_b"]) < 1e-6


@pytest.mark.parametrize("p", GCJ)
def test_gcj02_inverses_land_near_the_reference(p: dict[str, float]) -> None:
    coarse = gcj02_to_wgs84(p["lng_b"], p["lat_b"], exact=False)
    assert metres(*coarse, p["lng_a"], p["lat_a"]) < 5
    exact = gcj02_to_wgs84(p["lng_b"], p["lat_b"])
    assert metres(*exact, p["lng_a"], p["lat_a"]) < 0.5
    # what an import does with --crs gcj02
    assert metres(*parse_crs("GCJ-02").to_wgs84(p["lng_b"], p["lat_b"]), *exact) == 0


def test_bd09_against_the_standard_algorithm() -> None:
    (bd_gcj,) = rows("coordtransform_points.csv", "bd09_to_gcj02")
    lon, lat = bd09_to_gcj02(bd_gcj["lng_a"], bd_gcj["lat_a"], exact=False)
    assert abs(lon - bd_gcj["lng_b"]) < 1e-9 and abs(lat - bd_gcj["lat_b"]) < 1e-9
    exact = bd09_to_gcj02(bd_gcj["lng_a"], bd_gcj["lat_a"])
    assert metres(*exact, bd_gcj["lng_b"], bd_gcj["lat_b"]) < 0.5
    (gcj_bd,) = rows("coordtransform_points.csv", "gcj02_to_bd09")
    lon, lat = gcj02_to_bd09(gcj_bd["lng_a"], gcj_bd["lat_a"])
    assert abs(lon - gcj_bd["lng_b"]) < 1e-9 and abs(lat - gcj_bd["lat_b"]) < 1e-9
    (fwd,) = rows("coordtransform_points.csv", "wgs84_to_gcj02")
    lon, lat = wgs84_to_gcj02(fwd["lng_a"], fwd["lat_a"])
    assert abs(lon - fwd["lng_b"]) < 1e-9 and abs(lat - fwd["lat_b"]) < 1e-9
    (inv,) = rows("coordtransform_points.csv", "gcj02_to_wgs84")
    lon, lat = gcj02_to_wgs84(inv["lng_a"], inv["lat_a"], exact=False)
    assert abs(lon - inv["lng_b"]) < 1e-9 and abs(lat - inv["lat_b"]) < 1e-9
    # WGS-84 → BD-09 is GCJ-02 then Baidu's offset, and --crs bd09 undoes both
    wlon, wlat = 116.404, 39.915
    blon, blat = wgs84_to_bd09(wlon, wlat)
    assert (blon, blat) == gcj02_to_bd09(*wgs84_to_gcj02(wlon, wlat))
    assert metres(*parse_crs("BD-09").to_wgs84(blon, blat), wlon, wlat) < 0.001
    assert metres(*bd09_to_wgs84(blon, blat, exact=False), wlon, wlat) < 5


def _bd09_to_gcj02_with_pi(lng: float, lat: float) -> tuple[float, float]:
    """eviltransform's old Python bd2gcj (issue #43: ``pi`` where BD-09 has pi * 3000 / 180)."""
    x, y = lng - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * math.pi)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * math.pi)
    return z * math.cos(theta), z * math.sin(theta)


@pytest.mark.parametrize("p", rows("reference_points.csv", "bd09_to_wgs84"))
def test_the_bd09_reference_rows_come_from_the_pi_bug(p: dict[str, float]) -> None:
    """The shared bd09_to_wgs84 rows are reproduced to 1e-6° by the old formula followed by this
    module's coarse GCJ-02 inverse, and not by the standard BD-09 (tests/data/crs/SOURCE.md)."""
    lon, lat = gcj02_to_wgs84(*_bd09_to_gcj02_with_pi(p["lng_a"], p["lat_a"]), exact=False)
    assert abs(lon - p["lng_b"]) < 1e-6 and abs(lat - p["lat_b"]) < 1e-6
    standard = bd09_to_wgs84(p["lng_a"], p["lat_a"], exact=False)
    assert 5 < metres(*standard, p["lng_b"], p["lat_b"]) < 50  # 9.8 and 40.5 m


def test_exact_inverses_round_trip_across_china() -> None:
    rng = np.random.default_rng(6)
    lon, lat = rng.uniform(74, 135, 20_000), rng.uniform(18, 53, 20_000)
    for forward, inverse in ((wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84)):
        x, y = forward(lon, lat)
        assert np.abs(x - lon).max() > 1e-3  # the offsets are hundreds of metres
        back_lon, back_lat = inverse(x, y)
        assert np.abs(back_lon - lon).max() < 1e-9 and np.abs(back_lat - lat).max() < 1e-9
        coarse_lon, coarse_lat = inverse(x, y, exact=False)
        assert np.max(GEOD.inv(coarse_lon, coarse_lat, lon, lat)[2]) < 10


OUTSIDE = {"Helsinki": (24.9384, 60.1699), "Boston": (-71.0589, 42.3601),
           "New York": (-73.9857, 40.7484), "Sydney": (151.2093, -33.8688)}  # fmt: skip


def test_points_outside_china_are_left_unchanged() -> None:
    lon = np.array([p[0] for p in OUTSIDE.values()] + [116.404])
    lat = np.array([p[1] for p in OUTSIDE.values()] + [39.915])
    assert out_of_china(lon, lat).tolist() == [True] * len(OUTSIDE) + [False]
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84, wgs84_to_bd09, bd09_to_wgs84, gcj02_to_bd09,
               bd09_to_gcj02, parse_crs("gcj02").to_wgs84, parse_crs("bd09").to_wgs84):  # fmt: skip
        x, y = fn(lon, lat)
        assert x[:-1].tolist() == lon[:-1].tolist() and y[:-1].tolist() == lat[:-1].tolist()
        assert (x[-1], y[-1]) != (lon[-1], lat[-1])  # the Beijing point in the same call moved
    nan = gcj02_to_wgs84([np.nan], [np.nan])
    assert np.isnan(nan[0]).all() and np.isnan(nan[1]).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EPSG:4547", Crs("epsg", 4547)),
        ("4547", Crs("epsg", 4547)),
        ("epsg:3857", Crs("epsg", 3857)),
        (" EPSG:32650 ", Crs("epsg", 32650)),
        ("gcj02", Crs("gcj02")),
        ("GCJ-02", Crs("gcj02")),
        ("bd09", Crs("bd09")),
        ("BD-09", Crs("bd09")),
        ("wgs84", WGS84),
        ("WGS-84", WGS84),
        ("4326", WGS84),
    ],
)
def test_parse_crs(text: str, expected: Crs) -> None:
    assert parse_crs(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mars", "'mars' is not a coordinate system"),
        ("", "'' is not a coordinate system"),
        ("EPSG:4547x", "is not a coordinate system"),
        ("ESRI:102100", "is not a coordinate system"),
        ("EPSG:99999", "EPSG:99999 is not a known EPSG code"),
        ("5773", "EPSG:5773 (EGM96 height) is not a horizontal coordinate system"),
    ],
)
def test_bad_crs_text_says_what_is_accepted(text: str, problem: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_crs(text)
    assert e.value.argument == "--crs"
    assert problem in e.value.message
    for accepted in ("EPSG:4547", "gcj02", "bd09", "wgs84"):
        assert accepted in e.value.message


def web_mercator(lon: float, lat: float) -> tuple[float, float]:
    r = 6378137.0
    return r * math.radians(lon), r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def gauss_kruger(lon: float, lat: float, lon0: float) -> tuple[float, float]:
    """Transverse Mercator on the CGCS2000 ellipsoid, k0 = 1, false easting 500 km (Krüger's
    series to n⁴, sub-millimetre within a 3° zone): EPSG:4547 is the zone of 114°E."""
    a, f = 6378137.0, 1 / 298.257222101
    n = f / (2 - f)
    big_a = a / (1 + n) * (1 + n**2 / 4 + n**4 / 64)
    alpha = (
        n / 2 - 2 * n**2 / 3 + 5 * n**3 / 16 + 41 * n**4 / 180,
        13 * n**2 / 48 - 3 * n**3 / 5 + 557 * n**4 / 1440,
        61 * n**3 / 240 - 103 * n**4 / 140,
        49561 * n**4 / 161280,
    )
    phi, lam = math.radians(lat), math.radians(lon - lon0)
    c = 2 * math.sqrt(n) / (1 + n)
    t = math.sinh(math.atanh(math.sin(phi)) - c * math.atanh(c * math.sin(phi)))
    xi, eta = math.atan2(t, math.cos(lam)), math.atanh(math.sin(lam) / math.sqrt(1 + t * t))
    easting = eta + sum(
        al * math.cos(2 * j * xi) * math.sinh(2 * j * eta) for j, al in enumerate(alpha, 1)
    )
    northing = xi + sum(
        al * math.sin(2 * j * xi) * math.cosh(2 * j * eta) for j, al in enumerate(alpha, 1)
    )
    return 500000 + big_a * easting, big_a * northing


PLACES = [(116.404, 39.915), (114.3055, 30.5928), (113.2644, 23.1291), (115.4, 22.6)]


@pytest.mark.parametrize(("lon", "lat"), PLACES)
def test_epsg_3857_and_4547_against_the_formulas(lon: float, lat: float) -> None:
    x, y = web_mercator(lon, lat)
    back = parse_crs("EPSG:3857").to_wgs84([x], [y])
    assert abs(back[0][0] - lon) < 1e-9 and abs(back[1][0] - lat) < 1e-9
    fx, fy = parse_crs("3857").from_wgs84(lon, lat)
    assert abs(fx - x) < 1e-3 and abs(fy - y) < 1e-3

    gk = parse_crs("EPSG:4547")  # x is the easting, though EPSG lists northing first
    e, n = gauss_kruger(lon, lat, 114.0)
    back = gk.to_wgs84([e], [n])
    assert metres(back[0][0], back[1][0], lon, lat) < 0.001
    fe, fn = gk.from_wgs84(lon, lat)
    assert abs(fe - e) < 0.001 and abs(fn - n) < 0.001


def test_epsg_4547_known_values_and_arrays() -> None:
    gk = parse_crs("4547")
    lon, lat = gk.to_wgs84([500000.0, 500000.0], [0.0, 3320113.398])  # on the central meridian
    assert np.allclose(lon, 114.0, atol=1e-9)
    assert abs(lat[0]) < 1e-9 and abs(lat[1] - 30.0) < 1e-8  # GRS80 meridian arc to 30°
    rng = np.random.default_rng(4547)
    e, n = rng.uniform(380_000, 620_000, 100_000), rng.uniform(2_400_000, 4_700_000, 100_000)
    lon, lat = gk.to_wgs84(e, n)
    e2, n2 = gk.from_wgs84(lon, lat)
    assert np.abs(e2 - e).max() < 1e-6 and np.abs(n2 - n).max() < 1e-6
    same = WGS84.to_wgs84([1.0, 3.0], [2.0, 4.0])
    assert same[0].tolist() == [1.0, 3.0] and same[1].tolist() == [2.0, 4.0]


def test_polygons_are_converted_vertex_by_vertex() -> None:
    shell = [(116.40, 39.91), (116.41, 39.91), (116.41, 39.92), (116.40, 39.92), (116.40, 39.91)]
    hole = [(116.403, 39.913), (116.406, 39.913), (116.406, 39.916), (116.403, 39.913)]
    wgs = Polygon(shell, [hole])
    for text in ("gcj02", "bd09", "EPSG:3857", "EPSG:4547"):
        crs = parse_crs(text)
        there = crs.geometry_from_wgs84(wgs)
        assert there.geom_type == "Polygon" and len(there.interiors) == 1
        x, y = crs.from_wgs84(*np.array(shell).T)
        assert np.allclose(np.array(there.exterior.coords), np.column_stack((x, y)), atol=1e-9)
        back = crs.geometry_to_wgs84(there)
        assert np.allclose(shapely.get_coordinates(back), shapely.get_coordinates(wgs), atol=1e-9)
        assert back.is_valid and abs(back.area - wgs.area) < 1e-12

    # an array of geometries in one call, a 3D one flattened, an empty one kept
    gcj = Crs("gcj02")
    many = np.array([Point(116.404, 39.915, 50.0), Point(24.94, 60.17), Polygon()])
    out = gcj.geometry_to_wgs84(many)
    expected = gcj02_to_wgs84(116.404, 39.915)
    assert not out[0].has_z and (out[0].x, out[0].y) == (expected[0], expected[1])
    assert out[1].equals(Point(24.94, 60.17)) and out[2].is_empty
    assert WGS84.geometry_to_wgs84(wgs) is wgs
