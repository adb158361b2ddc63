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
from scaling.plan.fitted_law import NO_DRAWS_HINT, read_fit_json
from scaling.progress import PhaseProgress

#: The quantities the plan prints that each bootstrap draw gives a value of (keys of ``ci95``).
DRAW_QUANTITIES: tuple[str, ...] = (
    "n",
    "d",
    "epochs",
    "loss",
    "grid_n",
    "grid_d",
    "grid_loss",
    "unconstrained_n",
    "unconstrained_d",
    "unconstrained_loss",
    "unconstrained_epochs",
    "unconstrained_under_limit_loss",
    "loss_penalty",
    "loss_penalty_relative",
    "equivalent_unconstrained_flops",
    "compute_penalty",
    "R_D",
    "R_N",
)


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
    ci: dict[str, tuple[float, float]] | None  # keys DRAW_QUANTITIES
    n_draws: int = 0  # bootstrap draws behind ``ci``
    from_fit: bool = False  # a fit file (which could carry draws), not a published law

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
    """The plan for ``flops`` and ``unique`` under a built-in law (``source``) or a fit file.

    A fit with bootstrap draws gives every printed number a 95% interval: each draw's law is planned
    exactly as the point law is (:func:`_plan_values`), on every draw.
    """
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
        progress = PhaseProgress("plan: the data-constrained optimum of every bootstrap draw", len(fitted.samples))
        draws = []
        for i, row in enumerate(fitted.samples):
            draws.append(_plan_values(_law_of_row(row), flops, unique))
            progress.update(i + 1)
        progress.close()
        cols = np.array(draws, dtype=float)
        ci = {k: percentile_ci(cols[:, i]) for i, k in enumerate(DRAW_QUANTITIES)}
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
        n_draws=0 if ci is None else len(fitted.samples),  # type: ignore[union-attr]
        from_fit=fitted is not None,
    )


def _law_of_row(row: np.ndarray) -> DataConstrainedLaw:
    """One bootstrap row (E, A, B, alpha, beta, R_D*, R_N*) as a law."""
    return DataConstrainedLaw(ChinchillaLaw(*row[:5]), row[5], row[6])


def _plan_values(law: DataConstrainedLaw, flops: float, unique: float) -> tuple[float, ...]:
    """The :data:`DRAW_QUANTITIES` of one law's plan, through the same methods the point plan uses."""
    with np.errstate(all="ignore"):
        best = law.optimum(flops, unique)
        grid = law.grid_optimum(flops, unique)
        free = law.base.compute_optimal(flops)
        naive = float(law.loss(free.n, free.d, min(unique, free.d)))
        equivalent = float(law.base.optimal_flops_for_loss(best.loss))
        return (
            best.n,
            best.d,
            best.d / min(unique, best.d),
            best.loss,
            grid.n,
            grid.d,
            grid.loss,
            float(free.n),
            float(free.d),
            float(free.loss),
            float(free.d) / min(unique, float(free.d)),
            naive,
            best.loss - float(free.loss),
            (best.loss - float(free.loss)) / float(free.loss),
            equivalent,
            flops / equivalent - 1.0,
            float(law.r_d),
            float(law.r_n),
        )


def plan_text(plan: DataConstrainedPlan, si: Any) -> list[str]:
    """The plan as ``scaling plan`` prints it (``si`` formats sizes as K/M/B/T); with draws, every number's CI."""
    o, u, ci = plan.optimum, plan.unconstrained, plan.ci

    def interval(key: str, fmt: Any) -> str:
        return f"  [95% CI {fmt(ci[key][0])} .. {fmt(ci[key][1])}]" if ci and key in ci else ""

    def span(key: str, fmt: Any) -> str:
        assert ci is not None
        return f"{fmt(ci[key][0])} .. {fmt(ci[key][1])}"

    def under(*parts: str) -> list[str]:
        """A line of intervals under the sentence whose numbers they belong to (only with draws)."""
        return [f"{'':<15}95% CI: {', '.join(parts)}"] if ci else []

    def four(v: float) -> str:
        return f"{v:.4f}"

    g = plan.grid_optimum
    lines = [
        f"Data-constrained plan for C = {plan.flops:.3g} FLOPs with U = {si(plan.unique)} unique tokens",
        f"{'law':<15}{plan.law.name}: {plan.law.description}",
        f"{'':<15}R_D* = {float(plan.law.r_d):.4g}{interval('R_D', lambda v: f'{v:.4g}')}, "
        f"R_N* = {float(plan.law.r_n):.4g}{interval('R_N', lambda v: f'{v:.4g}')}; "
        f"loss in nats/token on {plan.law.corpus}",
        f"{'N':<15}{si(o.n)} parameters{interval('n', si)}",
        f"{'D':<15}{si(o.d)} tokens{interval('d', si)}",
        f"{'epochs':<15}{plan.epochs:.3g}{interval('epochs', lambda v: f'{v:.3g}')}",
        f"{'loss':<15}{o.loss:.4f}{interval('loss', four)}",
        f"{'grid search':<15}{si(g.n)} on {si(g.d)} tokens, loss {g.loss:.10g} (the datablations README's 500-step grid)",
        *(under(f"N {span('grid_n', si)}", f"D {span('grid_d', si)}", f"loss {span('grid_loss', four)}") if ci else []),
        "",
        f"{'unconstrained':<15}{si(u.n)} on {si(u.d)} tokens, loss {u.loss:.4f} (Chinchilla optimum of the base law, unlimited data)",
        *(
            under(
                f"N {span('unconstrained_n', si)}",
                f"D {span('unconstrained_d', si)}",
                f"loss {span('unconstrained_loss', four)}",
            )
            if ci
            else []
        ),
        f"{'  under limit':<15}the same N, D on {si(plan.unique)} unique tokens ({u.d / min(plan.unique, u.d):.3g} epochs): loss {plan.naive.loss:.4f}",
        *(
            under(
                f"epochs {span('unconstrained_epochs', lambda v: f'{v:.3g}')}",
                f"loss {span('unconstrained_under_limit_loss', four)}",
            )
            if ci
            else []
        ),
        f"{'loss penalty':<15}{plan.loss_penalty:+.4f} nats/token ({plan.loss_penalty / u.loss:+.2%}) against unlimited data",
        *(
            under(
                f"{span('loss_penalty', lambda v: f'{v:+.4f}')} nats/token",
                f"{span('loss_penalty_relative', lambda v: f'{v:+.2%}')}",
            )
            if ci
            else []
        ),
        f"{'compute':<15}unlimited data reaches loss {o.loss:.4f} with {plan.equivalent_flops:.3g} FLOPs: "
        f"the limit costs {plan.compute_penalty:+.1%} compute",
        *(
            under(
                f"{span('equivalent_unconstrained_flops', lambda v: f'{v:.3g}')} FLOPs",
                f"{span('compute_penalty', lambda v: f'{v:+.1%}')} compute",
            )
            if ci
            else []
        ),
    ]
    if ci:
        lines.append(
            f"(CI: percentiles over {plan.n_draws} bootstrap draws, each draw's law planned as the point law is)"
        )
    elif plan.from_fit:
        lines.append(NO_DRAWS_HINT)
    return lines


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
        "n_draws": plan.n_draws,
    }
