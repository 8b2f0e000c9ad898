"""How good a drawing of grids is, measured the way issue 7 asks: households per grid (min, max,
coefficient of variation), compactness (Polsby-Popper), contiguity, major streets crossed.

Pure functions on shapely geometries in a local metric projection (`Local`): the same report for
our partition and for a baseline, so the two can be compared figure by figure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from shapely.geometry.base import BaseGeometry

# A street counts as crossed when it runs inside a grid deeper than this (metres): a street that
# only runs along a grid's edge touches the boundary within rounding and is not a crossing.
CROSSING_DEPTH_M = 1.0


class Local:
    """Equirectangular projection around a point, in metres: accurate to well under 0.1 % over a
    community (a few km), linear, so exactly invertible and area ratios survive the round trip;
    no pyproj zone choice needed for a pure function."""

    A = 6_378_137.0  # WGS-84 semi-major axis, m
    E2 = 0.006_694_379_990_14  # WGS-84 first eccentricity squared

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0 = lon0
        self.lat0 = lat0
        phi = math.radians(lat0)
        w = 1 - self.E2 * math.sin(phi) ** 2
        self.kx = math.radians(1) * self.A * math.cos(phi) / math.sqrt(w)  # m per degree lon
        self.ky = math.radians(1) * self.A * (1 - self.E2) / w**1.5  # m per degree lat

    @classmethod
    def around(cls, geom: BaseGeometry) -> Local:
        c = geom.centroid
        return cls(c.x, c.y)

    def to_m(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geom, lambda xy: (xy - (self.lon0, self.lat0)) * (self.kx, self.ky)
        )

    def to_deg(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, lambda xy: xy / (self.kx, self.ky) + (self.lon0, self.lat0))


@dataclass(frozen=True, slots=True)
class GridQuality:
    households: int
    polsby_popper: float
    contiguous: bool
    streets_crossed: int


@dataclass(frozen=True, slots=True)
class Quality:
    grids: tuple[GridQuality, ...]
    min: int
    max: int
    cv: float
    median_polsby_popper: float

    def as_dict(self) -> dict[str, object]:
        """The `--json` shape of the issue (codes are added by the caller)."""
        return {
            "grids": [
                {
                    "households": g.households,
                    "polsbyPopper": round(g.polsby_popper, 4),
                    "contiguous": g.contiguous,
                    "streetsCrossed": g.streets_crossed,
                }
                for g in self.grids
            ],
            "min": self.min,
            "max": self.max,
            "cv": round(self.cv, 4),
            "medianPolsbyPopper": round(self.median_polsby_popper, 4),
        }


def polsby_popper(geom_m: BaseGeometry) -> float:
    """4πA/P² on a metric geometry: 1 for a disc, near 0 for a sliver; holes count in P."""
    p = geom_m.length
    return 4 * math.pi * geom_m.area / (p * p) if p > 0 else 0.0


def cv(values: Sequence[float]) -> float:
    """Population coefficient of variation (σ/μ); 0 for one grid, as nothing varies."""
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 else 0.0


def streets_crossed(geom_m: BaseGeometry, streets_m: Sequence[BaseGeometry]) -> int:
    """How many of the (metric) major street lines run through the grid's interior."""
    inner = geom_m.buffer(-CROSSING_DEPTH_M)
    if inner.is_empty:
        return 0
    return sum(1 for s in streets_m if inner.intersects(s))


def measure(
    polygons_m: Sequence[BaseGeometry],
    households: Sequence[int],
    streets_m: Sequence[BaseGeometry] = (),
) -> Quality:
    """The report for grids given as metric polygons and their household counts."""
    tree = shapely.STRtree(list(streets_m)) if streets_m else None
    grids = []
    for geom, h in zip(polygons_m, households, strict=True):
        near = [streets_m[i] for i in tree.query(geom)] if tree is not None else []
        grids.append(
            GridQuality(
                households=int(h),
                polsby_popper=polsby_popper(geom),
                contiguous=geom.geom_type == "Polygon" and not geom.is_empty,
                streets_crossed=streets_crossed(geom, near),
            )
        )
    hs = [g.households for g in grids]
    return Quality(
        grids=tuple(grids),
        min=min(hs, default=0),
        max=max(hs, default=0),
        cv=cv(hs),
        median_polsby_popper=statistics.median([g.polsby_popper for g in grids]) if grids else 0.0,
    )
