"""Bootstrap uncertainty from draws: percentile confidence intervals and standard errors, in one place.

Every interval this project reports (the fitted laws' parameters, N_opt, D_opt and loss at a budget,
the bands of the figures, ``scaling plan --fit`` and ``scaling compare``) is a percentile bootstrap
interval (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13): the (1 - level)/2 and
(1 + level)/2 quantiles of the draws, numpy's default linear interpolation between order statistics.

A draw whose value is not finite carries no position: NaN is a law that could not be fitted or is
undefined on that resample, inf a quantity that overflowed (an extreme resample's G or N_opt). Both
are left out, so an interval rests on the draws where the quantity exists; fewer than two such draws
give no interval (NaN), because one value has no spread. Like :mod:`scaling.laws` this module imports
numpy only, so every stage can use it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def percentile_ci(draws: Any, level: float = 0.95, axis: int | None = None) -> tuple[Any, Any]:
    """The ``level`` percentile interval (lo, hi) of the finite draws: floats, or arrays along ``axis``.

    ``axis=0`` on draws of shape (K, M) gives one interval per column (a band over a grid of M budgets).
    """
    values = np.asarray(draws, dtype=float)
    finite = np.isfinite(values)
    if axis is None and np.count_nonzero(finite) < 2:
        return float("nan"), float("nan")
    tail = (100.0 - 100.0 * level) / 2.0  # exactly 2.5 for 95%
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: masked below
        lo, hi = np.nanpercentile(np.where(finite, values, np.nan), [tail, 100.0 - tail], axis=axis)
    enough = finite.sum(axis=axis) >= 2
    lo, hi = np.where(enough, lo, np.nan), np.where(enough, hi, np.nan)
    if axis is None:
        return float(lo), float(hi)
    return lo, hi


def bootstrap_se(draws: Any) -> float:
    """Standard error: the standard deviation (ddof=1) of the finite draws; NaN with fewer than two."""
    values = np.asarray(draws, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan")
    # Extreme resamples reach 1e200 and more (a D_opt whose exponent nearly vanishes): their squares
    # overflow and the spread is inf, which is the answer (reported as such), not a warning to print.
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.std(values, ddof=1))
