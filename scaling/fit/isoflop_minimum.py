"""Where an isoFLOP profile has its minimum: three estimators, batched over resamples.

Chinchilla's Approach 2 (Hoffmann et al. 2022, sec. 3.2) fits a parabola of loss against log N to every
point of a budget and takes its vertex as N_opt. Porian et al. 2024 ("Resolving Discrepancies in
Compute-Optimal Scaling of Language Models", arXiv 2406.19146, sec. 2 and App. C) show that this
estimator is biased when a budget is sampled off-centre (the profile is not a parabola far from its
minimum), and take the minimum of an Akima interpolant instead, with its uncertainty from a bootstrap
over the points of each isoFLOP curve and the power law N_opt ∝ C^a fitted by weighted least squares
(weights 1 / var(log N_opt)). The estimators here:

* ``parabola``: the quadratic through every point of the budget (Hoffmann et al.);
* ``local-parabola``: the quadratic through the points at the ``LOCAL_POINTS`` model sizes nearest the
  lowest observed loss (all of them when the budget has fewer), which far-off points cannot bend;
* ``akima``: the exact minimum of the Akima (1970) interpolant of loss vs log N inside the sampled range
  (Porian et al.'s estimator; the limit of their fine-grid search, see tests/test_isoflop_estimators.py).

Every estimator works on a *batch* of weightings of one budget's points, ``w`` of shape (R, n): row r
counts each point as often as resample r drew it (0 = absent). The point estimate is the batch of one
row of ones; a bootstrap is many rows at once, so no Python loop runs over resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("parabola", "local-parabola", "akima")

#: Points of the local parabola (Porian et al. fit near the minimum; 5 spans the vertex on a typical grid).
LOCAL_POINTS = 5

#: Draws of the per-budget bootstrap that gives each minimum its spread (Porian et al., App. C).
SPREAD_DRAWS = 400

#: Floor of var(log N_opt) in the weighted power law: 1% in N. A budget whose resamples all give the same
#: minimum (3 points, always refitted exactly) would otherwise get an infinite weight.
VAR_FLOOR = 1e-4

# Why a minimum is not used; 0 = used.
OK, TOO_FEW, DOWNWARD, OUTSIDE = 0, 1, 2, 3


@dataclass
class Minima:
    """Per row of the batch: the minimum in log N, the loss there, and OK or why it is not used."""

    x: np.ndarray  # (R,) log N at the minimum (for DOWNWARD: the lowest observed point)
    loss: np.ndarray  # (R,) the estimator's loss at its minimum
    status: np.ndarray  # (R,) int: OK, TOO_FEW, DOWNWARD, OUTSIDE
    coeffs: np.ndarray  # (R, 3) the parabola (p2, p1, p0) in x - x0 (NaN for akima)
    x0: np.ndarray  # (R,) centre of the parabola's x


def check_estimator(name: str) -> str:
    """``name`` if it is a known estimator, else ValueError (the CLI restricts the choices itself)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown isoFLOP estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
    return name


def locate_minima(x: np.ndarray, loss: np.ndarray, w: np.ndarray, estimator: str) -> Minima:
    """The minimum of one budget's profile under every weighting row of ``w`` (shape (R, n)).

    ``x`` is log N of the budget's points, ``loss`` their loss. A row needs 3 distinct N; its minimum
    is used when the parabola opens upward and its vertex lies inside the row's sampled N range (for
    Akima: strictly inside, not on the first or last point, where the minimum is not bracketed).
    """
    check_estimator(estimator)
    x = np.asarray(x, dtype=float)
    loss = np.asarray(loss, dtype=float)
    w = np.atleast_2d(np.asarray(w, dtype=float))
    present = w > 0
    big = np.where(present, x, np.inf)
    lo = big.min(axis=1)
    hi = np.where(present, x, -np.inf).max(axis=1)
    distinct = distinct_count(np.where(present, x, np.nan))
    if estimator == "akima":
        out = _akima_minima(x, loss, present)
    else:
        if estimator == "local-parabola":
            w = w * _nearest_to_lowest(x, loss, present, LOCAL_POINTS)
        out = _parabola_minima(x, loss, w)
        lowest = np.argmin(np.where(present, loss, np.inf), axis=1)
        down = out.coeffs[:, 0] <= 0
        out.x = np.where(down, x[lowest], out.x)
        out.loss = np.where(down, loss[lowest], out.loss)
        out.status = np.where(down, DOWNWARD, OK)
    out.status = np.where((out.status == OK) & ~((lo <= out.x) & (out.x <= hi)), OUTSIDE, out.status)
    out.status = np.where(distinct < 3, TOO_FEW, out.status)
    return out


def distinct_count(values: np.ndarray) -> np.ndarray:
    """Distinct finite values per row (NaN = absent)."""
    s = np.sort(values, axis=1)  # NaN sort last
    fin = np.isfinite(s)
    new = np.concatenate([fin[:, :1], fin[:, 1:] & (s[:, 1:] != s[:, :-1])], axis=1)
    return new.sum(axis=1)


def _nearest_to_lowest(x: np.ndarray, loss: np.ndarray, present: np.ndarray, k: int) -> np.ndarray:
    """(R, n) 0/1 mask of the present points at the ``k`` sizes nearest in log N to each row's lowest loss.

    Sizes, not points: a run drawn twice by a bootstrap, or two runs at one N, take one of the k places.
    """
    r = present.shape[0]
    lowest = np.argmin(np.where(present, loss, np.inf), axis=1)
    dist = np.where(present, np.abs(x[None, :] - x[lowest][:, None]), np.inf)
    order = np.argsort(dist, axis=1, kind="stable")
    xs = x[order]
    new = np.concatenate([np.ones((r, 1), dtype=bool), xs[:, 1:] != xs[:, :-1]], axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.cumsum(new, axis=1) - 1, axis=1)
    return ((rank < k) & present).astype(float)


def _parabola_minima(x: np.ndarray, loss: np.ndarray, w: np.ndarray) -> Minima:
    """Weighted least-squares quadratic of loss in x per row (weights = multiplicities), its vertex.

    Solved by the 3x3 normal equations in x centred on the row's weighted mean, which is what
    ``np.polyfit`` on the repeated points solves (to rounding).
    """
    sw = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x0 = (w * x).sum(axis=1) / sw
    u = x[None, :] - x0[:, None]
    powers = [(w * u**j).sum(axis=1) for j in range(5)]
    m = np.stack(
        [
            np.stack([powers[4], powers[3], powers[2]], axis=-1),
            np.stack([powers[3], powers[2], powers[1]], axis=-1),
            np.stack([powers[2], powers[1], powers[0]], axis=-1),
        ],
        axis=-2,
    )
    rhs = np.stack([(w * u**2 * loss).sum(axis=1), (w * u * loss).sum(axis=1), (w * loss).sum(axis=1)], axis=-1)
    coeffs = np.full((w.shape[0], 3), np.nan)
    with np.errstate(invalid="ignore", over="ignore"):
        det = np.linalg.det(m)
    ok = np.isfinite(det) & (np.abs(det) > 1e-300)
    if ok.any():
        coeffs[ok] = np.linalg.solve(m[ok], rhs[ok][..., None])[..., 0]
    p2, p1, p0 = coeffs.T
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        xs = -p1 / (2 * p2)
        at_vertex = p0 + p1 * xs + p2 * xs * xs
    return Minima(xs + x0, at_vertex, np.zeros(len(xs), dtype=int), coeffs, x0)


def _akima_minima(x: np.ndarray, loss: np.ndarray, present: np.ndarray) -> Minima:
    """Exact minimum of each row's Akima interpolant through its present points.

    Points at one N are averaged first (an interpolant needs distinct knots). Each row's knots are
    packed to the left of a padded (R, u) array, Akima's slopes are computed as
    :class:`scipy.interpolate.Akima1DInterpolator` does (its default ``method="akima"``), and the
    minimum of every cubic Hermite piece is taken at a knot or at a root of its derivative.
    """
    ux, inverse = np.unique(x, return_inverse=True)
    member = np.zeros((x.size, ux.size))
    member[np.arange(x.size), inverse.ravel()] = 1.0
    pw = present.astype(float)
    cnt = pw @ member  # (R, u) present points per knot
    with np.errstate(invalid="ignore", divide="ignore"):
        ky = (pw * loss) @ member / cnt
    have = cnt > 0
    order = np.argsort(~have, axis=1, kind="stable")  # present knots first, still sorted by x
    kx = np.take_along_axis(np.broadcast_to(ux, have.shape), order, axis=1)
    ky = np.take_along_axis(ky, order, axis=1)
    n = have.sum(axis=1)
    r, u = have.shape
    rows = np.arange(r)
    valid_knot = np.arange(u)[None, :] < n[:, None]
    kx = np.where(valid_knot, kx, np.nan)
    ky = np.where(valid_knot, ky, np.nan)
    status = np.where(n < 3, TOO_FEW, OK)
    nn = np.maximum(n, 3)  # rows with < 3 knots get garbage that TOO_FEW masks
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.diff(kx, axis=1)
        s = np.diff(ky, axis=1) / dx  # (R, u-1), slopes s_0 .. s_{n-2}
        m = np.full((r, u + 3), np.nan)
        m[:, 2 : u + 1] = s
        s0, s1 = s[:, 0], s[:, 1] if u > 2 else np.full(r, np.nan)
        m[:, 1] = 2 * s0 - s1
        m[:, 0] = 2 * m[:, 1] - s0
        last, before = s[rows, nn - 2], s[rows, nn - 3]
        m[rows, nn + 1] = 2 * last - before
        m[rows, nn + 2] = 2 * m[rows, nn + 1] - last
        t = 0.5 * (m[:, 3:] + m[:, :-3])  # (R, u)
        dm = np.abs(np.diff(m, axis=1))
        f1, f2 = dm[:, 2:], dm[:, :-2]
        f12 = f1 + f2
        f12_row_max = np.max(np.where(valid_knot, f12, -np.inf), axis=1)
        defined = valid_knot & (f12 > 1e-9 * f12_row_max[:, None])
        t = np.where(defined, m[:, 1:-2] + (f2 / f12) * (m[:, 2:-1] - m[:, 1:-2]), t)
        # Cubic Hermite pieces on [x_i, x_{i+1}]: derivative in s = (x - x_i)/h is (A s^2 + B s + C) / h.
        y0, y1, t0, t1, h = ky[:, :-1], ky[:, 1:], t[:, :-1], t[:, 1:], dx
        qa = 6 * (y0 - y1) + 3 * h * (t0 + t1)
        qb = 6 * (y1 - y0) - h * (4 * t0 + 2 * t1)
        qc = h * t0
        disc = qb * qb - 4 * qa * qc
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        # Numerically stable roots (Press et al., Numerical Recipes, sec. 5.6): near-parabolic profiles
        # make qa vanish, where the textbook formula cancels; q / qa is then inf and qc / q the linear root.
        q = -0.5 * (qb + np.where(qb >= 0, 1.0, -1.0) * root)
        cand = np.stack([q / qa, qc / q], axis=-1)
        inside = (cand > 0) & (cand < 1) & valid_knot[:, 1:, None]
        ss = np.where(inside, cand, np.nan)
        h00, h10 = 2 * ss**3 - 3 * ss**2 + 1, ss**3 - 2 * ss**2 + ss
        h01, h11 = -2 * ss**3 + 3 * ss**2, ss**3 - ss**2
        val = h00 * y0[..., None] + h10 * (h * t0)[..., None] + h01 * y1[..., None] + h11 * (h * t1)[..., None]
        xs_piece = kx[:, :-1, None] + ss * h[..., None]
    cand_x = np.concatenate([kx, xs_piece.reshape(r, -1)], axis=1)
    cand_y = np.concatenate([ky, val.reshape(r, -1)], axis=1)
    best = np.argmin(np.where(np.isfinite(cand_y), cand_y, np.inf), axis=1)
    bx, by = cand_x[rows, best], cand_y[rows, best]
    on_edge = (best == 0) | (best == nn - 1)
    status = np.where((status == OK) & on_edge, OUTSIDE, status)
    return Minima(bx, by, status, np.full((r, 3), np.nan), np.full(r, np.nan))


def resample_points(n_points: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """(n_draws, n_points) multiplicities of a bootstrap over one budget's points (Porian et al.)."""
    draws = rng.integers(0, n_points, size=(n_draws, n_points))
    offsets = np.arange(n_draws)[:, None] * n_points
    return np.bincount((draws + offsets).ravel(), minlength=n_draws * n_points).reshape(n_draws, n_points).astype(float)


def weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the weighted least-squares line ``y = slope x + intercept``; NaN where w holds < 2 distinct x.

    ``x``, ``y``, ``w`` broadcast to (R, G); a zero weight leaves a point out. Minimises the same sum as
    ``np.polyfit(x, y, 1, w=sqrt(w))``.
    """
    x, y, w = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, w)))
    w = np.where(np.isfinite(x) & np.isfinite(y), w, 0.0)
    x0, y0 = np.where(w > 0, x, 0.0), np.where(w > 0, y, 0.0)
    sw = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * x0).sum(axis=-1) / sw
        my = (w * y0).sum(axis=-1) / sw
        dx = x0 - mx[..., None]
        sxx = (w * dx * dx).sum(axis=-1)
        slope = (w * dx * (y0 - my[..., None])).sum(axis=-1) / sxx
    spread = distinct_count(np.where(w > 0, x, np.nan).reshape(-1, x.shape[-1])).reshape(sw.shape)
    ok = spread >= 2
    return np.where(ok, slope, np.nan), np.where(ok, my - slope * mx, np.nan)
