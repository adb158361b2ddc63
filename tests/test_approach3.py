"""Chinchilla Approach 3 fitter and its bootstrap on synthetic data drawn from known laws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import huber

from scaling.errors import ScalingError
from scaling.fit.approach3 import fit_approach3, hoffmann_start_grid, scipy_reference_fit
from scaling.fit.bootstrap import bootstrap_approach3, resample_counts
from scaling.fit.huber import HuberProblem, minimise_batch
from scaling.laws import ChinchillaLaw

CHINCHILLA = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def sample_law(
    law: ChinchillaLaw, n: int, sigma: float, seed: int, n_range=(1e7, 1e10), d_range=(1e8, 1e12)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n points log-uniform in N and D, loss = law * lognormal(sigma) noise."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(*np.log(n_range), n))  # noqa: N806
    D = np.exp(rng.uniform(*np.log(d_range), n))  # noqa: N806
    return N, D, law.loss(N, D) * np.exp(rng.normal(0.0, sigma, n))


def test_recovers_known_law_from_noisy_samples() -> None:
    N, D, loss = sample_law(CHINCHILLA, 300, 0.005, seed=1)  # noqa: N806
    fit = fit_approach3(N, D, loss)
    assert fit.converged and not fit.at_bound and fit.warnings == ()
    tolerance = {"E": 0.02, "alpha": 0.05, "beta": 0.05, "a": 0.03, "A": 0.3, "B": 0.3}
    for name, rel in tolerance.items():
        assert getattr(fit, name) == pytest.approx(getattr(CHINCHILLA, name), rel=rel), name
    # Noise-free data: the law itself is the optimum (objective 0), recovered to many digits.
    exact = fit_approach3(N, D, CHINCHILLA.loss(N, D))
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(exact, name) == pytest.approx(getattr(CHINCHILLA, name), rel=1e-6), name
    assert exact.objective < 1e-20


@pytest.mark.parametrize(
    ("law", "n", "sigma", "seed"),
    [
        (CHINCHILLA, 30, 0.05, 2),  # few, noisy points
        (ChinchillaLaw(2.5, 3000.0, 8000.0, 0.7, 0.5), 60, 0.02, 3),  # steep exponents
        (CHINCHILLA, 12, 0.02, 4),  # barely determined: scipy's starts stall here
    ],
)
def test_matches_scipy_per_start_search(law: ChinchillaLaw, n: int, sigma: float, seed: int) -> None:
    """Our optimum is at least as good as Epoch's procedure (scipy L-BFGS-B from each start) on a fixed
    subsample of Hoffmann's grid, and where scipy finds the same basin, the parameters agree."""
    N, D, loss = sample_law(law, n, sigma, seed)  # noqa: N806
    fit = fit_approach3(N, D, loss)
    grid = hoffmann_start_grid()
    starts = grid[np.random.default_rng(seed).choice(grid.shape[0], 40, replace=False)]
    x, f_ref, _ = scipy_reference_fit(N, D, loss, starts=starts)
    assert fit.objective <= f_ref * (1 + 1e-7)
    if fit.objective > f_ref * (1 - 1e-4):  # same basin: same optimum to scipy's precision
        reference = {"alpha": x[3], "beta": x[4], "E": np.exp(x[2])}
        for name, value in reference.items():
            assert getattr(fit, name) == pytest.approx(value, rel=1e-2), name


@pytest.mark.slow
def test_exhaustive_hoffmann_grid_agrees_with_fast_search() -> None:
    """Newton from all 4500 of Hoffmann's starts reaches the optimum the profile scan finds."""
    N, D, loss = sample_law(CHINCHILLA, 20, 0.02, seed=5)  # noqa: N806
    fast = fit_approach3(N, D, loss)
    full = fit_approach3(N, D, loss, start_grid="exhaustive")
    assert full.objective == pytest.approx(fast.objective, rel=1e-9)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(full, name) == pytest.approx(getattr(fast, name), rel=1e-5), name


def test_objective_is_the_sum_of_huber_losses() -> None:
    """The objective is SUMMED over points (an average would be n times smaller and stall L-BFGS)."""
    N, D, loss = sample_law(CHINCHILLA, 50, 0.03, seed=6)  # noqa: N806
    fit = fit_approach3(N, D, loss)
    manual = np.sum(huber(1e-3, np.log(fit.loss(N, D)) - np.log(loss)))
    assert fit.objective == pytest.approx(manual, rel=1e-9)
    assert fit.objective > 50 * 0.5 * 1e-6  # far above any mean-Huber value with |r| of a few %
    # Duplicating every point doubles a summed objective and leaves the optimum where it was.
    twice = fit_approach3(np.tile(N, 2), np.tile(D, 2), np.tile(loss, 2))
    assert twice.objective == pytest.approx(2 * fit.objective, rel=1e-8)
    assert twice.alpha == pytest.approx(fit.alpha, rel=1e-6)


def test_gradient_and_hessian_match_finite_differences() -> None:
    N, D, loss = sample_law(CHINCHILLA, 40, 0.03, seed=7)  # noqa: N806
    problem = HuberProblem.from_data(N, D, loss, 1e-3)
    rng = np.random.default_rng(0)
    theta = problem.to_centred(np.array([6.0, 6.0, 0.5, 0.34, 0.28])) + rng.normal(0, 0.05, (3, 5))
    counts = rng.integers(0, 3, (3, 40)).astype(float)
    f, g, h = problem.evaluate(theta, counts)
    eps = 1e-6
    for j in range(5):
        step = np.zeros(5)
        step[j] = eps
        fp, gp, _ = problem.evaluate(theta + step, counts)
        fm, gm, _ = problem.evaluate(theta - step, counts)
        np.testing.assert_allclose((fp - fm) / (2 * eps), g[:, j], rtol=1e-5, atol=1e-10)
        np.testing.assert_allclose((gp - gm) / (2 * eps), h[:, :, j], rtol=1e-4, atol=1e-8)


def test_batched_newton_reaches_stationary_points() -> None:
    N, D, loss = sample_law(CHINCHILLA, 80, 0.02, seed=8)  # noqa: N806
    problem = HuberProblem.from_data(N, D, loss, 1e-3)
    starts = problem.to_centred(hoffmann_start_grid()[::150])
    res = minimise_batch(problem, starts)
    assert res.converged.mean() > 0.9
    fit = fit_approach3(N, D, loss)
    assert res.f.min() >= fit.objective * (1 - 1e-9)


def test_compute_optimal_allocation() -> None:
    law = CHINCHILLA
    assert law.a == pytest.approx(0.28 / 0.62)
    assert law.b == pytest.approx(0.34 / 0.62)
    for c in (1e18, 5.76e23):
        n_opt, d_opt = float(law.n_opt(c)), float(law.d_opt(c))
        assert 6 * n_opt * d_opt == pytest.approx(c, rel=1e-10)
        best = float(law.loss(n_opt, d_opt))
        for factor in (0.9, 1.1):
            n = n_opt * factor
            assert law.loss(n, c / (6 * n)) > best


@pytest.mark.slow
def test_bootstrap_ci_covers_truth_about_95_percent() -> None:
    """Percentile CIs from resampling points cover the true exponents in roughly 95% of repeats."""
    law = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    hits = {"alpha": 0, "beta": 0, "E": 0}
    repeats = 40
    for rep in range(repeats):
        N, D, loss = sample_law(law, 60, 0.02, seed=100 + rep)  # noqa: N806
        boot = bootstrap_approach3(N, D, loss, n_boot=100, seed=rep)
        for name in hits:
            lo, hi = boot.ci95[name]
            hits[name] += lo <= getattr(law, name) <= hi
    for name, count in hits.items():
        assert 0.8 <= count / repeats <= 1.0, f"{name}: coverage {count}/{repeats}"


def test_bootstrap_result_api() -> None:
    N, D, loss = sample_law(CHINCHILLA, 40, 0.02, seed=9)  # noqa: N806
    boot = bootstrap_approach3(N, D, loss, n_boot=100, seed=3)
    assert boot.samples.shape == (100, 5)
    assert set(boot.se) >= {"E", "A", "B", "alpha", "beta", "a", "b", "G"}
    assert boot.derived_ci(lambda law: law.alpha) == pytest.approx(boot.ci95["alpha"])
    lo, hi = boot.derived_ci(lambda law: float(law.n_opt(1e21)))
    assert lo < float(boot.point.n_opt(1e21)) < hi
    again = bootstrap_approach3(N, D, loss, n_boot=100, seed=3)
    np.testing.assert_array_equal(again.samples, boot.samples)
    # Each point its own run: identical to groups=None.
    same = bootstrap_approach3(N, D, loss, groups=np.arange(40), n_boot=100, seed=3)
    np.testing.assert_array_equal(same.samples, boot.samples)


def test_resampling_draws_whole_runs() -> None:
    groups = np.array(["r1", "r1", "r2", "r3", "r3", "r3"])
    counts = resample_counts(groups, 500, np.random.default_rng(0))
    assert counts.shape == (500, 6)
    # Points of one run are always drawn together, and each resample draws 3 runs.
    assert np.all(counts[:, 0] == counts[:, 1])
    assert np.all((counts[:, 3] == counts[:, 4]) & (counts[:, 4] == counts[:, 5]))
    per_run = counts[:, [0, 2, 3]]
    assert np.all(per_run.sum(axis=1) == 3)
    N, D, loss = sample_law(CHINCHILLA, 24, 0.02, seed=10)  # noqa: N806
    runs = np.repeat(np.arange(8), 3)
    boot = bootstrap_approach3(N, D, loss, groups=runs, n_boot=50, seed=0)
    assert boot.n_groups == 8 and boot.samples.shape == (50, 5)


@pytest.mark.parametrize(
    ("n", "d", "loss", "message"),
    [
        ([1e8, 2e8, 3e8, 4e8], [1e9, 2e9, 3e9, 4e9], [3.0, 2.9, 2.8, 2.7], "at least 5 points"),
        ([1e8, 2e8, np.nan, 4e8, 5e8], [1e9] * 5, [3.0] * 5, "N must be finite and positive"),
        ([1e8, 2e8, 3e8, 4e8, 5e8], [1e9, -2e9, 3e9, 4e9, 5e9], [3.0] * 5, "D must be finite and positive"),
        ([1e8, 2e8, 3e8, 4e8, 5e8], [1e9, 2e9, 3e9, 4e9, 5e9], [3.0, 0.0, 2.0, 2.0, 2.0], "loss must be finite"),
        ([1e8] * 6, [1e9, 2e9, 3e9, 4e9, 5e9, 6e9], [3.0] * 6, "same N"),
        ([1e8, 2e8, 3e8, 4e8, 5e8], [1e9, 2e9, 3e9, 4e9], [3.0] * 5, "differ in length"),
    ],
)
def test_bad_input_raises_one_line_error(n: list, d: list, loss: list, message: str) -> None:
    with pytest.raises(ScalingError, match=message) as err:
        fit_approach3(n, d, loss)
    assert "\n" not in str(err.value)
    with pytest.raises(ScalingError, match=message):
        bootstrap_approach3(n, d, loss, n_boot=10)


def test_bad_options_raise() -> None:
    N, D, loss = sample_law(CHINCHILLA, 20, 0.02, seed=11)  # noqa: N806
    with pytest.raises(ScalingError, match="start grid"):
        fit_approach3(N, D, loss, start_grid="nope")
    with pytest.raises(ScalingError, match="delta"):
        fit_approach3(N, D, loss, delta=0.0)
    with pytest.raises(ScalingError, match="one run id per point"):
        bootstrap_approach3(N, D, loss, groups=[1, 2, 3], n_boot=10)
    with pytest.raises(ScalingError, match="resamples"):
        bootstrap_approach3(N, D, loss, n_boot=1)


def test_degenerate_data_is_flagged() -> None:
    """Loss that does not depend on D: the D-term is not identified, and the fit says so."""
    rng = np.random.default_rng(12)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 40))  # noqa: N806
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e12), 40))  # noqa: N806
    loss = 1.7 + 400.0 * N**-0.34
    fit = fit_approach3(N, D, loss)
    assert any("D-term" in w and "not identified" in w for w in fit.warnings), fit.warnings
    assert fit.as_dict()["warnings"] == list(fit.warnings)
    floor = fit.E
    assert floor == pytest.approx(1.7, rel=1e-4)
    assert fit.alpha == pytest.approx(0.34, rel=1e-3)
    assert float(np.max(fit.B * D ** (-fit.beta) / loss)) < 1e-3


def test_few_points_are_flagged() -> None:
    N, D, loss = sample_law(CHINCHILLA, 7, 0.01, seed=13)  # noqa: N806
    fit = fit_approach3(N, D, loss)
    assert fit.n_points == 7
    assert any("only 7 points" in w for w in fit.warnings)
