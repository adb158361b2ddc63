"""Bootstrap uncertainty for Chinchilla Approach 3 (as in Besiroglu et al. 2024: 4000 resamples).

Each resample draws runs with replacement and refits the law. A resample is just a vector of integer
multiplicities (counts) on the original points, and the summed-Huber objective with counts is
sum_i c_i Huber(r_i); so all resamples share the data arrays and differ only in their weights. That
lets :func:`scaling.fit.huber.minimise_batch` refit all of them together, vectorised.

Starts: every resample is refitted from the point optimum (warm start: a resample's optimum is a small
perturbation of it) and, for resilience, from up to two further distinct local optima that the global
search of the point fit met (other basins of the same landscape, carried by
:attr:`Approach3Fit.local_optima`). Any resample whose best refit did not converge or ended on a
bound of the search box is refitted from scratch by the full global search ("rescue"). Whether warm
starts can miss a better basin is checked empirically: tests/test_epoch_refit.py and
scripts/bench_fit.py re-search random resamples globally and find nothing better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from scaling.errors import ScalingError
from scaling.fit import varpro
from scaling.fit.approach3 import N_CANDIDATES, Approach3Fit, fit_approach3, validate_points
from scaling.fit.huber import LOWER, UPPER, HuberProblem, minimise_batch
from scaling.intervals import bootstrap_se, percentile_ci
from scaling.laws import CHINCHILLA_PARAMS, ChinchillaLaw

#: Extra distinct local optima of the point search used as starts for every resample.
N_EXTRA_STARTS = 2


@dataclass
class BootstrapResult:
    """Refitted parameters of every resample and the uncertainty they imply."""

    samples: np.ndarray  # (K, 5) columns E, A, B, alpha, beta
    se: dict[str, float]  # standard deviation over resamples (ddof=1), keys E, A, B, alpha, beta, a, b, G
    ci95: dict[str, tuple[float, float]]  # 2.5 and 97.5 percentiles
    point: Approach3Fit
    objective: np.ndarray  # (K,) summed Huber of each refit on its resample
    converged: np.ndarray  # (K,) bool
    n_rescued: int  # resamples refitted by the full global search
    seed: int
    n_groups: int

    @property
    def n_boot(self) -> int:
        return int(self.samples.shape[0])

    def laws(self) -> list[ChinchillaLaw]:
        return [ChinchillaLaw(*map(float, row)) for row in self.samples]

    def derived(self, func: Callable[[ChinchillaLaw], float]) -> np.ndarray:
        """``func`` evaluated on every resample's law (e.g. ``lambda law: law.n_opt(1e21)``)."""
        return np.array([float(func(law)) for law in self.laws()])

    def derived_ci(self, func: Callable[[ChinchillaLaw], float], level: float = 0.95) -> tuple[float, float]:
        """Percentile confidence interval of any derived quantity (N_opt(C), a predicted loss, ...)."""
        return percentile_ci(self.derived(func), level)

    def derived_se(self, func: Callable[[ChinchillaLaw], float]) -> float:
        return bootstrap_se(self.derived(func))

    def as_dict(self) -> dict[str, object]:
        return {
            "n_boot": self.n_boot,
            "seed": self.seed,
            "n_groups": self.n_groups,
            "n_converged": int(self.converged.sum()),
            "n_rescued": self.n_rescued,
            "se": dict(self.se),
            "ci95": {k: list(v) for k, v in self.ci95.items()},
        }


def resample_counts(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) multiplicities: draw unique groups with replacement, each point counted as its group."""
    labels, inverse = np.unique(groups, return_inverse=True)
    n_groups = labels.size
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    offsets = np.arange(n_boot)[:, None] * n_groups
    group_counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    return group_counts[:, inverse.ravel()].astype(float)


def summarise(samples: np.ndarray) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Standard errors and 95% percentile intervals of the parameters and of a, b, G (all draws at once)."""
    law = ChinchillaLaw.from_rows(samples)
    cols = {key: getattr(law, key) for key in (*CHINCHILLA_PARAMS, "a", "b", "G")}
    return {k: bootstrap_se(v) for k, v in cols.items()}, {k: percentile_ci(v) for k, v in cols.items()}


def bootstrap_approach3(
    N: Sequence[float] | np.ndarray,  # noqa: N803
    D: Sequence[float] | np.ndarray,  # noqa: N803
    loss: Sequence[float] | np.ndarray,
    *,
    groups: Sequence[object] | np.ndarray | None = None,
    n_boot: int = 4000,
    seed: int = 0,
    delta: float = 1e-3,
    point_fit: Approach3Fit | None = None,
    counts: np.ndarray | None = None,
) -> BootstrapResult:
    """Refit Approach 3 on ``n_boot`` resamples of the runs (``groups``: run id per point; None: each
    point is its own run). ``point_fit`` (optional) is the fit on all points, used as the warm start.
    ``counts`` (optional, (n_boot, n)): the resamples' multiplicities, when the caller shares one draw
    between several laws; by default they are drawn from ``seed`` by :func:`resample_counts` (the same
    matrix, so passing that draw changes nothing)."""
    n_arr, d_arr, l_arr = validate_points(N, D, loss)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ScalingError(f"bootstrap needs an integer number of resamples >= 2, got {n_boot!r}")
    if groups is None:
        group_arr = np.arange(n_arr.size)
    else:
        group_arr = np.asarray(groups)
        if group_arr.ndim != 1 or group_arr.size != n_arr.size:
            raise ScalingError(
                f"bootstrap groups must give one run id per point: {group_arr.size} ids for {n_arr.size} points"
            )
    n_groups = int(np.unique(group_arr).size)
    if n_groups < 2:
        raise ScalingError("bootstrap needs at least 2 distinct runs (groups) to resample")
    problem = HuberProblem.from_data(n_arr, d_arr, l_arr, delta)
    if point_fit is None:
        point_fit = fit_approach3(n_arr, d_arr, l_arr, delta=delta)
    fit = point_fit
    start = problem.to_centred(np.array([np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta]))
    others = problem.to_centred(np.array(fit.local_optima, dtype=float).reshape(-1, 5))
    extra = [t for t in others if np.max(np.abs(t - start)) >= 1e-4][:N_EXTRA_STARTS]
    starts = np.vstack([start, *extra])
    rng = np.random.default_rng(seed)
    counts = resample_counts(group_arr, n_boot, rng) if counts is None else np.asarray(counts, dtype=float)
    if counts.shape != (n_boot, n_arr.size):
        raise ScalingError(f"bootstrap counts must have shape ({n_boot}, {n_arr.size}), got {counts.shape}")
    n_starts = starts.shape[0]
    batch = minimise_batch(problem, np.tile(starts, (n_boot, 1)), np.repeat(counts, n_starts, axis=0))
    f = batch.f.reshape(n_boot, n_starts)
    pick = np.nanargmin(np.where(np.isfinite(f), f, np.inf), axis=1)
    rows = np.arange(n_boot) * n_starts + pick
    theta = batch.theta[rows]
    obj = batch.f[rows]
    conv = batch.converged[rows]
    on_bound = np.any((theta <= LOWER + 1e-9) | (theta >= UPPER - 1e-9), axis=1)
    rescue = np.flatnonzero(~conv | on_bound)
    if rescue.size:
        sub_theta, sub_f, sub_conv = _search_resamples(problem, counts[rescue])
        better = (sub_f < obj[rescue]) | ~conv[rescue]
        i = rescue[better]
        theta[i], obj[i], conv[i] = sub_theta[better], sub_f[better], sub_conv[better]
    nat = problem.to_natural(theta)
    samples = np.column_stack([np.exp(nat[:, 2]), np.exp(nat[:, 0]), np.exp(nat[:, 1]), nat[:, 3], nat[:, 4]])
    se, ci = summarise(samples)
    return BootstrapResult(
        samples=samples,
        se=se,
        ci95=ci,
        point=fit,
        objective=obj,
        converged=conv,
        n_rescued=int(rescue.size),
        seed=seed,
        n_groups=n_groups,
    )


def _search_resamples(problem: HuberProblem, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full global search of :func:`scaling.fit.approach3.search` on several resamples at once.

    Each resample's profile scan runs on the points it contains (as a search of that resample alone
    would); the Newton polish of every resample's candidate starts then runs as one batch on the full
    problem with per-row multiplicities (absent points weigh 0, the same objective). The rescued
    resamples are the ill-determined ones whose polish often runs to the iteration cap, so sharing the
    ~500 iterations' numpy overhead between all of them is what makes the rescue cheap (issue 16, item 7).
    Returns, per resample, the best endpoint (centred), its objective and whether it converged.
    """
    starts: list[np.ndarray] = []
    owner: list[int] = []
    for row, weights in enumerate(counts):
        keep = weights > 0
        sub = HuberProblem(
            x=problem.x[keep],
            y=problem.y[keep],
            log_loss=problem.log_loss[keep],
            m_n=problem.m_n,
            m_d=problem.m_d,
            delta=problem.delta,
            weights=weights[keep],
        )
        prof = varpro.scan(sub)
        cells = prof.local_minima(N_CANDIDATES)
        starts += [prof.theta[c] for c in cells]
        owner += [row] * len(cells)
    owner_arr = np.asarray(owner)
    batch = minimise_batch(problem, np.array(starts), counts[owner_arr])
    f = np.where(np.isfinite(batch.f), batch.f, np.inf)
    k = counts.shape[0]
    theta, best_f, conv = np.zeros((k, 5)), np.full(k, np.inf), np.zeros(k, dtype=bool)
    for row in range(k):
        rows = np.flatnonzero(owner_arr == row)
        if rows.size:
            best = rows[int(np.argmin(f[rows]))]
            theta[row], best_f[row], conv[row] = batch.theta[best], batch.f[best], batch.converged[best]
    return theta, best_f, conv
