"""The route solver on pure travelling-salesman instances (no time windows), with deterministic
settings: optimal on small tours, no worse than the textbook heuristic on large ones."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from geo.routes import Problem, RouteSettings, solve, tour_metres

DETERMINISTIC = RouteSettings(deterministic=True)
ALL_DAY = [(0, 86_000)]


def instance(n: int, seed: int) -> np.ndarray:
    """Integer metres between n + 1 random points (node 0: the start) in a 2 km square."""
    rng = random.Random(seed)
    points = np.array([(rng.uniform(0, 2000), rng.uniform(0, 2000)) for _ in range(n + 1)])
    return np.rint(np.linalg.norm(points[:, None] - points[None, :], axis=2)).astype(np.int64)


def tsp(metres: np.ndarray) -> Problem:
    n = len(metres)
    return Problem(
        metres=metres, windows=[ALL_DAY] * n, service=[0] * n, penalty=[0] + [10**9] * (n - 1),
        day=(0, 86_000), max_stops=n, metres_per_minute=1e9,
    )  # fmt: skip


def optimum(metres: np.ndarray) -> int:
    """Held–Karp would do; for nine stops trying every order is quick enough."""
    n = len(metres) - 1
    return min(tour_metres(metres, p) for p in itertools.permutations(range(1, n + 1)))


def two_opt_nearest_neighbour(metres: np.ndarray) -> int:
    """Nearest neighbour from the start, improved by 2-opt until no move shortens it."""
    n = len(metres)
    tour, left = [0], set(range(1, n))
    while left:
        nxt = min(left, key=lambda j: (metres[tour[-1], j], j))
        tour.append(nxt)
        left.remove(nxt)
    tour.append(0)
    improved = True
    while improved:
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                a, b, c, d = tour[i - 1], tour[i], tour[j], tour[j + 1]
                if metres[a, c] + metres[b, d] < metres[a, b] + metres[c, d]:
                    tour[i : j + 1] = reversed(tour[i : j + 1])
                    improved = True
    return tour_metres(metres, tour[1:-1])


@pytest.mark.parametrize("seed", range(12))
def test_small_tours_are_optimal(seed: int) -> None:
    n = 4 + seed % 6  # 4 to 9 stops
    metres = instance(n, seed)
    visited = solve(tsp(metres), DETERMINISTIC)
    assert sorted(node for node, _ in visited) == list(range(1, n + 1))
    assert tour_metres(metres, [node for node, _ in visited]) == optimum(metres)


@pytest.mark.parametrize("seed", range(2))
def test_a_hundred_stops_walk_no_further_than_two_opt(seed: int) -> None:
    metres = instance(100, 1000 + seed)
    visited = solve(tsp(metres), DETERMINISTIC)
    assert len(visited) == 100
    assert tour_metres(metres, [node for node, _ in visited]) <= two_opt_nearest_neighbour(metres)


def test_the_same_instance_gives_the_same_tour() -> None:
    metres = instance(40, 7)
    assert solve(tsp(metres), DETERMINISTIC) == solve(tsp(metres), DETERMINISTIC)


def test_time_windows_and_the_stop_limit_are_kept() -> None:
    """Stops start inside their windows (a gap removed from one), at most ``max_stops`` are made,
    and the ones dropped are those with the smallest penalty."""
    metres = instance(8, 3)
    windows = [ALL_DAY] + [[(3600, 14_400)]] * 4 + [[(3600, 4000), (9000, 10_000)]] * 4
    problem = Problem(
        metres=metres, windows=windows, service=[0] + [600] * 8,
        penalty=[0, *(10**6 * (9 - i) for i in range(1, 9))], day=(0, 20_000), max_stops=6,
        metres_per_minute=70,
    )  # fmt: skip
    visited = solve(problem, DETERMINISTIC)
    assert [node for node, _ in visited] and len(visited) == 6
    assert {node for node, _ in visited} == set(range(1, 7))  # the six heaviest penalties
    for node, arrival in visited:
        assert any(a <= arrival <= b for a, b in windows[node]), (node, arrival)
    arrivals = [arrival for _, arrival in visited]
    assert arrivals == sorted(arrivals)
