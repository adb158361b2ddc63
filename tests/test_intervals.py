"""Percentile bootstrap intervals and standard errors (scaling.intervals): which draws count, and the axis form."""

from __future__ import annotations

import math

import numpy as np

from scaling.intervals import bootstrap_se, percentile_ci


def test_interval_is_numpys_percentile_of_the_finite_draws() -> None:
    rng = np.random.default_rng(0)
    draws = rng.lognormal(size=501)
    with_holes = np.concatenate([draws, [np.nan, np.inf, -np.inf]])
    expected = tuple(np.percentile(draws, [2.5, 97.5]))
    assert percentile_ci(with_holes) == expected  # to the bit: failed and overflowed draws carry no position
    assert percentile_ci(draws, level=0.9) == tuple(np.percentile(draws, [5.0, 95.0]))
    assert bootstrap_se(with_holes) == float(np.std(draws, ddof=1))


def test_fewer_than_two_finite_draws_give_no_interval() -> None:
    for draws in ([], [1.0], [1.0, np.nan, np.inf]):
        lo, hi = percentile_ci(draws)
        assert math.isnan(lo) and math.isnan(hi)
        assert math.isnan(bootstrap_se(draws))


def test_axis_gives_one_interval_per_column() -> None:
    rng = np.random.default_rng(1)
    grid = rng.normal(size=(200, 4))
    grid[:, 3] = np.nan
    grid[0, 3] = 1.0  # one finite draw: no interval for that column
    grid[:10, 0] = np.inf
    lo, hi = percentile_ci(grid, axis=0)
    for j in range(3):
        assert (lo[j], hi[j]) == percentile_ci(grid[:, j])
    assert math.isnan(lo[3]) and math.isnan(hi[3])
