"""Learning-curve law L(t) = L_inf + (t_c/t)^alpha_t: recovery and final-loss prediction."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.learning_curve import check_curve, fit_learning_curve, fit_learning_curves
from scaling.fit.points import Curve, FitPoints

L_INF, T_C, ALPHA_T = 2.1, 3e5, 0.35


def curve(n_points: int = 40, noise: float = 0.002, seed: int = 0, run_id: str = "r0") -> Curve:
    t = np.logspace(6, 9, n_points)
    loss = (L_INF + (T_C / t) ** ALPHA_T) * np.exp(np.random.default_rng(seed).normal(0, noise, n_points))
    return Curve(run_id, 1e7, t, 6e7 * t, loss)


def test_parameters_recovered() -> None:
    c = curve()
    fit = fit_learning_curve(c.tokens, c.loss)
    assert fit.e == pytest.approx(L_INF, abs=0.02)
    assert fit.alpha == pytest.approx(ALPHA_T, abs=0.02)
    assert fit.x_c == pytest.approx(T_C, rel=0.2)
    assert fit.converged and fit.warnings == []


def test_final_loss_predicted_from_first_half() -> None:
    c = curve(noise=0.001)
    check = check_curve(c, float(c.tokens[-1]), float(c.loss[-1]), fraction=0.5)
    assert check.n_used == 20 and check.t_used == pytest.approx(c.tokens[19])
    assert abs(check.rel_error) < 0.01
    assert check.as_dict()["predicted_final_loss"] == pytest.approx(check.predicted)


def test_report_over_runs_skips_short_curves() -> None:
    curves = (
        curve(seed=1, run_id="a"),
        curve(seed=2, run_id="b"),
        Curve("c", 1e7, np.array([1e6, 2e6]), np.array([6e13, 1.2e14]), np.array([3.0, 2.9])),  # too short
    )
    pts = FitPoints(
        run_id=np.array(["a", "b", "c"], dtype=object),
        n=np.full(3, 1e7),
        d=np.array([c.tokens[-1] for c in curves]),
        c=np.array([c.flops[-1] for c in curves]),
        loss=np.array([c.loss[-1] for c in curves]),
        budget=np.full(3, np.nan),
        curves=curves,
        source="synthetic",
        kind="csv",
        params="with_head",
        flops="exact",
        n_from="N",
        c_from="C",
    )
    report = fit_learning_curves(pts)
    assert [r.run_id for r in report.runs] == ["a", "b"]
    assert any("skipped" in n for n in report.notes)
    summary = report.summary()
    assert summary["n_runs"] == 2 and summary["median_abs_rel_error"] < 0.01
    assert report.as_dict()["form"] == "L(t) = L_inf + (t_c/t)^alpha_t"


def test_too_few_points_is_an_error() -> None:
    with pytest.raises(ScalingError, match="2 point"):
        fit_learning_curve(np.array([1e6, 1e7]), np.array([3.0, 2.8]))
