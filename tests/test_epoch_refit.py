"""Reproduce Besiroglu et al.'s (2024) refit of Chinchilla Approach 3 on Epoch's 240 extracted points.

Reference values: ../shared/data/README.md (optimum of the summed-Huber objective, and the standard errors
of 4000 bootstrap refits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from scaling.fit.approach3 import fit_approach3, hoffmann_start_grid, scipy_reference_fit
from scaling.fit.bootstrap import bootstrap_approach3

OPTIMUM = {"E": 1.8172, "A": 477.8, "B": 2143.4, "alpha": 0.3473, "beta": 0.3672}
BOOT_SE = {"A": 124.5, "B": 1293.0, "E": 0.0257, "alpha": 0.0154, "beta": 0.0206}


def load_epoch(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, D, loss of the 240 points Epoch fits: D = C / (6 N), the 5 highest-loss rows dropped."""
    df = pd.read_csv(path)
    df = df.sort_values("loss", kind="stable").iloc[:-5]
    n = df["Model Size"].to_numpy(float)
    d = df["Training FLOP"].to_numpy(float) / (6.0 * n)
    return n, d, df["loss"].to_numpy(float)


@pytest.fixture(scope="module")
def epoch_points(chinchilla_csv: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d, loss = load_epoch(chinchilla_csv)
    assert n.size == 240
    return n, d, loss


@pytest.fixture(scope="module")
def epoch_fit(epoch_points: tuple[np.ndarray, np.ndarray, np.ndarray]):  # noqa: ANN201
    return fit_approach3(*epoch_points)


def test_point_optimum_within_half_percent(epoch_fit) -> None:  # noqa: ANN001
    for name, ref in OPTIMUM.items():
        got = getattr(epoch_fit, name)
        assert got == pytest.approx(ref, rel=5e-3), f"{name}: {got:.6g} vs {ref}"
    assert epoch_fit.a == pytest.approx(0.514, rel=5e-3)
    assert epoch_fit.converged and not epoch_fit.at_bound and not epoch_fit.best_start_on_edge
    assert epoch_fit.warnings == ()
    assert epoch_fit.grad_norm < 1e-7


def test_same_optimum_as_scipy_per_start_search(epoch_points, epoch_fit) -> None:  # noqa: ANN001
    """Epoch's procedure (L-BFGS-B from each start) on a fixed subsample of Hoffmann's grid, its best start
    polished with tight tolerances: same optimum to >= 4 significant digits, and ours is no worse."""
    n, d, loss = epoch_points
    grid = hoffmann_start_grid()
    starts = grid[np.random.default_rng(0).choice(grid.shape[0], 120, replace=False)]
    x, f_best, finals = scipy_reference_fit(n, d, loss, starts=starts)
    assert epoch_fit.objective <= f_best * (1 + 1e-9)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)

    def obj(p: np.ndarray) -> float:
        terms = [p[0] - p[3] * log_n, p[1] - p[4] * log_d, np.full_like(log_n, p[2])]
        return float(np.sum(huber(1e-3, logsumexp(terms, axis=0) - log_l)))

    polished = minimize(obj, x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 20000})
    ref = {
        "E": np.exp(polished.x[2]),
        "A": np.exp(polished.x[0]),
        "B": np.exp(polished.x[1]),
        "alpha": polished.x[3],
        "beta": polished.x[4],
    }
    for name, value in ref.items():
        assert getattr(epoch_fit, name) == pytest.approx(value, rel=5e-5), name
    assert epoch_fit.objective <= polished.fun * (1 + 1e-12)


def test_bootstrap_standard_errors_within_ten_percent(epoch_points, epoch_fit) -> None:  # noqa: ANN001
    boot = bootstrap_approach3(*epoch_points, n_boot=4000, seed=0, point_fit=epoch_fit)
    assert boot.samples.shape == (4000, 5)
    assert boot.converged.all()
    for name, ref in BOOT_SE.items():
        assert boot.se[name] == pytest.approx(ref, rel=0.10), f"SE({name}) = {boot.se[name]:.4g} vs {ref}"
    lo, hi = boot.ci95["alpha"]
    assert lo < epoch_fit.alpha < hi
