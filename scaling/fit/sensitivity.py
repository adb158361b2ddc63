"""``scaling fit PATH --sensitivity``: how much of a fitted law is bookkeeping convention (issue 16, item 4).

The same runs are refitted under every parameter count (:data:`scaling.records.FIT_PARAM_COUNTS`), every
FLOP convention (:data:`scaling.records.FLOP_CONVENTIONS`) and two readings of a run's loss, and the
exponents a, b and N_opt at the reporting budget of Approaches 3 and 2 are tabled side by side, with their
spread. Porian et al. 2024 ("Resolving Discrepancies in Compute-Optimal Scaling of Language Models") traced
most of the Kaplan/Chinchilla disagreement to such choices (the last layer's parameters, warm-up, FLOP
accounting) on their own runs; this panel does the same for the user's.

Loss readings:

* ``final``: the last eval of each run (what ``scaling fit`` uses).
* ``smoothed``: the value at the run's final token count of a straight line fitted, by least squares, to
  the eval points in the last :data:`SMOOTH_FRACTION` of the run's tokens, loss against log tokens. It is
  the end-point estimate of a local linear (Savitzky-Golay, degree 1) smoother (Savitzky & Golay 1964):
  it averages out eval noise like a mean of the last evals would, but without that mean's upward bias on a
  loss that is still falling at the end. A run with fewer than :data:`SMOOTH_MIN_POINTS` evals in the
  window keeps its final loss (counted in the panel's notes).

Only run records carry every count and convention (a table holds the one it was written with), so the
panel needs them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.approach2 import fit_approach2
from scaling.fit.approach3 import fit_approach3
from scaling.fit.points import FitPoints, load_points
from scaling.records import FIT_PARAM_COUNTS, FLOP_CONVENTIONS

#: Window of the smoothed loss: the last 20% of each run's tokens.
SMOOTH_FRACTION = 0.2
SMOOTH_MIN_POINTS = 3
LOSS_READINGS = ("final", "smoothed")


def smoothed_loss(points: FitPoints) -> tuple[np.ndarray, int]:
    """Each run's smoothed final loss (see the module docstring) and how many runs kept their final loss."""
    out = np.array(points.loss, dtype=float, copy=True)
    kept = 0
    for i, curve in enumerate(points.curves):
        if curve is None:
            kept += 1
            continue
        end = float(curve.tokens[-1])
        window = curve.tokens >= (1.0 - SMOOTH_FRACTION) * end
        if int(window.sum()) < SMOOTH_MIN_POINTS:
            kept += 1
            continue
        lt = np.log(curve.tokens[window])
        slope, intercept = np.polyfit(lt, curve.loss[window], 1)
        out[i] = slope * math.log(end) + intercept
    return out, kept


def require_records(points: Any, path: Any) -> None:
    """The panel needs run records: they carry every parameter count and FLOP convention, a table one of each."""
    if points.kind != "records":
        raise ScalingError(
            f"--sensitivity needs run records (they carry every parameter count and FLOP convention); "
            f"{path} is a table ({points.kind}) with one of each"
        )


def sensitivity_panel(
    path: str,
    at_flops: float,
    *,
    drop_highest_loss: int = 0,
    delta: float = 1e-3,
    budget_tolerance: float = 0.05,
    estimator: str = "parabola",
) -> dict[str, Any]:
    """Refit Approaches 3 and 2 under every convention; rows of a, b, N_opt(at_flops) and their spread.

    Approach 2 takes its isoFLOP minima with ``estimator`` (the fit's ``--isoflop-estimator``)."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for params in FIT_PARAM_COUNTS:
        for flops in FLOP_CONVENTIONS:
            points = load_points(path, params=params, flops=flops, drop_highest_loss=drop_highest_loss)
            require_records(points, path)
            for reading in LOSS_READINGS:
                p = points
                if reading == "smoothed":
                    loss, kept = smoothed_loss(points)
                    p = replace(points, loss=loss)
                    if kept and params == FIT_PARAM_COUNTS[0] and flops == FLOP_CONVENTIONS[0]:
                        notes.append(
                            f"smoothed: {kept} run(s) with < {SMOOTH_MIN_POINTS} evals in the window keep their final loss"
                        )
                rows.append(
                    {
                        "params": params,
                        "flops": flops,
                        "loss": reading,
                        **_fit_row(p, at_flops, delta, budget_tolerance, estimator),
                    }
                )
    return {
        "at_flops": at_flops,
        "smooth_fraction": SMOOTH_FRACTION,
        "rows": rows,
        "spread": {approach: _spread(rows, approach) for approach in ("approach3", "approach2")},
        "notes": notes,
    }


def _fit_row(
    points: FitPoints, at_flops: float, delta: float, budget_tolerance: float, estimator: str
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    try:
        law = fit_approach3(points.n, points.d, points.loss, delta=delta)
        row["approach3"] = {"a": float(law.a), "b": float(law.b), "N_opt": float(law.n_opt(at_flops))}
    except ScalingError as err:
        row["approach3"] = {"error": str(err)}
    fit2 = fit_approach2(points, budget_tolerance, estimator).fit
    if fit2 is not None:
        row["approach2"] = {"a": fit2.a, "b": fit2.b, "N_opt": float(fit2.n_at(at_flops))}
    else:
        row["approach2"] = {"error": "not fitted (too few budgets with an interior minimum)"}
    return row


def _spread(rows: list[dict[str, Any]], approach: str) -> dict[str, float]:
    """Range of a and max/min of N_opt over the rows where ``approach`` was fitted."""
    a = np.array([r[approach]["a"] for r in rows if "a" in r[approach]])
    n_opt = np.array([r[approach]["N_opt"] for r in rows if "N_opt" in r[approach]])
    if a.size == 0:
        return {}
    return {
        "a_min": float(a.min()),
        "a_max": float(a.max()),
        "a_range": float(a.max() - a.min()),
        "N_opt_max_over_min": float(n_opt.max() / n_opt.min()),
    }


def render_sensitivity(panel: dict[str, Any]) -> str:
    """The panel as a text table, one line per (parameter count, FLOP convention, loss reading)."""
    lines = [
        f"Convention sensitivity (Porian et al. 2024): the same runs under every convention, "
        f"N_opt at C* = {panel['at_flops']:.5g} FLOPs counted in each row's convention",
        f"  {'params':<13}  {'flops':<6}  {'loss':<8}  {'A3 a':>7}  {'A3 b':>7}  {'A3 N_opt':>10}  "
        f"{'A2 a':>7}  {'A2 b':>7}  {'A2 N_opt':>10}",
    ]
    lines.append("  " + "  ".join("-" * w for w in (13, 6, 8, 7, 7, 10, 7, 7, 10)))
    for r in panel["rows"]:
        cells = []
        for approach in ("approach3", "approach2"):
            v = r[approach]
            cells += (
                [f"{v['a']:>7.4f}", f"{v['b']:>7.4f}", f"{v['N_opt']:>10.4g}"]
                if "a" in v
                else ["-" * 7, "-" * 7, "-" * 10]
            )
        lines.append(f"  {r['params']:<13}  {r['flops']:<6}  {r['loss']:<8}  " + "  ".join(cells))
    for approach, label in (("approach3", "Approach 3"), ("approach2", "Approach 2")):
        s = panel["spread"][approach]
        if s:
            lines.append(
                f"  {label}: a from {s['a_min']:.4f} to {s['a_max']:.4f} (range {s['a_range']:.4f}); "
                f"N_opt max/min {s['N_opt_max_over_min']:.3g}"
            )
    lines += [f"  note: {n}" for n in panel["notes"]]
    return "\n".join(lines)
