"""Chinchilla Approach 2 (Hoffmann et al. 2022, sec. 3.2): isoFLOP profiles.

Final points are grouped by compute budget -- an explicit isoFLOP tag (``budget.flops``)
when every run carries one, else C values equal within a relative tolerance. For each
budget a parabola of loss against log N is fitted; its vertex is N_opt for that
budget. D_opt is read off the group's own log D vs log N line at N_opt, so it holds
under any FLOP convention (under C = 6ND it equals C / (6 N_opt)). Power laws
N_opt ∝ C^a and D_opt ∝ C^b over the budgets follow.

A parabola opening downward has no minimum; a vertex outside the sampled N range is
an extrapolation. Both are flagged and that budget is left out of the power law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.approach1 import OptimalScaling, fit_optimal_scaling
from scaling.fit.points import FitPoints, group_by_log


@dataclass
class BudgetMinimum:
    """The vertex of one isoFLOP parabola ``loss = p2 x^2 + p1 x + p0`` with ``x = log N - x0``."""

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

    def curve(self, n: np.ndarray) -> np.ndarray:
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
            "curvature": self.coeffs[0],
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


def fit_budget(budget: float, n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> BudgetMinimum:
    """Fit the isoFLOP parabola for one budget and locate its vertex (needs >= 3 distinct N)."""
    x = np.log(n)
    if np.unique(n).size < 3:
        raise ScalingError(f"budget {budget:.4g}: {np.unique(n).size} distinct N, a parabola needs 3")
    x0 = float(x.mean())
    coeffs = tuple(float(v) for v in np.polyfit(x - x0, loss, 2))
    p2, p1, p0 = coeffs
    warnings: list[str] = []
    used = True
    lo, hi = float(n.min()), float(n.max())
    if p2 <= 0:
        warnings.append(f"budget {budget:.4g}: parabola opens downward (no minimum); budget left out")
        xs = float(x[np.argmin(loss)] - x0)
        used = False
    else:
        xs = -p1 / (2 * p2)
    n_opt = math.exp(xs + x0)
    if used and not (lo <= n_opt <= hi):
        warnings.append(
            f"budget {budget:.4g}: minimum N={n_opt:.4g} outside the sampled range [{lo:.4g}, {hi:.4g}]; "
            "budget left out"
        )
        used = False
    # D_opt from this budget's own D-N relation (linear in log-log), valid under any FLOP convention.
    slope, intercept = np.polyfit(x, np.log(d), 1)
    d_opt = math.exp(intercept + slope * (xs + x0))
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
        loss_min=float(p0 + p1 * xs + p2 * xs * xs) if used else float(loss.min()),
        used=used,
        warnings=warnings,
    )


@dataclass
class Approach2Result:
    """Per-budget minima and, where >= 2 budgets have a valid minimum, the fitted power laws."""

    budgets: list[BudgetMinimum]
    grouping: str
    fit: OptimalScaling | None
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        own = [f"Approach 2: {w}" for b in self.budgets for w in b.warnings if "exact fit" not in w]
        exact = [b for b in self.budgets if b.used and b.n_points == 3]
        if exact:
            own.append(
                f"Approach 2: {len(exact)} budget(s) rest on exactly 3 points, as many as the parabola has "
                "parameters: their minima have no residual check"
            )
        return own + (self.fit.warnings if self.fit else [])


def fit_approach2(points: FitPoints, rel_tol: float = 0.05) -> Approach2Result:
    """Chinchilla Approach 2 over every budget with >= 3 distinct N.

    The per-budget minima are returned even when fewer than 2 budgets are usable; ``fit`` is then
    ``None`` and a note says why, so a plot can still show the profiles.
    """
    labels, values, grouping = group_budgets(points, rel_tol)
    minima: list[BudgetMinimum] = []
    too_small = 0
    for g, budget in enumerate(values):
        m = labels == g
        try:
            minima.append(fit_budget(budget, points.n[m], points.d[m], points.loss[m]))
        except ScalingError:
            too_small += 1
    notes = [f"budgets grouped by {grouping}: {len(values)} group(s), {len(minima)} with >= 3 distinct N"]
    if too_small:
        notes.append(f"{too_small} group(s) with fewer than 3 distinct N skipped")
    result = Approach2Result(minima, grouping, None, notes)
    used = [b for b in minima if b.used]
    try:
        result.fit = fit_optimal_scaling(
            "Approach 2",
            np.array([b.budget for b in used]),
            np.array([b.n_opt for b in used]),
            np.array([b.d_opt for b in used]),
        )
    except ScalingError as err:
        result.notes.append(f"power laws not fitted: {err}")
    return result
