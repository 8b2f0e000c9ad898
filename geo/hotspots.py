"""The statistics behind case hotspots: Getis-Ord Gi*, p-values, FDR, confidence, trends.

Pure functions on arrays, no database: the data layer counts a window's cases per cell and
finds each cell's neighbours in PostGIS, then calls these.

Gi* (Getis & Ord 1995; ESRI's Hot Spot Analysis), binary weights w_ij = 1 when j is i or one
of its neighbours, else 0. With n cells, counts x, X̄ the mean and S the population standard
deviation (divided by n):

    z_i = (Σ_j w_ij x_j − X̄ Σ_j w_ij) / (S √((n Σ_j w_ij² − (Σ_j w_ij)²) / (n − 1)))

It is PySAL's ``esda.G_Local(y, w, transform="B", star=True).Zs`` (tested to 1e-6). Empty cells
are cells like any other: they pull the mean down and make the clusters stand out, so every
cell of the scope has to be given, not only those with cases.

Degenerate input never gives NaN: fewer than 3 cells, or all counts equal (S = 0), give z = 0,
and so p = 1, for every cell (there is nothing to compare a cell with); a cell whose
neighbourhood is the whole scope gets z = 0 too (its sum is the total, whatever the counts).

Neighbours (queen contiguity): two cells are neighbours when they share an edge or only a
vertex, that is when their geometries intersect; a cell is not its own neighbour in the lists,
``gi_star`` adds it. Six neighbours for an inner hexagon, eight for an inner square.

p-value: two-sided, from the standard normal, p = erfc(|z| / √2). ``pValue`` is this raw p,
the figure other GIS tools print for a cell.

Confidence: a scope has hundreds of cells tested at once, and with raw p-values about one cell
in ten of a random field would come out at 90 %. So the label comes from the Benjamini–Hochberg
adjusted p-values q (false-discovery rate over the cells of the call): q ≤ 0.01 → 99, q ≤ 0.05
→ 95, q ≤ 0.10 → 90, else NOT_SIGNIFICANT; z > 0 makes it HOT_, z < 0 COLD_. (q ≤ α is exactly
"rejected by the BH step-up procedure at level α".)

Emerging, per cell, from the window asked for and the K windows of the same length just before
it (oldest first); "hot" means a HOT_90, HOT_95 or HOT_99 confidence in that window. The trend
of a cell is the least-squares slope b of its z against the window's number t (0 the oldest, K
the current one), scaled to T = b √Σ(t − t̄)²: were the windows' z independent draws of unit
variance around a constant (their spread when nothing changes), T would be standard normal, so
|T| > ``trend_z`` (default 1.96) is a trend that chance gives about one time in twenty.

- not hot now, or K = 0 (no history to compare with): NONE; cold spots get no trend label;
- hot now, hot in none of the previous windows: NEW;
- hot now, T > trend_z: INTENSIFYING;
- hot now, T < −trend_z: DIMINISHING;
- hot now, no trend, hot in at least half the previous windows: PERSISTENT;
- otherwise (hot now, hot before only now and then, no trend): NONE.

So every label but NONE marks a current hot spot and says how it got there; a hot spot that has
cleared is NONE, as ESRI's Emerging Hot Spot Analysis also requires the last window hot. A z is
relative to its window's scope: a new cluster elsewhere raises the mean and S and so lowers the
z of a cluster whose counts did not change (by about 2 for a strong one), which can make it
DIMINISHING; the label reads "less exceptional than it was", not "fewer cases".

HEX cell codes: ``H{edge meters}-c{column}-r{row}``, e.g. ``H150-c12-r-7`` for i = 12, j = -7 of
PostGIS's ST_HexagonGrid with 150 m edges (``H37.5-…`` for a fractional size). i and j count
from the projection's origin, so a code names the same hexagon on every call that uses the same
projection and size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

CONFIDENCES = ("HOT_99", "HOT_95", "HOT_90", "NOT_SIGNIFICANT", "COLD_90", "COLD_95", "COLD_99")
EMERGING = ("NEW", "INTENSIFYING", "PERSISTENT", "DIMINISHING", "NONE")
# The FDR levels of the confidence labels, strictest first.
LEVELS = ((0.01, "99"), (0.05, "95"), (0.10, "90"))
HOT = frozenset({"HOT_99", "HOT_95", "HOT_90"})


def gi_star(
    counts: np.ndarray | Sequence[float], neighbours: Sequence[Sequence[int]]
) -> np.ndarray:
    """Getis-Ord Gi* z-score of each cell, binary weights, each cell counted in its own sum.

    ``neighbours[i]`` lists the indices of cell i's neighbours; i itself and repeats may be in
    it or not, it makes no difference. numpy alone (bincount over index arrays): scipy is not a
    dependency of the service and a sparse matrix would buy nothing for one product.
    """
    x = np.asarray(counts, dtype=float)
    if x.ndim != 1:
        raise ValueError("counts must be one-dimensional")
    n = len(x)
    if len(neighbours) != n:
        raise ValueError(f"{len(neighbours)} neighbour lists for {n} cells")
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("counts must be finite and not negative")
    z = np.zeros(n)
    if n < 3 or np.ptp(x) == 0:
        return z

    lengths = np.fromiter((len(nb) for nb in neighbours), dtype=np.int64, count=n)
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    cols = np.fromiter((j for nb in neighbours for j in nb), dtype=np.int64, count=len(rows))
    if ((cols < 0) | (cols >= n)).any():
        raise ValueError("a neighbour index is outside the cells")
    # Each cell with itself, each pair once: the weights are 0 or 1.
    pairs = np.unique(np.concatenate([rows * n + cols, np.arange(n, dtype=np.int64) * (n + 1)]))
    rows, cols = pairs // n, pairs % n

    lag = np.bincount(rows, weights=x[cols], minlength=n)  # Σ_j w_ij x_j
    w = np.bincount(rows, minlength=n).astype(float)  # Σ_j w_ij, also Σ_j w_ij² (binary)
    mean = x.mean()
    s = x.std()
    denominator = s * np.sqrt((n * w - w * w) / (n - 1))
    np.divide(lag - mean * w, denominator, out=z, where=denominator > 0)
    return z


def p_values(z: np.ndarray | Sequence[float]) -> np.ndarray:
    """Two-sided p-value of each z under the standard normal: erfc(|z| / √2)."""
    return np.array([math.erfc(abs(float(v)) / math.sqrt(2)) for v in np.ravel(z)])


def benjamini_hochberg(p: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: q_(k) = min over k' ≥ k of m p_(k') / k', at most 1.

    Cell i is significant at false-discovery rate α exactly when q_i ≤ α.
    """
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise ValueError("p must be one-dimensional")
    if ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError("p-values must be between 0 and 1")
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m / np.arange(1, m + 1))  # m/k ≥ 1, so q ≥ p exactly
    q = np.empty(m)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q


def confidence(z: np.ndarray | Sequence[float], q: np.ndarray | Sequence[float]) -> list[str]:
    """HOT_99 … COLD_99 per cell from the sign of z and the FDR-adjusted q (module docstring)."""
    z = np.asarray(z, dtype=float)
    q = np.asarray(q, dtype=float)
    if z.shape != q.shape:
        raise ValueError("z and q differ in length")
    labels = []
    for zi, qi in zip(z.tolist(), q.tolist(), strict=True):
        label = "NOT_SIGNIFICANT"
        if zi != 0:
            for alpha, level in LEVELS:
                if qi <= alpha:
                    label = ("HOT_" if zi > 0 else "COLD_") + level
                    break
        labels.append(label)
    return labels


@dataclass(frozen=True)
class HotspotStats:
    """One window's figures per cell: z, raw p, BH-adjusted q and the confidence label."""

    z: np.ndarray
    p: np.ndarray
    q: np.ndarray
    confidence: list[str]


def hotspot_stats(
    counts: np.ndarray | Sequence[float], neighbours: Sequence[Sequence[int]]
) -> HotspotStats:
    """All of a window's statistics at once, in the order the module docstring gives them."""
    z = gi_star(counts, neighbours)
    p = p_values(z)
    q = benjamini_hochberg(p)
    return HotspotStats(z=z, p=p, q=q, confidence=confidence(z, q))


def emerging(
    current_z: np.ndarray | Sequence[float],
    current_conf: Sequence[str],
    previous_z: Sequence[np.ndarray | Sequence[float]],
    previous_conf: Sequence[Sequence[str]],
    *,
    trend_z: float = 1.96,
) -> list[str]:
    """NEW, INTENSIFYING, PERSISTENT, DIMINISHING or NONE per cell (rule in the module docstring).

    ``previous_z`` and ``previous_conf`` hold one entry per earlier window of the same length,
    oldest first, each with one value per cell in the same cell order as the current window.
    """
    z_now = np.asarray(current_z, dtype=float)
    n = len(z_now)
    if len(current_conf) != n:
        raise ValueError("current z and confidence differ in length")
    if len(previous_z) != len(previous_conf):
        raise ValueError("previous z and confidence differ in number of windows")
    k = len(previous_z)
    if k == 0:
        return ["NONE"] * n
    z_before = np.asarray(previous_z, dtype=float).reshape(k, -1)
    if z_before.shape[1] != n or any(len(c) != n for c in previous_conf):
        raise ValueError("a previous window has a different number of cells")

    hot_before = np.array([[c in HOT for c in window] for window in previous_conf]).sum(axis=0)
    zs = np.vstack([z_before, z_now])  # windows x cells, oldest first
    t = np.arange(k + 1) - k / 2  # window numbers, centred
    trend = (t @ zs) / np.sqrt(t @ t)  # b √Σ(t − t̄)², b = Σ(t − t̄) z / Σ(t − t̄)²
    labels = []
    for i in range(n):
        if current_conf[i] not in HOT:
            labels.append("NONE")
        elif hot_before[i] == 0:
            labels.append("NEW")
        elif trend[i] > trend_z:
            labels.append("INTENSIFYING")
        elif trend[i] < -trend_z:
            labels.append("DIMINISHING")
        elif 2 * hot_before[i] >= k:
            labels.append("PERSISTENT")
        else:
            labels.append("NONE")
    return labels


def queen_neighbours(geometries: Sequence[BaseGeometry]) -> list[list[int]]:
    """Each cell's neighbours sharing an edge or a vertex with it (itself not included), sorted.

    Cells of one grid only touch, so "intersects" is "shares boundary"; an STRtree keeps it
    near-linear. Empty or missing geometries have no neighbours.
    """
    geoms = np.asarray(geometries, dtype=object)
    neighbours: list[list[int]] = [[] for _ in range(len(geoms))]
    if len(geoms) == 0:
        return neighbours
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i != j:
            neighbours[i].append(j)
    for nb in neighbours:
        nb.sort()
    return neighbours


def _size_text(hex_m: float) -> str:
    m = float(hex_m)
    if not math.isfinite(m) or m <= 0:
        raise ValueError("the hexagon size must be a positive number of meters")
    return str(int(m)) if m.is_integer() else repr(m)


def _integer(value: int, what: str) -> int:
    if int(value) != value:
        raise ValueError(f"the {what} must be a whole number")
    return int(value)


def hex_code(col: int, row: int, hex_m: float) -> str:
    """Stable code of a HEX cell from ST_HexagonGrid's i (column), j (row) and the edge length."""
    return f"H{_size_text(hex_m)}-c{_integer(col, 'column')}-r{_integer(row, 'row')}"


_HEX_CODE = re.compile(r"H(\d+(?:\.\d+)?)-c(-?\d+)-r(-?\d+)")


def parse_hex_code(code: str) -> tuple[int, int, float]:
    """(column, row, edge meters) of a code made by ``hex_code``; ValueError for anything else."""
    match = _HEX_CODE.fullmatch(code)
    if match is None:
        raise ValueError(f"not a hexagon cell code: {code!r}")
    return int(match[2]), int(match[3]), float(match[1])
