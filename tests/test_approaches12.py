"""Chinchilla Approaches 1 and 2 recover a known compute-optimal exponent from simulated sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.approach1 import compute_envelope, fit_approach1, fit_optimal_scaling
from scaling.fit.approach2 import fit_approach2, fit_budget, group_budgets
from scaling.fit.points import Curve, FitPoints

# Hoffmann et al. 2022's Approach 3 law: a = beta / (alpha + beta) = 0.4516.
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
A_TRUE = BETA / (ALPHA + BETA)
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))


def law(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return E + A / n**ALPHA + B / d**BETA


def points(
    n: np.ndarray,
    d: np.ndarray,
    c: np.ndarray,
    loss: np.ndarray,
    *,
    curves: list[Curve] | None = None,
    budget: np.ndarray | None = None,
) -> FitPoints:
    k = len(n)
    return FitPoints(
        run_id=np.array([f"r{i}" for i in range(k)], dtype=object),
        n=np.asarray(n, float),
        d=np.asarray(d, float),
        c=np.asarray(c, float),
        loss=np.asarray(loss, float),
        budget=np.full(k, np.nan) if budget is None else np.asarray(budget, float),
        curves=tuple(curves) if curves is not None else (None,) * k,
        source="synthetic",
        kind="csv",
        params="with_head",
        flops="exact",
        n_from="N",
        c_from="C",
    )


def isoflop_grid(seed: int = 0, jitter: float = 0.01, tagged: bool = False) -> FitPoints:
    """7 budgets x 9 sizes spaced around the true optimum; realised C jitters by ~1% (rounding)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.logspace(18, 21, 7):
        n_opt = G * (c / 6) ** A_TRUE
        for n in n_opt * np.logspace(-0.8, 0.8, 9):
            d = c / (6 * n)
            rows.append((n, d, c * np.exp(rng.normal(0, jitter)), law(n, d) * np.exp(rng.normal(0, 0.003)), c))
    n, d, c, loss, tag = map(np.array, zip(*rows, strict=True))
    return points(n, d, c, loss, budget=tag if tagged else None)


def curve_sweep(seed: int = 0, sizes: int = 25) -> FitPoints:
    """Each size trained far past its optimum, with 30 eval points: the envelope traces N_opt(C)."""
    rng = np.random.default_rng(seed)
    curves, rows = [], []
    for i, n in enumerate(np.logspace(7, 10, sizes)):
        t = np.logspace(8, np.log10(200 * n), 30)
        loss = law(n, t) * np.exp(rng.normal(0, 0.003, t.size))
        curves.append(Curve(f"r{i}", float(n), t, 6 * n * t, loss))
        rows.append((n, t[-1], 6 * n * t[-1], loss[-1]))
    n, d, c, loss = map(np.array, zip(*rows, strict=True))
    return points(n, d, c, loss, curves=curves)


def test_approach2_recovers_a() -> None:
    res = fit_approach2(isoflop_grid())
    assert res.fit is not None
    assert len(res.budgets) == 7 and all(b.used for b in res.budgets)
    assert res.fit.a == pytest.approx(A_TRUE, abs=0.01)
    assert res.fit.b == pytest.approx(1 - A_TRUE, abs=0.01)  # under C = 6ND, a + b = 1
    assert res.warnings == []
    for b in res.budgets:
        assert b.n_opt == pytest.approx(G * (b.budget / 6) ** A_TRUE, rel=0.1)
        assert b.d_opt == pytest.approx(b.budget / (6 * b.n_opt), rel=0.02)


def test_approach2_budget_tag_wins_over_tolerance() -> None:
    grid = isoflop_grid(jitter=0.2, tagged=True)  # realised C far apart, but each run is tagged
    labels, values, how = group_budgets(grid)
    assert "tag" in how and len(values) == 7
    res = fit_approach2(grid)
    assert res.fit is not None and res.fit.a == pytest.approx(A_TRUE, abs=0.01)


def test_budget_tolerance_groups_within_five_percent() -> None:
    grid = isoflop_grid(jitter=0.01)
    labels, values, how = group_budgets(grid, rel_tol=0.05)
    assert len(values) == 7 and "5%" in how


def test_downward_parabola_and_outside_minimum_are_flagged() -> None:
    n = np.logspace(7, 9, 5)
    down = fit_budget(1e19, n, 1e19 / (6 * n), 3.0 - 0.01 * (np.log(n) - 18.4) ** 2)
    assert not down.used and "opens downward" in down.warnings[0]
    edge = fit_budget(1e19, n, 1e19 / (6 * n), 3.0 + 0.01 * (np.log(n) - 25.0) ** 2)
    assert not edge.used and "outside the sampled range" in edge.warnings[0]


def test_approach2_with_too_few_budgets_keeps_minima_and_notes() -> None:
    grid = isoflop_grid()
    one = grid.take(grid.c < 1.5e18)
    res = fit_approach2(one)
    assert res.fit is None and len(res.budgets) == 1
    assert any("not fitted" in n for n in res.notes)


def test_approach1_recovers_a() -> None:
    sweep = curve_sweep()
    env = compute_envelope(sweep)
    assert env.mode == "curves"
    assert np.all(np.diff(env.loss) < 0) and np.all(np.diff(env.c) > 0)
    fit = fit_approach1(sweep, env)
    assert fit.a == pytest.approx(A_TRUE, abs=0.02)
    assert fit.b == pytest.approx(1 - A_TRUE, abs=0.02)
    assert fit.n_at(1e20) == pytest.approx(G * (1e20 / 6) ** A_TRUE, rel=0.25)


def test_envelope_of_final_points_is_pareto_frontier() -> None:
    grid = isoflop_grid()
    env = compute_envelope(grid)
    assert env.mode == "final points"
    for c, loss in zip(env.c, env.loss, strict=True):
        assert not np.any((grid.c <= c) & (grid.loss < loss))
    fit = fit_approach1(grid, env)
    assert any("Pareto" in n for n in fit.notes)


def test_optimal_scaling_needs_two_budgets() -> None:
    with pytest.raises(ScalingError, match="need >= 2"):
        fit_optimal_scaling("Approach 2", np.array([1e19]), np.array([1e9]), np.array([1e10]))
    two = fit_optimal_scaling("Approach 2", np.array([1e19, 1e20]), np.array([1e9, 3e9]), np.array([1e10, 3e10]))
    assert any("exact fit" in w for w in two.warnings)


def test_a_nearly_flat_isoflop_profile_is_left_out_not_a_crash() -> None:
    """A vertex far beyond any float (a parabola that is almost a line) is outside the sampled range."""
    n = np.array([1e6, 2e6, 4e6, 8e6])
    x = np.log(n) - np.log(n).mean()
    minimum = fit_budget(1e18, n, 1e18 / (6 * n), 3.0 - 1e-3 * x + 1e-9 * x**2)
    assert not minimum.used and minimum.n_opt == float("inf")
    assert any("outside the sampled range" in w for w in minimum.warnings)
