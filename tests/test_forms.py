"""Each functional form recovers its own law's parameters from synthetic data (issue 16, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.approach3 import fit_approach3
from scaling.fit.forms import DEFAULT_OBJECTIVE, GADRE_OBJECTIVE, Objective, bootstrap_form, fit_form
from scaling.laws import FORMS, ChinchillaLaw, OvertrainLaw, get_form

TRUTH = {
    "chinchilla": {"E": 1.8, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.30},
    "overtrain": {"E": 1.8, "a": 200.0, "b": 800.0, "eta": 0.15},
    "kaplan": {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13},
}


def ladder(form: str, noise: float = 0.001, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six sizes x five token multipliers, loss from ``form``'s own law times log-normal noise."""
    n = np.repeat(np.geomspace(1e7, 5e8, 6), 5)
    d = n * np.tile(np.geomspace(5, 300, 5), 6)
    loss = np.asarray(FORMS[form].loss(TRUTH[form], n, d))
    return n, d, loss * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))


@pytest.mark.parametrize("form", list(TRUTH))
def test_form_recovers_its_parameters(form: str) -> None:
    n, d, loss = ladder(form)
    fit = fit_form(form, n, d, loss)
    for key, true in TRUTH[form].items():
        assert fit.params[key] == pytest.approx(true, rel=0.25), key
    # and it predicts a 10x larger run of its own law to well under 1%
    big_n, big_d = np.array([5e9]), np.array([1e11])
    assert fit.predict(big_n, big_d)[0] == pytest.approx(FORMS[form].loss(TRUTH[form], big_n, big_d)[0], rel=0.01)


def test_overtrain_is_chinchilla_with_tied_exponents() -> None:
    law = OvertrainLaw(**TRUTH["overtrain"])
    n, d = np.array([1e8, 3e9]), np.array([2e9, 6e10])
    chin = law.as_chinchilla()
    assert isinstance(chin, ChinchillaLaw) and chin.alpha == chin.beta == pytest.approx(0.3)
    np.testing.assert_allclose(law.loss(n, d), chin.loss(n, d), rtol=1e-12)


def test_default_chinchilla_is_approach3_to_every_digit() -> None:
    n, d, loss = ladder("chinchilla")
    a3 = fit_approach3(n, d, loss)
    fit = fit_form("chinchilla", n, d, loss)
    assert fit.params == {k: getattr(a3, k) for k in ("E", "A", "B", "alpha", "beta")}


@pytest.mark.parametrize(
    "objective", [Objective(delta=None), Objective(space="linear"), GADRE_OBJECTIVE, Objective(weights="compute")]
)
def test_objectives_recover_chinchilla(objective: Objective) -> None:
    n, d, loss = ladder("chinchilla", noise=0.0005)
    fit = fit_form("chinchilla", n, d, loss, objective=objective)
    assert fit.params["alpha"] == pytest.approx(0.34, abs=0.05)
    assert fit.params["beta"] == pytest.approx(0.30, abs=0.05)


def test_bootstrap_gives_draws_that_cover_the_truth() -> None:
    n, d, loss = ladder("overtrain", noise=0.003)
    fit = bootstrap_form(fit_form("overtrain", n, d, loss), n, d, loss, n_boot=30, seed=1)
    assert fit.samples is not None and fit.samples["eta"].shape == (30,)
    lo, hi = np.percentile(fit.samples["eta"], [2.5, 97.5])
    assert lo < 0.15 * 1.05 and hi > 0.15 * 0.95 and hi - lo > 0
    draws = fit.predict_draws(np.array([1e9]), np.array([2e10]))
    assert draws is not None and draws.shape == (30, 1)


def test_unknown_form_and_missing_unique_are_one_line_errors() -> None:
    with pytest.raises(ScalingError, match="unknown form 'gpt'"):
        get_form("gpt")
    n, d, loss = ladder("chinchilla")
    with pytest.raises(ScalingError, match="needs U"):
        fit_form("data-constrained", n, d, loss)
    with pytest.raises(ScalingError, match="residual space"):
        Objective(space="sqrt")
    assert DEFAULT_OBJECTIVE.label == "Huber 0.001, log residuals, weights per run"


@pytest.mark.parametrize("form", ["overtrain", "kaplan"])
def test_batched_bootstrap_equals_refitting_each_resample(form: str) -> None:
    """The batched refits (every resample at once) reach each resample's own optimum: the objective of the
    per-resample quasi-Newton refit is never lower (overtrain), and Kaplan's joint law gives the same draws."""
    from scaling.fit.bootstrap import resample_counts
    from scaling.fit.forms import _start_of, is_batched
    from scaling.fit.huber import HuberProblem

    n, d, loss = ladder(form, noise=0.01)
    fit = fit_form(form, n, d, loss)
    assert is_batched(form, fit.objective)
    bootstrap_form(fit, n, d, loss, n_boot=12, seed=3)
    assert fit.samples is not None and len(fit.samples[next(iter(fit.samples))]) == 12
    counts = resample_counts(np.arange(n.size), 12, np.random.default_rng(3))
    problem = HuberProblem.from_data(n, d, loss, 1e-3)
    for row in range(12):
        batched = {k: float(v[row]) for k, v in fit.samples.items()}
        looped = fit_form(form, n, d, loss, counts=counts[row], warm=fit.params).params
        if form == "kaplan":
            assert batched == pytest.approx(looped, rel=1e-4)
            continue
        objective = []
        for params in (batched, looped):
            start = _start_of(params, "overtrain", problem)
            f, _, _ = problem.evaluate(np.array([[*start, start[3]]]), counts[row], order=0)
            objective.append(float(f[0]))
        assert objective[0] <= objective[1] * (1 + 1e-9)
        assert batched["eta"] == pytest.approx(looped["eta"], rel=1e-3)
