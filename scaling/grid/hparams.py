"""Scale-dependent hyperparameters: learning rate, batch size and warmup as functions of N.

Why: Porian et al. 2024 ("Resolving Discrepancies in Compute-Optimal Scaling of
Language Models", sec. 3-4) show that one learning rate and batch size for all
model sizes, and a fixed long warmup, bias the fitted compute-optimal exponent
(they are two of the three factors that turn Hoffmann's a ≈ 0.5 into Kaplan's
0.73). They fit, for AdamW at sequence length 2048,

    lr*(N)    = 0.0047 · (N / 108e6)^(-1/3)
    batch*(N) = 160 sequences · (N / 108e6)^(2/3)   (= 327,680 tokens at N = 108M)

and use a warmup of N tokens. The OLMo 2 model ladder (Bhagia et al. 2024,
"Establishing Task Scaling Laws via Compute-Efficient Model Ladders";
OLMo-core's ladder run configurators) adopts exactly these three rules (and
halves the lr for its WSD schedule). They are the defaults here; every constant
is a field of :class:`HParamLaws`, filled from the Hydra ``hparams`` node
(whose keys and types are ``scaling.config.HParamsConfig``; the batch-law constants
are not Hydra keys, since a new key in the composed config would change every run id).

The laws were fitted on 5M-900M parameter models; outside that range the lr is
an extrapolation, hence the clamp to [lr_min, lr_max].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from scaling.accounting import count_params
from scaling.errors import ScalingError
from scaling.grid.shapes import PARAM_COUNTS
from scaling.models import ModelShape

_REF_PARAMS = 108e6  # Porian et al. 2024's reference model size


@dataclass(frozen=True)
class HParamLaws:
    """Constants of the hyperparameter laws (defaults: Porian et al. 2024 / OLMo 2 ladder)."""

    count: str = "with_head"  # which parameter count N means (Porian et al. count the output head)
    lr_ref: float = 0.0047
    lr_ref_params: float = _REF_PARAMS
    lr_exponent: float = -1.0 / 3.0
    lr_min: float = 1e-5
    lr_max: float = 2e-2
    batch_ref_tokens: float = 160.0 * 2048
    batch_ref_params: float = _REF_PARAMS
    batch_exponent: float = 2.0 / 3.0
    batch_min_tokens: int = 0  # 0: one sequence is the floor
    batch_max_tokens: int = 2**22
    # Warmup length before any cap; training caps it at schedule.max_warmup_frac of the run
    # (scaling.train.spec.resolve_spec), so short (undertrained) isoFLOP runs still decay.
    warmup_tokens_per_param: float = 1.0

    def __post_init__(self) -> None:
        if self.count not in PARAM_COUNTS:
            raise ScalingError(f"hparams.count must be one of {', '.join(PARAM_COUNTS)}, got {self.count!r}")
        for name in ("lr_ref", "lr_ref_params", "lr_min", "lr_max", "batch_ref_tokens", "batch_ref_params"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ScalingError(f"hparams.{name} must be a positive number, got {value}")
        if self.lr_min > self.lr_max:
            raise ScalingError(f"hparams.lr_min={self.lr_min} exceeds hparams.lr_max={self.lr_max}")
        if self.batch_min_tokens < 0 or self.batch_max_tokens <= 0 or self.batch_min_tokens > self.batch_max_tokens:
            raise ScalingError(
                f"hparams batch bounds must satisfy 0 <= batch_min_tokens <= batch_max_tokens, "
                f"got {self.batch_min_tokens} and {self.batch_max_tokens}"
            )
        if self.warmup_tokens_per_param < 0:
            raise ScalingError(f"hparams.warmup_tokens_per_param must be >= 0, got {self.warmup_tokens_per_param}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | HParamLaws | None) -> HParamLaws:
        """Read the Hydra ``hparams`` node; missing or null keys keep their defaults, unknown keys fail."""
        if cfg is None:
            return cls()
        if isinstance(cfg, HParamLaws):
            return cfg
        known = {f.name: f for f in fields(cls)}
        updates: dict[str, Any] = {}
        for key, value in cfg.items():
            if key not in known:
                raise ScalingError(f"unknown hparams key {key!r}; known: {', '.join(known)}")
            if value is None:
                continue
            default = getattr(cls, key)
            try:
                updates[key] = str(value) if isinstance(default, str) else type(default)(value)
            except (TypeError, ValueError):
                raise ScalingError(f"hparams.{key} must be a {type(default).__name__}, got {value!r}") from None
        return replace(cls(), **updates)


@dataclass(frozen=True)
class HParams:
    """The hyperparameters of one run."""

    lr: float
    batch_tokens: int
    warmup_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _learning_rate(n: float, laws: HParamLaws) -> float:
    lr = laws.lr_ref * (n / laws.lr_ref_params) ** laws.lr_exponent
    return min(max(lr, laws.lr_min), laws.lr_max)


def _batch_tokens(n: float, laws: HParamLaws, context: int | None) -> int:
    raw = laws.batch_ref_tokens * (n / laws.batch_ref_params) ** laws.batch_exponent
    raw = min(max(raw, laws.batch_min_tokens), laws.batch_max_tokens)
    step = context or 1
    batch = max(step, round(raw / step) * step)
    if batch > laws.batch_max_tokens and laws.batch_max_tokens >= step:
        batch = laws.batch_max_tokens // step * step
    return int(batch)


def hparams_for(
    n_params: float,
    cfg: Mapping[str, Any] | HParamLaws | None = None,
    *,
    context: int | None = None,
) -> HParams:
    """Learning rate, batch size and warmup for a model of ``n_params`` parameters.

    ``n_params`` is the count named by ``cfg.count`` (default ``with_head``);
    ``context`` rounds the batch to whole sequences. The warmup is the law's,
    uncapped: the run's length caps it where the run is resolved (``resolve_spec``).
    """
    laws = HParamLaws.from_mapping(cfg)
    try:
        n = float(n_params)
    except (TypeError, ValueError):
        raise ScalingError(f"n_params must be a positive number, got {n_params!r}") from None
    if not (math.isfinite(n) and n > 0):
        raise ScalingError(f"n_params must be a positive number, got {n_params!r}")
    if context is not None and context <= 0:
        raise ScalingError(f"context must be positive, got {context}")
    return HParams(
        lr=_learning_rate(n, laws),
        batch_tokens=_batch_tokens(n, laws, context),
        warmup_tokens=int(round(laws.warmup_tokens_per_param * n)),
    )


def hparams_for_shape(shape: ModelShape, cfg: Mapping[str, Any] | HParamLaws | None = None) -> HParams:
    """:func:`hparams_for` with N counted from ``shape`` as ``cfg.count`` says and batches of whole sequences."""
    laws = HParamLaws.from_mapping(cfg)
    n = getattr(count_params(shape), laws.count)
    return hparams_for(n, laws, context=shape.context)
