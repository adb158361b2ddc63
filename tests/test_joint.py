"""The joint fit of variants and the compute multiplier, on synthetic laws with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.joint import VariantRuns, bootstrap_form, check_runs, fit_form, fit_joint
from scaling.intervals import percentile_ci
from scaling.laws import ChinchillaLaw, compute_multiplier

TRUE = ChinchillaLaw(1.8, 400.0, 900.0, 0.36, 0.30)
FACTOR = 2.5  # variant B is law A with N multiplied by this: its compute multiplier is FACTOR at every C
BUDGETS = np.array([1e17, 1e19, 1e21])


def _runs(name: str, law: ChinchillaLaw, rng: np.random.Generator, noise: float = 0.01) -> VariantRuns:
    """An isoFLOP grid of 4 budgets x 5 sizes around the optimum, log-loss noise ``noise``."""
    n, d = [], []
    for c in (1e17, 3e17, 1e18, 3e18):
        for step in (-2, -1, 0, 1, 2):
            size = float(TRUE.n_opt(c)) * 2.0**step
            n.append(size)
            d.append(c / (6 * size))
    n_arr, d_arr = np.array(n), np.array(d)
    loss = np.asarray(law.loss(n_arr, d_arr)) * np.exp(rng.normal(0, noise, len(n_arr)))
    return VariantRuns(name, n_arr, d_arr, loss)


def _scaled(law: ChinchillaLaw, factor: float) -> ChinchillaLaw:
    """``law`` with N multiplied by ``factor``: A / (factor N)^alpha."""
    return ChinchillaLaw(law.E, law.A * factor**-law.alpha, law.B, law.alpha, law.beta)


def test_multiplier_of_a_scaled_law_is_the_factor() -> None:
    assert np.allclose(compute_multiplier(TRUE, _scaled(TRUE, FACTOR), BUDGETS), FACTOR)
    assert np.allclose(compute_multiplier(TRUE, TRUE, BUDGETS), 1.0)


def test_joint_fit_recovers_the_multiplier_and_prefers_the_true_form() -> None:
    rng = np.random.default_rng(1)
    runs = [_runs("a", TRUE, rng, 0.003), _runs("b", _scaled(TRUE, FACTOR), rng, 0.003)]
    joint = fit_joint(runs, n_boot=20)
    assert joint.chosen == "separate_AB"  # shared is rejected, free exponents add nothing
    laws = joint.forms["separate_AB"].laws
    assert compute_multiplier(laws["a"], laws["b"], BUDGETS) == pytest.approx(np.full(3, FACTOR), rel=0.1)


def test_multiplier_ci_covers_the_truth() -> None:
    """The 95% CI of k(C) at three budgets covers the true factor in >= 90% of 40 repeats."""
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        runs = [_runs("a", TRUE, rng), _runs("b", _scaled(TRUE, FACTOR), rng)]
        point = fit_form(runs, "separate_AB")
        boot, _ = bootstrap_form(runs, point, n_boot=40, seed=seed)
        k = np.asarray(compute_multiplier(boot["a"], boot["b"], 1e19))
        lo, hi = percentile_ci(k)
        covered += lo <= FACTOR <= hi
    assert covered >= 36


def test_too_few_runs_is_one_line() -> None:
    rng = np.random.default_rng(0)
    runs = _runs("a", TRUE, rng)
    short = runs.take(np.arange(3))
    with pytest.raises(ScalingError, match="variant 'short' has 3 finished run"):
        check_runs([runs, VariantRuns("short", short.n, short.d, short.loss)])
    with pytest.raises(ScalingError, match="at least two variants"):
        check_runs([runs])
