"""The generic power law ``y = E + (x_c / x)^alpha`` and its fitter, in log space.

Kaplan et al. 2020's single-variable laws (L(N), L(D), L(C_min): :mod:`scaling.fit.kaplan`) and the
per-run learning curves L(t) (:mod:`scaling.fit.learning_curve`) are all this form, with or without the
additive irreducible term ``E``. The pure form ``(x_c/x)^alpha`` is a straight line in log-log space and
is fitted by ordinary least squares, exactly; with ``E`` it is fitted by bounded least squares on the
log-residuals (every point weighs by its relative error) from a variable-projection start.
"""

from __future__ import annotations

import math
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
    """A start for the irreducible fit by profiling the exponent (variable projection).

    For fixed alpha the law ``y = E + K x^-alpha`` is linear in (E, K): solve it by weighted linear
    least squares (weights 1/y approximate the log-space fit) for 80 exponents at once, clip E to its
    bounds, and keep the exponent with the smallest log-space error. One polish from here replaces
    a multi-start search.
    """
    m = float(lx.mean())
    alphas = np.geomspace(0.01, 5.0, 80)
    x = np.exp(-alphas[:, None] * (lx - m)[None, :])  # x^-alpha up to the factor exp(-alpha m)
    w2 = 1.0 / y**2
    s0, sy = w2.sum(), (w2 * y).sum()
    sx, sxx, sxy = (w2 * x).sum(1), (w2 * x * x).sum(1), (w2 * x * y).sum(1)
    with np.errstate(all="ignore"):
        e = np.clip((sy * sxx - sx * sxy) / (s0 * sxx - sx * sx), 0.0, e_max)
        k = np.maximum((sxy - e * sx) / sxx, 1e-300)
        pred = e[:, None] + k[:, None] * x
        sse = np.where(np.all(pred > 0, axis=1), ((np.log(pred) - np.log(y)) ** 2).sum(1), np.inf)
    i = int(np.nanargmin(np.where(np.isfinite(sse), sse, np.inf)))
    return np.array([e[i], alphas[i], m + math.log(k[i]) / alphas[i]])


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
