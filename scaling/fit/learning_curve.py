"""Learning-curve law ``L(t) = L_inf + (t_c / t)^alpha_t`` per run (t = tokens seen).

Kaplan et al. 2020 (sec. 5) model loss against training steps with a power law plus
an asymptote; here t counts tokens so runs of different batch sizes compare. The
useful question is predictive: fitted on the first part of a curve (by default the
first half of its eval points), how well does the law predict the run's final loss?
The relative error of that prediction is reported per run. A learning-rate decay at
the end of a schedule makes the tail fall faster than the early power law, so a
positive error (prediction above the truth) is the expected failure mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.points import Curve, FitPoints
from scaling.fit.power_law import PowerLawFit, fit_power_law

N_PARAMS = 3


def fit_learning_curve(tokens: np.ndarray, loss: np.ndarray, run_id: str = "") -> PowerLawFit:
    """Fit ``L(t) = L_inf + (t_c/t)^alpha_t`` to one curve; needs >= 3 points at >= 2 token counts."""
    law = f"L(t) {run_id}".strip()
    return fit_power_law(tokens, loss, irreducible=True, law=law, variable="t")


@dataclass
class CurveCheck:
    """One run: the law on its whole curve, and the final-loss prediction from its first part."""

    run_id: str
    n: float
    full: PowerLawFit
    partial: PowerLawFit | None
    n_used: int
    t_used: float
    t_final: float
    actual: float
    predicted: float
    rel_error: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "N": self.n,
            "L_inf": self.full.e,
            "t_c": self.full.x_c,
            "alpha_t": self.full.alpha,
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


def check_curve(curve: Curve, final_tokens: float, final_loss: float, fraction: float = 0.5) -> CurveCheck:
    """Fit the whole curve, then the first ``fraction`` of its points, and predict the final loss."""
    full = fit_learning_curve(curve.tokens, curve.loss, curve.run_id)
    k = max(N_PARAMS, int(math.floor(fraction * len(curve))))
    partial = None
    predicted = rel = math.nan
    if k < len(curve):
        partial = fit_learning_curve(curve.tokens[:k], curve.loss[:k], curve.run_id)
        predicted = float(partial.predict(final_tokens))
        rel = (predicted - final_loss) / final_loss
    return CurveCheck(
        run_id=curve.run_id,
        n=curve.n,
        full=full,
        partial=partial,
        n_used=k,
        t_used=float(curve.tokens[k - 1]),
        t_final=float(final_tokens),
        actual=float(final_loss),
        predicted=predicted,
        rel_error=rel,
    )


@dataclass
class LearningCurveReport:
    """Per-run learning-curve fits and the summary of their final-loss predictions."""

    fraction: float
    runs: list[CurveCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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
            "form": "L(t) = L_inf + (t_c/t)^alpha_t",
            "fraction": self.fraction,
            **self.summary(),
            "runs": [r.as_dict() for r in self.runs],
            "notes": list(self.notes),
            "warnings": self.warnings,
        }


def fit_learning_curves(points: FitPoints, fraction: float = 0.5) -> LearningCurveReport:
    """Fit every run's curve that has enough points; runs that cannot be fitted are counted in a note."""
    if not 0 < fraction < 1:
        raise ScalingError(f"learning-curve fraction must be in (0, 1), got {fraction}")
    report = LearningCurveReport(fraction)
    short = failed = 0
    for i, curve in enumerate(points.curves):
        if curve is None or len(curve) < 2 * N_PARAMS:
            short += 1
            continue
        try:
            report.runs.append(check_curve(curve, float(points.d[i]), float(points.loss[i]), fraction))
        except ScalingError:
            failed += 1
    if short:
        report.notes.append(f"{short} run(s) without an eval curve of >= {2 * N_PARAMS} points skipped")
    if failed:
        report.notes.append(f"{failed} curve(s) could not be fitted")
    return report
