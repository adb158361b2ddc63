"""isoFLOP-minimum estimators (issue 16, item 1) and the vectorised Approach 1/2 bootstraps (item 7).

The estimators are checked against scipy's Akima interpolant and numpy's polyfit; the batched
bootstraps against refitting each replicate with the per-replicate code on the demo's reference runs;
and every estimator against a Chinchilla surface whose exponent a = beta / (alpha + beta) is known.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import Akima1DInterpolator

from scaling.errors import ScalingError
from scaling.fit.approach1 import bootstrap_approach1, fit_approach1
from scaling.fit.approach2 import bootstrap_approach2, budget_weights, fit_approach2
from scaling.fit.bootstrap import resample_counts
from scaling.fit.isoflop_minimum import DOWNWARD, ESTIMATORS, OUTSIDE, TOO_FEW, locate_minima
from scaling.fit.points import FitPoints, load_points

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "results" / "demo_reference"
AT = 1e14

_spec = importlib.util.spec_from_file_location("open_athena_table", REPO / "scripts" / "open_athena_table.py")
assert _spec is not None and _spec.loader is not None
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)
A_TRUE = table.TRUE_LAW[4] / (table.TRUE_LAW[3] + table.TRUE_LAW[4])


def random_profiles(seed: int, rows: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 12))
    x = np.sort(rng.uniform(18, 24, n))
    loss = 0.05 * (x - rng.uniform(19, 23)) ** 2 + 3 + rng.normal(0, 0.01, n)
    w = (rng.random((rows, n)) < 0.7) * rng.integers(1, 3, (rows, n)).astype(float)
    return x, loss, w


def test_akima_minimum_is_scipys_exactly() -> None:
    """The batched Akima minimum equals the minimum of scipy's interpolant (knots and derivative roots)."""
    checked = 0
    for seed in range(80):
        x, loss, w = random_profiles(seed)
        found = locate_minima(x, loss, w, "akima")
        for r in range(w.shape[0]):
            keep = w[r] > 0
            if keep.sum() < 3:
                assert found.status[r] == TOO_FEW
                continue
            ak = Akima1DInterpolator(x[keep], loss[keep])
            cand = np.concatenate([x[keep], ak.derivative().roots(extrapolate=False)])
            best = cand[np.argmin(ak(cand))]
            assert found.x[r] == pytest.approx(best, abs=1e-9)
            assert found.loss[r] == pytest.approx(float(ak(best)), abs=1e-12)
            on_edge = best in (x[keep][0], x[keep][-1])
            assert (found.status[r] == OUTSIDE) == on_edge
            checked += 1
    assert checked > 300
    # Porian et al. minimise on a fine grid: ours is that grid's limit.
    x, loss, _ = random_profiles(3)
    grid = np.linspace(x[0], x[-1], 200_001)
    ak = Akima1DInterpolator(x, loss)
    assert locate_minima(x, loss, np.ones((1, x.size)), "akima").x[0] == pytest.approx(
        grid[np.argmin(ak(grid))], abs=(x[-1] - x[0]) / 200_000
    )


def test_parabolas_are_polyfit_on_the_repeated_points() -> None:
    x, loss, w = random_profiles(7, rows=20)
    found = locate_minima(x, loss, w, "parabola")
    for r in range(w.shape[0]):
        xx, yy = np.repeat(x, w[r].astype(int)), np.repeat(loss, w[r].astype(int))
        if np.unique(xx).size < 3:
            assert found.status[r] == TOO_FEW
            continue
        p2, p1, _ = np.polyfit(xx - xx.mean(), yy, 2)
        assert found.x[r] == pytest.approx(-p1 / (2 * p2) + xx.mean(), abs=1e-9)
    # The local parabola uses the 5 sizes nearest the lowest loss: a far point cannot move it.
    x = np.linspace(19, 23, 9)
    loss = 0.05 * (x - 21) ** 2 + 3
    far = loss.copy()
    far[-1] += 1.0
    near = locate_minima(x, far, np.ones((1, 9)), "local-parabola")
    assert near.x[0] == pytest.approx(21.0, abs=1e-9)
    assert abs(locate_minima(x, far, np.ones((1, 9)), "parabola").x[0] - 21.0) > 0.1
    assert locate_minima(x, -loss, np.ones((1, 9)), "parabola").status[0] == DOWNWARD


def replicate(points: FitPoints, counts: np.ndarray) -> FitPoints:
    return points.take(np.repeat(np.arange(len(points)), counts.astype(int)))


def assert_same(batch: dict[str, np.ndarray], r: int, ref: dict[str, float] | None) -> None:
    if ref is None:
        assert all(not np.isfinite(v[r]) for v in batch.values())
        return
    assert set(batch) == set(ref)
    for key, value in ref.items():
        assert batch[key][r] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def check_approach1_replicates(points: FitPoints, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The batched Approach 1 bootstrap against fit_approach1 on every replicate; returns the batch."""
    batch = bootstrap_approach1(points, counts, AT)
    for r in range(counts.shape[0]):
        try:
            ref = fit_approach1(replicate(points, counts[r])).quantities(AT)
        except ScalingError:
            ref = None
        assert_same(batch, r, ref)
    return batch


@pytest.fixture(scope="module")
def demo() -> tuple[FitPoints, np.ndarray]:
    points = load_points(DEMO)
    return points, resample_counts(points.groups, 60, np.random.default_rng(1))


def test_vectorised_approach1_equals_per_replicate(demo: tuple[FitPoints, np.ndarray]) -> None:
    points, counts = demo
    batch = check_approach1_replicates(points, counts)
    assert np.isfinite(batch["a"]).sum() > 40


def test_vectorised_approach1_on_final_points_only() -> None:
    """No curves: the envelope is the Pareto frontier of the final points, batched as well."""
    points = table.synthetic_grid((0.0, 0.0), 0.005, 0)
    counts = resample_counts(points.groups, 40, np.random.default_rng(2))
    check_approach1_replicates(points, counts)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_vectorised_approach2_equals_per_replicate(demo: tuple[FitPoints, np.ndarray], estimator: str) -> None:
    points, counts = demo
    batch = bootstrap_approach2(points, counts, AT, 0.05, estimator, weighted=False)
    for r in range(counts.shape[0]):
        fit = fit_approach2(replicate(points, counts[r]), 0.05, estimator, weighted=False, compare=False).fit
        assert_same(batch, r, fit.quantities(AT) if fit is not None else None)
    assert np.isfinite(batch["a"]).sum() > 40


def test_vectorised_weighted_approach2_keeps_the_full_fits_weights(demo: tuple[FitPoints, np.ndarray]) -> None:
    """A weighted replicate is the per-replicate minima fitted with the full data's 1/var weights."""
    points, counts = demo
    full = fit_approach2(points, 0.05, "akima", compare=False)
    assert full.weighted
    full_c = np.log([b.budget for b in full.budgets])
    full_w = budget_weights(np.array([b.var_log_n for b in full.budgets]))
    batch = bootstrap_approach2(points, counts, AT, 0.05, "akima")
    for r in range(counts.shape[0]):
        used = [b for b in fit_approach2(replicate(points, counts[r]), 0.05, "akima", compare=False).budgets if b.used]
        if len(used) < 2 or len({b.n_opt for b in used}) < 2:
            assert not np.isfinite(batch["a"][r])
            continue
        w = np.sqrt([full_w[np.argmin(np.abs(full_c - math.log(b.budget)))] for b in used])
        lc = np.log([b.budget for b in used])
        a, lk = np.polyfit(lc, np.log([b.n_opt for b in used]), 1, w=w)
        assert batch["a"][r] == pytest.approx(a, abs=1e-9)
        assert batch["N_opt"][r] == pytest.approx(math.exp(lk + a * math.log(AT)), rel=1e-9)


def test_default_estimator_keeps_the_parabola_numbers(demo: tuple[FitPoints, np.ndarray]) -> None:
    points, _ = demo
    default, named = fit_approach2(points, compare=True), fit_approach2(points, 0.05, "parabola", weighted=False)
    assert default.estimator == "parabola" and not default.weighted
    assert default.fit is not None and named.fit is not None and default.fit.a == named.fit.a
    assert set(default.estimators) == set(ESTIMATORS)
    assert default.estimators["parabola"].a == default.fit.a
    lo, hi = default.estimators["parabola"].ci95_a
    assert lo < default.fit.a < hi


def a_of(points: FitPoints, estimator: str, weighted: bool) -> float:
    fit = fit_approach2(points, estimator=estimator, weighted=weighted, compare=False).fit
    assert fit is not None
    return fit.a


def test_synthetic_truth_centred_and_noiseless_is_exact_for_every_estimator() -> None:
    points = table.synthetic_grid((0.0, 0.0), 0.0, 0)
    for est in ESTIMATORS:
        for weighted in (False, True):
            assert a_of(points, est, weighted) == pytest.approx(A_TRUE, abs=1e-3)


def test_off_centre_sampling_biases_the_parabola_not_akima_or_local() -> None:
    """Open-Athena's point: a profile sampled off its minimum is not a parabola (results/open_athena/synthetic.md)."""
    for shift, parabola_bias in (((-0.6, 0.6), 0.01), ((-0.9, 0.9), 0.04)):
        points = table.synthetic_grid(shift, 0.0, 0)
        assert a_of(points, "parabola", False) - A_TRUE > parabola_bias
        for est in ("local-parabola", "akima"):
            assert abs(a_of(points, est, False) - A_TRUE) < 0.005
            assert abs(a_of(points, est, True) - A_TRUE) < 0.005


def test_off_centre_with_noise_local_parabola_beats_the_parabola() -> None:
    """With 0.5% noise over 12 draws the local parabola's mean bias stays below the parabola's."""
    bias = {
        est: np.mean([a_of(table.synthetic_grid((-0.9, 0.9), 0.005, s), est, False) for s in range(12)]) - A_TRUE
        for est in ("parabola", "local-parabola")
    }
    assert bias["parabola"] > 0.03
    assert abs(bias["local-parabola"]) < bias["parabola"] / 2


def test_estimator_disagreement_is_flagged() -> None:
    """Off-centre and noiseless, the parabola's a lies outside Akima's CI and the reverse: a FLAG."""
    points = table.synthetic_grid((-0.9, 0.9), 0.0005, 0)
    res = fit_approach2(points, compare=True)
    assert any("isoFLOP estimators disagree" in w for w in res.warnings)
    assert not any(
        "disagree" in w for w in fit_approach2(table.synthetic_grid((0.0, 0.0), 0.0005, 0), compare=True).warnings
    )
