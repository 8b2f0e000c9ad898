"""Hotspot statistics without a database: Gi* against PySAL's esda on the same cells and weights,
the neighbours against libpysal's Queen, Benjamini–Hochberg against its definition, the labels
on planted clusters and constructed histories, degenerate input, and the hexagon codes."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from geo.hotspots import (
    CONFIDENCES,
    benjamini_hochberg,
    confidence,
    emerging,
    gi_star,
    hex_code,
    hotspot_stats,
    p_values,
    parse_hex_code,
    queen_neighbours,
)

COLS, ROWS = 12, 9
H = math.sqrt(3)


def squares() -> list[Polygon]:
    """A COLS x ROWS grid of unit squares, index = row * COLS + col."""
    return [box(c, r, c + 1, r + 1) for r in range(ROWS) for c in range(COLS)]


def hexagons() -> list[Polygon]:
    """A COLS x ROWS grid of flat-topped hexagons with 2-unit edges, odd columns shifted up.

    Every y is √3 times a whole number, so shared vertices are the very same floats.
    """
    cells = []
    for r in range(ROWS):
        for c in range(COLS):
            x, k = 3 * c, 2 * r + c % 2
            ring = [(x + 2, k), (x + 1, k + 1), (x - 1, k + 1), (x - 2, k), (x - 1, k - 1)]
            ring.append((x + 1, k - 1))
            cells.append(Polygon([(px, H * pk) for px, pk in ring]))
    return cells


GRIDS = {"squares": squares, "hexagons": hexagons}


def esda_z(counts: np.ndarray, neighbours: list[list[int]]) -> np.ndarray:
    """PySAL's Gi* z-scores; esda adds the self-weight itself (star=True), so no self here."""
    from esda import G_Local
    from libpysal.weights import W

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands, and the diagonal esda fills in
        w = W({i: list(nb) for i, nb in enumerate(neighbours)})
        return np.asarray(G_Local(counts, w, transform="B", star=True, permutations=0).Zs)


def planted(grid: str, seed: int) -> tuple[np.ndarray, int, int]:
    """Counts around 10 with a hot cluster (about 30) and a cold one (0): (counts, hot, cold)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(10, COLS * ROWS).astype(float)
    neighbours = queen_neighbours(GRIDS[grid]())
    hot, cold = 3 * COLS + 3, 5 * COLS + 8
    for centre, value in ((hot, 30), (cold, 0)):
        for i in [centre, *neighbours[centre]]:
            counts[i] = rng.poisson(value)
    return counts, hot, cold


# --------------------------------------------------------------------------------------------
# Neighbours
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", GRIDS)
def test_queen_neighbours_are_libpysal_queen(grid: str) -> None:
    from libpysal.weights import Queen

    cells = GRIDS[grid]()
    mine = queen_neighbours(cells)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Queen.from_iterable(cells)
    assert mine == [sorted(theirs.neighbors[i]) for i in range(len(cells))]
    inner = 4 * COLS + 5
    assert len(mine[inner]) == (8 if grid == "squares" else 6)
    assert all(i not in nb for i, nb in enumerate(mine))
    # A square's diagonal cell shares only a vertex and still counts.
    if grid == "squares":
        assert inner + COLS + 1 in mine[inner]


# --------------------------------------------------------------------------------------------
# Gi* is PySAL's
# --------------------------------------------------------------------------------------------

FIELDS = ["planted", "poisson", "sparse"]


def field(name: str, grid: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "planted":
        return planted(grid, seed)[0]
    if name == "poisson":
        return rng.poisson(4, COLS * ROWS).astype(float)
    # Mostly empty cells, the usual case for a short window on a fine grid.
    return (rng.random(COLS * ROWS) < 0.1) * rng.integers(1, 5, COLS * ROWS).astype(float)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("name", FIELDS)
def test_gi_star_matches_esda(grid: str, name: str) -> None:
    neighbours = queen_neighbours(GRIDS[grid]())
    worst = 0.0
    for seed in range(5):
        counts = field(name, grid, seed)
        z, theirs = gi_star(counts, neighbours), esda_z(counts, neighbours)
        worst = max(worst, float(np.max(np.abs(z - theirs))))
    print(f"max |z - esda z| {grid}/{name}: {worst:.3g}")
    assert worst < 1e-6


def test_gi_star_matches_esda_on_an_irregular_graph() -> None:
    """Random symmetric neighbours of varied degree, one island, one cell next to most others."""
    rng = np.random.default_rng(7)
    n = 60
    pairs = {(i, j) for i, j in itertools.combinations(range(1, n), 2) if rng.random() < 0.08}
    pairs |= {(1, j) for j in range(2, n, 2)}
    neighbours: list[list[int]] = [[] for _ in range(n)]  # cell 0 stays an island
    for i, j in pairs:
        neighbours[i].append(j)
        neighbours[j].append(i)
    counts = rng.poisson(3, n).astype(float)
    assert np.max(np.abs(gi_star(counts, neighbours) - esda_z(counts, neighbours))) < 1e-6


def test_gi_star_is_the_documented_formula() -> None:
    """Term by term, in plain Python, on a path of 5 cells with one doubled neighbour and self."""
    x = [1.0, 4.0, 0.0, 7.0, 2.0]
    path = [[1], [0, 2], [1, 3], [2, 4], [3]]
    n, mean = len(x), sum(x) / len(x)
    s = math.sqrt(sum((v - mean) ** 2 for v in x) / n)
    expected = []
    for i, nb in enumerate(path):
        members = {i, *nb}
        w = len(members)
        top = sum(x[j] for j in members) - mean * w
        expected.append(top / (s * math.sqrt((n * w - w * w) / (n - 1))))
    noisy = [[*nb, i, nb[0]] for i, nb in enumerate(path)]  # self and repeats change nothing
    np.testing.assert_allclose(gi_star(x, path), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gi_star(x, noisy), expected, rtol=0, atol=1e-12)


def test_p_values_are_two_sided_normal() -> None:
    from scipy.stats import norm

    z = np.array([-4.2, -1.96, -0.3, 0.0, 0.3, 1.645, 1.96, 2.576, 9.0, 40.0])
    np.testing.assert_allclose(p_values(z), 2 * norm.sf(np.abs(z)), rtol=1e-12, atol=1e-300)
    assert p_values([1.959964])[0] == pytest.approx(0.05, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Benjamini–Hochberg
# --------------------------------------------------------------------------------------------


def bh_brute_force(p: list[float]) -> list[float]:
    """q_i = min(1, min over j with p_j ≥ p_i of m p_j / rank_j), rank_j = #{l: p_l ≤ p_j}."""
    m = len(p)
    rank = [sum(pl <= pj for pl in p) for pj in p]
    return [min(1.0, min(m * pj / rank[j] for j, pj in enumerate(p) if pj >= pi)) for pi in p]


def bh_rejects(p: list[float], alpha: float) -> set[int]:
    """The step-up procedure: the largest k with p_(k) ≤ k α / m, reject every p ≤ p_(k)."""
    m, ordered = len(p), sorted(p)
    passing = [k for k in range(1, m + 1) if ordered[k - 1] <= k * alpha / m]
    if not passing:
        return set()
    cut = ordered[max(passing) - 1]
    return {i for i, v in enumerate(p) if v <= cut}


def test_benjamini_hochberg_is_its_definition() -> None:
    rng = np.random.default_rng(3)
    for trial in range(200):
        m = int(rng.integers(1, 40))
        p = rng.beta(0.4, 1.0, m)
        if trial % 3 == 0:  # ties, zeros and ones
            p = np.round(p, 1)
        q = benjamini_hochberg(p)
        np.testing.assert_allclose(q, bh_brute_force(p.tolist()), rtol=1e-12, atol=0)
        for alpha in (0.01, 0.05, 0.1, 0.25):
            assert {i for i in range(m) if q[i] <= alpha} == bh_rejects(p.tolist(), alpha)
        assert np.all(q >= p) and np.all(q <= 1)
    assert benjamini_hochberg([]).shape == (0,)
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5, 1.2])
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5, float("nan")])


# --------------------------------------------------------------------------------------------
# Confidence
# --------------------------------------------------------------------------------------------


def test_confidence_thresholds() -> None:
    z = [3, 3, 3, 3, 3, -3, -3, -3, -3, 0, 2]
    q = [0.001, 0.01, 0.03, 0.1, 0.2, 0.005, 0.04, 0.07, 0.5, 0.0, 0.100001]
    assert confidence(z, q) == [
        "HOT_99",
        "HOT_99",
        "HOT_95",
        "HOT_90",
        "NOT_SIGNIFICANT",
        "COLD_99",
        "COLD_95",
        "COLD_90",
        "NOT_SIGNIFICANT",
        "NOT_SIGNIFICANT",
        "NOT_SIGNIFICANT",
    ]
    assert set(confidence(z, q)) <= set(CONFIDENCES)


@pytest.mark.parametrize("grid", GRIDS)
def test_planted_clusters_come_out_hot_and_cold(grid: str) -> None:
    for seed in range(5):
        counts, hot, cold = planted(grid, seed)
        stats = hotspot_stats(counts, queen_neighbours(GRIDS[grid]()))
        assert stats.confidence[hot] == "HOT_99"
        assert stats.confidence[cold] == "COLD_99"
        assert stats.z[hot] > 0 > stats.z[cold]
        assert stats.p[hot] <= stats.q[hot] < 0.01
        assert "HOT_" not in " ".join(stats.confidence[i] for i in range(COLS))  # far row


@pytest.mark.parametrize("grid", GRIDS)
def test_random_field_is_mostly_not_significant(grid: str) -> None:
    neighbours = queen_neighbours(GRIDS[grid]())
    rng = np.random.default_rng(11)
    labels = []
    for _ in range(30):
        labels += hotspot_stats(rng.poisson(5, COLS * ROWS), neighbours).confidence
    share = labels.count("NOT_SIGNIFICANT") / len(labels)
    # Raw p < 0.10 would flag about a tenth; BH keeps false discoveries rare.
    assert share >= 0.97, share


# --------------------------------------------------------------------------------------------
# Emerging
# --------------------------------------------------------------------------------------------


NS = "NOT_SIGNIFICANT"
# (what it shows, previous z oldest first, previous confidence, z now, confidence now, label)
HISTORIES = [
    ("hot now, never before", [0.5, 0.1, 0.8], [NS, NS, NS], 4.0, "HOT_99", "NEW"),
    (
        "hot now, z rising",
        [3.0, 3.5, 4.5],
        ["HOT_95"] * 3,
        6.0,
        "HOT_99",
        "INTENSIFYING",
    ),
    (
        "rising out of nothing, hot once",
        [0.2, 1.0, 2.9],
        [NS, NS, "HOT_90"],
        4.5,
        "HOT_99",
        "INTENSIFYING",
    ),
    ("hot every time, z steady", [3.5, 3.4, 3.6], ["HOT_95"] * 3, 3.6, "HOT_95", "PERSISTENT"),
    (
        "hot 2 of 4 before, z steady",
        [3.0, 0.9, 3.2, 2.0],
        ["HOT_95", NS, "HOT_95", NS],
        3.1,
        "HOT_95",
        "PERSISTENT",
    ),
    ("still hot, z falling", [6.0, 5.0, 4.0], ["HOT_99"] * 3, 2.9, "HOT_90", "DIMINISHING"),
    (
        "hot now and once of 3 before, z steady",
        [3.0, 0.5, 0.5],
        ["HOT_95", NS, NS],
        1.8,
        "HOT_90",
        "NONE",
    ),
    ("was hot every time, has cleared", [4.0, 4.0, 4.0], ["HOT_99"] * 3, 0.5, NS, "NONE"),
    ("a cold spot", [0.2, 0.3, 0.1], [NS, NS, NS], -4.0, "COLD_99", "NONE"),
    ("a cold spot getting colder", [-2.0, -3.0, -3.5], ["COLD_90"] * 3, -5.0, "COLD_99", "NONE"),
]


def test_emerging_labels_on_constructed_histories() -> None:
    """All cells in one call (one cell per history), so the per-cell bookkeeping is tested too."""
    windows = len(HISTORIES[0][1])
    same = [h for h in HISTORIES if len(h[1]) == windows]
    previous_z = [[h[1][w] for h in same] for w in range(windows)]
    previous_conf = [[h[2][w] for h in same] for w in range(windows)]
    got = emerging([h[3] for h in same], [h[4] for h in same], previous_z, previous_conf)
    assert dict(zip([h[0] for h in same], got, strict=True)) == {h[0]: h[5] for h in same}
    for what, z_before, conf_before, z_now, conf_now, label in HISTORIES:
        got_one = emerging([z_now], [conf_now], [[v] for v in z_before], [[c] for c in conf_before])
        assert got_one == [label], what
    assert {h[5] for h in HISTORIES} == {"NEW", "INTENSIFYING", "PERSISTENT", "DIMINISHING", "NONE"}


def test_emerging_edges() -> None:
    # No previous window: nothing to compare with.
    assert emerging([5.0, 0.0], ["HOT_99", NS], [], []) == ["NONE", "NONE"]
    # One window back: T = (z now - z before) / √2, here 0.35.
    assert emerging([4.0], ["HOT_99"], [[3.5]], [["HOT_99"]]) == ["PERSISTENT"]
    assert emerging([4.0], ["HOT_99"], [[3.5]], [["HOT_99"]], trend_z=0.3) == ["INTENSIFYING"]
    assert emerging([4.0], ["HOT_99"], [[3.5]], [["HOT_99"]], trend_z=0.4) == ["PERSISTENT"]
    with pytest.raises(ValueError):
        emerging([1.0, 2.0], [NS, NS], [[1.0]], [[NS]])
    with pytest.raises(ValueError):
        emerging([1.0], [NS], [[1.0], [2.0]], [[NS]])


@pytest.mark.parametrize(
    ("means", "label"),
    [
        ((18, 18, 18, 18), "PERSISTENT"),
        ((5, 5, 5, 18), "NEW"),
        ((9, 12, 16, 24), "INTENSIFYING"),
        ((24, 18, 14, 11), "DIMINISHING"),
    ],
)
def test_emerging_on_counts(means: tuple[int, ...], label: str) -> None:
    """A cluster's mean count over four windows, the rest of the scope steady around 5."""
    cells = hexagons()
    neighbours = queen_neighbours(cells)
    centre = 4 * COLS + 5
    for seed in range(5):
        rng = np.random.default_rng(seed)
        windows = []
        for mean in means:
            counts = rng.poisson(5, len(cells)).astype(float)
            for i in [centre, *neighbours[centre]]:
                counts[i] = rng.poisson(mean)
            windows.append(hotspot_stats(counts, neighbours))
        *before, now = windows
        labels = emerging(
            now.z, now.confidence, [w.z for w in before], [w.confidence for w in before]
        )
        assert labels[centre] == label, seed
        far = [i for i in range(len(cells)) if i not in (centre, *neighbours[centre])]
        assert sum(labels[i] != "NONE" for i in far) <= 3


# --------------------------------------------------------------------------------------------
# Degenerate input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "neighbours"),
    [
        ([], []),
        ([3.0], [[]]),
        ([0.0, 9.0], [[1], [0]]),
        ([4.0] * 6, [[1], [0, 2], [1, 3], [2, 4], [3, 5], [4]]),
        ([0.0] * 6, [[1], [0, 2], [1, 3], [2, 4], [3, 5], [4]]),
        ([1.0, 2.0, 3.0], [[], [], []]),
    ],
    ids=["no cells", "one cell", "two cells", "all equal", "all zero", "no neighbours"],
)
def test_degenerate_input_gives_no_nan(counts: list[float], neighbours: list[list[int]]) -> None:
    stats = hotspot_stats(counts, neighbours)
    for values in (stats.z, stats.p, stats.q):
        assert values.shape == (len(counts),)
        assert not np.isnan(values).any()
    if len(counts) < 3 or len(set(counts)) == 1:
        assert (stats.z == 0).all() and (stats.p == 1).all()
        assert stats.confidence == [NS] * len(counts)


def test_a_cell_next_to_every_other_gets_zero() -> None:
    """Its neighbourhood is the whole scope: its sum is the total whatever the counts."""
    star = [[1, 2, 3, 4], [0], [0], [0], [0]]
    z = gi_star([9.0, 0.0, 1.0, 5.0, 2.0], star)
    assert z[0] == 0 and not np.isnan(z).any()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        gi_star([1.0, 2.0, 3.0], [[1], [0]])
    with pytest.raises(ValueError):
        gi_star([1.0, 2.0, 3.0], [[1], [0, 3], []])
    with pytest.raises(ValueError):
        gi_star([1.0, -2.0, 3.0], [[1], [0], []])
    with pytest.raises(ValueError):
        gi_star([1.0, float("nan"), 3.0], [[1], [0], []])


# --------------------------------------------------------------------------------------------
# Hexagon codes
# --------------------------------------------------------------------------------------------


def test_hex_code_is_stable() -> None:
    assert hex_code(12, -7, 150) == "H150-c12-r-7"
    assert hex_code(np.int64(12), np.int32(-7), 150.0) == "H150-c12-r-7"
    assert hex_code(0, 0, 37.5) == "H37.5-c0-r0"
    assert hex_code(-3, 4, np.float64(250)) == "H250-c-3-r4"
    assert parse_hex_code("H150-c12-r-7") == (12, -7, 150.0)
    codes = {hex_code(c, r, m) for c in range(-3, 4) for r in range(-3, 4) for m in (50, 100, 62.5)}
    assert len(codes) == 7 * 7 * 3
    assert all(hex_code(*parse_hex_code(code)) == code for code in codes)
    for bad in [(1.5, 0, 100), (0, 0, 0), (0, 0, -5), (0, 0, float("nan"))]:
        with pytest.raises(ValueError):
            hex_code(*bad)
    for bad_code in ["H150-c12", "G150-c1-r2", "H-150-c1-r2", "H150-c1-r2x"]:
        with pytest.raises(ValueError):
            parse_hex_code(bad_code)
