"""Plan a training run from a scaling law: model size, tokens, shape, cost.

``scaling plan --flops C`` answers "what should I train with C FLOPs?": the law's
compute-optimal N and D (Hoffmann et al. 2022, eq. 4), a concrete transformer
shape for N (:func:`scaling.grid.shape_for_params`), its exact training FLOPs and
GPU-hours, and optionally the inference-aware choice (Sardana et al. 2023) and
where well-known models sit on the law. Pure numpy/scipy: no torch import.

With a fitted law that carries bootstrap draws (``scaling fit --bootstrap K --json``) every estimated
number gets a 95% percentile interval from the draws, each draw put through the very formula that
gives the point value (:func:`draw_intervals`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scaling.accounting import ParamCounts, count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.grid.shapes import shape_for_params
from scaling.intervals import percentile_ci
from scaling.laws import Allocation, ChinchillaLaw, Law, chinchilla_inference_optimal, inference_optimal
from scaling.models import ModelShape
from scaling.plan.fitted_law import FittedLaw
from scaling.progress import PhaseProgress

#: A model is called compute-optimal when its N is within this factor of the law's N_opt at its own C = 6ND.
OPTIMAL_FACTOR = 1.5

#: A draw's shape is searched for its N_opt rounded to this step in log N (1%), so the draws near each
#: other share one search: well inside the 5% by which any planned shape may miss its N, and it bounds
#: the searches to a few hundred however many draws there are.
DRAW_SHAPE_STEP = math.log(1.01)

#: A 95% interval per printed quantity (keys as in the plan's JSON ``ci95``).
Intervals = dict[str, tuple[float, float]]


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
    ci: Intervals | None = (
        None  # aware n, d, ..., total_flops; the same for the compute-optimal row (chinchilla_*); saving
    )

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
    price_per_gpu_hour: float | None = None
    n_draws: int = 0  # bootstrap draws behind ``ci`` (0: no intervals)

    def gpu_hours(self, flops: Any) -> Any:
        return gpu_hours(flops, self.mfu, self.peak_tflops)

    def cost(self, flops: float) -> float | None:
        """What training ``flops`` costs at ``price_per_gpu_hour`` (None without a price)."""
        return None if self.price_per_gpu_hour is None else self.gpu_hours(flops) * self.price_per_gpu_hour


def gpu_hours(flops: Any, mfu: float, peak_tflops: float) -> Any:
    """GPU-hours to run ``flops`` at ``mfu`` of ``peak_tflops``: the planner's one throughput model."""
    return flops / (mfu * peak_tflops * 1e12) / 3600.0


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
    price_per_gpu_hour: float | None = None,
) -> Plan:
    """Everything ``scaling plan`` prints, computed (with intervals when ``law`` is a fit with draws)."""
    c = _finite_positive(flops, "--flops")
    mfu = _finite_positive(mfu, "--mfu")
    if mfu > 1:
        raise ScalingError(f"--mfu is a fraction of peak and must be at most 1, got {mfu}")
    peak = _finite_positive(peak_tflops, "--peak-tflops")
    price = None if price_per_gpu_hour is None else _finite_positive(price_per_gpu_hour, "--price-per-gpu-hour")
    fitted = law if isinstance(law, FittedLaw) else None
    base: Law = fitted.law if fitted else law  # type: ignore[union-attr]
    optimum = base.compute_optimal(c)
    shape_kw = {"family": family, "vocab_size": vocab_size, "context": context, "tie_embeddings": tie_embeddings}
    inference = None
    t = None
    if inference_tokens is not None:
        t = _finite_positive(inference_tokens, "--inference-tokens", allow_zero=True)
        aware = inference_optimal(base, optimum, t)
        inference = InferencePlan(t, optimum, aware, plan_shape(aware, base, **shape_kw))
    plan = Plan(
        law=base,
        flops=c,
        optimum=optimum,
        ci=None,
        shape=plan_shape(optimum, base, **shape_kw),
        mfu=mfu,
        peak_tflops=peak,
        inference=inference,
        price_per_gpu_hour=price,
    )
    if fitted is None or fitted.samples is None or len(fitted.samples) < 2:
        return plan
    ci, inference_ci = draw_intervals(plan, fitted, shape_kw, t)
    if inference is not None:
        inference = replace(inference, ci=inference_ci)
    return replace(plan, ci=ci, inference=inference, n_draws=len(fitted.samples) if ci else 0)


def draw_intervals(
    plan: Plan, fitted: FittedLaw, shape_kw: dict[str, Any], inference_tokens: float | None
) -> tuple[Intervals | None, Intervals | None]:
    """95% intervals of every number the plan prints, each draw through the point value's own formula.

    Per draw: N_opt, D_opt, tokens/param and loss at C (:meth:`FittedLaw.allocation_ci`, Hoffmann et
    al. 2022, eq. 4); the exact training FLOPs of a shape searched for the draw's N_opt times its D_opt,
    and from them GPU-hours = FLOPs / (MFU x peak) and the cost at the price (6ND is C for every draw,
    so its hours and cost have no spread); and with T inference tokens the draw's inference-aware optimum
    at its own compute-optimal loss (Sardana et al. 2023), its train, inference and total FLOPs and the
    saving. Draws whose numbers overflow are left out (:func:`scaling.intervals.percentile_ci`).
    """
    ci = fitted.allocation_ci(plan.flops)
    if ci is None:
        return None, None
    draws = ChinchillaLaw.from_rows(fitted.samples)
    at = draws.compute_optimal(plan.flops)
    with np.errstate(all="ignore"):
        values: dict[str, Any] = {"gpu_hours_six_n": plan.gpu_hours(at.flops)}
        if plan.shape.flops_exact is not None:
            values["flops_exact"] = _exact_flops_per_token(at.n, plan.optimum.n, plan.law, shape_kw) * at.d
            values["gpu_hours_exact"] = plan.gpu_hours(values["flops_exact"])
        if plan.price_per_gpu_hour is not None:
            for key in ("six_n", "exact"):
                if f"gpu_hours_{key}" in values:
                    values[f"cost_{key}"] = values[f"gpu_hours_{key}"] * plan.price_per_gpu_hour
    ci.update({key: percentile_ci(v) for key, v in values.items()})
    if inference_tokens is None:
        return ci, None
    t = inference_tokens
    aware = chinchilla_inference_optimal(draws, at.loss, t)

    def columns(a: Allocation, prefix: str) -> dict[str, Any]:
        """The inference table's columns of one row (``prefix`` tells the rows apart)."""
        return {
            f"{prefix}{key}": value
            for key, value in (
                ("n", a.n),
                ("d", a.d),
                ("tokens_per_param", a.d / a.n),
                ("loss", a.loss),
                ("flops", a.flops),
                ("infer_flops", 2.0 * a.n * t),
                ("total_flops", a.flops + 2.0 * a.n * t),
            )
        }

    with np.errstate(all="ignore"):
        inference_values = columns(aware, "") | columns(at, "chinchilla_")
        inference_values["saving"] = 1.0 - inference_values["total_flops"] / inference_values["chinchilla_total_flops"]
    return ci, {key: percentile_ci(v) for key, v in inference_values.items()}


def _exact_flops_per_token(n: np.ndarray, centre: float, law: Law, shape_kw: dict[str, Any]) -> np.ndarray:
    """Exact training FLOPs per token of a shape for each N (NaN where no shape fits, e.g. an overflowed draw).

    Shapes are searched once per :data:`DRAW_SHAPE_STEP` bin of log N, bins counted from ``centre`` (the
    point N_opt), so a draw at the point gets the point's own shape. At billions of parameters a search
    takes ~20 ms, so the few hundred bins of 1000 draws take seconds and report progress.
    """
    out = np.full(np.shape(n), np.nan)
    ok = np.isfinite(n) & (n > 0)
    bins, where = np.unique(np.round(np.log(n[ok] / centre) / DRAW_SHAPE_STEP), return_inverse=True)
    per_bin = np.full(bins.shape, np.nan)
    progress = PhaseProgress("plan: a shape per bootstrap draw's N_opt", len(bins))
    for i, step in enumerate(bins):
        try:
            shape = shape_for_params(centre * math.exp(step * DRAW_SHAPE_STEP), count=law.n_count, **shape_kw)
            per_bin[i] = flops_per_token(shape).exact
        except ScalingError:
            pass  # no shape of this family reaches that N: the draw drops out of the hours interval
        progress.update(i + 1)
    progress.close()
    out[ok] = per_bin[where]
    return out


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
    ci: Intervals | None = None  # 95% intervals of loss, n_opt, n_over_n_opt, efficiency (a fit with draws)

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


def place_models(law: Law | FittedLaw, models: tuple[ReferenceModel, ...] = REFERENCE_MODELS) -> list[Placement]:
    """Place ``models`` on ``law``: C = 6ND, predicted loss, N_opt(C) and compute-optimality.

    ``efficiency`` is left out (None) for laws whose optimum rule is not the
    minimiser of their own L(N, D) (Kaplan's C^0.73 frontier), where it would exceed 1. A fitted law
    with bootstrap draws also gives each placement's 95% intervals (:func:`_placement_intervals`).
    """
    fitted = law if isinstance(law, FittedLaw) else None
    base: Law = fitted.law if fitted else law  # type: ignore[union-attr,assignment]
    out = []
    for m in models:
        c = 6.0 * m.n * m.d
        loss = float(base.loss(m.n, m.d))
        optimum = base.compute_optimal(c)
        eff = base.optimal_flops_for_loss(loss) / c if base.optimum_minimises_loss else None
        ci = _placement_intervals(fitted, m) if fitted is not None else None
        out.append(Placement(m, c, loss, optimum, eff, ci))
    return out


def _placement_intervals(fitted: FittedLaw, model: ReferenceModel) -> Intervals | None:
    """95% intervals of a placement's loss, N_opt(C), N/N_opt and efficiency over the fit's draws, each draw
    through the point value's formula (Hoffmann et al. 2022, eq. 2 and 4); None without draws."""
    if fitted.samples is None or len(fitted.samples) < 2:
        return None
    draws = ChinchillaLaw.from_rows(fitted.samples)
    c = 6.0 * model.n * model.d
    with np.errstate(all="ignore"):
        loss = np.asarray(draws.loss(model.n, model.d), dtype=float)
        n_opt = np.asarray(draws.compute_optimal(c).n, dtype=float)
        values = {
            "loss": loss,
            "n_opt": n_opt,
            "n_over_n_opt": model.n / n_opt,
            "efficiency": np.asarray(draws.optimal_flops_for_loss(loss), dtype=float) / c,
        }
    return {key: percentile_ci(v) for key, v in values.items()}
