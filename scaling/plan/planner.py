"""Plan a training run from a scaling law: model size, tokens, shape, cost.

``scaling plan --flops C`` answers "what should I train with C FLOPs?": the law's
compute-optimal N and D (Hoffmann et al. 2022, eq. 4), a concrete transformer
shape for N (:func:`scaling.grid.shape_for_params`), its exact training FLOPs and
GPU-hours, and optionally the inference-aware choice (Sardana et al. 2023) and
where well-known models sit on the law. Pure numpy/scipy: no torch import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.accounting import ParamCounts, count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.grid.shapes import shape_for_params
from scaling.laws import Allocation, Law, inference_optimal
from scaling.models import ModelShape
from scaling.plan.fitted_law import FittedLaw

#: A model is called compute-optimal when its N is within this factor of the law's N_opt at its own C = 6ND.
OPTIMAL_FACTOR = 1.5


@dataclass(frozen=True)
class ShapePlan:
    """A concrete shape for a planned N (or why there is none) and what training it for D tokens costs."""

    shape: ModelShape | None
    params: ParamCounts | None
    error: str | None
    flops_exact: float | None  # exact FLOPs per token of the shape × D


@dataclass(frozen=True)
class InferencePlan:
    """Chinchilla-optimal vs inference-aware allocation for ``tokens`` inference tokens."""

    tokens: float
    chinchilla: Allocation
    aware: Allocation
    aware_shape: ShapePlan

    def total(self, alloc: Allocation) -> float:
        """Training 6ND plus inference 2N per token (Sardana et al. 2023)."""
        return alloc.flops + 2.0 * alloc.n * self.tokens

    @property
    def saving(self) -> float:
        return 1.0 - self.total(self.aware) / self.total(self.chinchilla)


@dataclass(frozen=True)
class Plan:
    law: Law
    flops: float
    optimum: Allocation
    ci: dict[str, tuple[float, float]] | None
    shape: ShapePlan
    mfu: float
    peak_tflops: float
    inference: InferencePlan | None

    def gpu_hours(self, flops: float) -> float:
        return flops / (self.mfu * self.peak_tflops * 1e12) / 3600.0


def _finite_positive(value: float, what: str, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ScalingError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ScalingError(f"{what} must be a finite {bound} number, got {value!r}")
    return x


def plan_shape(
    alloc: Allocation, law: Law, *, family: str, vocab_size: int, context: int, tie_embeddings: bool = False
) -> ShapePlan:
    """The shape whose ``law.n_count`` parameters are within 5% of ``alloc.n``; ``error`` says why when none is."""
    try:
        shape = shape_for_params(
            alloc.n,
            family,
            count=law.n_count,
            vocab_size=vocab_size,
            context=context,
            tie_embeddings=tie_embeddings,
        )
    except ScalingError as err:
        return ShapePlan(None, None, str(err), None)
    return ShapePlan(shape, count_params(shape), None, flops_per_token(shape).exact * alloc.d)


def make_plan(
    law: Law | FittedLaw,
    flops: float,
    *,
    family: str = "llama",
    vocab_size: int = 50304,
    context: int = 2048,
    tie_embeddings: bool = False,
    inference_tokens: float | None = None,
    mfu: float = 0.4,
    peak_tflops: float = 989.0,
) -> Plan:
    """Everything ``scaling plan`` prints, computed."""
    c = _finite_positive(flops, "--flops")
    mfu = _finite_positive(mfu, "--mfu")
    if mfu > 1:
        raise ScalingError(f"--mfu is a fraction of peak and must be at most 1, got {mfu}")
    peak = _finite_positive(peak_tflops, "--peak-tflops")
    fitted = law if isinstance(law, FittedLaw) else None
    base: Law = fitted.law if fitted else law  # type: ignore[union-attr]
    optimum = base.compute_optimal(c)
    shape_kw = {"family": family, "vocab_size": vocab_size, "context": context, "tie_embeddings": tie_embeddings}
    inference = None
    if inference_tokens is not None:
        t = _finite_positive(inference_tokens, "--inference-tokens", allow_zero=True)
        aware = inference_optimal(base, optimum, t)
        inference = InferencePlan(t, optimum, aware, plan_shape(aware, base, **shape_kw))
    return Plan(
        law=base,
        flops=c,
        optimum=optimum,
        ci=fitted.allocation_ci(c) if fitted else None,
        shape=plan_shape(optimum, base, **shape_kw),
        mfu=mfu,
        peak_tflops=peak,
        inference=inference,
    )


# ----------------------------------------------------------------------------- reference models


@dataclass(frozen=True)
class ReferenceModel:
    name: str
    n: float  # total parameters
    d: float  # training tokens
    source: str


REFERENCE_MODELS: tuple[ReferenceModel, ...] = (
    ReferenceModel("GPT-3", 175e9, 300e9, "Brown et al. 2020"),
    ReferenceModel("Gopher", 280e9, 300e9, "Rae et al. 2021"),
    ReferenceModel("Chinchilla", 70e9, 1.4e12, "Hoffmann et al. 2022"),
    ReferenceModel("LLaMA-7B", 6.7e9, 1.0e12, "Touvron et al. 2023"),
)


@dataclass(frozen=True)
class Placement:
    """A reference model on a law: its loss, the optimum at its budget, and the verdict."""

    model: ReferenceModel
    flops: float
    loss: float
    optimum: Allocation
    efficiency: float | None  # C the optimal allocation needs for the same loss, over C

    @property
    def ratio(self) -> float:
        return self.model.n / self.optimum.n

    @property
    def verdict(self) -> str:
        if self.ratio > OPTIMAL_FACTOR:
            return "no: N too large (undertrained)"
        if self.ratio < 1 / OPTIMAL_FACTOR:
            return "no: N too small (overtrained)"
        return "yes"


def place_models(law: Law, models: tuple[ReferenceModel, ...] = REFERENCE_MODELS) -> list[Placement]:
    """Place ``models`` on ``law``: C = 6ND, predicted loss, N_opt(C) and compute-optimality.

    ``efficiency`` is left out (None) for laws whose optimum rule is not the
    minimiser of their own L(N, D) (Kaplan's C^0.73 frontier), where it would exceed 1.
    """
    out = []
    for m in models:
        c = 6.0 * m.n * m.d
        loss = float(law.loss(m.n, m.d))
        optimum = law.compute_optimal(c)
        eff = law.optimal_flops_for_loss(loss) / c if law.optimum_minimises_loss else None
        out.append(Placement(m, c, loss, optimum, eff))
    return out
