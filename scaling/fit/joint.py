"""Variants fitted together: nested Chinchilla laws, a likelihood-ratio choice, run-level bootstrap.

Every variant's runs share one law L = E + A_v/N^α_v + B_v/D^β_v (Hoffmann et al. 2022, eq. 2)
in three nested forms, E always shared (the same corpus has one irreducible loss):

* ``shared``: one law for all variants (5 parameters);
* ``separate_AB``: A and B per variant, exponents shared (3 + 2V): a variant is then a constant
  factor on N and on D, so its compute multiplier does not depend on scale;
* ``separate_exponents``: A, B, α and β per variant (1 + 4V): the multiplier may grow or shrink.

The fit minimises squared residuals of log L (Gaussian errors on log loss, so a likelihood is
defined: the project's single-law fit uses Huber instead, Hoffmann et al. 2022 App. D.2, which has
no likelihood to compare). Each larger form is tested against the smaller one by a likelihood-ratio
test, 2Δℓ = n·log(RSS_small / RSS_large) ~ χ²(Δk) (Wilks 1938); AIC and BIC are printed beside it.
The chosen form is the largest one every step up to which the test accepts at 5%.

Uncertainty: runs are resampled with replacement within each variant (each variant keeps its number
of runs) and the chosen form is refitted from the point estimate (Efron & Tibshirani 1993, ch. 6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scaling.errors import ScalingError
from scaling.laws import ChinchillaLaw

FORMS = ("shared", "separate_AB", "separate_exponents")
#: The law's parameters that each form fits per variant (the others are shared).
PER_VARIANT = {"shared": (), "separate_AB": ("A", "B"), "separate_exponents": ("A", "B", "alpha", "beta")}
#: A variant needs as many runs as one law has parameters.
MIN_RUNS = 5
LRT_LEVEL = 0.05


@dataclass(frozen=True)
class VariantRuns:
    """One variant's finished runs: N (the chosen count), D (tokens) and final loss."""

    name: str
    n: np.ndarray
    d: np.ndarray
    loss: np.ndarray

    def take(self, index: np.ndarray) -> VariantRuns:
        return VariantRuns(self.name, self.n[index], self.d[index], self.loss[index])


@dataclass
class FormFit:
    """One nested form fitted to all variants."""

    form: str
    laws: dict[str, ChinchillaLaw]
    rss: float
    n_points: int
    n_params: int
    theta: np.ndarray = field(repr=False)

    @property
    def log_likelihood(self) -> float:
        """Gaussian log-likelihood of log L at the fitted variance RSS/n."""
        n = self.n_points
        return -0.5 * n * (math.log(2 * math.pi * self.rss / n) + 1.0)

    @property
    def aic(self) -> float:
        return 2 * self.n_params - 2 * self.log_likelihood

    @property
    def bic(self) -> float:
        return self.n_params * math.log(self.n_points) - 2 * self.log_likelihood


def check_runs(variants: Sequence[VariantRuns]) -> None:
    """Two or more variants, each with enough runs to fit a law: else one line naming the first short one."""
    if len(variants) < 2:
        found = ", ".join(v.name for v in variants) or "none"
        raise ScalingError(f"a joint fit needs runs of at least two variants; found {found}")
    for v in variants:
        if len(v.loss) < MIN_RUNS:
            raise ScalingError(
                f"variant {v.name!r} has {len(v.loss)} finished run(s); a law needs at least {MIN_RUNS} per variant"
            )


def _layout(form: str, n_variants: int) -> dict[str, list[int]]:
    """Index of each variant's E, A, B, alpha, beta (in log space for E, A, B) in the parameter vector."""
    per = PER_VARIANT[form]
    out, pos = {}, 0
    for key in ("E", "A", "B", "alpha", "beta"):
        width = n_variants if key in per else 1
        out[key] = [pos + (i if width > 1 else 0) for i in range(n_variants)]
        pos += width
    return out


def _size(layout: dict[str, list[int]]) -> int:
    return max(max(idx) for idx in layout.values()) + 1


def _laws(theta: np.ndarray, layout: dict[str, list[int]], names: Sequence[str]) -> dict[str, ChinchillaLaw]:
    return {
        name: ChinchillaLaw(
            math.exp(theta[layout["E"][i]]),
            math.exp(theta[layout["A"][i]]),
            math.exp(theta[layout["B"][i]]),
            float(theta[layout["alpha"][i]]),
            float(theta[layout["beta"][i]]),
        )
        for i, name in enumerate(names)
    }


def _solve(variants: Sequence[VariantRuns], form: str, starts: Sequence[np.ndarray]) -> FormFit:
    from scipy.optimize import least_squares

    layout = _layout(form, len(variants))
    size = _size(layout)
    which = np.concatenate([np.full(len(v.loss), i) for i, v in enumerate(variants)])
    log_n = np.log(np.concatenate([v.n for v in variants]))
    log_d = np.log(np.concatenate([v.d for v in variants]))
    log_loss = np.log(np.concatenate([v.loss for v in variants]))
    idx = {k: np.asarray(v)[which] for k, v in layout.items()}

    def residuals(theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            pred = (
                np.exp(theta[idx["E"]])
                + np.exp(theta[idx["A"]] - theta[idx["alpha"]] * log_n)
                + np.exp(theta[idx["B"]] - theta[idx["beta"]] * log_d)
            )
            r = np.log(pred) - log_loss
        return np.where(np.isfinite(r), r, 1e3)

    lower, upper = np.full(size, -np.inf), np.full(size, np.inf)
    for key in ("alpha", "beta"):
        lower[layout[key]], upper[layout[key]] = 0.02, 3.0
    lower[layout["E"]], upper[layout["E"]] = math.log(1e-3), float(log_loss.min())
    best = None
    for start in starts:
        x0 = np.clip(start, lower + 1e-9, upper - 1e-9)
        res = least_squares(residuals, x0, bounds=(lower, upper), method="trf", x_scale="jac", max_nfev=400)
        rss = float(np.sum(res.fun**2))
        if best is None or rss < best[0]:
            best = (rss, res.x)
    assert best is not None
    names = [v.name for v in variants]
    return FormFit(form, _laws(best[1], layout, names), best[0], len(log_loss), size, best[1])


def _grid_starts(variants: Sequence[VariantRuns], form: str) -> list[np.ndarray]:
    """Starts for a fresh fit: a small grid of exponents, E at half the best loss, A and B matching the loss gap."""
    layout = _layout(form, len(variants))
    loss = np.concatenate([v.loss for v in variants])
    n_mid = float(np.exp(np.mean(np.log(np.concatenate([v.n for v in variants])))))
    d_mid = float(np.exp(np.mean(np.log(np.concatenate([v.d for v in variants])))))
    starts = []
    for alpha in (0.2, 0.5, 1.0):
        for beta in (0.2, 0.5, 1.0):
            for e_frac in (0.3, 0.8):
                gap = float(np.median(loss)) * (1 - e_frac * float(loss.min()) / float(np.median(loss)))
                theta = np.zeros(_size(layout))
                theta[layout["E"]] = math.log(e_frac * float(loss.min()))
                theta[layout["alpha"]], theta[layout["beta"]] = alpha, beta
                theta[layout["A"]] = math.log(max(gap, 1e-3) / 2) + alpha * math.log(n_mid)
                theta[layout["B"]] = math.log(max(gap, 1e-3) / 2) + beta * math.log(d_mid)
                starts.append(theta)
    return starts


def fit_form(variants: Sequence[VariantRuns], form: str, start: np.ndarray | None = None) -> FormFit:
    """Fit one nested form; from ``start`` alone (a bootstrap's warm start) or from a grid of starts."""
    if form not in FORMS:
        raise ScalingError(f"unknown joint form {form!r}; known: {', '.join(FORMS)}")
    return _solve(variants, form, [start] if start is not None else _grid_starts(variants, form))


@dataclass
class JointFit:
    """All forms, the likelihood-ratio steps between them, the chosen form and its bootstrap laws."""

    variants: list[str]
    forms: dict[str, FormFit]
    lrt: list[dict[str, float | str]]  # small, large, statistic, df, p
    chosen: str
    boot: dict[str, ChinchillaLaw] | None  # per variant, parameters of shape (K,)
    n_boot_failed: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "variants": self.variants,
            "forms": {
                f: {
                    "n_params": ff.n_params,
                    "log_likelihood": ff.log_likelihood,
                    "aic": ff.aic,
                    "bic": ff.bic,
                    "laws": {
                        v: dict(zip(("E", "A", "B", "alpha", "beta"), law.rows().tolist(), strict=True))
                        for v, law in ff.laws.items()
                    },
                }
                for f, ff in self.forms.items()
            },
            "likelihood_ratio_tests": self.lrt,
            "chosen": self.chosen,
            "n_boot": 0 if self.boot is None else int(np.size(next(iter(self.boot.values())).E)),
        }


def likelihood_ratio(small: FormFit, large: FormFit) -> dict[str, float | str]:
    """Wilks' test of ``small`` nested in ``large``: 2Δℓ against χ² with the extra parameters as df."""
    from scipy.stats import chi2

    stat = max(0.0, 2.0 * (large.log_likelihood - small.log_likelihood))
    df = large.n_params - small.n_params
    return {"small": small.form, "large": large.form, "statistic": stat, "df": df, "p": float(chi2.sf(stat, df))}


def bootstrap_form(
    variants: Sequence[VariantRuns], point: FormFit, n_boot: int, seed: int = 0
) -> tuple[dict[str, ChinchillaLaw], int]:
    """Refit ``point``'s form on resamples of runs within each variant, warm-started at the point fit."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[np.ndarray]] = {v.name: [] for v in variants}
    failed = 0
    for _ in range(n_boot):
        sample = [v.take(rng.integers(0, len(v.loss), len(v.loss))) for v in variants]
        try:
            fit = fit_form(sample, point.form, start=point.theta)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            failed += 1
            continue
        for name, law in fit.laws.items():
            rows[name].append(law.rows())
    if not all(rows.values()):
        raise ScalingError("every bootstrap refit of the joint fit failed")
    return {name: ChinchillaLaw.from_rows(np.array(r)) for name, r in rows.items()}, failed


def fit_joint(variants: Sequence[VariantRuns], n_boot: int = 200, seed: int = 0) -> JointFit:
    """Fit the three forms, choose by sequential likelihood-ratio tests at 5%, bootstrap the chosen one."""
    check_runs(variants)
    forms = {f: fit_form(variants, f) for f in FORMS}
    lrt, chosen = [], FORMS[0]
    for small, large in zip(FORMS, FORMS[1:], strict=False):
        test = likelihood_ratio(forms[small], forms[large])
        lrt.append(test)
        if chosen == small and float(test["p"]) < LRT_LEVEL:
            chosen = large
    boot, failed = bootstrap_form(variants, forms[chosen], n_boot, seed) if n_boot > 1 else (None, 0)
    return JointFit([v.name for v in variants], forms, lrt, chosen, boot, failed)
