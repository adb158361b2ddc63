"""Learning-curve laws per run, judged by how well a curve's first half predicts its final loss.

The question is predictive: fitted on the eval points of the first part of a run (tokens <= F·D,
F = 0.5 by default, D the run's tokens), how well does the law predict the run's final loss? The
relative error of that prediction is reported per run. Two laws:

* ``annealing`` (default): Tissue et al. 2024, "Scaling Law with Learning Rate Annealing", eq. 1,

      L(s) = L0 + A·S1(s)^(-alpha) − B·S2(s),

  with S1(s) = sum of the learning rates of steps 1..s (the forward area) and S2(s) = sum over
  steps of the momentum m_i = lam·m_(i−1) + (eta_(i−1) − eta_i) (the annealing area; lam = 0.999
  as in the paper). Learning rates are in units of the run's peak, rebuilt from the schedule in its
  record (:func:`scaling.fit.points._record_schedule`; a WSD branch record has its own horizon).
  The law sees the schedule, so the drop of a cooldown is predicted, not extrapolated from the
  stable phase.
* ``power``: ``L(t) = L_inf + (t_c / t)^alpha_t`` (Kaplan et al. 2020, sec. 5; t = tokens), blind
  to the schedule: a learning-rate decay at the end makes the tail fall faster than the early power
  law, so a prediction above the truth is its expected failure. It is the fallback for runs whose
  record gives no schedule (tables, older records), each such run counted in a note.

How the annealing law is fitted, and why this is an honest predictive check. Per run, its first
half cannot identify the law: a WSD run's first half is all warmup and stable phase (S2 ≈ 0, so B
is unconstrained), and a free fit of (L0, A, alpha, B) on 5-6 points is unidentified (on the WSD
sweep results/sci_v2: median error 4.2%, max 15%). So the exponent alpha and the annealing
coefficient B are shared across runs, and only (L0, A) are the run's own. The shared pair is fitted
leaving out one whole *training run* at a time: a WSD run and its branch records (``FitPoints.group``)
share one trajectory, so none of the predicted run's curve -- neither half -- reaches (alpha, B).
(alpha, B) come from the other runs' *whole* curves, cooldowns included, which is what a user has
in practice: finished runs, and the first half of a new one. Then (L0, A) are fitted on the first
half of the left-out run alone and the law is evaluated at its final step. Learning (alpha, B) from
the other runs' first halves only was also measured and is biased (science notebook, issue 12: on
results/sci_v2 median 1.86% but mean signed +2.3%, since first halves hold almost no annealing to
learn B from; whole curves: median 1.62%, mean signed +0.0%; the power law on the same cut, 7.6%).

For each fixed alpha the law is linear in every run's (L0, A) and the shared B, so (alpha, B) are
fitted by variable projection: a grid over alpha (then a bounded refinement), each point one
non-negative least squares over all runs' points (L0, A, B >= 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar, nnls

from scaling.errors import ScalingError
from scaling.fit.points import Curve, FitPoints
from scaling.fit.power_law import PowerLawFit, fit_power_law
from scaling.train.schedule import Schedule

N_PARAMS = 3
CURVE_LAWS = ("annealing", "power")
FORMS = {
    "annealing": "L(s) = L0 + A*S1(s)^-alpha - B*S2(s)",
    "power": "L(t) = L_inf + (t_c/t)^alpha_t",
}
#: Momentum of the annealing area (Tissue et al. 2024, sec. 3: lambda = 0.999).
ANNEALING_MOMENTUM = 0.999
#: Search range of the shared exponent alpha of S1 (its fit is flagged when it ends on an edge).
ALPHA_RANGE = (0.02, 2.0)
ALPHA_GRID = np.linspace(*ALPHA_RANGE, 100)
#: Fewest first-part points a run's (L0, A) are fitted on: more than its 2 parameters.
MIN_PARTIAL_POINTS = 3


def fit_learning_curve(tokens: np.ndarray, loss: np.ndarray, run_id: str = "") -> PowerLawFit:
    """Fit ``L(t) = L_inf + (t_c/t)^alpha_t`` to one curve; needs >= 3 points at >= 2 token counts."""
    law = f"L(t) {run_id}".strip()
    return fit_power_law(tokens, loss, irreducible=True, law=law, variable="t")


# ----------------------------------------------------------------------------- the annealing law


@dataclass(frozen=True)
class LrAreas:
    """S1 and S2 after each step 1..T of one run's schedule, in units of its peak learning rate."""

    s1: np.ndarray
    s2: np.ndarray
    tokens_per_step: float

    @classmethod
    def of(cls, schedule: Schedule, tokens_per_step: float, lam: float = ANNEALING_MOMENTUM) -> LrAreas:
        eta = np.array([schedule.lr_at(i) for i in range(schedule.total_steps)]) / schedule.lr
        drop = np.maximum(0.0, np.concatenate([[0.0], eta[:-1] - eta[1:]]))  # only decreases anneal
        momentum = _momentum(drop, lam)
        return cls(np.cumsum(eta), np.cumsum(momentum), float(tokens_per_step))

    def at(self, tokens: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """S1, S2 after the step that ends at ``tokens`` (clipped to the run's steps)."""
        step = np.clip(np.rint(np.asarray(tokens, dtype=float) / self.tokens_per_step).astype(int), 1, len(self.s1))
        return self.s1[step - 1], self.s2[step - 1]


def _momentum(drop: np.ndarray, lam: float) -> np.ndarray:
    """m_i = drop_i + lam * m_(i-1), the first-order recursion of Tissue et al.'s annealing momentum.

    A plain loop (a run has thousands of steps, not millions) in the arithmetic order of
    ``scipy.signal.lfilter([1], [1, -lam], drop)``, so bit for bit its result; importing scipy.signal
    cost ~0.3 s of every ``scaling fit`` (issue 16, item 7).
    """
    out = np.empty(len(drop))
    m = 0.0
    for i, value in enumerate(drop.tolist()):
        m = value + lam * m
        out[i] = m
    return out


@dataclass
class AnnealingFit:
    """The annealing law of one run: its own (L0, A) and the (alpha, B) it was given or shared."""

    l0: float
    a: float
    alpha: float
    b: float
    areas: LrAreas
    n_points: int
    rmse_log: float
    warnings: list[str] = field(default_factory=list)

    def predict(self, tokens: np.ndarray | float) -> np.ndarray:
        s1, s2 = self.areas.at(tokens)
        return self.l0 + self.a * s1 ** (-self.alpha) - self.b * s2

    def parameters(self) -> dict[str, float]:
        return {"L0": self.l0, "A": self.a, "alpha": self.alpha, "B": self.b}


@dataclass(frozen=True)
class _Areas:
    """One run's points on the areas: S1, S2 at each eval point, and its losses."""

    s1: np.ndarray
    s2: np.ndarray
    loss: np.ndarray


def _nnls_scaled(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative least squares with unit-max columns (S1^-alpha and S2 differ by orders of magnitude)."""
    scale = np.max(np.abs(x), axis=0)
    scale[scale == 0] = 1.0
    coef, res = nnls(x / scale, y)
    return coef / scale, float(res)


def _shared_at(alpha: float, runs: Sequence[_Areas]) -> tuple[float, np.ndarray]:
    """Residual norm and coefficients (L0_1, A_1, ..., L0_k, A_k, B) of every run at one alpha."""
    rows = sum(len(r.loss) for r in runs)
    x = np.zeros((rows, 2 * len(runs) + 1))
    y = np.concatenate([r.loss for r in runs])
    at = 0
    for j, r in enumerate(runs):
        part = slice(at, at + len(r.loss))
        x[part, 2 * j] = 1.0
        x[part, 2 * j + 1] = r.s1 ** (-alpha)
        x[part, -1] = -r.s2
        at += len(r.loss)
    coef, res = _nnls_scaled(x, y)
    return res, coef


def fit_shared(runs: Sequence[_Areas]) -> tuple[float, float, np.ndarray, list[str]]:
    """(alpha, B) shared by ``runs``, each run's (L0, A) as rows, and warnings; by variable projection."""
    res = [_shared_at(float(a), runs)[0] for a in ALPHA_GRID]
    k = int(np.argmin(res))
    step = float(ALPHA_GRID[1] - ALPHA_GRID[0])
    lo, hi = max(ALPHA_RANGE[0], ALPHA_GRID[k] - step), min(ALPHA_RANGE[1], ALPHA_GRID[k] + step)
    best = minimize_scalar(lambda a: _shared_at(float(a), runs)[0], bounds=(lo, hi), method="bounded")
    alpha = float(best.x) if best.fun <= res[k] else float(ALPHA_GRID[k])
    _, coef = _shared_at(alpha, runs)
    warnings = []
    if k in (0, len(ALPHA_GRID) - 1):
        warnings.append(f"shared alpha {alpha:.3g} at the edge of its search range {ALPHA_RANGE}")
    return alpha, float(coef[-1]), coef[:-1].reshape(-1, 2), warnings


def fit_own(run: _Areas, alpha: float, b: float) -> tuple[float, float]:
    """One run's (L0, A) with (alpha, B) given: L + B·S2 = L0 + A·S1^-alpha, L0, A >= 0."""
    x = np.column_stack([np.ones_like(run.s1), run.s1 ** (-alpha)])
    (l0, a), _ = _nnls_scaled(x, run.loss + b * run.s2)
    return float(l0), float(a)


def _rmse_log(predicted: np.ndarray, loss: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(predicted) - np.log(loss)
    return float(np.sqrt(np.mean(r**2))) if np.all(np.isfinite(r)) else math.nan


# ----------------------------------------------------------------------------- per-run checks


@dataclass
class CurveCheck:
    """One run: the law on its whole curve, and the final-loss prediction from its first part."""

    run_id: str
    n: float
    law: str
    full: PowerLawFit | AnnealingFit
    partial: PowerLawFit | AnnealingFit | None
    n_used: int
    t_used: float
    t_final: float
    actual: float
    predicted: float
    rel_error: float

    @property
    def parameters(self) -> dict[str, float]:
        """The whole-curve law's parameters under the names its form uses."""
        f = self.full
        if isinstance(f, AnnealingFit):
            return f.parameters()
        return {"L_inf": f.e, "t_c": f.x_c, "alpha_t": f.alpha}

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "N": self.n,
            "law": self.law,
            **self.parameters,
            "n_points": self.full.n_points,
            "rmse_log": self.full.rmse_log,
            "partial_points": self.n_used,
            "partial_up_to_tokens": self.t_used,
            "final_tokens": self.t_final,
            "final_loss": self.actual,
            "predicted_final_loss": self.predicted,
            "rel_error": self.rel_error,
            "warnings": self.full.warnings + (self.partial.warnings if self.partial else []),
        }


def _first_part(curve: Curve, final_tokens: float, fraction: float) -> int:
    """How many leading points lie at tokens <= fraction·D (at least N_PARAMS, so the power law can fit)."""
    return max(N_PARAMS, int(np.count_nonzero(curve.tokens <= fraction * final_tokens * (1 + 1e-9))))


def check_curve(curve: Curve, final_tokens: float, final_loss: float, fraction: float = 0.5) -> CurveCheck:
    """The power law on the whole curve, then on its points at tokens <= fraction·D, predicting the end."""
    full = fit_learning_curve(curve.tokens, curve.loss, curve.run_id)
    k = _first_part(curve, final_tokens, fraction)
    partial = fit_learning_curve(curve.tokens[:k], curve.loss[:k], curve.run_id) if k < len(curve) else None
    return _checked(curve, "power", full, partial, k, final_tokens, final_loss)


def _checked(
    curve: Curve,
    law: str,
    full: PowerLawFit | AnnealingFit,
    partial: PowerLawFit | AnnealingFit | None,
    k: int,
    final_tokens: float,
    final_loss: float,
) -> CurveCheck:
    """The check of one run: ``partial`` (fitted on its first ``k`` points, or None) predicts its final loss."""
    predicted = float(partial.predict(final_tokens)) if partial is not None else math.nan
    return CurveCheck(
        run_id=curve.run_id,
        n=curve.n,
        law=law,
        full=full,
        partial=partial,
        n_used=k,
        t_used=float(curve.tokens[k - 1]) if k else math.nan,
        t_final=float(final_tokens),
        actual=float(final_loss),
        predicted=predicted,
        rel_error=(predicted - final_loss) / final_loss,
    )


def check_annealing(
    curves: Sequence[Curve],
    final_tokens: Sequence[float],
    final_loss: Sequence[float],
    groups: Sequence[object],
    fraction: float = 0.5,
) -> tuple[list[CurveCheck], dict[str, Any]]:
    """The annealing law over runs with schedules: whole-curve fit with (alpha, B) shared by all, and
    each run's final loss predicted leaving out its training run (see the module docstring).

    Returns the per-run checks and the shared fit on all runs (alpha, B, warnings).
    """
    if len(set(groups)) < 2:
        raise ScalingError("the annealing law needs >= 2 training runs: (alpha, B) are learnt from the other runs")
    areas: list[LrAreas] = []
    whole: list[_Areas] = []
    for cv in curves:
        assert cv.schedule is not None and cv.tokens_per_step is not None
        a = LrAreas.of(cv.schedule, cv.tokens_per_step)
        areas.append(a)
        whole.append(_Areas(*a.at(cv.tokens), cv.loss))
    alpha, b, own, warnings = fit_shared(whole)
    shared = {"alpha": alpha, "B": b, "n_runs": len(curves), "warnings": warnings}
    held_out: dict[object, tuple[float, float, list[str]]] = {}
    for g in dict.fromkeys(groups):  # one fit per left-out training run, in order of appearance
        alpha_g, b_g, _, warn_g = fit_shared([w for w, gi in zip(whole, groups, strict=True) if gi != g])
        held_out[g] = (alpha_g, b_g, [f"left out {g}: {w}" for w in warn_g])
    checks = []
    for i, cv in enumerate(curves):
        full = AnnealingFit(float(own[i, 0]), float(own[i, 1]), alpha, b, areas[i], len(cv), math.nan, list(warnings))
        full.rmse_log = _rmse_log(full.predict(cv.tokens), cv.loss)
        k = int(np.count_nonzero(cv.tokens <= fraction * final_tokens[i] * (1 + 1e-9)))
        partial = None
        if MIN_PARTIAL_POINTS <= k < len(cv):
            alpha_g, b_g, warn_g = held_out[groups[i]]
            first = _Areas(whole[i].s1[:k], whole[i].s2[:k], cv.loss[:k])
            l0, a_i = fit_own(first, alpha_g, b_g)
            partial = AnnealingFit(l0, a_i, alpha_g, b_g, areas[i], k, math.nan, list(warn_g))
            partial.rmse_log = _rmse_log(partial.predict(cv.tokens[:k]), cv.loss[:k])
        checks.append(_checked(cv, "annealing", full, partial, k, final_tokens[i], final_loss[i]))
    return checks, shared


@dataclass
class LearningCurveReport:
    """Per-run learning-curve fits and the summary of their final-loss predictions."""

    fraction: float
    law: str = "power"
    runs: list[CurveCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)  # annealing: (alpha, B) fitted on all runs

    @property
    def form(self) -> str:
        return FORMS[self.law]

    @property
    def errors(self) -> np.ndarray:
        e = np.array([r.rel_error for r in self.runs], dtype=float)
        return e[np.isfinite(e)]

    @property
    def warnings(self) -> list[str]:
        """Per-run fit problems, summarised by kind so fifty runs do not make fifty lines."""
        kinds: dict[str, list[str]] = {}
        for r in self.runs:
            for w in r.full.warnings:
                kind = w.split(": ", 1)[-1].replace("E at", "L_inf at")
                kinds.setdefault(kind, []).append(r.run_id)
        return [
            f"learning curve: {len(ids)} of {len(self.runs)} run(s): {kind} ({', '.join(ids[:3])}"
            f"{', ...' if len(ids) > 3 else ''})"
            for kind, ids in kinds.items()
        ]

    def summary(self) -> dict[str, float]:
        e = self.errors
        if e.size == 0:
            return {}
        return {
            "n_runs": int(e.size),
            "median_abs_rel_error": float(np.median(np.abs(e))),
            "mean_rel_error": float(np.mean(e)),
            "max_abs_rel_error": float(np.max(np.abs(e))),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "form": self.form,
            "fraction": self.fraction,
            "first_part": f"eval points at tokens <= {self.fraction:g} x the run's tokens",
            **({"shared": dict(self.shared)} if self.shared else {}),
            **self.summary(),
            "runs": [r.as_dict() for r in self.runs],
            "notes": list(self.notes),
            "warnings": self.warnings,
        }


def fit_learning_curves(points: FitPoints, fraction: float = 0.5, law: str = "annealing") -> LearningCurveReport:
    """Fit every run's curve that has enough points under ``law``; runs that cannot be fitted are
    counted in a note, and runs without a schedule fall back from the annealing law to the power law."""
    if not 0 < fraction < 1:
        raise ScalingError(f"learning-curve fraction must be in (0, 1), got {fraction}")
    if law not in CURVE_LAWS:
        raise ScalingError(f"learning-curve law must be one of {', '.join(CURVE_LAWS)}, got {law!r}")
    usable = [(i, cv) for i, cv in enumerate(points.curves) if cv is not None and len(cv) >= 2 * N_PARAMS]
    scheduled = [(i, cv) for i, cv in usable if law == "annealing" and cv.schedule is not None]
    report = LearningCurveReport(fraction, law="annealing" if scheduled else "power")
    checks: dict[int, CurveCheck] = {}
    if law == "annealing" and len(scheduled) < len(usable):
        report.notes.append(
            f"{len(usable) - len(scheduled)} run(s) without a learning-rate schedule in their record (tables, "
            "older records, or one its logged learning rates contradict): power law L(t) used for them"
        )
    if scheduled:
        index = [i for i, _ in scheduled]
        try:
            found, report.shared = check_annealing(
                [cv for _, cv in scheduled],
                [float(points.d[i]) for i in index],
                [float(points.loss[i]) for i in index],
                [points.groups[i] for i in index],
                fraction,
            )
            checks.update(zip(index, found, strict=True))
            unpredicted = sum(1 for c in found if not math.isfinite(c.rel_error))
            if unpredicted:
                report.notes.append(
                    f"{unpredicted} run(s) with fewer than {MIN_PARTIAL_POINTS} eval points at tokens <= "
                    f"{fraction:g} x its tokens: final loss not predicted"
                )
        except ScalingError as err:
            report.law = "power"
            report.notes.append(f"annealing law not fitted ({err}): power law L(t) used")
    failed = 0
    for i, curve in usable:
        if i in checks:
            continue
        try:
            checks[i] = check_curve(curve, float(points.d[i]), float(points.loss[i]), fraction)
        except ScalingError:
            failed += 1
    report.runs = [checks[i] for i in sorted(checks)]
    short = len(points.curves) - len(usable)
    if short:
        report.notes.append(f"{short} run(s) without an eval curve of >= {2 * N_PARAMS} points skipped")
    if failed:
        report.notes.append(f"{failed} curve(s) could not be fitted")
    return report
