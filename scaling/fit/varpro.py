"""Variable-projection scan of the Chinchilla Approach-3 objective over the exponents (alpha, beta).

For fixed exponents the law L = E + A N^-alpha + B D^-beta is *linear* in (E, A, B) >= 0, so the only
genuinely non-convex directions of the fit are alpha and beta (Golub & Pereyra 1973, variable
projection). We therefore scan a dense (alpha, beta) grid and, in every cell, solve for (E, A, B) by
iteratively reweighted non-negative least squares (IRLS-NNLS):

* the log residual r = log p - log L is linearised around the current prediction p0
  (r ~ r0 + (p - p0)/p0), turning sum Huber(r) into a weighted least-squares problem in (E, A, B);
* the Huber loss is handled by its half-quadratic majoriser, weight omega = min(1, delta/|r0|)
  (the standard IRLS for M-estimators, Holland & Welsch 1977);
* each 3-variable NNLS is solved exactly by enumerating the 7 supports in closed form, vectorised over
  all cells (the optimum of a convex QP on the orthant is the best feasible support-restricted
  unconstrained minimiser).

The result is the profile f(alpha, beta) of the summed-Huber objective (evaluated exactly at each cell's
(E, A, B)). Its local minima, polished by the full 5-parameter Newton method of :mod:`scaling.fit.huber`,
give every basin that a start grid over the same exponent range could reach, at a fraction of the cost.
Columns are centred (N^-alpha -> exp(-alpha (log N - mean log N))) so the normal equations stay well
conditioned whatever the magnitudes of N and D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.fit.huber import LOWER, UPPER, HuberProblem, tune_allocator

#: Default exponent grid: step 0.05 on [0.05, 2] (Hoffmann's start range for alpha and beta, 8x finer),
#: then step 0.1 to 3 so that optima just beyond the start range are still seen.
DEFAULT_EXPONENTS = np.concatenate([np.arange(1, 41) * 0.05, 2.0 + np.arange(1, 11) * 0.1])


@dataclass(frozen=True)
class ProfileScan:
    """Profile of the objective on an (alpha, beta) grid; arrays of shape (len(alphas), len(betas))."""

    alphas: np.ndarray
    betas: np.ndarray
    f: np.ndarray
    theta: np.ndarray  # (len(alphas), len(betas), 5) centred parameters of each cell

    def local_minima(self, limit: int) -> list[tuple[int, int]]:
        """Cells no higher than any of their 8 neighbours, best first, at most ``limit``."""
        f = self.f
        padded = np.pad(f, 1, constant_values=np.inf)
        is_min = np.ones_like(f, dtype=bool)
        n_a, n_b = f.shape
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if di or dj:
                    is_min &= f <= padded[1 + di : 1 + di + n_a, 1 + dj : 1 + dj + n_b]
        cells = np.argwhere(is_min & np.isfinite(f))
        order = np.argsort(f[cells[:, 0], cells[:, 1]], kind="stable")
        return [(int(i), int(j)) for i, j in cells[order[:limit]]]

    def on_edge(self, cell: tuple[int, int]) -> bool:
        i, j = cell
        return i in (0, self.f.shape[0] - 1) or j in (0, self.f.shape[1] - 1)


def _solve_nnls3(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """min z'Gz - 2h'z over z >= 0 for K stacked 3x3 problems, by enumerating supports (closed form)."""
    k = gram.shape[0]
    ridge = 1e-12 * np.trace(gram, axis1=1, axis2=2) + 1e-300
    g = gram + ridge[:, None, None] * np.eye(3)
    best_val = np.full(k, np.inf)
    best = np.zeros((k, 3))
    supports = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    for sup in supports:
        gs = g[:, sup][:, :, sup]
        hs = rhs[:, sup]
        if len(sup) == 1:
            z = hs / gs[:, :, 0]
        elif len(sup) == 2:
            det = gs[:, 0, 0] * gs[:, 1, 1] - gs[:, 0, 1] * gs[:, 1, 0]
            z = (
                np.stack(
                    [gs[:, 1, 1] * hs[:, 0] - gs[:, 0, 1] * hs[:, 1], gs[:, 0, 0] * hs[:, 1] - gs[:, 1, 0] * hs[:, 0]],
                    axis=1,
                )
                / det[:, None]
            )
        else:
            adj = np.empty((k, 3, 3))
            for i in range(3):
                for j in range(3):
                    r = [x for x in range(3) if x != j]
                    c = [x for x in range(3) if x != i]
                    minor = gs[:, r[0], c[0]] * gs[:, r[1], c[1]] - gs[:, r[0], c[1]] * gs[:, r[1], c[0]]
                    adj[:, i, j] = (-1) ** (i + j) * minor
            det = (gs[:, 0, :] * adj[:, :, 0]).sum(axis=1)
            z = np.einsum("kij,kj->ki", adj, hs) / det[:, None]
        feasible = np.all(z >= 0, axis=1) & np.all(np.isfinite(z), axis=1)
        val = -(z * hs).sum(axis=1)
        better = feasible & (val < best_val)
        best_val = np.where(better, val, best_val)
        full = np.zeros((k, 3))
        full[:, list(sup)] = z
        best = np.where(better[:, None], full, best)
    return best


def profile_cells(
    problem: HuberProblem,
    alpha: np.ndarray,
    beta: np.ndarray,
    counts: np.ndarray | None = None,
    *,
    iterations: int = 6,
) -> tuple[np.ndarray, np.ndarray]:
    """IRLS-NNLS in every cell (alpha[k], beta[k]); returns centred parameters (K, 5) and objective (K,)."""
    delta = problem.delta
    loss = np.exp(problem.log_loss)
    if counts is None:
        counts = problem.weights
    c = np.ones(problem.n) if counts is None else counts
    xi = np.exp(-alpha[:, None] * problem.x)
    eta = np.exp(-beta[:, None] * problem.y)
    p0 = np.broadcast_to(loss, xi.shape)
    r0 = np.zeros_like(xi)
    coef = np.zeros((alpha.size, 3))
    for _ in range(iterations):
        omega = np.minimum(1.0, delta / np.maximum(np.abs(r0), 1e-300))
        wt = c * omega / (p0 * p0)
        z = p0 * (1.0 - r0)
        w_xi, w_eta = wt * xi, wt * eta
        gram = np.empty((alpha.size, 3, 3))
        gram[:, 0, 0] = wt.sum(axis=1)
        gram[:, 0, 1] = gram[:, 1, 0] = w_xi.sum(axis=1)
        gram[:, 0, 2] = gram[:, 2, 0] = w_eta.sum(axis=1)
        gram[:, 1, 1] = (w_xi * xi).sum(axis=1)
        gram[:, 1, 2] = gram[:, 2, 1] = (w_xi * eta).sum(axis=1)
        gram[:, 2, 2] = (w_eta * eta).sum(axis=1)
        rhs = np.stack([(wt * z).sum(axis=1), (w_xi * z).sum(axis=1), (w_eta * z).sum(axis=1)], axis=1)
        coef = _solve_nnls3(gram, rhs)
        p0 = np.maximum(coef[:, :1] + coef[:, 1:2] * xi + coef[:, 2:3] * eta, 1e-300)
        r0 = np.log(p0) - problem.log_loss
    theta = np.empty((alpha.size, 5))
    with np.errstate(divide="ignore"):
        logs = np.log(coef)
    theta[:, 0] = logs[:, 1]
    theta[:, 1] = logs[:, 2]
    theta[:, 2] = logs[:, 0]
    theta[:, 3] = alpha
    theta[:, 4] = beta
    theta = np.clip(theta, LOWER, UPPER)
    f, _, _ = problem.evaluate(theta, counts, order=0)
    return theta, f


def scan(
    problem: HuberProblem,
    alphas: np.ndarray = DEFAULT_EXPONENTS,
    betas: np.ndarray = DEFAULT_EXPONENTS,
    counts: np.ndarray | None = None,
) -> ProfileScan:
    """Profile the objective over the grid alphas x betas (cells in chunks of ~16k cell-points: cache-sized
    temporaries, numpy call overhead shared by many cells)."""
    tune_allocator()
    chunk = max(32, 16000 // problem.n)
    a_grid, b_grid = np.meshgrid(alphas, betas, indexing="ij")
    al, be = a_grid.ravel(), b_grid.ravel()
    theta = np.empty((al.size, 5))
    f = np.empty(al.size)
    for start in range(0, al.size, chunk):
        sl = slice(start, start + chunk)
        theta[sl], f[sl] = profile_cells(problem, al[sl], be[sl], counts)
    shape = a_grid.shape
    return ProfileScan(np.asarray(alphas), np.asarray(betas), f.reshape(shape), theta.reshape(*shape, 5))
