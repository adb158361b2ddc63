"""Chinchilla Approach 2 (Hoffmann et al. 2022, sec. 3.2): isoFLOP profiles.

Final points are grouped by compute budget -- an explicit isoFLOP tag (``budget.flops``)
when every run carries one, else C values equal within a relative tolerance. For each
budget the minimum of loss against log N is N_opt for that budget: by default the vertex of
a parabola through all its points (Hoffmann et al.), or a local parabola or an Akima interpolant
(Porian et al. 2024; :mod:`scaling.fit.isoflop_minimum`). D_opt is read off the group's own log D vs log N line at N_opt, so it holds
under any FLOP convention (under C = 6ND it equals C / (6 N_opt)). Power laws
N_opt ∝ C^a and D_opt ∝ C^b over the budgets follow.

A parabola opening downward has no minimum; a vertex outside the sampled N range is
an extrapolation. Both are flagged and that budget is left out of the power law.

:func:`bootstrap_approach2` refits all bootstrap replicates of runs at once (batched weighted least
squares, counts as weights) instead of one ``fit_approach2`` per replicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.approach1 import OptimalScaling, fit_optimal_scaling
from scaling.fit.isoflop_minimum import (
    DOWNWARD,
    ESTIMATORS,
    OK,
    SPREAD_DRAWS,
    VAR_FLOOR,
    check_estimator,
    distinct_count,
    locate_minima,
    resample_points,
    weighted_line,
)
from scaling.fit.points import FitPoints, group_by_log
from scaling.fit.power_law import exp_or_inf
from scaling.intervals import percentile_ci


@dataclass
class BudgetMinimum:
    """One isoFLOP profile's minimum; for the parabolas ``loss = p2 x^2 + p1 x + p0`` with ``x = log N - x0``.

    ``estimator`` says how the minimum was found (:mod:`scaling.fit.isoflop_minimum`); ``knots`` holds the
    (log N, loss) points of the Akima interpolant. ``var_log_n`` is the variance of log N_opt over a
    bootstrap of this budget's points (NaN where not computed), the weight's inverse in the power law.
    """

    budget: float
    n_points: int
    n_range: tuple[float, float]
    coeffs: tuple[float, float, float]
    x0: float
    n_opt: float
    d_opt: float
    loss_min: float
    used: bool
    warnings: list[str] = field(default_factory=list)
    estimator: str = "parabola"
    knots: tuple[np.ndarray, np.ndarray] | None = None
    var_log_n: float = math.nan

    def curve(self, n: np.ndarray) -> np.ndarray:
        if self.knots is not None:
            from scipy.interpolate import Akima1DInterpolator

            return Akima1DInterpolator(*self.knots, extrapolate=False)(np.log(n))
        return np.polyval(self.coeffs, np.log(n) - self.x0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "C": self.budget,
            "n_points": self.n_points,
            "N_min": self.n_range[0],
            "N_max": self.n_range[1],
            "N_opt": self.n_opt,
            "D_opt": self.d_opt,
            "loss_min": self.loss_min,
            "curvature": self.coeffs[0] if math.isfinite(self.coeffs[0]) else None,
            "used": self.used,
            "warnings": list(self.warnings),
        }


def group_budgets(points: FitPoints, rel_tol: float = 0.05) -> tuple[np.ndarray, np.ndarray, str]:
    """Label each run with an isoFLOP budget; returns (labels, budget C per label, how grouped).

    A budget's C is the geometric mean of its runs' C under the chosen FLOP convention, also when the
    runs are grouped by their tag: the tag is in the planner's convention, and Approaches 1-3 must
    share one C axis.
    """
    if np.all(np.isfinite(points.budget)):
        _, labels = np.unique(points.budget, return_inverse=True)
        how = f"budget tag ({points.budget_from})"
    else:
        labels = group_by_log(points.c, rel_tol)
        how = f"C equal within {rel_tol:.0%}"
    labels = np.asarray(labels).ravel()
    values = np.array([math.exp(np.mean(np.log(points.c[labels == g]))) for g in range(labels.max() + 1)])
    return labels, values, how


def fit_budget(
    budget: float, n: np.ndarray, d: np.ndarray, loss: np.ndarray, estimator: str = "parabola"
) -> BudgetMinimum:
    """Locate one budget's isoFLOP minimum with ``estimator`` (needs >= 3 distinct N).

    ``parabola`` is Hoffmann et al.'s vertex, computed exactly as before this option existed;
    the other estimators come from :func:`scaling.fit.isoflop_minimum.locate_minima`.
    """
    x = np.log(n)
    if np.unique(n).size < 3:
        raise ScalingError(f"budget {budget:.4g}: {np.unique(n).size} distinct N, a parabola needs 3")
    lo, hi = float(n.min()), float(n.max())
    warnings: list[str] = []
    knots = None
    if estimator == "parabola":
        x0 = float(x.mean())
        coeffs = tuple(float(v) for v in np.polyfit(x - x0, loss, 2))
        p2, p1, p0 = coeffs
        used = True
        if p2 <= 0:
            warnings.append(f"budget {budget:.4g}: parabola opens downward (no minimum); budget left out")
            xs = float(x[np.argmin(loss)] - x0)
            used = False
        else:
            xs = -p1 / (2 * p2)
        loss_min = float(p0 + p1 * xs + p2 * xs * xs) if used else float(loss.min())
        x_min = xs + x0
    else:
        found = locate_minima(x, loss, np.ones((1, len(x))), estimator)
        status = int(found.status[0])
        x_min, x0 = float(found.x[0]), float(found.x0[0])
        coeffs = tuple(float(v) for v in found.coeffs[0])
        used = status == OK
        loss_min = float(found.loss[0]) if used else float(loss.min())
        if status == DOWNWARD:
            warnings.append(f"budget {budget:.4g}: {estimator} opens downward (no minimum); budget left out")
        if estimator == "akima":
            ux = np.unique(x)
            knots = (ux, np.array([loss[x == v].mean() for v in ux]))
    n_opt = exp_or_inf(x_min)  # a nearly flat parabola's vertex can lie beyond any float: left out below
    if not used and not warnings:
        warnings.append(
            f"budget {budget:.4g}: {estimator} minimum at the edge of the sampled range [{lo:.4g}, {hi:.4g}]; "
            "budget left out"
        )
    if used and not (lo <= n_opt <= hi):
        warnings.append(
            f"budget {budget:.4g}: minimum N={n_opt:.4g} outside the sampled range [{lo:.4g}, {hi:.4g}]; "
            "budget left out"
        )
        used = False
    # D_opt from this budget's own D-N relation (linear in log-log), valid under any FLOP convention.
    slope, intercept = np.polyfit(x, np.log(d), 1)
    d_opt = exp_or_inf(intercept + slope * x_min)
    if len(n) == 3:
        warnings.append(f"budget {budget:.4g}: 3 points for the 3-parameter parabola: exact fit")
    return BudgetMinimum(
        budget=float(budget),
        n_points=len(n),
        n_range=(lo, hi),
        coeffs=coeffs,  # type: ignore[arg-type]
        x0=x0,
        n_opt=n_opt,
        d_opt=d_opt,
        loss_min=loss_min,
        used=used,
        warnings=warnings,
        estimator=estimator,
        knots=knots,
    )


@dataclass
class EstimatorSummary:
    """The exponent a that one isoFLOP estimator gives, fitted both ways, with its per-budget-bootstrap CI."""

    estimator: str
    n_used: int
    a: float  # under the chosen fit's weighting (what the FLAG compares)
    a_unweighted: float
    a_weighted: float
    ci95_a: tuple[float, float]  # per-budget bootstrap (Porian et al.), under the chosen weighting

    def as_dict(self) -> dict[str, Any]:
        fits = {key: getattr(self, key) for key in ("a", "a_unweighted", "a_weighted")}
        return {"n_budgets_used": self.n_used, **fits, "ci95_a_per_budget_bootstrap": list(self.ci95_a)}


@dataclass
class Approach2Result:
    """Per-budget minima and, where >= 2 budgets have a valid minimum, the fitted power laws.

    ``estimators`` holds a under every isoFLOP estimator (they are cheap) so that a disagreement larger
    than the chosen fit's 95% CI is flagged: the exponent then depends on how minima are taken.
    """

    budgets: list[BudgetMinimum]
    grouping: str
    fit: OptimalScaling | None
    notes: list[str] = field(default_factory=list)
    estimator: str = "parabola"
    weighted: bool = False
    estimators: dict[str, EstimatorSummary] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        own = [f"Approach 2: {w}" for b in self.budgets for w in b.warnings if "exact fit" not in w]
        exact = [b for b in self.budgets if b.used and b.n_points == 3]
        if exact:
            own.append(
                f"Approach 2: {len(exact)} budget(s) rest on exactly 3 points, as many as the parabola has "
                "parameters: their minima have no residual check"
            )
        disagree = self.estimator_disagreement()
        if disagree:
            own.append(disagree)
        return own + (self.fit.warnings if self.fit else [])

    def a_interval(self) -> tuple[tuple[float, float], str] | None:
        """The chosen fit's 95% CI of a: the run bootstrap's when there is one, else the per-budget one."""
        if self.fit is None:
            return None
        if "a" in self.fit.ci95:
            return self.fit.ci95["a"], f"{self.fit.n_boot} bootstrap resamples of runs"
        mine = self.estimators.get(self.estimator)
        if mine is None or not all(math.isfinite(v) for v in mine.ci95_a):
            return None
        return mine.ci95_a, f"bootstrap of each budget's points ({SPREAD_DRAWS} draws)"

    def estimator_disagreement(self) -> str | None:
        """A FLAG when the chosen a and another estimator's a each lie outside the other's 95% CI.

        Both ways, not only outside the chosen CI: an Akima interpolant follows the noise of a coarse grid,
        so its a scatters more than a parabola's (see tests/test_isoflop_estimators.py); a disagreement
        that the noisier estimator's own interval covers is that noise, not a dependence on the estimator.
        """
        interval = self.a_interval()
        if interval is None or self.fit is None:
            return None
        (lo, hi), source = interval
        a = self.fit.a
        far = {
            k: e.a
            for k, e in self.estimators.items()
            if k != self.estimator
            and math.isfinite(e.a)
            and not lo <= e.a <= hi
            and not e.ci95_a[0] <= a <= e.ci95_a[1]  # a NaN interval compares False: flagged
        }
        if not far:
            return None
        listed = ", ".join(f"{v:.4g} ({k})" for k, v in far.items())
        return (
            f"Approach 2: isoFLOP estimators disagree: a = {a:.4g} ({self.estimator}, 95% CI "
            f"[{lo:.4g}, {hi:.4g}] from the {source}) against {listed}, each outside the other's 95% CI; "
            "the exponent depends on how the minima are taken"
        )


def default_weighted(estimator: str) -> bool:
    """Hoffmann et al.'s parabola keeps its ordinary least-squares power law (today's numbers); the other
    estimators follow Porian et al. 2024 and weigh each budget by 1 / var(log N_opt)."""
    return estimator != "parabola"


def fit_approach2(
    points: FitPoints,
    rel_tol: float = 0.05,
    estimator: str = "parabola",
    *,
    weighted: bool | None = None,
    compare: bool = False,
) -> Approach2Result:
    """Chinchilla Approach 2 over every budget with >= 3 distinct N.

    The per-budget minima are returned even when fewer than 2 budgets are usable; ``fit`` is then
    ``None`` and a note says why, so a plot can still show the profiles. ``weighted`` (default: see
    :func:`default_weighted`) fits the power laws with weights 1 / var(log N_opt) from a bootstrap of
    each budget's points. ``compare`` also fits a under every estimator for the report and the FLAG
    (``scaling fit`` asks for it; off by default, since per-resample refits never read it).
    """
    check_estimator(estimator)
    weighted = default_weighted(estimator) if weighted is None else weighted
    labels, values, grouping = group_budgets(points, rel_tol)
    groups: list[int] = []
    minima: list[BudgetMinimum] = []
    too_small = 0
    for g, budget in enumerate(values):
        m = labels == g
        try:
            minima.append(fit_budget(budget, points.n[m], points.d[m], points.loss[m], estimator))
            groups.append(g)
        except ScalingError:
            too_small += 1
    notes = [f"budgets grouped by {grouping}: {len(values)} group(s), {len(minima)} with >= 3 distinct N"]
    if too_small:
        notes.append(f"{too_small} group(s) with fewer than 3 distinct N skipped")
    result = Approach2Result(minima, grouping, None, notes, estimator, weighted)
    draws: dict[str, np.ndarray] = {}
    for name in ESTIMATORS if compare else ((estimator,) if weighted else ()):
        draws[name] = _minimum_draws(points, labels, groups, name)
    if estimator in draws:
        for b, col in zip(minima, draws[estimator].T, strict=True):
            b.var_log_n = _spread(col)
    used = [b for b in minima if b.used]
    try:
        result.fit = _power_laws(used, weighted)
    except ScalingError as err:
        result.notes.append(f"power laws not fitted: {err}")
    if compare and result.fit is not None:
        result.estimators = {
            name: _summarise_estimator(points, labels, groups, values, name, draws[name], weighted)
            for name in ESTIMATORS
        }
    if weighted and result.fit is not None:
        result.notes.append(
            "power laws weighted by 1 / var(log N_opt) over a bootstrap of each budget's points (Porian et al. 2024)"
        )
    return result


def _power_laws(used: list[BudgetMinimum], weighted: bool) -> OptimalScaling:
    """N_opt ∝ C^a and D_opt ∝ C^b over the usable budgets, weighted or not."""
    c = np.array([b.budget for b in used])
    n_opt = np.array([b.n_opt for b in used])
    d_opt = np.array([b.d_opt for b in used])
    weights = None
    if weighted and used:
        wn = budget_weights(np.array([b.var_log_n for b in used]))
        # log D_opt moves with log N_opt along the budget's D-N line (slope -1 under C = 6ND): same weight.
        weights = (wn, wn)
    return fit_optimal_scaling("Approach 2", c, n_opt, d_opt, weights)


def budget_weights(var_log_n: np.ndarray) -> np.ndarray:
    """Porian et al.'s weights 1 / var(log N_opt), floored at VAR_FLOOR; a budget with no spread
    estimate gets the median weight, so it neither dominates nor vanishes."""
    var = np.maximum(np.asarray(var_log_n, dtype=float), VAR_FLOOR)
    w = 1.0 / var
    finite = np.isfinite(w)
    return np.where(finite, w, np.median(w[finite]) if finite.any() else 1.0)


def _spread(draws: np.ndarray) -> float:
    """var(log N_opt) over the draws that define a minimum (NaN with fewer than 2)."""
    ok = np.isfinite(draws)
    return float(np.var(draws[ok], ddof=1)) if ok.sum() >= 2 else math.nan


def _minimum_draws(points: FitPoints, labels: np.ndarray, groups: list[int], estimator: str) -> np.ndarray:
    """(SPREAD_DRAWS, budgets) log N_opt over a bootstrap of each budget's points; NaN where undefined.

    Porian et al. 2024 (App. C) resample the points of every isoFLOP curve; the seed is fixed so that
    ``scaling fit`` prints the same numbers every time.
    """
    rng = np.random.default_rng(0)
    out = np.full((SPREAD_DRAWS, len(groups)), np.nan)
    for j, g in enumerate(groups):
        m = labels == g
        w = resample_points(int(m.sum()), SPREAD_DRAWS, rng)
        found = locate_minima(np.log(points.n[m]), points.loss[m], w, estimator)
        out[:, j] = np.where(found.status == OK, found.x, np.nan)
    return out


def _summarise_estimator(
    points: FitPoints,
    labels: np.ndarray,
    groups: list[int],
    values: np.ndarray,
    estimator: str,
    draws: np.ndarray,
    weighted: bool,
) -> EstimatorSummary:
    """a under ``estimator``, fitted with and without weights, and its percentile CI over the draws."""
    minima = [
        fit_budget(values[g], points.n[labels == g], points.d[labels == g], points.loss[labels == g], estimator)
        for g in groups
    ]
    for b, col in zip(minima, draws.T, strict=True):
        b.var_log_n = _spread(col)
    used = [b for b in minima if b.used]
    a_by: dict[bool, float] = {}
    for w in (False, True):
        try:
            a_by[w] = _power_laws(used, w).a
        except ScalingError:
            a_by[w] = math.nan
    keep = np.array([b.used for b in minima], dtype=bool)
    log_c = np.log(np.array([b.budget for b in minima]))[keep]
    w_fit = budget_weights(np.array([b.var_log_n for b in minima])[keep]) if weighted else np.ones(keep.sum())
    slope, _ = weighted_line(log_c[None, :], draws[:, keep], w_fit[None, :])
    ci = percentile_ci(slope[np.isfinite(slope)]) if np.isfinite(slope).sum() >= 2 else (math.nan, math.nan)
    return EstimatorSummary(estimator, int(keep.sum()), a_by[weighted], a_by[False], a_by[True], ci)


def bootstrap_approach2(
    points: FitPoints,
    counts: np.ndarray,
    at_flops: float,
    rel_tol: float,
    estimator: str,
    *,
    weighted: bool | None = None,
) -> dict[str, np.ndarray]:
    """Approach 2 on every bootstrap replicate of runs at once: ``counts`` is (k, n_points), each point
    counted as often as its run was drawn (:func:`scaling.fit.bootstrap.resample_counts`).

    Returns the quantities of :meth:`OptimalScaling.quantities` (a, b, N_opt, D_opt at ``at_flops``) as
    length-k arrays, NaN where a replicate leaves fewer than 2 usable budgets. Equal (to rounding) to
    refitting :func:`fit_approach2` on each replicate, with two fixed choices: budgets are the full
    data's groups (a tolerance grouping could split differently on a replicate), and a weighted fit
    keeps the full data's per-budget weights (a nested bootstrap per replicate would cost 400x).
    """
    check_estimator(estimator)
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    k = counts.shape[0]
    weighted = default_weighted(estimator) if weighted is None else weighted
    labels, _, _ = group_budgets(points, rel_tol)
    base_weight: dict[int, float] = {}
    if weighted:
        base = fit_approach2(points, rel_tol, estimator, weighted=True, compare=False)
        groups = [g for g in range(labels.max() + 1) if np.unique(points.n[labels == g]).size >= 3]
        weights = budget_weights(np.array([b.var_log_n for b in base.budgets]))
        base_weight = {g: float(w) for g, w in zip(groups, weights, strict=True)}
    n_groups = int(labels.max()) + 1
    log_c = np.full((k, n_groups), np.nan)
    x_min = np.full((k, n_groups), np.nan)
    log_d = np.full((k, n_groups), np.nan)
    weight = np.zeros((k, n_groups))
    for g in range(n_groups):
        m = labels == g
        w = counts[:, m]
        x = np.log(points.n[m])
        found = locate_minima(x, points.loss[m], w, estimator)
        ok = found.status == OK
        with np.errstate(invalid="ignore", divide="ignore"):
            log_c[:, g] = (w * np.log(points.c[m])).sum(axis=1) / w.sum(axis=1)
        slope, intercept = weighted_line(x[None, :], np.log(points.d[m])[None, :], w)
        x_min[:, g] = found.x
        log_d[:, g] = intercept + slope * found.x
        weight[:, g] = np.where(ok, base_weight.get(g, 1.0) if weighted else 1.0, 0.0)
    a, lkn = weighted_line(log_c, x_min, weight)
    b, lkd = weighted_line(log_c, log_d, weight)
    # fit_optimal_scaling refuses optima all at one N; so does every replicate here.
    one_n = distinct_count(np.where(weight > 0, x_min, np.nan)) < 2
    a, b = np.where(one_n, np.nan, a), np.where(one_n, np.nan, b)
    log_at = math.log(at_flops)
    return {"a": a, "b": b, "N_opt": np.exp(lkn + a * log_at), "D_opt": np.exp(lkd + b * log_at)}
