"""Hold-out validation: fit on small-compute runs, predict the large ones.

The question a scaling law exists to answer is "what loss will the bigger run get?".
``--holdout-above C`` answers it honestly: the Approach 3 law and Kaplan's joint law
are refitted on runs with compute below C only, then each run at or above C is
predicted and the relative error ``(predicted - actual) / actual`` reported. Unlike
an in-sample residual, this error includes extrapolation, which is where scaling
fits usually fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.kaplan import KaplanJointFit, fit_kaplan_joint
from scaling.fit.points import FitPoints, require_fittable

APPROACH3_PARAMS = 5


@dataclass
class HoldoutRow:
    run_id: str
    n: float
    d: float
    c: float
    actual: float
    pred_approach3: float
    pred_kaplan: float

    @property
    def err_approach3(self) -> float:
        return (self.pred_approach3 - self.actual) / self.actual

    @property
    def err_kaplan(self) -> float:
        return (self.pred_kaplan - self.actual) / self.actual

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "N": self.n,
            "D": self.d,
            "C": self.c,
            "loss": self.actual,
            "approach3_pred": self.pred_approach3,
            "approach3_rel_error": self.err_approach3,
            "kaplan_pred": self.pred_kaplan,
            "kaplan_rel_error": self.err_kaplan,
        }


@dataclass
class HoldoutReport:
    threshold: float
    n_train: int
    rows: list[HoldoutRow]
    approach3: dict[str, Any] | None
    kaplan: KaplanJointFit | None
    warnings: list[str] = field(default_factory=list)

    def summary(self, key: str) -> dict[str, float]:
        errs = np.array([getattr(r, f"err_{key}") for r in self.rows], dtype=float)
        errs = errs[np.isfinite(errs)]
        if errs.size == 0:
            return {}
        out = {
            "mean_abs_rel_error": float(np.mean(np.abs(errs))),
            "max_abs_rel_error": float(np.max(np.abs(errs))),
            "mean_rel_error": float(np.mean(errs)),
        }
        best = self.best_run()
        if best is not None and math.isfinite(getattr(best, f"err_{key}")):
            out["best_run_rel_error"] = float(getattr(best, f"err_{key}"))
        return out

    def best_run(self) -> HoldoutRow | None:
        """The held-out run with the lowest observed loss: the compute-optimal run a user would train."""
        return min(self.rows, key=lambda r: r.actual) if self.rows else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold_flops": self.threshold,
            "n_train": self.n_train,
            "n_heldout": len(self.rows),
            "approach3": {"fit": self.approach3, **self.summary("approach3")},
            "kaplan_joint": {"fit": self.kaplan.as_dict() if self.kaplan else None, **self.summary("kaplan")},
            "runs": [r.as_dict() for r in self.rows],
            "warnings": list(self.warnings),
        }


def largest_budget_threshold(points: FitPoints, rel_tol: float = 0.05) -> float:
    """The ``--holdout-above`` threshold that holds out exactly the largest isoFLOP budget.

    Budgets are grouped as Approach 2 groups them (the runs' budget tags, else C within ``rel_tol``);
    the threshold is the smallest C among the largest budget's runs, so every smaller budget trains
    the law and every run of the largest one tests it.
    """
    from scaling.fit.approach2 import group_budgets

    labels, values, how = group_budgets(points, rel_tol)
    if values.size < 2:
        raise ScalingError(f"--holdout-largest-budget needs at least 2 isoFLOP budgets, found {values.size} ({how})")
    top = labels == int(np.argmax(values))
    threshold = float(points.c[top].min())
    if (points.c[~top] >= threshold).any():
        raise ScalingError(
            f"--holdout-largest-budget: a smaller budget has a run at C >= {threshold:.4g}, the largest budget's "
            "smallest C; use --holdout-above C"
        )
    return threshold


def split_by_compute(points: FitPoints, threshold: float) -> tuple[FitPoints, FitPoints]:
    """(runs with C < threshold, runs with C >= threshold); errors when either side cannot serve."""
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ScalingError(f"--holdout-above must be a positive number of FLOPs, got {threshold}")
    below = points.c < threshold
    if not (~below).any():
        raise ScalingError(
            f"--holdout-above {threshold:.4g}: no run at or above it (largest C is {points.c.max():.4g})"
        )
    train = points.take(below)
    if len(train) < APPROACH3_PARAMS:
        raise ScalingError(
            f"--holdout-above {threshold:.4g}: only {len(train)} run(s) below it to fit a {APPROACH3_PARAMS}-parameter law"
        )
    if np.unique(train.n).size < 2:
        raise ScalingError(f"--holdout-above {threshold:.4g}: all runs below it are at one N")
    return train, points.take(~below)


def run_holdout(
    points: FitPoints, threshold: float, *, kaplan_irreducible: bool = False, delta: float = 1e-3
) -> HoldoutReport:
    """Refit Approach 3 and Kaplan's joint law below ``threshold``; predict every run at or above it."""
    from scaling.fit.approach3 import fit_approach3  # the other fitters stay importable without it

    train, held = split_by_compute(points, threshold)
    require_fittable(train, APPROACH3_PARAMS, "Approach 3 (hold-out)")
    warnings: list[str] = []
    a3 = fit_approach3(train.n, train.d, train.loss, delta=delta)
    warnings += [f"hold-out Approach 3: {w}" for w in a3.warnings]
    pred_a3 = np.asarray(a3.loss(held.n, held.d), dtype=float)
    try:
        kj: KaplanJointFit | None = fit_kaplan_joint(train.n, train.d, train.loss, irreducible=kaplan_irreducible)
        pred_k = kj.predict(held.n, held.d)
        warnings += [f"hold-out Kaplan {w}" for w in kj.warnings]
    except ScalingError as err:
        kj, pred_k = None, np.full(len(held), math.nan)
        warnings.append(f"hold-out Kaplan joint law not fitted: {err}")
    rows = [
        HoldoutRow(str(held.run_id[i]), *(float(v[i]) for v in (held.n, held.d, held.c, held.loss, pred_a3, pred_k)))
        for i in range(len(held))
    ]
    return HoldoutReport(threshold, len(train), rows, a3.as_dict(), kj, warnings)
