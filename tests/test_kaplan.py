"""Kaplan et al. 2020 power laws: each law's parameters are recovered from noisy synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.kaplan import fit_kaplan, fit_kaplan_joint
from scaling.fit.points import Curve, FitPoints
from scaling.fit.power_law import fit_power_law

# Kaplan et al. 2020, Table 5 (alpha, x_c) for L(N), L(D) and L(C_min) (C in FLOPs: 3.1e8 PF-days).
KAPLAN_N = (0.076, 8.8e13)
KAPLAN_D = (0.095, 5.4e13)
KAPLAN_C = (0.050, 3.1e8 * 8.64e19)


def noisy(y: np.ndarray, rel: float, seed: int) -> np.ndarray:
    return y * np.exp(np.random.default_rng(seed).normal(0.0, rel, y.shape))


@pytest.mark.parametrize(
    ("law", "variable", "truth", "x"),
    [
        ("L(N)", "N", KAPLAN_N, np.logspace(6, 10, 15)),
        ("L(D)", "D", KAPLAN_D, np.logspace(8, 11, 15)),
        ("L(C_min)", "C", KAPLAN_C, np.logspace(15, 21, 15)),
    ],
)
def test_pure_power_law_recovered(law: str, variable: str, truth: tuple[float, float], x: np.ndarray) -> None:
    alpha, x_c = truth
    y = noisy((x_c / x) ** alpha, 0.002, seed=1)
    fit = fit_power_law(x, y, law=law, variable=variable)
    assert fit.alpha == pytest.approx(alpha, abs=0.002)
    # x_c = exp(intercept / alpha) magnifies the exponent's error; check it in log space.
    assert math.log(fit.x_c) == pytest.approx(math.log(x_c), rel=0.03)
    assert fit.warnings == []
    assert fit.as_dict()[f"alpha_{variable}"] == fit.alpha


def test_irreducible_term_recovered() -> None:
    x = np.logspace(5, 9, 20)
    y = noisy(1.5 + (1e7 / x) ** 0.3, 0.001, seed=2)
    fit = fit_power_law(x, y, irreducible=True)
    assert fit.e == pytest.approx(1.5, abs=0.03)
    assert fit.alpha == pytest.approx(0.3, abs=0.02)
    assert fit.x_c == pytest.approx(1e7, rel=0.15)
    assert "E + " in fit.form


def test_joint_law_recovered() -> None:
    a_n, a_d, n_c, d_c = 0.076, 0.103, 6.4e13, 1.8e13  # Kaplan eq. 1.5 values
    n, d = (g.ravel() for g in np.meshgrid(np.logspace(6, 9, 7), np.logspace(8, 11, 7)))
    loss = noisy(((n_c / n) ** (a_n / a_d) + d_c / d) ** a_d, 0.001, seed=3)
    fit = fit_kaplan_joint(n, d, loss)
    assert fit.alpha_n == pytest.approx(a_n, abs=0.004)
    assert fit.alpha_d == pytest.approx(a_d, abs=0.004)
    assert fit.log_n_c == pytest.approx(math.log(n_c), rel=0.03)
    assert fit.log_d_c == pytest.approx(math.log(d_c), rel=0.03)
    assert fit.converged
    assert np.allclose(fit.predict(n, d), loss, rtol=0.01)


def test_joint_law_with_irreducible_term() -> None:
    n, d = (g.ravel() for g in np.meshgrid(np.logspace(6, 9, 7), np.logspace(8, 11, 7)))
    truth = 1.7 + ((3e8 / n) ** (0.3 / 0.25) + 1e9 / d) ** 0.25
    fit = fit_kaplan_joint(n, d, noisy(truth, 0.001, seed=4), irreducible=True)
    assert fit.e == pytest.approx(1.7, abs=0.1)
    assert fit.alpha_n == pytest.approx(0.3, abs=0.05)
    assert fit.alpha_d == pytest.approx(0.25, abs=0.05)
    assert fit.form.startswith("L(N,D) = E + ")


def test_fit_kaplan_uses_frontier_and_envelope() -> None:
    """On a grid where every size is trained on several D, L(N) sees only the best loss per N."""
    a_n, a_d, n_c, d_c = 0.076, 0.103, 6.4e13, 1.8e13
    n, d = (g.ravel() for g in np.meshgrid(np.logspace(6, 9, 6), np.logspace(8, 11, 6)))
    loss = ((n_c / n) ** (a_n / a_d) + d_c / d) ** a_d
    curves = tuple(
        Curve(
            f"r{i}",
            float(n[i]),
            d[i] * np.array([0.25, 0.5, 1.0]),
            6 * n[i] * d[i] * np.array([0.25, 0.5, 1.0]),
            loss[i] * np.array([1.02, 1.01, 1.0]),
        )
        for i in range(len(n))
    )
    pts = FitPoints(
        run_id=np.array([f"r{i}" for i in range(len(n))], dtype=object),
        n=n,
        d=d,
        c=6 * n * d,
        loss=loss,
        budget=np.full(len(n), np.nan),
        curves=curves,
        source="synthetic",
        kind="csv",
        params="with_head",
        flops="exact",
        n_from="N",
        c_from="C",
    )
    env_c = np.logspace(15, 20, 10)
    res = fit_kaplan(pts, env_c, 10 * env_c**-0.05)
    assert res.l_n is not None and res.l_n.n_points == 6  # one frontier point per size
    assert res.l_c is not None and res.l_c.alpha == pytest.approx(0.05, abs=1e-9)
    assert res.joint is not None and res.joint.alpha_d == pytest.approx(a_d, abs=1e-3)
    out = res.as_dict()
    for key in ("alpha_N", "N_c", "alpha_D", "D_c", "alpha_C", "C_c", "form"):
        assert key in out
    assert out["form"].startswith("pure")


def test_too_few_points_is_an_error() -> None:
    with pytest.raises(ScalingError, match="1 point"):
        fit_power_law(np.array([1e6]), np.array([3.0]))
    with pytest.raises(ScalingError, match="3 point"):
        fit_kaplan_joint(np.array([1e6, 1e7, 1e8]), np.array([1e9, 1e9, 1e10]), np.array([3.0, 2.9, 2.5]))


def test_one_size_is_an_error() -> None:
    with pytest.raises(ScalingError, match="one N"):
        fit_power_law(np.full(5, 1e6), np.linspace(3, 4, 5))


def test_exact_fit_and_rising_loss_are_flagged() -> None:
    fit = fit_power_law(np.array([1e6, 1e7]), np.array([3.0, 3.5]))
    assert any("exact fit" in w for w in fit.warnings)
    assert any("does not fall" in w for w in fit.warnings)
