"""Batched trust-region Newton minimiser for the summed-Huber Chinchilla objective.

Hoffmann et al. (2022), Approach 3, as refit by Besiroglu et al. (2024, arXiv 2404.10102), minimise

    f(a, b, e, alpha, beta) = sum_i c_i * Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i )

(c_i = 1 for a plain fit, bootstrap counts for a resample). Epoch runs scipy L-BFGS-B with automatic
gradients from each of 4500 starts one after another, ~20 ms per start. This module instead:

* evaluates f, its analytic gradient and its analytic Hessian for K parameter vectors at once
  (arrays of shape (K, n)), so many starts, or all bootstrap resamples, move together in numpy;
* takes trust-region Newton steps (eigendecomposition of each 5x5 Hessian, Moré-Sorensen shift by
  vectorised Newton iterations on the secular equation). Far from a minimum the model Hessian is the
  IRLS (half-quadratic majoriser) one, which makes steady progress where the objective is almost an L1
  fit; near it the exact Hessian converges quadratically, to gradients ~1e-12, where L-BFGS-B stops with
  the third digit of A still uncertain (delta=1e-3 makes the objective very flat near its optimum);
* optimises in *centred* coordinates u = a - alpha*mean(log N), v = b - beta*mean(log D): an exact
  affine re-parametrisation (same optima, same objective values) that removes the near-collinearity
  of (a, alpha) and (b, beta), so trust-region radii mean the same thing in every direction.

Box bounds (centred coordinates, so they are scaled to the data): the N- and D-terms at the geometric
mean of the data and E lie in exp(+-60) resp. exp(+-30), alpha and beta in [0, 10]. They never bind on
sensible data; they stop degenerate data from running off to infinity, and a fit that ends on one
is flagged. Bounds are handled by projected Newton (Bertsekas 1982): variables on a bound whose
gradient points outwards are held fixed for that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Parameter order used throughout: log A, log B, log E, alpha, beta.
PARAMS: tuple[str, ...] = ("a", "b", "e", "alpha", "beta")

#: Bounds in centred coordinates (u, v, e, alpha, beta); see the module docstring.
LOWER = np.array([-60.0, -60.0, -30.0, 0.0, 0.0])
UPPER = np.array([60.0, 60.0, 30.0, 10.0, 10.0])

_LOWER_I, _LOWER_J = np.tril_indices(5, -1)

_malloc_tuned = False


def tune_allocator() -> None:
    """Make glibc keep freed numpy temporaries instead of returning them to the OS on every call.

    Each objective evaluation creates and frees dozens of 10-100 KiB arrays. With glibc's default
    thresholds the top of the heap is trimmed after every call and the next call page-faults it back in,
    which doubled the run time of the minimiser (measured: 2.3-2.8 s vs 1.15 s on 450 starts). glibc
    raises its mmap threshold to the size of any mmapped block that is freed (and its trim threshold to
    twice that), so allocating and freeing one untouched 32 MB block once per process is enough. No effect
    (and no harm) with other allocators.
    """
    global _malloc_tuned
    if not _malloc_tuned:
        block = np.empty(4_000_000)
        del block
        _malloc_tuned = True


@dataclass(frozen=True)
class HuberProblem:
    """The data of one fit, in the centred log coordinates the minimiser works in."""

    x: np.ndarray  # log N - m_n, shape (n,)
    y: np.ndarray  # log D - m_d
    log_loss: np.ndarray
    m_n: float
    m_d: float
    delta: float
    weights: np.ndarray | None = None  # fixed multiplicities of the points (None: each counts once)

    @classmethod
    def from_data(cls, N: np.ndarray, D: np.ndarray, loss: np.ndarray, delta: float) -> HuberProblem:
        log_n, log_d = np.log(N), np.log(D)
        m_n, m_d = float(log_n.mean()), float(log_d.mean())
        return cls(log_n - m_n, log_d - m_d, np.log(loss), m_n, m_d, float(delta))

    @property
    def n(self) -> int:
        return int(self.x.size)

    @property
    def total_weight(self) -> float:
        return float(self.n if self.weights is None else np.sum(self.weights))

    def to_centred(self, theta: np.ndarray) -> np.ndarray:
        """(a, b, e, alpha, beta) -> (u, v, e, alpha, beta), rows of shape (..., 5)."""
        out = np.array(theta, dtype=float, copy=True)
        out[..., 0] -= out[..., 3] * self.m_n
        out[..., 1] -= out[..., 4] * self.m_d
        return out

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_centred`."""
        out = np.array(theta, dtype=float, copy=True)
        out[..., 0] += out[..., 3] * self.m_n
        out[..., 1] += out[..., 4] * self.m_d
        return out

    def natural_gradient(self, grad_c: np.ndarray) -> np.ndarray:
        """Chain rule: gradient w.r.t. (a, b, e, alpha, beta) from the gradient in centred coordinates.

        u = a - alpha m_n, so df/da = df/du and df/dalpha|_a = df/dalpha|_u - m_n df/du.
        """
        out = np.array(grad_c, dtype=float, copy=True)
        out[..., 3] -= self.m_n * grad_c[..., 0]
        out[..., 4] -= self.m_d * grad_c[..., 1]
        return out

    @property
    def basis(self) -> np.ndarray:
        """Columns (1, x, y, x^2, xy, y^2): every gradient/Hessian entry is a weighted sum against one."""
        return self._basis  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        object.__setattr__(self, "_basis", np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1))

    def evaluate_chunked(
        self, theta: np.ndarray, counts: np.ndarray | None = None, exact: np.ndarray | bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`evaluate` (order 2) in row blocks of ~8000 row-points, so that the ~40 (rows, n) temporaries
        of one evaluation stay in the CPU caches (64 KiB each instead of MiBs; measured 3-4x faster)."""
        k = theta.shape[0]
        rows = max(8, 8000 // max(self.n, 1))
        if k <= rows:
            return self.evaluate(theta, counts, exact=exact)  # type: ignore[return-value]
        f, g, hess = np.empty(k), np.empty((k, 5)), np.empty((k, 5, 5))
        per_row = counts is not None and counts.ndim == 2
        ex = np.broadcast_to(np.reshape(exact, (-1,)), (k,))
        for start in range(0, k, rows):
            sl = slice(start, start + rows)
            f[sl], g[sl], hess[sl] = self.evaluate(theta[sl], counts[sl] if per_row else counts, exact=ex[sl])
        return f, g, hess

    def evaluate(
        self,
        theta: np.ndarray,
        counts: np.ndarray | None = None,
        order: int = 2,
        exact: np.ndarray | bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Objective, gradient and Hessian model for K centred parameter rows at once.

        theta: (K, 5). counts: None (every point once), (n,) shared weights or (K, n) per-row weights
        (bootstrap multiplicities). exact: per row (or for all), True for the exact Hessian, False for the
        IRLS (Gauss-Newton on the half-quadratic majoriser) Hessian. Returns f (K,), g (K, 5), H (K, 5, 5).

        With t = (u - alpha x, v - beta y, e), w = softmax(t) and r = LSE(t) - log L:
        dr/dtheta = g_i = (w1, w2, w3, -w1 x, -w2 y) and d2r/dtheta2 = J^T (diag w - w w^T) J, so the exact
        H = sum_i c_i [(psi'_i - psi_i) g_i g_i^T + psi_i J^T diag(w) J], psi = Huber', psi' = 1{|r|<=delta}.
        The IRLS model is sum_i c_i omega_i g_i g_i^T with omega = psi(r)/r = min(1, delta/|r|): positive
        semi-definite and counting every point, so it makes good progress from far away where the objective
        is almost an L1 fit; the exact Hessian then gives quadratic terminal convergence.
        Every reduction over points is a small GEMM of a (rows x points) product against :attr:`basis`.
        """
        delta = self.delta
        k = theta.shape[0]
        if counts is None:
            counts = self.weights
        u, v, e, al, be = (theta[:, j : j + 1] for j in range(5))
        t1 = u - al * self.x
        t2 = v - be * self.y
        m = np.maximum(np.maximum(t1, t2), e)
        # Exponents are floored at -40: exp(-40) = 4e-18 vanishes against the leading term 1 of the sum, so f
        # is bit-identical, while products of tiny weights stay clear of subnormal numbers (x86 handles those
        # ~100x slower, and far-off starts produce them in bulk).
        e1 = np.exp(np.maximum(t1 - m, -40.0))
        e2 = np.exp(np.maximum(t2 - m, -40.0))
        e3 = np.exp(np.maximum(e - m, -40.0))
        s = e1 + e2 + e3
        r = m + np.log(s) - self.log_loss
        ar = np.abs(r)
        inside = ar <= delta
        h = np.where(inside, 0.5 * r * r, delta * (ar - 0.5 * delta))
        f = h.sum(axis=1) if counts is None else (h @ counts if counts.ndim == 1 else (h * counts).sum(axis=1))
        if order == 0:
            return f, None, None
        inv = 1.0 / s
        w1 = e1 * inv
        w2 = e2 * inv
        w3 = e3 * inv
        psi = np.clip(r, -delta, delta)
        p = psi if counts is None else psi * counts
        basis = self.basis
        if order == 1:
            pw1, pw2, pw3 = ((p * w) @ basis[:, :3] for w in (w1, w2, w3))
            g = np.stack([pw1[:, 0], pw2[:, 0], pw3[:, 0], -pw1[:, 1], -pw2[:, 2]], axis=1)
            return f, g, None
        if np.all(exact):
            q = inside - psi
        else:
            omega = np.where(inside, 1.0, delta / np.maximum(ar, delta))
            q = omega if not np.any(exact) else np.where(np.reshape(exact, (-1, 1)), inside - psi, omega)
        if counts is not None:
            q = q * counts
        qw1 = q * w1
        qw2 = q * w2
        qw3 = q * w3
        # Nine (K, n) x (n, 6) GEMMs, kept separate: one stacked (9, K, n) temporary would be 9x larger,
        # fall out of cache and (with glibc's default thresholds) be page-faulted afresh on every call.
        products = (p * w1, p * w2, p * w3, qw1 * w1, qw1 * w2, qw2 * w2, qw1 * w3, qw2 * w3, qw3 * w3)
        pw1, pw2, pw3, p11, p12, p22, p13, p23, p33 = (prod @ basis for prod in products)
        g = np.empty((k, 5))
        g[:, 0] = pw1[:, 0]
        g[:, 1] = pw2[:, 0]
        g[:, 2] = pw3[:, 0]
        g[:, 3] = -pw1[:, 1]
        g[:, 4] = -pw2[:, 2]
        # columns of basis: 0 -> 1, 1 -> x, 2 -> y, 3 -> x^2, 4 -> xy, 5 -> y^2
        hess = np.empty((k, 5, 5))
        hess[:, 0, 0] = p11[:, 0]
        hess[:, 0, 1] = p12[:, 0]
        hess[:, 0, 2] = p13[:, 0]
        hess[:, 0, 3] = -p11[:, 1]
        hess[:, 0, 4] = -p12[:, 2]
        hess[:, 1, 1] = p22[:, 0]
        hess[:, 1, 2] = p23[:, 0]
        hess[:, 1, 3] = -p12[:, 1]
        hess[:, 1, 4] = -p22[:, 2]
        hess[:, 2, 2] = p33[:, 0]
        hess[:, 2, 3] = -p13[:, 1]
        hess[:, 2, 4] = -p23[:, 2]
        hess[:, 3, 3] = p11[:, 3]
        hess[:, 3, 4] = p12[:, 4]
        hess[:, 4, 4] = p22[:, 5]
        hess[:, _LOWER_I, _LOWER_J] = hess[:, _LOWER_J, _LOWER_I]
        # Exact rows add psi * J^T diag(w) J: block-diagonal in (u, alpha), (v, beta), (e).
        ex = np.broadcast_to(np.reshape(exact, (-1,)), (k,)).astype(float)
        hess[:, 0, 0] += ex * pw1[:, 0]
        hess[:, 1, 1] += ex * pw2[:, 0]
        hess[:, 2, 2] += ex * pw3[:, 0]
        hess[:, 0, 3] -= ex * pw1[:, 1]
        hess[:, 3, 0] -= ex * pw1[:, 1]
        hess[:, 1, 4] -= ex * pw2[:, 2]
        hess[:, 4, 1] -= ex * pw2[:, 2]
        hess[:, 3, 3] += ex * pw1[:, 3]
        hess[:, 4, 4] += ex * pw2[:, 5]
        return f, g, hess


def _free_mask(theta: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Variables not held at a bound: a bound is active when the gradient pushes outwards."""
    at_low = (theta <= LOWER + 1e-12) & (g > 0)
    at_up = (theta >= UPPER - 1e-12) & (g < 0)
    return ~(at_low | at_up)


def _trust_region_step(g: np.ndarray, hess: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Minimise g.s + s.H.s/2 subject to |s| <= radius, for every row at once (Moré & Sorensen 1983).

    In the eigenbasis of H, s(mu) = -(H + mu I)^-1 g with mu >= max(0, -lambda_min). If H is positive
    definite and the Newton step fits, mu = 0. Otherwise mu solves |s(mu)| = radius; 1/|s(mu)| is concave
    in mu, so Newton's method on 1/|s| - 1/radius started left of the root climbs to it monotonically
    (a handful of iterations, 5 numbers per row). In the 'hard case' (g has no component along the
    lowest eigenvector of an indefinite H) the step is completed along that eigenvector to the boundary,
    which is what moves the iterate off saddle-like plateaus.
    """
    lam, vec = np.linalg.eigh(hess)
    gt = np.einsum("kji,kj->ki", vec, g)
    k = g.shape[0]
    scale = np.maximum(np.abs(lam).max(axis=1), 1e-300)
    lo = np.maximum(0.0, -lam[:, 0])
    mu = np.zeros(k)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        newton = np.where(lam[:, :1] > 0, -gt / lam, np.inf)
        n_norm = np.sqrt((newton * newton).sum(axis=1))
        interior = (lam[:, 0] > 0) & (n_norm <= radius)
        # Shifted just right of the pole: components with gt == 0 there contribute nothing.
        mu0 = lo + 1e-10 * scale + 1e-300
        s0 = gt / (lam + mu0[:, None])
        long = ~interior & (np.sqrt((s0 * s0).sum(axis=1)) > radius)
        hard = ~interior & ~long
        if long.any():
            m = mu0[long]
            gl, ll, rl = gt[long], lam[long], radius[long]
            for _ in range(12):
                d = ll + m[:, None]
                sn2 = (gl * gl / (d * d)).sum(axis=1)
                q = (gl * gl / (d * d * d)).sum(axis=1)
                sn = np.sqrt(sn2)
                m = np.maximum(m + (sn - rl) / rl * sn2 / q, m)
            mu[long] = m
        mu[hard] = mu0[hard]
        step_e = -gt / (lam + mu[:, None])
        step_e[interior] = newton[interior]
    if hard.any():
        sh = step_e[hard]
        sh[:, 0] = 0.0
        room = np.maximum(radius[hard] ** 2 - (sh * sh).sum(axis=1), 0.0)
        sign = np.where(gt[hard, 0] > 0, -1.0, 1.0)
        sh[:, 0] = sign * np.sqrt(room) * (lam[hard, 0] <= 0)
        step_e[hard] = sh
    step_e = np.where(np.isfinite(step_e), step_e, 0.0)
    return np.einsum("kij,kj->ki", vec, step_e)


@dataclass
class BatchResult:
    """Endpoints of a batched minimisation, centred coordinates."""

    theta: np.ndarray  # (K, 5)
    f: np.ndarray  # (K,)
    grad: np.ndarray  # (K, 5), projected onto the free variables
    converged: np.ndarray  # (K,) bool
    iterations: np.ndarray  # (K,) int


def minimise_batch(
    problem: HuberProblem,
    theta0: np.ndarray,
    counts: np.ndarray | None = None,
    *,
    max_iter: int = 500,
    gtol: float = 1e-10,
    accept: float = 1e-6,
    radius0: float = 1.0,
    width: int = 256,
    switch: float = 1e-4,
    tied: bool = False,
) -> BatchResult:
    """Trust-region Newton from every row of ``theta0`` (centred coordinates) independently.

    Each row starts with the IRLS Hessian model and switches, for good, to the exact Hessian once an
    accepted step lowers its objective by less than ``switch`` (relative): far from a minimum the
    majoriser moves fast, near it the exact Hessian converges quadratically.

    Scheduling: a working set of ``width`` rows (default 256) is iterated together, the objective being
    evaluated in cache-sized row blocks (:meth:`HuberProblem.evaluate_chunked`); a row that finishes is
    replaced at once by the next waiting row, so a few slow rows never leave the vector units idle and
    numpy's per-call overhead (~50 calls per trust-region step) is shared by many rows.

    ``counts``: None, (n,) or (K, n). Gradients are measured relative to delta * (1 + sum of counts), the
    largest slope the objective can have per unit of a centred parameter (each gradient component is a
    count-weighted sum of terms of size at most delta * |x|, |x| ~ 1). A row stops when its relative
    projected gradient is <= ``gtol``, when the predicted decrease of a rejected step is below the
    rounding of f (no representable progress left: at kinks of the Huber function the last digits of the
    gradient cannot be driven lower), or after ``max_iter`` iterations. It is reported converged when its
    relative gradient is <= ``accept`` (default 1e-6: parameters then sit at the optimum to ~1e-8).

    ``tied``: minimise over alpha = beta (Gadre et al. 2024's over-training form is Chinchilla with tied
    exponents): beta follows alpha, and the gradient and Hessian are those of the 4-parameter problem
    (:func:`_tie`), with beta's row held like a variable on a bound.
    """
    tune_allocator()
    theta = np.clip(np.atleast_2d(np.asarray(theta0, dtype=float)), LOWER, UPPER).copy()
    if tied:
        theta[:, 4] = theta[:, 3]
    evaluate = problem.evaluate_chunked if not tied else _tied_evaluation(problem)
    k = theta.shape[0]
    per_row = counts is not None and np.ndim(counts) == 2
    total = problem.total_weight if counts is None else np.sum(counts, axis=-1)
    scale = problem.delta * (1.0 + np.broadcast_to(total, (k,)))
    tol = gtol * scale
    f = np.empty(k)
    g = np.empty((k, 5))
    hess = np.empty((k, 5, 5))
    radius = np.full(k, float(radius0))
    exact = np.zeros(k, dtype=bool)
    iters = np.zeros(k, dtype=int)
    queue = 0
    active = np.empty(0, dtype=int)
    while True:
        if active.size < width and queue < k:
            new = np.arange(queue, min(k, queue + width - active.size))
            queue = int(new[-1]) + 1
            f[new], g[new], hess[new] = evaluate(theta[new], counts[new] if per_row else counts, False)
            active = np.concatenate([active, new])
        if active.size == 0:
            break
        th, ga, ha, fa, ra = theta[active], g[active], hess[active], f[active], radius[active]
        fr = _free_mask(th, ga)
        gm, hm = _restrict(ga, ha, fr)
        step = _trust_region_step(gm, hm, ra)
        # A variable on a bound that the Newton step would push outwards is held too, and the step redone
        # (otherwise projecting the step can cancel all progress and the row stalls on the bound).
        blocked = ((th <= LOWER + 1e-12) & (step < 0)) | ((th >= UPPER - 1e-12) & (step > 0))
        redo = np.flatnonzero(blocked.any(axis=1))
        if redo.size:
            fr[redo] &= ~blocked[redo]
            gm[redo], hm[redo] = _restrict(ga[redo], ha[redo], fr[redo])
            step[redo] = _trust_region_step(gm[redo], hm[redo], ra[redo])
        trial, step, pred = _feasible_step(th, step, gm, hm)
        if tied:
            trial[:, 4] = trial[:, 3]
        ex = exact[active]
        ft, gt, ht = evaluate(trial, counts[active] if per_row else counts, ex)
        actual = ft - fa
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(pred < 0, actual / pred, -1.0)
        ok = (actual < 0) & (rho > 1e-4)
        snorm = np.sqrt((step * step).sum(axis=1))
        ra = np.where(rho < 0.25, 0.25 * snorm, ra)
        ra = np.minimum(np.where((rho > 0.75) & (snorm > 0.99 * ra), 2.0 * ra, ra), 100.0)
        idx = active[ok]
        theta[idx], f[idx], g[idx], hess[idx] = trial[ok], ft[ok], gt[ok], ht[ok]
        exact[idx] |= -actual[ok] < switch * fa[ok]
        radius[active] = ra
        iters[active] += 1
        gnorm = np.sqrt((_projected(theta[active], g[active]) ** 2).sum(axis=1))
        stalled = (ra < 1e-14) | (~ok & (-pred <= 1e-14 * np.abs(fa)))
        keep = (gnorm > tol[active]) & ~stalled & (iters[active] < max_iter)
        active = active[keep]
    pg = _projected(theta, g)
    converged = np.sqrt((pg * pg).sum(axis=1)) <= accept * scale
    return BatchResult(theta, f, pg, converged, iters)


def _tied_evaluation(problem: HuberProblem) -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:meth:`HuberProblem.evaluate_chunked` of the problem restricted to alpha = beta (see :func:`_tie`)."""

    def evaluate(
        theta: np.ndarray, counts: np.ndarray | None, exact: np.ndarray | bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f, g, hess = problem.evaluate_chunked(theta, counts, exact)
        return (f, *_tie(g, hess))

    return evaluate


def _tie(g: np.ndarray, hess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian in (u, v, e, gamma) with alpha = beta = gamma (chain rule: d/dgamma = d/dalpha +
    d/dbeta), written back into the 5-vector with beta's entry zero and its Hessian row the identity, so the
    step leaves beta alone and the caller sets it to alpha."""
    g = g.copy()
    g[:, 3] += g[:, 4]
    g[:, 4] = 0.0
    hess = hess.copy()
    hess[:, 3, :] += hess[:, 4, :]
    hess[:, :, 3] += hess[:, :, 4]
    hess[:, 4, :] = 0.0
    hess[:, :, 4] = 0.0
    hess[:, 4, 4] = 1.0
    return g, hess


def _restrict(g: np.ndarray, hess: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian with the held variables cut out (identity rows, zero gradient: zero step)."""
    gm = np.where(free, g, 0.0)
    hm = np.where(free[:, :, None] & free[:, None, :], hess, 0.0) + np.eye(5) * (~free)[:, :, None]
    return gm, hm


def _projected(theta: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.where(_free_mask(theta, g), g, 0.0)


def _feasible_step(
    theta: np.ndarray, step: np.ndarray, g: np.ndarray, hess: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep a step inside the box: projection (clip) where the model still predicts a decrease, else the
    step truncated at the first bound (on which the convex model along the step always decreases)."""

    def model(s: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return (g[rows] * s).sum(axis=1) + 0.5 * np.einsum("ki,kij,kj->k", s, hess[rows], s)

    clipped = np.clip(theta + step, LOWER, UPPER) - theta
    pred = model(clipped)
    bad = pred >= 0
    if bad.any():
        s = step[bad]
        th = theta[bad]
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(s > 0, (UPPER - th) / s, np.where(s < 0, (LOWER - th) / s, np.inf))
        t = np.clip(room.min(axis=1), 0.0, 1.0)[:, None]
        clipped[bad] = t * s
        pred[bad] = model(clipped[bad], bad)
    return theta + clipped, clipped, pred
