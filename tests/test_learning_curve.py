"""Learning-curve laws: the annealing law (Tissue et al. 2024) predicts a run's final loss from its
first half under WSD and cosine schedules; the power law L(t) = L_inf + (t_c/t)^alpha_t is recovered
and is the fallback for runs without a schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.learning_curve import LrAreas, check_curve, fit_learning_curve, fit_learning_curves
from scaling.fit.points import Curve, FitPoints
from scaling.train.schedule import Schedule

L_INF, T_C, ALPHA_T = 2.1, 3e5, 0.35
# The annealing law's shared exponent and annealing coefficient (areas in units of the peak lr).
ALPHA, B = 0.4, 4e-4
TOKENS_PER_STEP = 1024


def curve(n_points: int = 40, noise: float = 0.002, seed: int = 0, run_id: str = "r0") -> Curve:
    t = np.logspace(6, 9, n_points)
    loss = (L_INF + (T_C / t) ** ALPHA_T) * np.exp(np.random.default_rng(seed).normal(0, noise, n_points))
    return Curve(run_id, 1e7, t, 6e7 * t, loss)


def points_of(curves: list[Curve], final_loss: list[float], group: list[str] | None = None) -> FitPoints:
    k = len(curves)
    return FitPoints(
        run_id=np.array([c.run_id for c in curves], dtype=object),
        n=np.array([c.n for c in curves]),
        d=np.array([c.tokens[-1] for c in curves]),
        c=np.array([c.flops[-1] for c in curves]),
        loss=np.array(final_loss),
        budget=np.full(k, np.nan),
        curves=tuple(curves),
        source="synthetic",
        kind="records",
        params="with_head",
        flops="exact",
        n_from="N",
        c_from="C",
        group=None if group is None else np.array(group, dtype=object),
    )


def annealed_run(run_id: str, schedule: Schedule, l0: float, a: float, noise: float, seed: int) -> Curve:
    """A run whose loss follows L = l0 + a S1^-ALPHA - B S2 under ``schedule``, at log-spaced eval steps."""
    steps = np.unique(np.geomspace(8, schedule.total_steps, 14).round().astype(int))
    tokens = steps * float(TOKENS_PER_STEP)
    s1, s2 = LrAreas.of(schedule, TOKENS_PER_STEP).at(tokens)
    loss = (l0 + a * s1 ** (-ALPHA) - B * s2) * np.exp(np.random.default_rng(seed).normal(0, noise, steps.size))
    return Curve(run_id, 1e5 * (1 + seed), tokens, 6e5 * tokens, loss, schedule, float(TOKENS_PER_STEP))


def sweep(noise: float) -> tuple[list[Curve], list[float], list[float]]:
    """Six runs, three WSD and three cosine, of different lengths, sizes (L0, A) and peak learning rates;
    returns the curves, their final losses with noise, and the noise-free final losses."""
    runs, truth = [], []
    for i, (name, steps, lr) in enumerate(
        [("wsd", 600, 0.01), ("wsd", 1500, 0.008), ("wsd", 3000, 0.005), ("cosine", 800, 0.01)]
        + [("cosine", 2000, 0.006), ("cosine", 4000, 0.004)]
    ):
        sched = Schedule(name, lr, 40, steps, 0.0 if name == "wsd" else 0.1, 0.2)
        l0, a = 2.0 + 0.1 * i, 5.0 - 0.2 * i
        runs.append(annealed_run(f"{name}{steps}", sched, l0, a, noise, seed=i))
        s1, s2 = LrAreas.of(sched, TOKENS_PER_STEP).at(steps * TOKENS_PER_STEP)
        truth.append(float(l0 + a * s1 ** (-ALPHA) - B * s2))
    return runs, [float(c.loss[-1]) for c in runs], truth


def test_annealing_law_predicts_the_final_loss_from_the_first_half_under_wsd_and_cosine() -> None:
    runs, final, truth = sweep(noise=0.0)
    report = fit_learning_curves(points_of(runs, final))
    assert report.law == "annealing" and report.notes == []
    assert report.shared["alpha"] == pytest.approx(ALPHA, rel=0.01)
    assert report.shared["B"] == pytest.approx(B, rel=0.01)
    for check in report.runs:
        assert check.law == "annealing" and check.t_used <= 0.5 * check.t_final
        assert abs(check.rel_error) < 1e-3, check.as_dict()
    summary = report.summary()
    assert summary["n_runs"] == len(runs) and summary["median_abs_rel_error"] < 1e-4
    assert report.as_dict()["form"] == "L(s) = L0 + A*S1(s)^-alpha - B*S2(s)"


def test_annealing_law_with_noise_predicts_within_half_a_percent() -> None:
    runs, final, truth = sweep(noise=0.002)
    report = fit_learning_curves(points_of(runs, final))
    predicted = np.array([c.predicted for c in report.runs])
    assert np.max(np.abs(predicted / np.array(truth) - 1)) < 0.005
    # The power law, blind to the schedule, misses the cooldowns by far more on the same cut.
    power = fit_learning_curves(points_of(runs, final), law="power")
    assert (
        power.law == "power" and power.summary()["median_abs_rel_error"] > 3 * report.summary()["median_abs_rel_error"]
    )


def test_shared_parameters_never_see_the_predicted_training_run() -> None:
    """A run and its branch records form one training run: its prediction must not change when its
    own records change beyond its first half, since (alpha, B) come from the other runs only."""
    runs, final, _ = sweep(noise=0.002)
    groups = ["g0", "g0", "g1", "g2", "g3", "g4"]  # runs 0 and 1 as one training run
    before = fit_learning_curves(points_of(runs, final, groups))
    spoiled = runs[1]
    half = spoiled.tokens <= spoiled.tokens[-1] / 2
    loss = np.where(half, spoiled.loss, spoiled.loss + 0.3)  # a second half no law would predict
    runs[1] = Curve(spoiled.run_id, spoiled.n, spoiled.tokens, spoiled.flops, loss, *_schedule_of(spoiled))
    after = fit_learning_curves(points_of(runs, final, groups))
    assert after.runs[0].predicted == pytest.approx(before.runs[0].predicted, rel=1e-12)
    assert after.runs[1].predicted == pytest.approx(before.runs[1].predicted, rel=1e-12)
    assert after.runs[2].predicted != pytest.approx(before.runs[2].predicted, rel=1e-9)


def _schedule_of(cv: Curve) -> tuple[Schedule | None, float | None]:
    return cv.schedule, cv.tokens_per_step


def test_runs_without_a_schedule_fall_back_to_the_power_law() -> None:
    runs, final, _ = sweep(noise=0.0)
    plain = curve(seed=3, run_id="table-run")
    report = fit_learning_curves(points_of([*runs, plain], [*final, float(plain.loss[-1])]))
    assert report.law == "annealing"
    laws = {c.run_id: c.law for c in report.runs}
    assert laws["table-run"] == "power" and set(laws.values()) == {"annealing", "power"}
    assert any("1 run(s) without a learning-rate schedule" in n and "power law" in n for n in report.notes)
    as_dict = {r["run_id"]: r for r in report.as_dict()["runs"]}
    assert {"L_inf", "t_c", "alpha_t"} <= set(as_dict["table-run"]) and {"L0", "A", "alpha", "B"} <= set(
        as_dict[runs[0].run_id]
    )


def test_one_training_run_cannot_teach_the_shared_parameters() -> None:
    runs, final, _ = sweep(noise=0.0)
    report = fit_learning_curves(points_of(runs[:2], final[:2], ["g", "g"]))
    assert report.law == "power" and any("needs >= 2 training runs" in n for n in report.notes)
    assert [c.law for c in report.runs] == ["power", "power"]


def test_power_law_parameters_recovered() -> None:
    c = curve()
    fit = fit_learning_curve(c.tokens, c.loss)
    assert fit.e == pytest.approx(L_INF, abs=0.02)
    assert fit.alpha == pytest.approx(ALPHA_T, abs=0.02)
    assert fit.x_c == pytest.approx(T_C, rel=0.2)
    assert fit.converged and fit.warnings == []


def test_power_law_final_loss_predicted_from_the_first_half_of_the_tokens() -> None:
    c = curve(noise=0.001)
    check = check_curve(c, float(c.tokens[-1]), float(c.loss[-1]), fraction=0.5)
    k = int(np.count_nonzero(c.tokens <= c.tokens[-1] / 2))  # tokens <= D/2, not half the eval points
    assert k == 36 and check.n_used == k and check.t_used == pytest.approx(c.tokens[k - 1])
    assert abs(check.rel_error) < 0.01
    assert check.as_dict()["predicted_final_loss"] == pytest.approx(check.predicted)


def test_report_over_runs_skips_short_curves() -> None:
    curves = [
        curve(seed=1, run_id="a"),
        curve(seed=2, run_id="b"),
        Curve("c", 1e7, np.array([1e6, 2e6]), np.array([6e13, 1.2e14]), np.array([3.0, 2.9])),  # too short
    ]
    report = fit_learning_curves(points_of(curves, [float(c.loss[-1]) for c in curves]), law="power")
    assert [r.run_id for r in report.runs] == ["a", "b"]
    assert any("skipped" in n for n in report.notes)
    summary = report.summary()
    assert summary["n_runs"] == 2 and summary["median_abs_rel_error"] < 0.01
    assert report.as_dict()["form"] == "L(t) = L_inf + (t_c/t)^alpha_t"


def test_bad_law_or_too_few_points_is_an_error() -> None:
    with pytest.raises(ScalingError, match="2 point"):
        fit_learning_curve(np.array([1e6, 1e7]), np.array([3.0, 2.8]))
    with pytest.raises(ScalingError, match="law must be one of"):
        fit_learning_curves(points_of([curve()], [2.2]), law="cubic")


def test_areas_follow_the_paper() -> None:
    """S1 sums the learning rates; S2 sums the momentum of the decreases (lambda = 0.999)."""
    sched = Schedule("wsd", 0.01, 2, 10, 0.0, 0.5)
    areas = LrAreas.of(sched, 1.0)
    eta = np.array([sched.lr_at(i) for i in range(10)]) / 0.01
    assert areas.s1 == pytest.approx(np.cumsum(eta))
    m, s2 = 0.0, []
    for i in range(10):
        m = 0.999 * m + (max(0.0, eta[i - 1] - eta[i]) if i else 0.0)
        s2.append(m)
    assert areas.s2 == pytest.approx(np.cumsum(s2))
    assert areas.s2[4] == 0.0 and areas.s2[-1] > 0  # nothing anneals before the cooldown
    assert math.isclose(float(areas.at(10.0)[0]), float(areas.s1[-1]))
