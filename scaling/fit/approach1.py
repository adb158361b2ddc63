"""Chinchilla Approach 1 (Hoffmann et al. 2022, sec. 3.1): the envelope of training curves.

For a set of log-spaced compute values C, find the run whose eval curve -- interpolated
linearly in log C -- has the lowest loss at C. That run's size and tokens at C are
N_opt(C) and D_opt(C); power laws N_opt ∝ C^a and D_opt ∝ C^b are then fitted in
log-log space. The same lower envelope (made monotone: a loss reached at lower C is
never "compute-efficient" at higher C) is Kaplan's compute-efficient frontier for
L(C_min).

When the input holds only final points (no curves), the envelope degrades to the
Pareto frontier of those points; this is reported as a note because N_opt then comes
from whichever grid points happen to lie on the frontier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.isoflop_minimum import distinct_count, weighted_line
from scaling.fit.points import FitPoints
from scaling.fit.resampled_envelope import ResampledEnvelopes, resampled_envelopes


@dataclass
class Envelope:
    """Frontier points (sorted by C, loss strictly falling) and the run that attains each."""

    c: np.ndarray
    loss: np.ndarray
    n: np.ndarray
    d: np.ndarray
    run_id: np.ndarray
    mode: str  # "curves" | "final points"

    def __len__(self) -> int:
        return len(self.c)


def compute_envelope(points: FitPoints, n_grid: int = 100) -> Envelope:
    """The lower envelope of loss vs C over every run's curve (or over final points when no curves)."""
    curves = [c for c in points.curves if c is not None and len(c) >= 2]
    if not curves:
        return _pareto(points.c, points.loss, points.n, points.d, points.run_id, "final points")
    lo = min(float(c.flops[0]) for c in curves)
    hi = max(float(c.flops[-1]) for c in curves)
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), n_grid))
    lg = np.log(grid)
    best_loss = np.full(n_grid, np.inf)
    best_n = np.full(n_grid, np.nan)
    best_d = np.full(n_grid, np.nan)
    best_id = np.empty(n_grid, dtype=object)
    for cv in curves:
        lf = np.log(cv.flops)
        inside = (lg >= lf[0] - 1e-12) & (lg <= lf[-1] + 1e-12)
        if not inside.any():
            continue
        loss = np.interp(lg[inside], lf, cv.loss)
        tokens = np.exp(np.interp(lg[inside], lf, np.log(cv.tokens)))
        idx = np.flatnonzero(inside)
        better = loss < best_loss[idx]
        best_loss[idx[better]] = loss[better]
        best_n[idx[better]] = cv.n
        best_d[idx[better]] = tokens[better]
        best_id[idx[better]] = cv.run_id
    ok = np.isfinite(best_loss)
    # Runs without a curve still bound the frontier by their final point.
    single = np.array([c is None or len(c) < 2 for c in points.curves], dtype=bool)
    return _pareto(
        np.concatenate([grid[ok], points.c[single]]),
        np.concatenate([best_loss[ok], points.loss[single]]),
        np.concatenate([best_n[ok], points.n[single]]),
        np.concatenate([best_d[ok], points.d[single]]),
        np.concatenate([best_id[ok], points.run_id[single]]),
        "curves",
    )


def _pareto(c: np.ndarray, loss: np.ndarray, n: np.ndarray, d: np.ndarray, rid: np.ndarray, mode: str) -> Envelope:
    """Keep points whose loss is below every point at lower C: the compute-efficient frontier."""
    order = np.lexsort((loss, c))
    c, loss, n, d, rid = c[order], loss[order], n[order], d[order], rid[order]
    prev_min = np.minimum.accumulate(np.concatenate([[np.inf], loss[:-1]]))
    keep = loss < prev_min
    return Envelope(c[keep], loss[keep], n[keep], d[keep], np.asarray(rid[keep], dtype=object), mode)


def fit_loglog(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float, float]:
    """``y = k x^p`` by least squares in log-log space; returns (p, log k, rmse of log y).

    ``weights`` (optional) weigh each squared log-residual, e.g. 1 / var(log y) for Porian et al. 2024's
    weighted power law (arXiv 2406.19146); the rmse stays unweighted so fits compare.
    """
    lx, ly = np.log(x), np.log(y)
    p, lk = np.polyfit(lx, ly, 1) if weights is None else np.polyfit(lx, ly, 1, w=np.sqrt(weights))
    resid = ly - (p * lx + lk)
    return float(p), float(lk), float(np.sqrt(np.mean(resid**2)))


@dataclass
class OptimalScaling:
    """``N_opt = exp(log_kn) C^a`` and ``D_opt = exp(log_kd) C^b`` with the points they rest on."""

    approach: str
    a: float
    b: float
    log_kn: float
    log_kd: float
    rmse_log_n: float
    rmse_log_d: float
    c: np.ndarray
    n_opt: np.ndarray
    d_opt: np.ndarray
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    n_boot: int = 0

    def n_at(self, c: np.ndarray | float) -> np.ndarray:
        return np.exp(self.log_kn + self.a * np.log(np.asarray(c, dtype=float)))

    def d_at(self, c: np.ndarray | float) -> np.ndarray:
        return np.exp(self.log_kd + self.b * np.log(np.asarray(c, dtype=float)))

    def quantities(self, at_flops: float) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "N_opt": float(self.n_at(at_flops)), "D_opt": float(self.d_at(at_flops))}


def fit_optimal_scaling(
    approach: str,
    c: np.ndarray,
    n_opt: np.ndarray,
    d_opt: np.ndarray,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> OptimalScaling:
    """Fit N_opt ∝ C^a and D_opt ∝ C^b to per-budget optima; needs >= 2 distinct budgets.

    ``weights`` = (weights of log N_opt, weights of log D_opt) for a weighted fit (None: ordinary least squares).
    """
    c, n_opt, d_opt = (np.asarray(v, dtype=float) for v in (c, n_opt, d_opt))
    if len(c) < 2 or np.unique(c).size < 2:
        raise ScalingError(f"{approach}: {len(c)} optimum/optima, need >= 2 at different C for N_opt ∝ C^a")
    if np.unique(n_opt).size < 2:
        raise ScalingError(f"{approach}: every optimum is at one N ({n_opt[0]:.4g})")
    wn, wd = weights if weights is not None else (None, None)
    a, lkn, rn = fit_loglog(c, n_opt, wn)
    b, lkd, rd = fit_loglog(c, d_opt, wd)
    warnings = []
    if len(c) == 2:
        warnings.append(f"{approach}: only 2 optima for the 2-parameter power law: exact fit, no residual check")
    return OptimalScaling(approach, a, b, lkn, lkd, rn, rd, c, n_opt, d_opt, warnings)


def fit_approach1(points: FitPoints, envelope: Envelope | None = None) -> OptimalScaling:
    """Chinchilla Approach 1 on the envelope; frontier points won by the smallest or largest model are
    set aside when enough remain, since there the true optimum may lie outside the sampled sizes."""
    env = envelope if envelope is not None else compute_envelope(points)
    if len(env) < 2:
        raise ScalingError(f"Approach 1: the compute-efficient frontier has {len(env)} point(s)")
    notes: list[str] = []
    warnings: list[str] = []
    if env.mode == "final points":
        notes.append("no eval curves in the input: the envelope is the Pareto frontier of final points")
    sizes = np.unique(points.n)
    edge = (env.n <= sizes[0]) | (env.n >= sizes[-1])
    inner = ~edge
    if inner.sum() >= 3 and np.unique(env.n[inner]).size >= 2:
        use = inner
        if edge.any():
            notes.append(f"{int(edge.sum())} of {len(env)} frontier points won by the smallest/largest model set aside")
    else:
        use = np.ones(len(env), dtype=bool)
        if edge.any():
            warnings.append(
                f"Approach 1: {int(edge.sum())} of {len(env)} frontier points are won by the smallest or largest "
                "model: N_opt may lie outside the sampled sizes"
            )
    fit = fit_optimal_scaling("Approach 1", env.c[use], env.n[use], env.d[use])
    fit.warnings = warnings + fit.warnings
    fit.notes = notes
    if np.unique(env.n[use]).size < 3:
        fit.warnings.append(f"Approach 1: the frontier visits only {np.unique(env.n[use]).size} distinct model sizes")
    return fit


def optimal_as_dict(fit: OptimalScaling, at_flops: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON object for Approaches 1 and 2: a, b, the prefactors, the optima they rest on, CIs."""
    out: dict[str, Any] = {
        "a": fit.a,
        "b": fit.b,
        "N_opt_coef": math.exp(fit.log_kn),
        "D_opt_coef": math.exp(fit.log_kd),
        "form": "N_opt = N_opt_coef * C^a, D_opt = D_opt_coef * C^b",
        "at_flops": at_flops,
        "N_opt_at_flops": float(fit.n_at(at_flops)),
        "D_opt_at_flops": float(fit.d_at(at_flops)),
        "rmse_log_N": fit.rmse_log_n,
        "rmse_log_D": fit.rmse_log_d,
    }
    if extra:
        out.update(extra)
    else:
        out["points"] = [
            {"C": float(c), "N_opt": float(n), "D_opt": float(d)}
            for c, n, d in zip(fit.c, fit.n_opt, fit.d_opt, strict=True)
        ]
    if fit.ci95:
        out["ci95"] = {k: list(v) for k, v in fit.ci95.items()}
        out["n_boot"] = fit.n_boot
    out["notes"] = list(fit.notes)
    out["warnings"] = list(fit.warnings)
    return out


def bootstrap_approach1(
    points: FitPoints,
    counts: np.ndarray,
    at_flops: float,
    n_grid: int = 100,
    envelopes: ResampledEnvelopes | None = None,
) -> dict[str, np.ndarray]:
    """Approach 1 on every bootstrap replicate of runs at once; ``counts`` is (k, n_points), each point
    counted as often as its run was drawn (:func:`scaling.fit.bootstrap.resample_counts`).

    Returns a, b, N_opt, D_opt (at ``at_flops``) as length-k arrays, NaN where a replicate's frontier
    cannot define the law; equal (to rounding) to :func:`fit_approach1` on each replicate. Every replicate's
    frontier comes from :func:`scaling.fit.resampled_envelope.resampled_envelopes` (the same frontiers
    Kaplan's bootstrap uses; pass ``envelopes`` when they are already computed for these ``counts``); the
    power laws are one batched weighted line fit.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    present = counts > 0
    env = resampled_envelopes(points, counts, n_grid) if envelopes is None else envelopes
    c_s, n_s, d_s, keep = env.c, env.n, env.d, env.keep
    # fit_approach1's choice: frontier points won by the smallest or largest run are set aside when enough remain.
    smallest = np.where(present, points.n, np.inf).min(axis=1, keepdims=True)
    largest = np.where(present, points.n, -np.inf).max(axis=1, keepdims=True)
    inner = keep & (n_s > smallest) & (n_s < largest)
    inner_ok = (inner.sum(axis=1) >= 3) & (distinct_count(np.where(inner, n_s, np.nan)) >= 2)
    use = np.where(inner_ok[:, None], inner, keep)
    log_c = np.log(np.where(use, c_s, 1.0))
    a, lkn = weighted_line(log_c, np.log(np.where(use, n_s, 1.0)), use.astype(float))
    b, lkd = weighted_line(log_c, np.log(np.where(use, d_s, 1.0)), use.astype(float))
    bad = (keep.sum(axis=1) < 2) | (distinct_count(np.where(use, n_s, np.nan)) < 2)
    a, b = np.where(bad, np.nan, a), np.where(bad, np.nan, b)
    log_at = math.log(at_flops)
    return {"a": a, "b": b, "N_opt": np.exp(lkn + a * log_at), "D_opt": np.exp(lkd + b * log_at)}
