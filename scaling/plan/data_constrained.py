"""``scaling plan --flops C --unique-tokens U``: what to train with C FLOPs and only U unique tokens.

Under the data-constrained law (:class:`scaling.laws.DataConstrainedLaw`, Muennighoff et al. 2023) the
optimum repeats the U tokens for D/U epochs and shifts compute from data to parameters less than
Chinchilla would. The plan sets it beside the unconstrained Chinchilla plan of the base law (unlimited
unique data) and prices the limit two ways: the loss it costs at C, and the compute the unconstrained
plan would need to reach the constrained loss (so C over that is the compute the limit wastes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.intervals import percentile_ci
from scaling.laws import Allocation, ChinchillaLaw, DataConstrainedLaw, get_data_constrained_law
from scaling.plan.fitted_law import read_fit_json

#: Bootstrap draws used for the plan's intervals (each needs its own optimum search).
MAX_DRAWS = 400


@dataclass(frozen=True)
class FittedDataConstrainedLaw:
    """A law read from ``scaling fit --form data-constrained --json``, with its bootstrap rows."""

    law: DataConstrainedLaw
    samples: np.ndarray | None  # (K, 7): E, A, B, alpha, beta, R_D, R_N
    path: Path


def load_data_constrained_fit(path: str | Path) -> FittedDataConstrainedLaw:
    """Read the ``data_constrained`` object of a fit JSON; refuse (one line) a fit without R_D*, R_N*."""
    path = Path(path)
    data = read_fit_json(path)
    fit = data.get("data_constrained") if isinstance(data, dict) else None
    if not isinstance(fit, dict):
        raise ScalingError(
            f"{path} has no R_D*/R_N* (no 'data_constrained' object); fit one with `scaling fit --form data-constrained --json`"
        )
    try:
        e, a, b, alpha, beta, r_d, r_n = (float(fit[k]) for k in ("E", "A", "B", "alpha", "beta", "R_D", "R_N"))
    except (KeyError, TypeError, ValueError):
        raise ScalingError(f"{path}: data_constrained needs numbers E, A, B, alpha, beta, R_D, R_N") from None
    if not all(math.isfinite(v) and v > 0 for v in (a, b, alpha, beta, r_d, r_n)):
        raise ScalingError(f"{path}: data_constrained A, B, alpha, beta, R_D, R_N must be finite and positive")
    base = ChinchillaLaw(e, a, b, alpha, beta, name=f"fit:{path.name}:base", corpus="the fitted runs' validation data")
    law = DataConstrainedLaw(
        base.checked(),
        r_d,
        r_n,
        name=f"fit:{path.name}",
        description=f"data-constrained fit from {path}",
        corpus="the fitted runs' validation data",
    )
    samples = None
    raw = fit.get("samples")
    if isinstance(raw, list) and raw:
        arr = np.asarray(raw, dtype=float)
        if arr.ndim == 2 and arr.shape[1] == 7:
            samples = arr[np.isfinite(arr).all(axis=1) & (arr[:, 1:] > 0).all(axis=1)]
    return FittedDataConstrainedLaw(law, samples, path)


@dataclass(frozen=True)
class DataConstrainedPlan:
    law: DataConstrainedLaw
    flops: float
    unique: float
    optimum: Allocation  # the law's minimum under the limit
    grid_optimum: Allocation  # the datablations README's grid search, for comparison
    unconstrained: Allocation  # the base law's Chinchilla plan with unlimited unique data
    naive: Allocation  # the unconstrained (N, D) trained under the limit
    equivalent_flops: float  # compute the unconstrained plan needs to reach optimum.loss
    ci: dict[str, tuple[float, float]] | None

    @property
    def epochs(self) -> float:
        return self.optimum.d / min(self.unique, self.optimum.d)

    @property
    def loss_penalty(self) -> float:
        return self.optimum.loss - self.unconstrained.loss

    @property
    def compute_penalty(self) -> float:
        """C over the unconstrained compute for the same loss, minus 1: the extra compute the limit costs."""
        return self.flops / self.equivalent_flops - 1.0


def make_data_constrained_plan(
    source: str | None, fit_path: str | None, flops: float, unique: float
) -> DataConstrainedPlan:
    """The plan for ``flops`` and ``unique`` under a built-in law (``source``) or a fit file."""
    for value, what in ((flops, "--flops"), (unique, "--unique-tokens")):
        if not (math.isfinite(value) and value > 0):
            raise ScalingError(f"{what} must be a finite positive number, got {value!r}")
    fitted = load_data_constrained_fit(fit_path) if fit_path else None
    law = fitted.law if fitted else get_data_constrained_law(source or "muennighoff2023")
    optimum = law.optimum(flops, unique)
    unconstrained = law.base.compute_optimal(flops)
    naive_loss = float(law.loss(unconstrained.n, unconstrained.d, min(unique, unconstrained.d)))
    ci = None
    if fitted is not None and fitted.samples is not None and len(fitted.samples) >= 2:
        draws = [_draw(row, flops, unique) for row in fitted.samples[:MAX_DRAWS]]
        cols = np.array(draws, dtype=float)
        ci = {k: percentile_ci(cols[:, i]) for i, k in enumerate(("n", "d", "epochs", "loss"))}
    return DataConstrainedPlan(
        law=law,
        flops=flops,
        unique=unique,
        optimum=optimum,
        grid_optimum=law.grid_optimum(flops, unique),
        unconstrained=unconstrained,
        naive=Allocation(unconstrained.n, unconstrained.d, naive_loss),
        equivalent_flops=law.base.optimal_flops_for_loss(optimum.loss),
        ci=ci,
    )


def _draw(row: np.ndarray, flops: float, unique: float) -> tuple[float, float, float, float]:
    law = DataConstrainedLaw(ChinchillaLaw(*row[:5]), row[5], row[6])
    best = law.optimum(flops, unique)
    return best.n, best.d, best.d / min(unique, best.d), best.loss


def plan_text(plan: DataConstrainedPlan, si: Any) -> list[str]:
    """The plan as ``scaling plan`` prints it (``si`` formats sizes as K/M/B/T)."""
    o, u, ci = plan.optimum, plan.unconstrained, plan.ci

    def interval(key: str, fmt: Any) -> str:
        return f"  [95% CI {fmt(ci[key][0])} .. {fmt(ci[key][1])}]" if ci and key in ci else ""

    g = plan.grid_optimum
    return [
        f"Data-constrained plan for C = {plan.flops:.3g} FLOPs with U = {si(plan.unique)} unique tokens",
        f"{'law':<15}{plan.law.name}: {plan.law.description}",
        f"{'':<15}R_D* = {float(plan.law.r_d):.4g}, R_N* = {float(plan.law.r_n):.4g}; loss in nats/token on {plan.law.corpus}",
        f"{'N':<15}{si(o.n)} parameters{interval('n', si)}",
        f"{'D':<15}{si(o.d)} tokens{interval('d', si)}",
        f"{'epochs':<15}{plan.epochs:.3g}{interval('epochs', lambda v: f'{v:.3g}')}",
        f"{'loss':<15}{o.loss:.4f}{interval('loss', lambda v: f'{v:.4f}')}",
        f"{'grid search':<15}{si(g.n)} on {si(g.d)} tokens, loss {g.loss:.10g} (the datablations README's 500-step grid)",
        "",
        f"{'unconstrained':<15}{si(u.n)} on {si(u.d)} tokens, loss {u.loss:.4f} (Chinchilla optimum of the base law, unlimited data)",
        f"{'  under limit':<15}the same N, D on {si(plan.unique)} unique tokens ({u.d / min(plan.unique, u.d):.3g} epochs): loss {plan.naive.loss:.4f}",
        f"{'loss penalty':<15}{plan.loss_penalty:+.4f} nats/token ({plan.loss_penalty / u.loss:+.2%}) against unlimited data",
        f"{'compute':<15}unlimited data reaches loss {o.loss:.4f} with {plan.equivalent_flops:.3g} FLOPs: "
        f"the limit costs {plan.compute_penalty:+.1%} compute",
    ]


def plan_json(plan: DataConstrainedPlan) -> dict[str, Any]:
    def alloc(a: Allocation) -> dict[str, float]:
        return {"n": a.n, "d": a.d, "loss": a.loss, "flops_6nd": a.flops}

    return {
        "law": plan.law.name,
        "R_D": float(plan.law.r_d),
        "R_N": float(plan.law.r_n),
        "flops": plan.flops,
        "unique_tokens": plan.unique,
        "optimum": {**alloc(plan.optimum), "epochs": plan.epochs},
        "grid_optimum": alloc(plan.grid_optimum),
        "unconstrained": alloc(plan.unconstrained),
        "unconstrained_under_limit": alloc(plan.naive),
        "loss_penalty": plan.loss_penalty,
        "equivalent_unconstrained_flops": plan.equivalent_flops,
        "compute_penalty": plan.compute_penalty,
        "ci95": plan.ci,
    }
