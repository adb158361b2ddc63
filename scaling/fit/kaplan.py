"""Kaplan et al. 2020 ("Scaling Laws for Neural Language Models") power laws.

* L(N) = (N_c/N)^alpha_N         (eq. 1.1; best loss per N, i.e. runs not limited by data)
* L(D) = (D_c/D)^alpha_D         (eq. 1.2; best loss per D, i.e. runs not limited by size)
* L(C_min) = (C_c/C)^alpha_C     (eq. 1.3; the compute-efficient frontier of all eval curves)
* L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D   (eq. 1.5, the joint law)

Kaplan's runs were large enough that no irreducible loss was visible; at the small
scales this project trains, the loss bends towards a floor, so each law optionally
gains an additive ``E`` (``--kaplan-irreducible``). The form used is always reported.

All fits minimise squared log-residuals, so every point weighs by its relative error. The three
single-variable laws use the generic fitter of :mod:`scaling.fit.power_law`; this module chooses their
points (the frontier of each variable) and fits the joint law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import ScalingError
from scaling.fit.points import FitPoints, best_per_group, group_by_log
from scaling.fit.power_law import (
    ALPHA_BOUNDS,
    FitDiagnostics,
    PowerLawFit,
    exp_or_inf,
    fit_power_law,
    fit_power_law_batch,
    least_squares_batch,
)
from scaling.fit.resampled_envelope import ResampledEnvelopes


@dataclass
class KaplanJointFit(FitDiagnostics):
    """Kaplan eq. 1.5, ``L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D`` (+ E optionally)."""

    alpha_n: float
    alpha_d: float
    log_n_c: float
    log_d_c: float
    e: float
    irreducible: bool
    n_points: int
    rmse_log: float
    converged: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int:
        return 5 if self.irreducible else 4

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.alpha_n, self.alpha_d, self.log_n_c, self.log_d_c, self.e])

    def predict(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        return np.exp(_joint_log_pred(self.theta, np.log(np.asarray(n, float)), np.log(np.asarray(d, float))))

    @property
    def form(self) -> str:
        e = "E + " if self.irreducible else ""
        return f"L(N,D) = {e}[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"

    def as_dict(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "alpha_N": self.alpha_n,
            "alpha_D": self.alpha_d,
            "N_c": exp_or_inf(self.log_n_c),
            "D_c": exp_or_inf(self.log_d_c),
            **self.diagnostics(),
        }


def _joint_log_pred(theta: np.ndarray, ln: np.ndarray, ld: np.ndarray) -> np.ndarray:
    """log L of the joint law at (log N, log D); ``theta`` (5,) or, for many parameter sets, (K, 5) -> (K, m)."""
    a_n, a_d, lnc, ldc, e = (theta[..., j, None] for j in range(5))
    inner = np.logaddexp((a_n / a_d) * (lnc - ln), ldc - ld)
    core = a_d * inner
    with np.errstate(divide="ignore"):
        return np.where(e > 0, np.logaddexp(np.log(np.maximum(e, 1e-300)), core), core)


def _joint_jacobian(theta: np.ndarray, ln: np.ndarray, ld: np.ndarray, irreducible: bool) -> np.ndarray:
    """d log L / d (alpha_N, alpha_D, log N_c, log D_c[, E]) of Kaplan's joint law, analytically.

    With u = (alpha_N/alpha_D)(log N_c - log N), v = log D_c - log D, inner = LSE(u, v) and softmax
    weights w_u, w_v: d core/d alpha_N = w_u (log N_c - log N), d core/d alpha_D = inner - w_u u,
    d core/d log N_c = alpha_N w_u, d core/d log D_c = alpha_D w_v; E mixes in by one more LSE.
    ``theta`` (5,) gives (m, p); (K, 5) gives (K, m, p).
    """
    a_n, a_d, lnc, ldc = (theta[..., j, None] for j in range(4))
    u = (a_n / a_d) * (lnc - ln)
    v = ldc - ld
    inner = np.logaddexp(u, v)
    wu, wv = np.exp(u - inner), np.exp(v - inner)
    cols = [wu * (lnc - ln), inner - wu * u, a_n * wu, a_d * wv]
    if not irreducible:
        return np.stack(cols, axis=-1)
    core = a_d * inner
    e = np.maximum(theta[..., 4, None], 1e-300)
    logpred = np.logaddexp(np.log(e), core)
    q = np.exp(core - logpred)
    return np.stack([q * c for c in cols] + [np.exp(-logpred)], axis=-1)


def fit_kaplan_joint(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    irreducible: bool = False,
    starts: list[np.ndarray] | None = None,
) -> KaplanJointFit:
    """Fit Kaplan's joint law by bounded least squares on log-residuals from several starts.

    ``starts`` are (alpha_N, alpha_D, log N_c, log D_c, E) vectors; by default a small grid of
    exponents with N_c, D_c set so that each start predicts the median loss at the median size.
    """
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    n_params = 5 if irreducible else 4
    law = "L(N,D)"
    if len(n) < n_params:
        raise ScalingError(f"{law}: {len(n)} point(s) for {n_params} parameters")
    if np.unique(n).size < 2:
        raise ScalingError(f"{law}: all points at one N")
    if np.unique(d).size < 2:
        raise ScalingError(f"{law}: all points at one D")
    ln, ld, ll = np.log(n), np.log(d), np.log(loss)
    e_max = 0.999 * float(loss.min()) if irreducible else 0.0

    def residual(theta: np.ndarray) -> np.ndarray:
        full = theta if irreducible else np.append(theta, 0.0)
        return _joint_log_pred(full, ln, ld) - ll

    if starts is None:
        starts = _default_starts(n, d, loss, irreducible)
    lo = [ALPHA_BOUNDS[0], ALPHA_BOUNDS[0], -1e4, -1e4] + ([0.0] if irreducible else [])
    hi = [5.0, 5.0, 1e5, 1e5] + ([max(e_max, 1e-12)] if irreducible else [])
    lower, upper = np.array(lo), np.array(hi)
    best = None
    with np.errstate(over="ignore", invalid="ignore"):
        for s in starts:
            s0 = np.clip(np.asarray(s, dtype=float)[:n_params], lower, upper)
            try:
                res = least_squares(
                    residual,
                    s0,
                    jac=lambda t: _joint_jacobian(t, ln, ld, irreducible),
                    bounds=(lower, upper),
                    method="trf",
                    x_scale="jac",
                    max_nfev=3000,
                )
            except ValueError:
                continue
            if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
                best = res
    if best is None:
        raise ScalingError(f"{law}: no start produced a finite fit")
    theta = np.append(best.x, 0.0) if not irreducible else best.x
    warnings: list[str] = []
    for name, value, (b_lo, b_hi) in (
        ("alpha_N", theta[0], (lower[0], upper[0])),
        ("alpha_D", theta[1], (lower[1], upper[1])),
    ):
        if value <= b_lo * 1.001 or value >= b_hi * 0.999:
            warnings.append(f"{law}: {name} at a bound ({value:.4g})")
    if irreducible and theta[4] <= 1e-6 * e_max:
        warnings.append(f"{law}: E at its lower bound 0 (no irreducible loss visible)")
    if irreducible and theta[4] >= e_max * (1 - 1e-6):
        warnings.append(f"{law}: E at its upper bound (the lowest observed loss)")
    if len(n) == n_params:
        warnings.append(f"{law}: {len(n)} points for {n_params} parameters: exact fit, no residual check")
    converged = bool(best.status > 0)
    if not converged:
        warnings.append(f"{law}: optimiser did not converge")
    return KaplanJointFit(
        alpha_n=float(theta[0]),
        alpha_d=float(theta[1]),
        log_n_c=float(theta[2]),
        log_d_c=float(theta[3]),
        e=float(theta[4]),
        irreducible=irreducible,
        n_points=len(n),
        rmse_log=float(np.sqrt(np.mean(best.fun**2))),
        converged=converged,
        warnings=warnings,
    )


@dataclass
class KaplanResults:
    """The four Kaplan laws fitted to one data set; a law the data cannot support is ``None`` with a note."""

    irreducible: bool
    l_n: PowerLawFit | None = None
    l_d: PowerLawFit | None = None
    l_c: PowerLawFit | None = None
    joint: KaplanJointFit | None = None
    notes: list[str] = field(default_factory=list)
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    n_boot: int = 0

    @property
    def form(self) -> str:
        return "with irreducible term E" if self.irreducible else "pure power laws (no irreducible term)"

    @property
    def warnings(self) -> list[str]:
        return [w for f in (self.l_n, self.l_d, self.l_c, self.joint) if f is not None for w in f.warnings]

    def quantities(self) -> dict[str, float]:
        """The headline parameters (flat), NaN where a law was not fitted."""
        q: dict[str, float] = {}
        for fit, v in ((self.l_n, "N"), (self.l_d, "D"), (self.l_c, "C")):
            q[f"alpha_{v}"] = fit.alpha if fit else math.nan
            q[f"{v}_c"] = fit.x_c if fit else math.nan
            if self.irreducible:
                q[f"E_{v}"] = fit.e if fit else math.nan
        if self.joint is not None:
            q["joint_alpha_N"] = self.joint.alpha_n
            q["joint_alpha_D"] = self.joint.alpha_d
        return q

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"form": self.form, "irreducible": self.irreducible}
        for k, v in self.quantities().items():
            if not k.startswith(("joint_", "E_")) and math.isfinite(v):
                out[k] = v
        for key, fit in (("L_N", self.l_n), ("L_D", self.l_d), ("L_C", self.l_c), ("joint", self.joint)):
            out[key] = fit.as_dict() if fit is not None else None
        if self.ci95:
            out["ci95"] = {k: list(v) for k, v in self.ci95.items()}
            out["n_boot"] = self.n_boot
        out["notes"] = list(self.notes)
        out["warnings"] = self.warnings
        return out


def fit_kaplan(
    points: FitPoints,
    envelope_c: np.ndarray | None,
    envelope_loss: np.ndarray | None,
    *,
    irreducible: bool = False,
    warm: KaplanResults | None = None,
) -> KaplanResults:
    """Fit L(N), L(D), L(C_min) and the joint law; a law the data cannot support gets a note, not a crash.

    ``warm`` (a previous fit of the same form) warm-starts every nonlinear fit: the bootstrap uses it
    to refit hundreds of replicates quickly.
    """
    out = KaplanResults(irreducible=irreducible)

    def start_of(f: PowerLawFit | None) -> tuple[float, float, float] | None:
        return (f.e, f.alpha, f.log_x_c) if (f is not None and irreducible) else None

    xn, ln_ = best_per_group(points.n, points.loss)
    try:
        out.l_n = fit_power_law(
            xn, ln_, irreducible=irreducible, law="L(N)", variable="N", start=start_of(warm and warm.l_n)
        )
    except ScalingError as err:
        out.notes.append(f"L(N) not fitted: {err}")
    xd, ld_ = best_per_group(points.d, points.loss)
    try:
        out.l_d = fit_power_law(
            xd, ld_, irreducible=irreducible, law="L(D)", variable="D", start=start_of(warm and warm.l_d)
        )
    except ScalingError as err:
        out.notes.append(f"L(D) not fitted: {err}")
    if envelope_c is not None and envelope_loss is not None and len(envelope_c):
        try:
            out.l_c = fit_power_law(
                envelope_c,
                envelope_loss,
                irreducible=irreducible,
                law="L(C_min)",
                variable="C",
                start=start_of(warm and warm.l_c),
            )
        except ScalingError as err:
            out.notes.append(f"L(C_min) not fitted: {err}")
    else:
        out.notes.append("L(C_min) not fitted: no compute-efficient frontier")
    starts = None
    if warm is not None and warm.joint is not None:
        starts = [warm.joint.theta]
    elif out.l_n is not None and out.l_d is not None and out.l_n.alpha > 0 and out.l_d.alpha > 0:
        # Kaplan's joint law reduces to L(N) as D -> inf and to L(D) as N -> inf: start there.
        e0 = min(out.l_n.e, out.l_d.e)
        first = np.array([out.l_n.alpha, out.l_d.alpha, out.l_n.log_x_c, out.l_d.log_x_c, e0])
        starts = [first, *_default_starts(points.n, points.d, points.loss, irreducible)]
    try:
        out.joint = fit_kaplan_joint(points.n, points.d, points.loss, irreducible=irreducible, starts=starts)
    except ScalingError as err:
        out.notes.append(f"joint L(N,D) not fitted: {err}")
    return out


def _default_starts(n: np.ndarray, d: np.ndarray, loss: np.ndarray, irreducible: bool) -> list[np.ndarray]:
    """A grid of exponents, N_c and D_c set so each start predicts the median loss at the mean log size."""
    ln, ld = np.log(n), np.log(d)
    e_max = 0.999 * float(loss.min()) if irreducible else 0.0
    starts = []
    for e_frac in (0.0, 0.5, 0.8) if irreducible else (0.0,):
        e0 = e_frac * e_max
        lm = math.log(float(np.median(loss)) - e0)
        for a_n in (0.07, 0.3, 0.6):
            for a_d in (0.1, 0.3, 0.6):
                starts.append(np.array([a_n, a_d, ln.mean() + lm / a_n, ld.mean() + lm / a_d, e0]))
    return starts


# ----------------------------------------------------------------------------- bootstrap, all resamples at once


def bootstrap_kaplan(
    points: FitPoints, counts: np.ndarray, warm: KaplanResults, envelopes: ResampledEnvelopes
) -> dict[str, np.ndarray]:
    """Kaplan's four laws refitted on every resample (rows of ``counts``) at once; keys as
    :meth:`KaplanResults.quantities`, NaN where a resample cannot support a law (issue 16, item 7).

    L(N), L(D) and L(C_min) rest on frontiers that depend only on which runs a resample holds (a run drawn
    twice adds no frontier point): the best loss per size (:func:`_best_per_group_batch`) and the envelope
    (``envelopes``, from :func:`scaling.fit.resampled_envelope.resampled_envelopes`). The joint law is fitted
    to every point with its multiplicity as a least-squares weight, which is what refitting the duplicated
    points does. Nonlinear fits start from the point fit ``warm``, as :func:`fit_kaplan` does with ``warm``.
    """
    counts = np.asarray(counts, dtype=float)
    present = counts > 0
    irreducible = warm.irreducible
    out: dict[str, np.ndarray] = {}

    def start_of(f: PowerLawFit | None) -> tuple[float, float, float] | None:
        return (f.e, f.alpha, f.log_x_c) if (f is not None and irreducible) else None

    laws = (
        ("N", *_best_per_group_batch(points.n, points.loss, present), warm.l_n),
        ("D", *_best_per_group_batch(points.d, points.loss, present), warm.l_d),
        ("C", envelopes.c, envelopes.loss, envelopes.keep, warm.l_c),
    )
    for v, x, y, keep, point_fit in laws:
        fit = fit_power_law_batch(
            np.where(keep, x, 1.0), np.where(keep, y, 1.0), keep, irreducible=irreducible, start=start_of(point_fit)
        )
        out[f"alpha_{v}"] = fit["alpha"]
        with np.errstate(over="ignore"):
            out[f"{v}_c"] = np.where(fit["log_x_c"] < 700, np.exp(np.minimum(fit["log_x_c"], 700)), np.inf)
        out[f"{v}_c"] = np.where(np.isnan(fit["log_x_c"]), np.nan, out[f"{v}_c"])
        if irreducible:
            out[f"E_{v}"] = fit["e"]
    if warm.joint is not None:
        theta = joint_batch(points.n, points.d, points.loss, counts, warm.joint)
        out["joint_alpha_N"], out["joint_alpha_D"] = theta[:, 0], theta[:, 1]
    return out


def _best_per_group_batch(
    x: np.ndarray, loss: np.ndarray, present: np.ndarray, rel_tol: float = 0.01
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`scaling.fit.points.best_per_group` on every resample: (K, G) x and loss of each group's best
    present point, and the mask of the groups on the falling frontier.

    Groups are those of all the points; a resample's own grouping is their restriction as long as no
    group spans ``rel_tol`` or more (single linkage could then split it when a middle point is absent).
    Otherwise each resample is grouped on its own, as the point fit does.
    """
    labels = group_by_log(x, rel_tol)
    groups = np.unique(labels)
    lx = np.log(x)
    spans = np.array([np.ptp(lx[labels == g]) for g in groups])
    k = present.shape[0]
    if np.any(spans >= math.log1p(rel_tol)):
        xs, ls = np.full((k, x.size), np.nan), np.full((k, x.size), np.nan)
        keep = np.zeros((k, x.size), dtype=bool)
        for row in range(k):
            bx, bl = best_per_group(x[present[row]], loss[present[row]], rel_tol)
            xs[row, : bx.size], ls[row, : bx.size], keep[row, : bx.size] = bx, bl, True
        return xs, ls, keep
    masked = np.where(present, loss, np.inf)
    xs, ls = np.empty((k, groups.size)), np.empty((k, groups.size))
    for col, g in enumerate(groups):  # groups are numbered in increasing x
        idx = np.flatnonzero(labels == g)
        j = np.argmin(masked[:, idx], axis=1)
        ls[:, col] = masked[np.arange(k), idx[j]]
        xs[:, col] = x[idx[j]]
    running = np.minimum.accumulate(np.concatenate([np.full((k, 1), np.inf), ls[:, :-1]], axis=1), axis=1)
    return xs, ls, np.isfinite(ls) & (ls < running)


def joint_batch(n: np.ndarray, d: np.ndarray, loss: np.ndarray, counts: np.ndarray, warm: KaplanJointFit) -> np.ndarray:
    """:func:`fit_kaplan_joint` from the point fit on every resample (multiplicities as weights); (K, 5)
    parameters, NaN rows where the resample cannot identify the law."""
    irreducible = warm.irreducible
    n_params = warm.n_params
    k = counts.shape[0]
    present = counts > 0
    ln, ld, ll = np.log(n), np.log(d), np.log(loss)
    e_max = 0.999 * np.where(present, loss, np.inf).min(axis=1) if irreducible else np.zeros(k)
    lower = np.tile([ALPHA_BOUNDS[0], ALPHA_BOUNDS[0], -1e4, -1e4, 0.0][:n_params], (k, 1))
    upper = np.tile([5.0, 5.0, 1e5, 1e5, 0.0][:n_params], (k, 1))
    if irreducible:
        upper[:, 4] = np.maximum(e_max, 1e-12)

    def model(theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = theta if irreducible else np.column_stack([theta, np.zeros(len(theta))])
        return _joint_log_pred(full, ln, ld) - ll, _joint_jacobian(full, ln, ld, irreducible)

    start = np.tile(warm.theta[:n_params], (k, 1))
    with np.errstate(over="ignore", invalid="ignore"):
        theta, cost, _ = least_squares_batch(model, start, lower, upper, counts)
    full = theta if irreducible else np.column_stack([theta, np.zeros(k)])

    def distinct(v: np.ndarray) -> np.ndarray:
        return np.where(present, v, -np.inf).max(axis=1) > np.where(present, v, np.inf).min(axis=1)

    ok = (counts.sum(axis=1) >= n_params) & distinct(n) & distinct(d) & np.isfinite(cost)
    full[~ok] = np.nan
    return full
