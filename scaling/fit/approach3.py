"""Chinchilla Approach 3: fit L(N, D) = E + A / N^alpha + B / D^beta to (N, D, loss) points.

Objective (Hoffmann et al. 2022, App. D.2, exactly as refit by Besiroglu et al. 2024, arXiv 2404.10102):
parameters (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e); the prediction is taken in log
space, LSE(a - alpha log N, b - beta log D, e), and the objective is the SUM over points of
Huber_delta(LSE - log L), delta = 1e-3. (The sum, not the mean: averaging shrinks f and its gradient
n-fold, and scipy L-BFGS-B's stopping rule, a decrease below 2.2e-9 * max(|f|, 1), absolute for f < 1,
then halts it near its start.)

Search. Epoch runs scipy L-BFGS-B from each of Hoffmann's 4500 starts (alpha, beta in {0, .5, .., 2},
e in {-1, -.5, .., 1}, a, b in {0, 5, .., 25}) and keeps the best: ~85 s. We reach the same optimum in
well under a second (see scripts/bench_fit.py, tests/test_approach3.py) because:

1. the only non-convex directions are the exponents: for fixed (alpha, beta) the law is linear in
   (E, A, B). :mod:`scaling.fit.varpro` profiles the objective on a dense (alpha, beta) grid covering
   Hoffmann's start range 10x more finely per axis (step 0.05, extended to 3), solving (E, A, B) in
   every cell by IRLS non-negative least squares, vectorised over cells;
2. the local minima of that profile are polished by the batched trust-region Newton method of
   :mod:`scaling.fit.huber` (analytic gradient and Hessian), which converges to gradients ~1e-12 and
   below, where L-BFGS-B stops with the third digit of A still uncertain (the objective is almost an
   L1 fit, very flat near its optimum).

``start_grid="exhaustive"`` additionally runs the Newton method from every one of Hoffmann's 4500 starts
(vectorised, ~10 s of CPU) for those who want the literal procedure. The tests and the benchmark check
that both reach the optimum of the scipy per-start search (never a higher objective, same parameters to
scipy's own precision).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scaling.errors import ScalingError
from scaling.fit import varpro
from scaling.fit.huber import LOWER, PARAMS, UPPER, HuberProblem, minimise_batch
from scaling.laws import ChinchillaLaw

N_PARAMS = len(PARAMS)
START_GRIDS = ("hoffmann", "exhaustive")

#: Number of profile local minima polished by the full Newton method.
N_CANDIDATES = 8


def hoffmann_start_grid() -> np.ndarray:
    """Hoffmann et al.'s 4500 starts as rows (a, b, e, alpha, beta)."""
    a = np.arange(0.0, 30.0, 5.0)
    e = np.arange(-1.0, 1.5, 0.5)
    ex = np.arange(0.0, 2.5, 0.5)
    return np.array(list(itertools.product(a, a, e, ex, ex)), dtype=float)


@dataclass(frozen=True)
class Approach3Fit(ChinchillaLaw):
    """A fitted law (loss, N_opt, D_opt, a, b, G: :class:`scaling.laws.ChinchillaLaw`) with the diagnostics
    a reader needs to trust it."""

    objective: float  # summed Huber at the optimum
    grad_norm: float  # gradient norm w.r.t. (a, b, e, alpha, beta) at the optimum
    converged: bool
    best_start_on_edge: bool  # the winning start lay on the edge of the start grid
    at_bound: bool  # a parameter sits at a bound of the search box
    n_points: int
    warnings: tuple[str, ...]
    #: Other local optima the search met, natural parameters (a, b, e, alpha, beta), best first. Not part of
    #: the result proper: :func:`scaling.fit.bootstrap.bootstrap_approach3` uses them as extra starts.
    local_optima: tuple[tuple[float, ...], ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "a": self.a,
            "b": self.b,
            "G": self.G,
            "objective": self.objective,
            "grad_norm": self.grad_norm,
            "converged": self.converged,
            "best_start_on_edge": self.best_start_on_edge,
            "at_bound": self.at_bound,
            "n_points": self.n_points,
            "warnings": list(self.warnings),
        }


def validate_points(
    N: Sequence[float] | np.ndarray,  # noqa: N803
    D: Sequence[float] | np.ndarray,  # noqa: N803
    loss: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float arrays of N, D, loss, or a one-line ScalingError saying what is wrong with them."""
    arrays = []
    for name, values in (("N", N), ("D", D), ("loss", loss)):
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as err:
            raise ScalingError(f"Approach 3 fit: {name} must be numbers ({err})") from None
        if arr.ndim != 1:
            raise ScalingError(f"Approach 3 fit: {name} must be a flat list of numbers, got shape {arr.shape}")
        arrays.append(arr)
    n_arr, d_arr, l_arr = arrays
    if not n_arr.size == d_arr.size == l_arr.size:
        raise ScalingError(f"Approach 3 fit: N, D and loss differ in length ({n_arr.size}, {d_arr.size}, {l_arr.size})")
    if n_arr.size < N_PARAMS:
        raise ScalingError(f"Approach 3 fit needs at least {N_PARAMS} points for 5 parameters, got {n_arr.size}")
    for name, arr in (("N", n_arr), ("D", d_arr), ("loss", l_arr)):
        bad = ~np.isfinite(arr) | (arr <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ScalingError(
                f"Approach 3 fit: {name} must be finite and positive; {int(bad.sum())} value(s) are not "
                f"(first: point {i}, {name}={arr[i]!r})"
            )
    if np.ptp(np.log(n_arr)) == 0:
        raise ScalingError(f"Approach 3 fit: all {n_arr.size} points have the same N; alpha cannot be fitted")
    if np.ptp(np.log(d_arr)) == 0:
        raise ScalingError(f"Approach 3 fit: all {d_arr.size} points have the same D; beta cannot be fitted")
    return n_arr, d_arr, l_arr


@dataclass(frozen=True)
class SearchResult:
    """Best optimum and the distinct local optima met on the way (centred coordinates, best first)."""

    theta: np.ndarray  # (5,) centred
    f: float
    grad: np.ndarray  # (5,) centred, projected
    converged: bool
    start_on_edge: bool
    optima: np.ndarray  # (M, 5) distinct local optima, best first
    optima_f: np.ndarray  # (M,)


def _distinct(theta: np.ndarray, f: np.ndarray, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Endpoints sorted by objective with near-duplicates (max-norm distance < tol) removed."""
    order = np.argsort(f, kind="stable")
    kept: list[int] = []
    for i in order:
        if np.isfinite(f[i]) and all(np.max(np.abs(theta[i] - theta[j])) >= tol for j in kept):
            kept.append(int(i))
    return theta[kept], f[kept]


def search(problem: HuberProblem, start_grid: str = "hoffmann") -> SearchResult:
    """Global search for the minimum of the summed Huber objective (see the module docstring)."""
    if start_grid not in START_GRIDS:
        raise ScalingError(f"unknown start grid {start_grid!r}; choose one of {', '.join(START_GRIDS)}")
    prof = varpro.scan(problem)
    cells = prof.local_minima(N_CANDIDATES)
    starts = np.array([prof.theta[c] for c in cells])
    edge = np.array([prof.on_edge(c) for c in cells])
    res = minimise_batch(problem, starts)
    theta, f, grad, conv = res.theta, res.f, res.grad, res.converged
    if start_grid == "exhaustive":
        grid = problem.to_centred(hoffmann_start_grid())
        full = minimise_batch(problem, grid)
        on_grid_edge = _on_grid_edge(hoffmann_start_grid())
        theta = np.concatenate([theta, full.theta])
        f = np.concatenate([f, full.f])
        grad = np.concatenate([grad, full.grad])
        conv = np.concatenate([conv, full.converged])
        edge = np.concatenate([edge, on_grid_edge])
    best = int(np.nanargmin(f))
    # Every start whose endpoint coincides with the optimum: the edge flag is raised only if all of them
    # lie on the edge of their grid (the winning basin is reached only from the grid's boundary).
    same = (np.max(np.abs(theta - theta[best]), axis=1) < 1e-4) & (f <= f[best] + 1e-9 * abs(f[best]) + 1e-300)
    optima, optima_f = _distinct(theta, f)
    return SearchResult(
        theta=theta[best],
        f=float(f[best]),
        grad=grad[best],
        converged=bool(conv[best]),
        start_on_edge=bool(np.all(edge[same])),
        optima=optima,
        optima_f=optima_f,
    )


def _on_grid_edge(grid: np.ndarray) -> np.ndarray:
    return np.any((grid == grid.min(axis=0)) | (grid == grid.max(axis=0)), axis=1)


def make_fit(
    problem: HuberProblem,
    theta_c: np.ndarray,
    f: float,
    *,
    converged: bool,
    start_on_edge: bool,
    optima: np.ndarray | None = None,
) -> Approach3Fit:
    """Assemble an :class:`Approach3Fit` (with its warnings) from an optimum in centred coordinates."""
    nat = problem.to_natural(theta_c)
    _, g, _ = problem.evaluate(theta_c[None, :], order=1)
    free = ~(((theta_c <= LOWER + 1e-9) & (g[0] > 0)) | ((theta_c >= UPPER - 1e-9) & (g[0] < 0)))
    grad_nat = problem.natural_gradient(np.where(free, g[0], 0.0))
    at_bound = bool(np.any(theta_c <= LOWER + 1e-9) or np.any(theta_c >= UPPER - 1e-9))
    warnings: list[str] = []
    if at_bound:
        labels = ("A (its term at the mean N)", "B (its term at the mean D)", "E", "alpha", "beta")
        hit = (theta_c <= LOWER + 1e-9) | (theta_c >= UPPER - 1e-9)
        names = [label for label, h in zip(labels, hit, strict=True) if h]
        warnings.append(
            f"parameter(s) {', '.join(names)} at a bound of the search box: the data do not pin down the law"
        )
    if not converged:
        warnings.append(f"optimiser did not converge (gradient norm {float(np.linalg.norm(grad_nat)):.3g})")
    if start_on_edge:
        warnings.append("best start lay on the edge of the start grid: the optimum may lie beyond it")
    # A term that stays below 0.1% of the loss at every point is not identified by the data: any smaller
    # coefficient (with any exponent) fits as well, so its parameters mean nothing.
    loss = np.exp(problem.log_loss)
    terms = {
        "N-term A/N^alpha": np.exp(theta_c[0] - theta_c[3] * problem.x),
        "D-term B/D^beta": np.exp(theta_c[1] - theta_c[4] * problem.y),
        "E": np.full(problem.n, np.exp(theta_c[2])),
    }
    for label, term in terms.items():
        if np.max(term / loss) < 1e-3:
            warnings.append(f"the {label} is below 0.1% of the loss at every point: it is not identified by the data")
    if problem.n < 2 * N_PARAMS:
        warnings.append(f"only {problem.n} points for {N_PARAMS} parameters: the fit is barely determined")
    return Approach3Fit(
        E=float(np.exp(nat[2])),
        A=float(np.exp(nat[0])),
        B=float(np.exp(nat[1])),
        alpha=float(nat[3]),
        beta=float(nat[4]),
        objective=float(f),
        grad_norm=float(np.linalg.norm(grad_nat)),
        converged=converged,
        best_start_on_edge=start_on_edge,
        at_bound=at_bound,
        n_points=problem.n,
        warnings=tuple(warnings),
        local_optima=tuple(tuple(map(float, row)) for row in problem.to_natural(optima)) if optima is not None else (),
    )


def fit_approach3(
    N: Sequence[float] | np.ndarray,  # noqa: N803
    D: Sequence[float] | np.ndarray,  # noqa: N803
    loss: Sequence[float] | np.ndarray,
    *,
    delta: float = 1e-3,
    start_grid: str = "hoffmann",
) -> Approach3Fit:
    """Fit Chinchilla's parametric law by the summed log-Huber objective (Besiroglu et al. 2024).

    N: parameters, D: training tokens, loss: final losses, one entry per point. ``start_grid``:
    "hoffmann" (default; profile scan over Hoffmann's exponent range + Newton polish, < 1 s) or
    "exhaustive" (also Newton from each of Hoffmann's 4500 starts). Raises ScalingError on bad input.
    """
    fit, _ = fit_approach3_detailed(N, D, loss, delta=delta, start_grid=start_grid)
    return fit


def fit_approach3_detailed(
    N: Sequence[float] | np.ndarray,  # noqa: N803
    D: Sequence[float] | np.ndarray,  # noqa: N803
    loss: Sequence[float] | np.ndarray,
    *,
    delta: float = 1e-3,
    start_grid: str = "hoffmann",
) -> tuple[Approach3Fit, SearchResult]:
    """:func:`fit_approach3` plus the search details (the distinct local optima seed the bootstrap)."""
    if not (np.isfinite(delta) and delta > 0):
        raise ScalingError(f"Huber delta must be positive, got {delta!r}")
    n_arr, d_arr, l_arr = validate_points(N, D, loss)
    problem = HuberProblem.from_data(n_arr, d_arr, l_arr, delta)
    res = search(problem, start_grid)
    fit = make_fit(
        problem,
        res.theta,
        res.f,
        converged=res.converged,
        start_on_edge=res.start_on_edge,
        optima=res.optima[1:] if res.optima.shape[0] > 1 else None,
    )
    return fit, res


def scipy_reference_fit(
    N: np.ndarray,  # noqa: N803
    D: np.ndarray,  # noqa: N803
    loss: np.ndarray,
    *,
    starts: np.ndarray | None = None,
    delta: float = 1e-3,
    counts: np.ndarray | None = None,
    tight: bool = False,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Epoch's procedure, for verification and benchmarks: scipy L-BFGS-B from every start, keep the best.

    Objective exactly as Besiroglu et al.: sum of scipy.special.huber(delta, LSE - log L) with
    scipy.special.logsumexp, in natural parameters (a, b, e, alpha, beta), no bounds, scipy's default
    tolerances. The gradient is supplied analytically (Epoch used autograd; same values, less overhead).
    ``tight=True`` uses ftol=1e-15, gtol=1e-10 instead: scipy's default stopping rule is a relative
    decrease of 2.2e-9 * max(|f|, 1), i.e. absolute for this objective (f ~ 1e-3), so a start already near
    the optimum (a bootstrap refit from the point fit) stops after a few iterations without moving.
    Returns the best natural parameters (5,), its objective, and every start's final objective.
    """
    from scipy.optimize import minimize
    from scipy.special import huber, logsumexp

    log_n, log_d, log_l = np.log(N), np.log(D), np.log(loss)
    c = np.ones(log_n.size) if counts is None else np.asarray(counts, dtype=float)

    def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = p
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        lse = logsumexp(terms, axis=0)
        r = lse - log_l
        w = np.exp(terms - lse)
        psi = c * np.clip(r, -delta, delta)
        grad = np.array([psi @ w[0], psi @ w[1], psi @ w[2], -(psi * w[0]) @ log_n, -(psi * w[1]) @ log_d])
        return float(c @ huber(delta, r)), grad

    options = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 15000, "maxls": 50} if tight else {}
    grid = hoffmann_start_grid() if starts is None else np.atleast_2d(starts)
    finals = np.empty(grid.shape[0])
    best_x, best_f = grid[0], np.inf
    for i, x0 in enumerate(grid):
        res = minimize(objective, x0, jac=True, method="L-BFGS-B", options=options)
        finals[i] = res.fun
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return np.asarray(best_x), best_f, finals
