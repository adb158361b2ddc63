"""The compute-efficient frontier of :func:`scaling.fit.approach1.compute_envelope` on many bootstrap
resamples at once (issue 16, item 7).

A resample is a row of multiplicities over the points (:func:`scaling.fit.bootstrap.resample_counts`).
The envelope depends only on which runs are present: a run drawn twice contributes the same curve twice,
and the lower envelope of a curve with itself is that curve (``compute_envelope`` keeps a strictly lower
loss only, and its Pareto step drops repeated final points). So every resample's frontier is the lower
envelope of the present runs' curves, computed here as a masked minimum over a (runs x grid) table of the
curves interpolated once per distinct grid.

The grid of ``compute_envelope`` spans the present curves' FLOPs (log-spaced, ``n_grid`` points), so it
depends on which runs are drawn; resamples are grouped by their (lowest, highest) FLOPs, a handful of
distinct pairs, and each group shares one interpolation table. Runs without a curve bound the frontier by
their final point, as in ``compute_envelope``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scaling.fit.points import FitPoints


@dataclass
class ResampledEnvelopes:
    """Every resample's frontier as (K, M) arrays sorted by C in each row; ``keep`` marks the frontier.

    Row k's frontier is ``c[k, keep[k]]`` (and likewise ``loss``, ``n``, ``d``): exactly the points that
    ``compute_envelope`` returns on the resampled runs.
    """

    c: np.ndarray
    loss: np.ndarray
    n: np.ndarray
    d: np.ndarray
    keep: np.ndarray

    def row_count(self) -> np.ndarray:
        """Frontier points per resample."""
        return self.keep.sum(axis=1)


def resampled_envelopes(points: FitPoints, counts: np.ndarray, n_grid: int = 100) -> ResampledEnvelopes:
    """The frontier of each resample (rows of ``counts``, (K, len(points)) multiplicities)."""
    present = np.asarray(counts) > 0
    k = present.shape[0]
    has_curve = np.array([c is not None and len(c) >= 2 for c in points.curves], dtype=bool)
    curve_idx = np.flatnonzero(has_curve)
    single = ~has_curve
    m = n_grid + int(single.sum())
    out_c, out_loss = np.full((k, m), np.inf), np.full((k, m), np.inf)
    out_n, out_d = np.full((k, m), np.nan), np.full((k, m), np.nan)
    # Columns for the runs without a curve: their final points, present or not.
    out_c[:, n_grid:] = points.c[single]
    out_loss[:, n_grid:] = np.where(present[:, single], points.loss[single], np.inf)
    out_n[:, n_grid:] = points.n[single]
    out_d[:, n_grid:] = points.d[single]
    if curve_idx.size:
        first = np.array([float(points.curves[i].flops[0]) for i in curve_idx])  # type: ignore[union-attr]
        last = np.array([float(points.curves[i].flops[-1]) for i in curve_idx])  # type: ignore[union-attr]
        cp = present[:, curve_idx]
        any_curve = cp.any(axis=1)
        lo = np.where(cp, first, np.inf).min(axis=1)
        hi = np.where(cp, last, -np.inf).max(axis=1)
        pairs = np.unique(np.column_stack([lo, hi])[any_curve], axis=0)
        for p_lo, p_hi in pairs:
            rows = np.flatnonzero(any_curve & (lo == p_lo) & (hi == p_hi))
            grid = np.exp(np.linspace(math.log(p_lo), math.log(p_hi), n_grid))
            table_loss, table_d = _curve_table(points, curve_idx, np.log(grid))
            masked = np.where(cp[rows][:, :, None], table_loss[None], np.inf)  # (rows, curves, grid)
            win = np.argmin(masked, axis=1)  # the first curve attaining the minimum, as compute_envelope
            best = np.take_along_axis(masked, win[:, None, :], axis=1)[:, 0]
            out_c[rows, :n_grid] = grid
            out_loss[rows, :n_grid] = best
            out_n[rows, :n_grid] = points.n[curve_idx][win]
            out_d[rows, :n_grid] = np.take_along_axis(table_d[None].repeat(rows.size, 0), win[:, None, :], axis=1)[:, 0]
        # Resamples without any curve: the Pareto frontier of all their final points (compute_envelope's
        # "final points" mode); the curve runs' final points are then absent by construction.
    # Sort by C, ties by loss (compute_envelope's Pareto step): among runs of one budget the lowest loss leads.
    order = np.argsort(out_loss, axis=1, kind="stable")
    order = np.take_along_axis(order, np.argsort(np.take_along_axis(out_c, order, axis=1), axis=1, kind="stable"), 1)
    c, loss, n, d = (np.take_along_axis(a, order, axis=1) for a in (out_c, out_loss, out_n, out_d))
    prev_min = np.minimum.accumulate(np.concatenate([np.full((k, 1), np.inf), loss[:, :-1]], axis=1), axis=1)
    keep = np.isfinite(loss) & (loss < prev_min)
    return ResampledEnvelopes(c, loss, n, d, keep)


def _curve_table(points: FitPoints, curve_idx: np.ndarray, lg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each curve's loss and tokens at log-FLOPs ``lg`` (linear in log C; loss inf outside the curve)."""
    loss = np.full((curve_idx.size, lg.size), np.inf)
    tokens = np.full((curve_idx.size, lg.size), np.nan)
    for row, i in enumerate(curve_idx):
        cv = points.curves[i]
        assert cv is not None
        lf = np.log(cv.flops)
        inside = (lg >= lf[0] - 1e-12) & (lg <= lf[-1] + 1e-12)
        loss[row, inside] = np.interp(lg[inside], lf, cv.loss)
        tokens[row, inside] = np.exp(np.interp(lg[inside], lf, np.log(cv.tokens)))
    return loss, tokens
