"""Resolve a config into a concrete run: shape, counts, batch, budget, schedule.

Everything that is decided before the first step lives here, so that a bad
config fails with one clear line before any training starts, and the sweep
tools can ask what a config *would* train without training it (a sweep's
``train.dry_run=true`` lists it). This is the only resolver of a run: tests,
benchmarks and the README's tables go through it too.

It takes a composed config (``scaling.config``'s schema: every key present),
read group by group through the schema's dataclasses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.accounting import FlopCounts, ParamCounts, count_params, flops_per_token
from scaling.config import GridConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
from scaling.errors import ScalingError
from scaling.models import VARIANT_FIELDS, ModelShape
from scaling.records import FLOP_CONVENTIONS, PARAM_COUNTS
from scaling.train.schedule import Schedule


@dataclass(frozen=True)
class Horizon:
    """One (N, D) point a run produces: the main horizon or a WSD cooldown branch."""

    steps: int
    fraction: float  # of the main budget; 1.0 for the main run


@dataclass
class RunSpec:
    shape: ModelShape
    params: ParamCounts
    flops_per_token: FlopCounts
    batch_size: int  # global sequences per optimizer step
    micro_batch_size: int  # sequences per forward pass on one process
    grad_accum: int
    steps: int
    lr: float
    warmup_steps: int
    schedule: Schedule
    horizons: list[Horizon]
    eval_steps: list[int]
    derived: dict[str, Any] = field(default_factory=dict)

    @property
    def context(self) -> int:
        return self.shape.context

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.shape.context

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    def schedule_for(self, horizon: Horizon) -> Schedule:
        """The schedule of a horizon: the same warmup and stable phase, its own cooldown."""
        s = self.schedule
        return Schedule(s.name, s.lr, s.warmup_steps, horizon.steps, s.min_lr_ratio, s.cooldown_frac)


def merge_wsd_budgets(cfg: dict[str, Any]) -> dict[str, Any]:
    """With ``schedule=wsd`` and ``grid.tokens_per_param``, map every budget of a size to one run.

    The job for budget b becomes the run at the largest budget B with cooldown
    branches at b'/B for every smaller b': all jobs of one size share a run_id,
    the first trains it (writing one record per budget), the others skip.
    """
    if cfg["grid"]["kind"] == "isoflop":
        return _merge_isoflop_wsd(cfg)
    budgets = cfg["grid"]["tokens_per_param"]
    if not budgets or cfg["schedule"]["name"] != "wsd":
        return cfg
    tpp = cfg["train"]["tokens_per_param"]
    budgets = sorted(float(b) for b in budgets)
    if tpp is None or float(tpp) not in budgets:
        raise ScalingError(f"train.tokens_per_param={tpp} is not one of grid.tokens_per_param={budgets}")
    largest = budgets[-1]
    merged = {**cfg, "train": {**cfg["train"], "tokens_per_param": largest}}
    merged["schedule"] = {**cfg["schedule"], "branches": [b / largest for b in budgets[:-1]]}
    return merged


def job_vocab(cfg: Mapping[str, Any]) -> tuple[int, str]:
    """The vocab a job will see, without loading a corpus, and where that number comes from.

    model.vocab_size when set, else the local BPE's size, else GPT-2's as a stand-in
    for a Hugging Face tokenizer (its true size is known only once it is loaded).
    """
    data, model = cfg["data"], cfg["model"]
    if model["vocab_size"]:
        return int(model["vocab_size"]), "model.vocab_size"
    if data["kind"] == "pysource" and data["tokenizer"] == "bpe":
        return int(data["vocab_size"]), "data.vocab_size of the local BPE"
    return 50257, "GPT-2's, a stand-in until the tokenizer is loaded"


def _merge_isoflop_wsd(cfg: dict[str, Any]) -> dict[str, Any]:
    """With ``schedule=wsd`` and ``grid.budgets``/``grid.offsets``, one run per size serves every budget.

    The isoFLOP job (C, offset) picks a shape; every other (C', offset') of the grid that picks the
    same shape spends C' with the same N, so its D is C'/C of this job's. All those jobs become the
    run at the largest such C, with a WSD cooldown branch at each smaller one (Hagele et al. 2024):
    the branch decays to its own horizon, so each record is a valid (N, D) point of its budget,
    unlike a mid-run checkpoint of a cosine run. The jobs share a run_id; the first trains it.
    """
    grid = cfg["grid"]
    budgets, offsets = grid["budgets"], grid["offsets"]
    if not budgets or cfg["schedule"]["name"] != "wsd":
        return cfg
    if not offsets:
        raise ScalingError("grid.budgets with schedule=wsd needs grid.offsets (the sweep's offsets) too")
    train = cfg["train"]
    budgets = sorted(float(b) for b in budgets)
    offsets = [float(o) for o in offsets]
    flops, offset = float(train["flops"] or 0), float(grid["offset"])
    if not any(math.isclose(flops, b, rel_tol=1e-9) for b in budgets) or offset not in offsets:
        raise ScalingError(
            f"train.flops={flops:g}, grid.offset={offset:g} is not a point of grid.budgets={budgets} x grid.offsets={offsets}"
        )
    vocab, _ = job_vocab(cfg)  # every probe at one vocab, as the sweep's resolver sees it
    shape = resolve_shape(cfg, vocab)
    served: dict[float, float] = {}  # budget -> the offset that lands on this shape there
    for budget in budgets:
        for off in offsets:
            probe = {**cfg, "train": {**train, "flops": budget}, "grid": {**grid, "offset": off}}
            if resolve_shape(probe, vocab) == shape:
                served.setdefault(budget, off)
    largest = max(served)
    merged = {**cfg, "train": {**train, "flops": largest}, "grid": {**grid, "offset": served[largest]}}
    merged["schedule"] = {**cfg["schedule"], "branches": [b / largest for b in sorted(served) if b < largest]}
    return merged


def resolve_shape(cfg: Mapping[str, Any], vocab_size: int) -> ModelShape:
    """The model shape: explicit fields, the isoFLOP grid's, or the grid's shape for ``model.target_params``."""
    model, grid, train = ModelConfig(**cfg["model"]), GridConfig(**cfg["grid"]), TrainConfig(**cfg["train"])
    arch = {k: cfg["model"][k] for k in VARIANT_FIELDS if cfg["model"].get(k) is not None}
    if vocab_size and model.vocab_size and int(model.vocab_size) < vocab_size:
        raise ScalingError(f"model.vocab_size={model.vocab_size} is smaller than the tokenizer's {vocab_size}")
    vocab = int(model.vocab_size or vocab_size)
    if grid.kind == "isoflop":
        from scaling.grid import isoflop_point

        if train.flops is None:
            raise ScalingError("grid.kind=isoflop needs the budget as train.flops")
        if grid.aspect is not None and len(grid.aspect) != 2:
            raise ScalingError(f"grid.aspect must be [lo, hi], got {list(grid.aspect)}")
        shape, _ = isoflop_point(
            float(train.flops),
            grid.offset,
            family=model.family,
            vocab_size=vocab,
            context=model.context,
            convention=train.flops_convention,
            count=grid.count,
            prior=grid.prior,
            ratio=grid.ratio,
            tie_embeddings=model.tie_embeddings,
            aspect=None if grid.aspect is None else (float(grid.aspect[0]), float(grid.aspect[1])),
            head_dim=grid.head_dim,
            n_layers=grid.n_layers,
            arch=arch,
        )
        return shape
    if grid.kind != "none":
        raise ScalingError(f"unknown grid.kind {grid.kind!r}; known: none, isoflop")
    if model.target_params is None:
        return ModelShape.from_config(cfg["model"], vocab_size=vocab_size)
    from scaling.grid import shape_for_params

    return shape_for_params(
        float(model.target_params),
        model.family,
        count=model.target_count,
        vocab_size=vocab,
        context=model.context,
        tie_embeddings=model.tie_embeddings,
        n_layers=grid.n_layers,  # a fixed-depth ladder here too
        arch=arch,
    )


def _hparams(cfg: Mapping[str, Any], shape: ModelShape) -> dict[str, float]:
    """Learning rate, batch and warmup from N through the configured laws (the ``hparams`` node)."""
    from scaling.grid import HParamLaws, hparams_for_shape

    laws = HParamLaws.from_mapping(cfg["hparams"])
    hp = hparams_for_shape(shape, laws)
    n = getattr(count_params(shape), laws.count)
    return {"lr": hp.lr, "batch_tokens": hp.batch_tokens, "warmup_tokens": hp.warmup_tokens, "n_for_hparams": n}


def _budget_tokens(train: TrainConfig, params: ParamCounts, fpt: FlopCounts) -> tuple[float, str]:
    budgets = {"tokens": train.tokens, "tokens_per_param": train.tokens_per_param, "flops": train.flops}
    given = {k: v for k, v in budgets.items() if v is not None}
    if len(given) != 1:
        raise ScalingError(
            "set exactly one budget: train.tokens, train.tokens_per_param or train.flops"
            + (f" (got {', '.join(given)})" if given else "")
        )
    ((kind, value),) = given.items()
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ScalingError(f"train.{kind} must be a positive number, got {value}")
    if kind == "tokens":
        return value, f"tokens={value:g}"
    if kind == "tokens_per_param":
        count = train.params_for_budget
        if count not in PARAM_COUNTS:
            raise ScalingError(f"train.params_for_budget={count!r}; known: {', '.join(PARAM_COUNTS)}")
        return value * getattr(params, count), f"tokens_per_param={value:g} x N_{count}"
    conv = train.flops_convention
    if conv not in FLOP_CONVENTIONS:
        raise ScalingError(f"train.flops_convention={conv!r}; known: {', '.join(FLOP_CONVENTIONS)}")
    return value / getattr(fpt, conv), f"flops={value:g} under {conv}"


def log_spaced_steps(total: int, count: int, first: int = 1) -> list[int]:
    """About ``count`` log-spaced eval steps in [first, total], always ending at ``total``."""
    first = max(1, min(first, total))
    points = np.unique(np.round(np.geomspace(first, total, max(2, count))).astype(int))
    return sorted({int(p) for p in points if 1 <= p <= total} | {total})


def resolve_spec(
    cfg: Mapping[str, Any], vocab_size: int, world_size: int = 1, split_tokens: Mapping[str, int] | None = None
) -> RunSpec:
    """Resolve the whole run, raising ScalingError on any impossible setting.

    ``split_tokens`` (split name -> token count) lets the shape be checked against the corpus.
    """
    shape = resolve_shape(cfg, vocab_size)
    for split, n in (split_tokens or {}).items():
        if n <= shape.context + 1:
            raise ScalingError(f"model.context={shape.context} is longer than the {split} split ({n} tokens)")
    params, fpt = count_params(shape), flops_per_token(shape)
    train, optim = TrainConfig(**cfg["train"]), OptimConfig(**cfg["optim"])
    sched = ScheduleConfig(**cfg["schedule"])
    laws = None
    if optim.lr is None or train.batch_size is None or sched.warmup_tokens is None:
        laws = _hparams(cfg, shape)

    if train.batch_size is not None:
        batch_size = int(train.batch_size)
    else:
        batch_size = max(1, int(round(laws["batch_tokens"] / shape.context)))  # type: ignore[index]
    if batch_size % world_size:
        batch_size = math.ceil(batch_size / world_size) * world_size
    per_rank = batch_size // world_size
    micro = int(train.micro_batch_size or per_rank)
    if micro <= 0 or per_rank % micro:
        raise ScalingError(
            f"train.micro_batch_size={micro} must divide the per-process batch {per_rank} (batch_size={batch_size}, {world_size} processes)"
        )

    tokens, how = _budget_tokens(train, params, fpt)
    tokens_per_step = batch_size * shape.context
    if tokens < tokens_per_step:
        raise ScalingError(
            f"the budget ({how} -> {tokens:.4g} tokens) is smaller than one batch ({batch_size} x {shape.context} = {tokens_per_step} tokens)"
        )
    steps = max(1, int(round(tokens / tokens_per_step)))

    lr = float(optim.lr) if optim.lr is not None else float(laws["lr"])  # type: ignore[index]
    warmup_tokens = float(sched.warmup_tokens) if sched.warmup_tokens is not None else laws["warmup_tokens"]  # type: ignore[index]
    name = sched.name
    fractions = sorted({float(f) for f in sched.branches if 0 < float(f) < 1} | {1.0})
    if len(fractions) > 1 and name != "wsd":
        raise ScalingError(f"schedule.branches needs schedule=wsd (got {name}); with cosine each budget is its own run")
    horizons = [Horizon(max(1, int(round(f * steps))), f) for f in fractions]
    if len({h.steps for h in horizons}) != len(horizons):
        raise ScalingError(
            "schedule.branches give two budgets with the same number of steps; use fewer or larger budgets"
        )
    # Warmup is capped by the shortest horizon so every branch shares one stable phase.
    warmup_steps = int(min(round(warmup_tokens / tokens_per_step), float(sched.max_warmup_frac) * horizons[0].steps))
    schedule = Schedule(
        name=name,
        lr=lr,
        warmup_steps=max(1, warmup_steps) if warmup_tokens > 0 else 0,
        total_steps=steps,
        min_lr_ratio=float(sched.min_lr_ratio),
        cooldown_frac=float(sched.cooldown_frac),
    )
    eval_steps = log_spaced_steps(steps, int(train.eval_points), first=max(1, schedule.warmup_steps // 2))
    for h in horizons:  # every branch start and end is an eval point
        eval_steps = sorted(set(eval_steps) | {h.steps})
    derived = {"budget": how, "tokens_requested": tokens, "warmup_tokens": schedule.warmup_steps * tokens_per_step}
    if laws:
        derived["hparam_laws"] = laws
    return RunSpec(
        shape=shape,
        params=params,
        flops_per_token=fpt,
        batch_size=batch_size,
        micro_batch_size=micro,
        grad_accum=per_rank // micro,
        steps=steps,
        lr=lr,
        warmup_steps=schedule.warmup_steps,
        schedule=schedule,
        horizons=horizons,
        eval_steps=eval_steps,
        derived=derived,
    )
