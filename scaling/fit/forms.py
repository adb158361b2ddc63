"""Fit each functional form of :data:`scaling.laws.FORMS` to (N, D[, U], loss) points.

The forms (issue 16, item 2), each written once as a law in :mod:`scaling.laws`:

* ``chinchilla`` -- Hoffmann et al. 2022, eq. 2. With the default objective this *is* Approach 3
  (:func:`scaling.fit.approach3.fit_approach3`, to every digit); other objectives reuse its global
  search (:mod:`scaling.fit.varpro` profile over the exponents + trust-region Newton polish) where the
  residuals are in log space.
* ``kaplan`` -- Kaplan et al. 2020, eq. 1.5, fitted by :func:`scaling.fit.kaplan.fit_kaplan_joint`
  (least squares on log residuals from a grid of starts; the objective options do not apply to it).
* ``overtrain`` -- Gadre et al. 2024 (arXiv 2403.08540), L = E + (a M^η + b M^-η) C^-η: the Chinchilla
  form with α = β = 2η. The same profile scan, restricted to the diagonal α = β, gives the starts and a
  bounded quasi-Newton polish of the chosen objective finishes. Their own recipe (mlfoundations/scaling,
  ``scaling/laws.py``: scipy ``curve_fit`` least squares on the raw loss from a grid of starts) is the
  objective ``Objective(delta=None, space="linear")``.
* ``data-constrained`` -- Muennighoff et al. 2023, fitted jointly (base law and R_D*, R_N*) by
  :func:`scaling.fit.data_constrained.fit_data_constrained`; only with U (unique tokens) per run.

Objectives (issue 16, item 3): the summed Huber ρ_δ of the residuals (δ = None: least squares,
ρ = r²/2), residuals in log space (log L̂ - log L, Hoffmann et al. 2022 App. D.2) or linear
((L̂ - L) / median L, so that δ means a comparable fraction of the loss in both), every run weighing
1 or weights by compute (w_i = C_i / mean C, so the weights still sum to the number of runs and δ keeps
its meaning). Bootstrap draws resample runs (:func:`scaling.fit.bootstrap.resample_counts`) and refit
from the point estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from scaling.errors import ScalingError
from scaling.fit import varpro
from scaling.fit.approach3 import fit_approach3, make_fit, search, validate_points
from scaling.fit.bootstrap import resample_counts
from scaling.fit.huber import HuberProblem, minimise_batch
from scaling.intervals import percentile_ci
from scaling.laws import CHINCHILLA_PARAMS, FORMS, OvertrainLaw, get_form

#: Residual spaces and run weightings an :class:`Objective` may use.
SPACES = ("log", "linear")
WEIGHTINGS = ("run", "compute")
#: Huber δ standing in for least squares in log space: log residuals never come near it, so every point
#: sits on the quadratic branch and the Newton search of Approach 3 minimises exactly Σ r²/2.
LEAST_SQUARES_LOG_DELTA = 10.0
#: Polishes per fit of the generic (tied-exponent or linear-residual) fitter: the best profile cells.
N_POLISH = 6


@dataclass(frozen=True)
class Objective:
    """How residuals are measured, robustified and weighted (see the module docstring)."""

    delta: float | None = 1e-3
    space: str = "log"
    weights: str = "run"

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ScalingError(f"residual space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.weights not in WEIGHTINGS:
            raise ScalingError(f"weights must be one of {', '.join(WEIGHTINGS)}, got {self.weights!r}")
        if self.delta is not None and not (math.isfinite(self.delta) and self.delta > 0):
            raise ScalingError(f"Huber delta must be positive, got {self.delta!r}")

    @property
    def label(self) -> str:
        loss = "least squares" if self.delta is None else f"Huber {self.delta:g}"
        return f"{loss}, {self.space} residuals, weights per {self.weights}"

    def run_weights(self, c: np.ndarray) -> np.ndarray:
        """Per-run weights before bootstrap multiplicities: ones, or C / mean C."""
        return np.ones_like(c) if self.weights == "run" else c / c.mean()


def describe(form: str, objective: Objective) -> str:
    """The objective a form is really fitted with (Kaplan's fitter has its own: least squares in log space)."""
    return "least squares, log residuals (Kaplan fitter)" if form == "kaplan" else objective.label


DEFAULT_OBJECTIVE = Objective()
#: Gadre et al. 2024's recipe: scipy curve_fit, i.e. least squares on the raw loss, every run once.
GADRE_OBJECTIVE = Objective(delta=None, space="linear")


@dataclass
class FormFit:
    """One form's fitted parameters (the keys of :attr:`scaling.laws.Form.params`) and its bootstrap draws."""

    form: str
    params: dict[str, float]
    objective: Objective
    n_points: int
    warnings: list[str] = field(default_factory=list)
    samples: dict[str, np.ndarray] | None = None
    n_failed: int = 0

    def predict(self, n: Any, d: Any, unique: Any = None) -> np.ndarray:
        return np.asarray(FORMS[self.form].loss(self.params, n, d, unique), dtype=float)

    def predict_draws(self, n: Any, d: Any, unique: Any = None) -> np.ndarray | None:
        """(K, len(n)) predictions of the bootstrap draws, or None without a bootstrap."""
        if not self.samples:
            return None
        draws = {k: np.asarray(v, dtype=float)[:, None] for k, v in self.samples.items()}
        return np.asarray(FORMS[self.form].loss(draws, np.atleast_1d(n), np.atleast_1d(d), unique), dtype=float)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "form": self.form,
            "law": FORMS[self.form].citation,
            "params": {k: float(v) for k, v in self.params.items()},
            "objective": describe(self.form, self.objective),
            "n_points": self.n_points,
            "warnings": list(self.warnings),
        }
        if self.samples:
            out["n_boot"] = int(len(next(iter(self.samples.values()))))
            out["n_failed"] = self.n_failed
            out["ci95"] = {k: list(percentile_ci(v)) for k, v in self.samples.items()}
            out["samples"] = {k: np.asarray(v, dtype=float).tolist() for k, v in self.samples.items()}
        return out


# ----------------------------------------------------------------------------- Chinchilla family


def _residual_terms(theta: np.ndarray, x: np.ndarray, y: np.ndarray, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    """Log-terms (3, n) of A N^-α, B D^-β, E in centred coordinates and d(term)/d(theta) structure."""
    u, v, e = theta[:3]
    alpha = theta[3]
    beta = theta[3] if tied else theta[4]
    terms = np.stack([u - alpha * x, v - beta * y, np.full_like(x, e)])
    return terms, np.array([alpha, beta])


def _objective(
    theta: np.ndarray,
    problem: HuberProblem,
    weights: np.ndarray,
    objective: Objective,
    tied: bool,
    scale: float,
) -> tuple[float, np.ndarray]:
    """Summed (weighted) Huber or squares of log or linear residuals and its gradient in centred coordinates."""
    terms, _ = _residual_terms(theta, problem.x, problem.y, tied)
    lse = logsumexp(terms, axis=0)
    if objective.space == "log":
        r = lse - problem.log_loss
        jac = np.exp(terms - lse)  # d r / d term_k: softmax weights
    else:
        r = (np.exp(lse) - np.exp(problem.log_loss)) / scale
        jac = np.exp(terms) / scale
    if objective.delta is None:
        f, psi = 0.5 * r * r, r
    else:
        f, psi = huber(objective.delta, r), np.clip(r, -objective.delta, objective.delta)
    wpsi = weights * psi
    g_terms = jac @ wpsi  # (3,) gradients w.r.t. u, v, e
    g_alpha = -(wpsi * jac[0]) @ problem.x
    g_beta = -(wpsi * jac[1]) @ problem.y
    grad = [g_terms[0], g_terms[1], g_terms[2], g_alpha + g_beta] if tied else [*g_terms, g_alpha, g_beta]
    return float(weights @ f), np.asarray(grad, dtype=float)


def _polish(
    problem: HuberProblem, start: np.ndarray, weights: np.ndarray, objective: Objective, tied: bool, scale: float
) -> tuple[np.ndarray, float, bool]:
    """Bounded L-BFGS-B from one start (centred coordinates), tolerances tight enough for a flat Huber valley."""
    n_exp = 1 if tied else 2
    bounds = [(-60.0, 60.0), (-60.0, 60.0), (-30.0, 30.0)] + [(0.0, 10.0)] * n_exp
    res = minimize(
        _objective,
        start,
        args=(problem, weights, objective, tied, scale),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000, "maxls": 50},
    )
    return np.asarray(res.x), float(res.fun), bool(res.success)


def _profile_starts(problem: HuberProblem, weights: np.ndarray, tied: bool) -> list[np.ndarray]:
    """The best cells of the Approach-3 profile scan (log-Huber, δ of the problem) as polish starts."""
    if tied:
        grid = varpro.DEFAULT_EXPONENTS
        theta, f = varpro.profile_cells(problem, grid, grid, weights)
        order = np.argsort(np.where(np.isfinite(f), f, np.inf))
        picked = [theta[i][:4] for i in order if np.isfinite(f[i])]
        # local minima along the diagonal first, then the best of the rest
        minima = [i for i in range(1, len(f) - 1) if f[i] <= f[i - 1] and f[i] <= f[i + 1]]
        firsts = [theta[i][:4] for i in sorted(minima, key=lambda i: f[i])]
        return (firsts + picked)[:N_POLISH]
    prof = varpro.scan(problem, counts=weights)
    return [prof.theta[c] for c in prof.local_minima(N_POLISH)]


def _chinchilla_params(problem: HuberProblem, theta: np.ndarray, tied: bool) -> dict[str, float]:
    full = np.array([*theta[:4], theta[3]]) if tied else np.asarray(theta)
    nat = problem.to_natural(full)  # (log A, log B, log E, alpha, beta)
    values = (np.exp(nat[2]), np.exp(nat[0]), np.exp(nat[1]), nat[3], nat[4])
    return dict(zip(CHINCHILLA_PARAMS, map(float, values), strict=True))


def _overtrain_params(chin: dict[str, Any]) -> dict[str, Any]:
    """(E, A, B, α = β) -> Gadre et al.'s (E, a, b, η): η = α/2, a = A 6^η, b = B 6^η (inverse of as_chinchilla);
    floats, or arrays of bootstrap draws."""
    eta = chin["alpha"] / 2.0
    return {"E": chin["E"], "a": chin["A"] * 6.0**eta, "b": chin["B"] * 6.0**eta, "eta": eta}


def _start_of(params: dict[str, float], form: str, problem: HuberProblem) -> np.ndarray:
    """Centred start vector of a previous fit (the point fit, for bootstrap refits)."""
    if form == "overtrain":
        law = OvertrainLaw(**{k: params[k] for k in ("E", "a", "b", "eta")}).as_chinchilla()
        nat = np.array([math.log(law.A), math.log(law.B), math.log(law.E), law.alpha, law.beta])
        return problem.to_centred(nat)[:4]
    nat = np.array(
        [math.log(params["A"]), math.log(params["B"]), math.log(params["E"]), params["alpha"], params["beta"]]
    )
    return problem.to_centred(nat)


def _fit_chinchilla_family(
    form: str,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    objective: Objective,
    counts: np.ndarray | None,
    warm: dict[str, float] | None,
) -> tuple[dict[str, float], list[str]]:
    tied = form == "overtrain"
    weights = objective.run_weights(6.0 * n * d) * (1.0 if counts is None else counts)
    keep = weights > 0
    n, d, loss, weights = n[keep], d[keep], loss[keep], weights[keep]
    if not tied and objective.space == "log" and warm is None:
        delta = LEAST_SQUARES_LOG_DELTA if objective.delta is None else objective.delta
        if objective == DEFAULT_OBJECTIVE and counts is None:
            fit = fit_approach3(n, d, loss, delta=delta)  # exactly today's Approach 3
        else:
            problem = replace(HuberProblem.from_data(n, d, loss, delta), weights=weights)
            res = search(problem)
            fit = make_fit(problem, res.theta, res.f, converged=res.converged, start_on_edge=res.start_on_edge)
        params = {k: float(getattr(fit, k)) for k in ("E", "A", "B", "alpha", "beta")}
        return params, list(fit.warnings)
    delta = 1e-3 if objective.delta is None else objective.delta
    problem = HuberProblem.from_data(n, d, loss, delta if objective.space == "log" else 1e-3)
    scale = float(np.median(loss))
    starts = [_start_of(warm, form, problem)] if warm is not None else _profile_starts(problem, weights, tied)
    best: tuple[np.ndarray, float, bool] | None = None
    for start in starts:
        out = _polish(problem, np.asarray(start, dtype=float), weights, objective, tied, scale)
        if np.isfinite(out[1]) and (best is None or out[1] < best[1]):
            best = out
    if best is None:
        raise ScalingError(f"{form}: no start gave a finite objective")
    theta, _, ok = best
    warnings = [] if ok else [f"{form}: optimiser did not converge"]
    n_exp = 1 if tied else 2
    if np.any(theta[3 : 3 + n_exp] <= 1e-9) or np.any(theta[3 : 3 + n_exp] >= 10 - 1e-9):
        warnings.append(f"{form}: an exponent sits on a bound of the search box: the data do not pin down the law")
    params = _chinchilla_params(problem, theta, tied)
    return (_overtrain_params(params) if tied else params), warnings


# ----------------------------------------------------------------------------- other forms


def _fit_kaplan(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, counts: np.ndarray | None, warm: dict[str, float] | None
) -> tuple[dict[str, float], list[str]]:
    from scaling.fit.kaplan import fit_kaplan_joint

    if counts is not None:
        idx = np.repeat(np.arange(n.size), counts.astype(int))
        n, d, loss = n[idx], d[idx], loss[idx]
    starts = None
    if warm is not None:
        starts = [np.array([warm["alpha_N"], warm["alpha_D"], math.log(warm["N_c"]), math.log(warm["D_c"]), 0.0])]
    fit = fit_kaplan_joint(n, d, loss, starts=starts)
    params = {
        "alpha_N": fit.alpha_n,
        "alpha_D": fit.alpha_d,
        "N_c": float(np.exp(fit.log_n_c)),
        "D_c": float(np.exp(fit.log_d_c)),
    }
    return params, list(fit.warnings)


def _fit_data_constrained(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    unique: np.ndarray,
    objective: Objective,
    counts: np.ndarray | None,
) -> tuple[dict[str, float], list[str]]:
    from scaling.fit.data_constrained import DATA_CONSTRAINED_PARAMS, RepeatPoints, fit_data_constrained

    if counts is not None:
        idx = np.repeat(np.arange(n.size), counts.astype(int))
        n, d, loss, unique = n[idx], d[idx], loss[idx], unique[idx]
    points = RepeatPoints(n, d, unique, loss, np.arange(n.size).astype(str).astype(object), "forms")
    fit = fit_data_constrained(
        points,
        objective="log-huber" if objective.space == "log" else "raw-huber",
        joint=True,
        delta=objective.delta if objective.delta is not None else LEAST_SQUARES_LOG_DELTA,
    )
    return dict(zip(DATA_CONSTRAINED_PARAMS, map(float, fit.row()), strict=True)), list(fit.warnings)


# ----------------------------------------------------------------------------- entry points


def fit_form(
    form: str,
    n: Any,
    d: Any,
    loss: Any,
    *,
    unique: Any = None,
    objective: Objective = DEFAULT_OBJECTIVE,
    counts: np.ndarray | None = None,
    warm: dict[str, float] | None = None,
) -> FormFit:
    """Fit ``form`` to the points (``counts``: bootstrap multiplicities; ``warm``: refit from these parameters
    only, no global search). Raises a one-line ScalingError on bad input or a form the data cannot fit."""
    spec = get_form(form)
    n_arr, d_arr, l_arr = validate_points(n, d, loss)
    warnings: list[str] = []
    if form in ("chinchilla", "overtrain"):
        params, warnings = _fit_chinchilla_family(form, n_arr, d_arr, l_arr, objective, counts, warm)
    elif form == "kaplan":
        params, warnings = _fit_kaplan(n_arr, d_arr, l_arr, counts, warm)
        if objective != DEFAULT_OBJECTIVE:
            warnings.append("kaplan: fitted by least squares on log residuals (its own fitter); objective not applied")
    else:
        if unique is None:
            raise ScalingError(f"form {spec.name} needs U (unique tokens) for every run")
        u_arr = np.asarray(unique, dtype=float)
        params, warnings = _fit_data_constrained(n_arr, d_arr, l_arr, u_arr, objective, counts)
    return FormFit(form, params, objective, int(n_arr.size), warnings)


def bootstrap_form(
    fit: FormFit,
    n: Any,
    d: Any,
    loss: Any,
    *,
    n_boot: int,
    seed: int = 0,
    groups: Any = None,
    unique: Any = None,
) -> FormFit:
    """Refit on ``n_boot`` resamples of the runs (warm-started from ``fit``); fills ``fit.samples``.

    ``groups`` names each point's training run (as :attr:`FitPoints.groups`); a resample that cannot be
    refitted is counted in ``n_failed`` and left out."""
    n_arr, d_arr, l_arr = validate_points(n, d, loss)
    group_arr = np.arange(n_arr.size) if groups is None else np.asarray(groups)
    counts = resample_counts(group_arr, n_boot, np.random.default_rng(seed))
    if is_batched(fit.form, fit.objective):
        refit = _overtrain_batch if fit.form == "overtrain" else _kaplan_batch
        columns = refit(fit.params, n_arr, d_arr, l_arr, counts)
        ok = np.all([np.isfinite(v) for v in columns.values()], axis=0)
        fit.samples = {k: v[ok] for k, v in columns.items()} if ok.any() else None
        failed = int((~ok).sum())
        fit.n_failed = failed
        if failed:
            fit.warnings.append(f"{fit.form}: {failed} of {n_boot} bootstrap resamples could not be refitted")
        return fit
    rows: list[dict[str, float]] = []
    failed = 0
    for row in counts:
        try:
            warm = None if fit.form == "data-constrained" else fit.params
            refit = fit_form(
                fit.form, n_arr, d_arr, l_arr, unique=unique, objective=fit.objective, counts=row, warm=warm
            )
        except (ScalingError, ValueError, FloatingPointError, np.linalg.LinAlgError):
            failed += 1
            continue
        rows.append(refit.params)
    fit.samples = {k: np.array([r[k] for r in rows], dtype=float) for k in fit.params} if rows else None
    fit.n_failed = failed
    if failed:
        fit.warnings.append(f"{fit.form}: {failed} of {n_boot} bootstrap resamples could not be refitted")
    return fit


def is_batched(form: str, objective: Objective) -> bool:
    """Whether :func:`bootstrap_form` refits ``form`` on all resamples at once (no cap on their number)."""
    return (form == "overtrain" and objective == DEFAULT_OBJECTIVE) or form == "kaplan"


def _overtrain_batch(
    params: dict[str, float], n: np.ndarray, d: np.ndarray, loss: np.ndarray, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Gadre et al.'s form on every resample at once: Approach 3's batched Newton with alpha = beta, warm-started
    from the point fit; NaN where a refit does not converge."""
    problem = HuberProblem.from_data(n, d, loss, DEFAULT_OBJECTIVE.delta or 1e-3)
    start = _start_of(params, "overtrain", problem)
    res = minimise_batch(problem, np.tile([*start, start[3]], (counts.shape[0], 1)), counts, tied=True)
    nat = problem.to_natural(res.theta)  # (log A, log B, log E, alpha, beta = alpha)
    columns = _overtrain_params(
        {"E": np.exp(nat[:, 2]), "A": np.exp(nat[:, 0]), "B": np.exp(nat[:, 1]), "alpha": nat[:, 3]}
    )
    return {k: np.where(res.converged, v, np.nan) for k, v in columns.items()}


def _kaplan_batch(
    params: dict[str, float], n: np.ndarray, d: np.ndarray, loss: np.ndarray, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Kaplan's joint law on every resample at once (the batched refit of Kaplan's own bootstrap)."""
    from scaling.fit.kaplan import KaplanJointFit, joint_batch

    warm = KaplanJointFit(
        params["alpha_N"],
        params["alpha_D"],
        math.log(params["N_c"]),
        math.log(params["D_c"]),
        0.0,
        False,
        n.size,
        0.0,
        True,
    )
    theta = joint_batch(n, d, loss, counts, warm)
    with np.errstate(over="ignore"):
        return {"alpha_N": theta[:, 0], "alpha_D": theta[:, 1], "N_c": np.exp(theta[:, 2]), "D_c": np.exp(theta[:, 3])}


def from_approach3(fit: Any, boot: Any = None, delta: float = 1e-3) -> FormFit:
    """Today's Approach 3 fit (and its vectorised bootstrap) as the ``chinchilla`` form, without refitting."""
    params = {k: float(getattr(fit, k)) for k in CHINCHILLA_PARAMS}
    out = FormFit("chinchilla", params, Objective(delta=delta), int(fit.n_points), list(fit.warnings))
    if boot is not None:
        samples = np.asarray(boot.samples, dtype=float)
        out.samples = {k: samples[:, i] for i, k in enumerate(CHINCHILLA_PARAMS)}
    return out
