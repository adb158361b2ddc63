"""The generic power law ``y = E + (x_c / x)^alpha`` and its fitter, in log space.

Kaplan et al. 2020's single-variable laws (L(N), L(D), L(C_min): :mod:`scaling.fit.kaplan`) and the
per-run learning curves L(t) (:mod:`scaling.fit.learning_curve`) are all this form, with or without the
additive irreducible term ``E``. The pure form ``(x_c/x)^alpha`` is a straight line in log-log space and
is fitted by ordinary least squares, exactly; with ``E`` it is fitted by bounded least squares on the
log-residuals (every point weighs by its relative error) from a variable-projection start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import ScalingError

#: Search range of every fitted exponent (also Kaplan's joint law's alpha_N, alpha_D).
ALPHA_BOUNDS = (1e-4, 10.0)


def exp_or_inf(log_value: float) -> float:
    """exp() of a fitted log-scale (x_c, N_c, D_c), ``inf`` where it would overflow a float."""
    return math.exp(log_value) if log_value < 700 else math.inf


class FitDiagnostics:
    """What every least-squares law fit reports after its parameters (mixed into the fit dataclasses)."""

    e: float
    irreducible: bool
    n_points: int
    rmse_log: float
    converged: bool
    warnings: list[str]

    def diagnostics(self) -> dict[str, Any]:
        """Points, log-space RMSE, convergence and warnings, then E when the law has one."""
        out: dict[str, Any] = {
            "n_points": self.n_points,
            "rmse_log": self.rmse_log,
            "converged": self.converged,
            "warnings": list(self.warnings),
        }
        if self.irreducible:
            out["E"] = self.e
        return out


@dataclass
class PowerLawFit(FitDiagnostics):
    """``y = E + (x_c / x)^alpha`` (``E = 0`` in the pure Kaplan form), fitted in log space."""

    law: str
    variable: str
    alpha: float
    log_x_c: float
    e: float
    irreducible: bool
    n_points: int
    rmse_log: float
    converged: bool
    x: np.ndarray
    y: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def x_c(self) -> float:
        return exp_or_inf(self.log_x_c)

    @property
    def n_params(self) -> int:
        return 3 if self.irreducible else 2

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return self.e + np.exp(self.alpha * (self.log_x_c - np.log(x)))

    @property
    def form(self) -> str:
        v = self.variable
        return f"{'E + ' if self.irreducible else ''}({v}_c/{v})^alpha_{v}"

    def as_dict(self) -> dict[str, Any]:
        v = self.variable
        return {"form": f"{self.law} = {self.form}", f"alpha_{v}": self.alpha, f"{v}_c": self.x_c, **self.diagnostics()}


def _check_points(x: np.ndarray, y: np.ndarray, n_params: int, law: str, variable: str) -> None:
    if len(x) < n_params:
        raise ScalingError(f"{law}: {len(x)} point(s) for {n_params} parameters")
    if np.unique(x).size < 2:
        raise ScalingError(f"{law}: all points at one {variable}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ScalingError(f"{law}: non-positive or non-finite values")


def fit_power_law(
    x: np.ndarray,
    y: np.ndarray,
    *,
    irreducible: bool = False,
    law: str = "L(N)",
    variable: str = "N",
    start: tuple[float, float, float] | None = None,
) -> PowerLawFit:
    """Fit ``y = E + (x_c/x)^alpha`` (or the pure form) to positive points; flags bounds and thin data.

    ``start`` = (E, alpha, log x_c) warm-starts the irreducible fit (used by the bootstrap).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n_params = 3 if irreducible else 2
    _check_points(x, y, n_params, law, variable)
    lx, ly = np.log(x), np.log(y)
    warnings: list[str] = []
    if not irreducible:
        # log y = alpha log x_c - alpha log x: ordinary least squares in log-log space is exact.
        slope, intercept = np.polyfit(lx, ly, 1)
        alpha = -float(slope)
        log_xc = float(intercept) / alpha if alpha != 0 else math.nan
        e, converged = 0.0, True
        resid = ly - np.polyval([slope, intercept], lx)
    else:
        e, alpha, log_xc, resid, converged, bound_hits = _fit_irreducible(lx, y, start)
        warnings += [f"{law}: {b}" for b in bound_hits]
    if alpha <= 0:
        warnings.append(f"{law}: loss does not fall with {variable} (alpha_{variable} = {alpha:.4g} <= 0)")
    if len(x) == n_params:
        warnings.append(f"{law}: {len(x)} points for {n_params} parameters: exact fit, no residual check")
    if not converged:
        warnings.append(f"{law}: optimiser did not converge")
    return PowerLawFit(
        law=law,
        variable=variable,
        alpha=alpha,
        log_x_c=log_xc,
        e=e,
        irreducible=irreducible,
        n_points=len(x),
        rmse_log=float(np.sqrt(np.mean(resid**2))),
        converged=converged,
        x=x,
        y=y,
        warnings=warnings,
    )


def _profile_start(lx: np.ndarray, y: np.ndarray, e_max: float) -> np.ndarray:
    """A start for the irreducible fit by profiling the exponent (variable projection); see
    :func:`profile_starts`, of which this is the one-data-set case."""
    return profile_starts(lx[None, :], y[None, :], np.ones((1, lx.size)), np.array([e_max]))[0]


def profile_starts(lx: np.ndarray, y: np.ndarray, weights: np.ndarray, e_max: np.ndarray) -> np.ndarray:
    """Starts (E, alpha, log x_c) for the irreducible fit of K data sets at once, by profiling the exponent.

    For fixed alpha the law ``y = E + K x^-alpha`` is linear in (E, K): solve it by weighted linear
    least squares (weights 1/y approximate the log-space fit) for 80 exponents at once, clip E to its
    bounds, and keep the exponent with the smallest log-space error. One polish from here replaces
    a multi-start search. ``lx``, ``y``, ``weights``: (K, m), a point of weight 0 is absent (its values
    must be finite); ``e_max``: (K,) upper bound of E.
    """
    w = weights > 0
    m = (np.where(w, lx, 0.0).sum(axis=1) / w.sum(axis=1))[:, None, None]
    alphas = np.geomspace(0.01, 5.0, 80)
    x = np.exp(-alphas[None, :, None] * (lx[:, None, :] - m))  # x^-alpha up to the factor exp(-alpha m)
    w2 = (np.where(w, 1.0 / y**2, 0.0))[:, None, :]
    yb = y[:, None, :]
    s0, sy = w2.sum(axis=2), (w2 * yb).sum(axis=2)
    sx, sxx, sxy = (w2 * x).sum(axis=2), (w2 * x * x).sum(axis=2), (w2 * x * yb).sum(axis=2)
    with np.errstate(all="ignore"):
        e = np.clip((sy * sxx - sx * sxy) / (s0 * sxx - sx * sx), 0.0, e_max[:, None])
        k = np.maximum((sxy - e * sx) / sxx, 1e-300)
        pred = e[:, :, None] + k[:, :, None] * x
        sq = np.where(w[:, None, :], (np.log(pred) - np.log(yb)) ** 2, 0.0)
        ok = np.all(~w[:, None, :] | (pred > 0), axis=2)
        sse = np.where(ok, sq.sum(axis=2), np.inf)
    i = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    rows = np.arange(lx.shape[0])
    e_i, k_i, a_i = e[rows, i], k[rows, i], alphas[i]
    return np.column_stack([e_i, a_i, m[:, 0, 0] + np.log(k_i) / a_i])


def _fit_irreducible(
    lx: np.ndarray, y: np.ndarray, start: tuple[float, float, float] | None
) -> tuple[float, float, float, np.ndarray, bool, list[str]]:
    """Bounded least squares for ``log(E + exp(alpha (log x_c - log x)))`` vs ``log y`` (analytic Jacobian)."""
    ly = np.log(y)
    e_max = 0.999 * float(y.min())

    def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, alpha, lxc = theta
        p = np.exp(alpha * (lxc - lx))
        return p, e + p

    def residual(theta: np.ndarray) -> np.ndarray:
        return np.log(parts(theta)[1]) - ly

    def jac(theta: np.ndarray) -> np.ndarray:
        _, alpha, lxc = theta
        p, s = parts(theta)
        return np.column_stack([1.0 / s, p * (lxc - lx) / s, p * alpha / s])

    starts = [np.array(start, dtype=float)] if start is not None else []
    starts.append(_profile_start(lx, y, e_max))
    lower = np.array([0.0, ALPHA_BOUNDS[0], -1e4])
    upper = np.array([e_max, ALPHA_BOUNDS[1], 1e4])
    best = None
    with np.errstate(over="ignore", invalid="ignore"):
        for s in starts:
            s = np.clip(s, lower, upper)
            res = least_squares(residual, s, jac=jac, bounds=(lower, upper), method="trf", x_scale="jac", max_nfev=500)
            if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
                best = res
    if best is None:
        raise ScalingError("irreducible power law: no start produced a finite fit")
    e, alpha, lxc = (float(v) for v in best.x)
    hits = []
    if e <= 1e-6 * e_max:
        hits.append("E at its lower bound 0 (no irreducible loss visible)")
    if e >= e_max * (1 - 1e-6):
        hits.append("E at its upper bound (the lowest observed loss)")
    if alpha <= ALPHA_BOUNDS[0] * 1.001 or alpha >= ALPHA_BOUNDS[1] * 0.999:
        hits.append(f"alpha at a bound ({alpha:.4g})")
    return e, alpha, lxc, best.fun, bool(best.status > 0), hits


# ----------------------------------------------------------------------------- many data sets at once
# The bootstrap refits the same law on hundreds of resamples (issue 16, item 7). A resample is a weight
# per point (its multiplicity; 0 = absent), so all of them share one (K, m) layout and are fitted together.


def ols_batch(lx: np.ndarray, ly: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares lines ``ly = slope lx + intercept`` for every row; returns slope, intercept and
    the weighted RMSE. Rows with fewer than two distinct ``lx`` of positive weight give NaN."""
    w = np.where(weights > 0, weights, 0.0)
    lx0, ly0 = np.where(w > 0, lx, 0.0), np.where(w > 0, ly, 0.0)
    sw = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm, ym = (w * lx0).sum(axis=1) / sw, (w * ly0).sum(axis=1) / sw
        dx, dy = lx0 - xm[:, None], ly0 - ym[:, None]
        slope = (w * dx * dy).sum(axis=1) / (w * dx * dx).sum(axis=1)
        intercept = ym - slope * xm
        resid = ly0 - (slope[:, None] * lx0 + intercept[:, None])
        rmse = np.sqrt((w * resid**2).sum(axis=1) / sw)
    distinct = np.where(w > 0, lx0, -np.inf).max(axis=1) > np.where(w > 0, lx0, np.inf).min(axis=1)
    bad = ~distinct
    slope[bad], intercept[bad], rmse[bad] = np.nan, np.nan, np.nan
    return slope, intercept, rmse


def least_squares_batch(
    model: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    weights: np.ndarray,
    *,
    max_iter: int = 200,
    xtol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounded Levenberg-Marquardt on sum_i w_ki r_ki(theta_k)^2, every row k its own problem, all vectorised.

    ``model(theta, rows)`` returns the residuals (len(rows), m) and Jacobian (len(rows), m, p) of the
    rows ``rows`` at ``theta`` (len(rows), p); a point of weight 0 must still give finite values. A
    parameter on a bound whose gradient pushes outwards is held there (active set), the others take a
    Marquardt-damped Gauss-Newton step (damping scaled by diag(J^T W J), so the step is invariant to the
    parameters' scales like scipy's ``x_scale='jac'``). Steps are projected onto the box. A row stops when
    its step falls below ``xtol`` relative to the parameters, when no damping gives a decrease, or after
    ``max_iter`` iterations. Returns theta (K, p), the cost 0.5 sum w r^2 (K,) and a converged flag (K,).
    """
    theta = np.clip(np.array(theta0, dtype=float), lower, upper)
    k, p = theta.shape
    cost = np.full(k, np.inf)
    lam = np.full(k, 1e-3)
    converged = np.zeros(k, dtype=bool)
    active = np.arange(k)
    r, jac = model(theta, active)
    cost = 0.5 * (weights * r * r).sum(axis=1)
    eye = np.eye(p)
    for _ in range(max_iter):
        if active.size == 0:
            break
        w = weights[active]
        th = theta[active]
        g = np.einsum("kmp,km->kp", jac, w * r)
        hess = np.einsum("kmp,kmq->kpq", jac * w[:, :, None], jac)
        held = ((th <= lower[active]) & (g > 0)) | ((th >= upper[active]) & (g < 0))
        diag = np.diagonal(hess, axis1=1, axis2=2)
        damp = lam[active, None] * (diag + 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300)
        a = hess + damp[:, :, None] * eye
        free = ~held
        a = np.where(free[:, :, None] & free[:, None, :], a, eye)
        rhs = np.where(free, -g, 0.0)
        try:
            step = np.linalg.solve(a, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.einsum("kpq,kq->kp", np.linalg.pinv(a), rhs)
        trial = np.clip(th + step, lower[active], upper[active])
        with np.errstate(over="ignore", invalid="ignore"):
            rt, jt = model(trial, active)
            ct = 0.5 * (w * rt * rt).sum(axis=1)
        ok = np.isfinite(ct) & (ct <= cost[active])
        moved = np.sqrt(((trial - th) ** 2).sum(axis=1))
        small = moved <= xtol * (xtol + np.sqrt((th * th).sum(axis=1)))
        idx = active[ok]
        theta[idx], cost[idx] = trial[ok], ct[ok]
        r = np.where(ok[:, None], rt, r)
        jac = np.where(ok[:, None, None], jt, jac)
        lam[active] = np.where(ok, np.maximum(lam[active] * 0.3, 1e-15), lam[active] * 10.0)
        done = small | (lam[active] > 1e16)
        converged[active[done & (small | ok)]] = True
        keep = ~done
        active, r, jac = active[keep], r[keep], jac[keep]
    return theta, cost, converged


def power_law_model(
    lx: np.ndarray, ly: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Residuals ``log(E + exp(alpha (log x_c - log x))) - log y`` and their Jacobian in (E, alpha, log x_c)
    for rows of (K, m) data, the model of :func:`_fit_irreducible`, in the form :func:`least_squares_batch`
    takes."""

    def model(theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, alpha, lxc = (theta[:, j : j + 1] for j in range(3))
        x = lx[rows]
        pw = np.exp(alpha * (lxc - x))
        s = e + pw
        jac = np.stack([1.0 / s, pw * (lxc - x) / s, pw * alpha / s], axis=2)
        return np.log(s) - ly[rows], jac

    return model


def fit_power_law_batch(
    x: np.ndarray,
    y: np.ndarray,
    present: np.ndarray,
    *,
    irreducible: bool = False,
    start: tuple[float, float, float] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`fit_power_law` on K data sets at once: the points ``x``, ``y`` (K, m) where ``present``.

    Returns arrays (K,) ``alpha``, ``log_x_c``, ``e`` (0 for the pure law), NaN where a data set has too
    few points or distinct x to fit (where :func:`fit_power_law` raises). The pure law is the closed-form
    line in log-log space; the irreducible one is polished by :func:`least_squares_batch` from ``start``
    (the point fit) and from each data set's profile start, keeping the better, as :func:`_fit_irreducible`.
    """
    n_params = 3 if irreducible else 2
    ok_y = present & (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx = np.log(np.where(ok_y, x, 1.0))
    ly = np.log(np.where(ok_y, y, 1.0))
    w = ok_y.astype(float)
    enough = w.sum(axis=1) >= n_params
    k = x.shape[0]
    if not irreducible:
        slope, intercept, _ = ols_batch(lx, ly, w)
        alpha = -slope
        with np.errstate(invalid="ignore", divide="ignore"):
            log_xc = np.where(alpha != 0, intercept / alpha, np.nan)
        e = np.zeros(k)
    else:
        yy = np.where(ok_y, y, 1.0)
        e_max = 0.999 * np.where(ok_y, y, np.inf).min(axis=1)
        e_max = np.where(np.isfinite(e_max), e_max, 1.0)
        lower = np.column_stack([np.zeros(k), np.full(k, ALPHA_BOUNDS[0]), np.full(k, -1e4)])
        upper = np.column_stack([e_max, np.full(k, ALPHA_BOUNDS[1]), np.full(k, 1e4)])
        model = power_law_model(lx, ly)
        with np.errstate(all="ignore"):
            starts = [profile_starts(lx, yy, w, e_max)]
        if start is not None:
            starts.insert(0, np.tile(np.asarray(start, dtype=float), (k, 1)))
        best_theta, best_cost = np.full((k, 3), np.nan), np.full(k, np.inf)
        for s0 in starts:
            s0 = np.where(np.isfinite(s0), s0, lower)
            theta, cost, _ = least_squares_batch(model, s0, lower, upper, w)
            better = np.isfinite(cost) & (cost < best_cost)
            best_theta[better], best_cost[better] = theta[better], cost[better]
        e, alpha, log_xc = best_theta[:, 0], best_theta[:, 1], best_theta[:, 2]
    distinct = np.where(ok_y, lx, -np.inf).max(axis=1) > np.where(ok_y, lx, np.inf).min(axis=1)
    bad = ~(enough & distinct)
    return {
        "alpha": np.where(bad, np.nan, alpha),
        "log_x_c": np.where(bad, np.nan, log_xc),
        "e": np.where(bad, np.nan, e),
    }
