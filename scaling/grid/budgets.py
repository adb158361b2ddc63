"""N ladders, token budgets and isoFLOP grids.

IsoFLOP profiles (Hoffmann et al. 2022, Approach 2): for each compute budget C,
train several model sizes N around the expected optimum, each for the D tokens
that spend exactly C. Here N = N_prior(C) · ratio^offset, where the prior is a
tokens-per-parameter rule (default 20, Hoffmann et al.'s rounded D/N) or a named
law from :mod:`scaling.laws`, and D = C / flops_per_token(shape) under the
configured FLOP convention (``kaplan`` 6·N_non-embedding, ``six_n`` 6·N_with-head,
``exact`` counted matmuls; see :mod:`scaling.accounting`).

D is rounded to the nearest whole number of batches, so the run's FLOPs differ
from C by at most half a batch's FLOPs (strictly less than one batch). Every
function is a pure function of its arguments: a Hydra cartesian sweep over
``train.flops`` and ``grid.offset`` resolves each job identically everywhere.

These are the pieces; a whole run (batch, steps, learning rate, warmup) is
resolved in one place only, :func:`scaling.train.spec.resolve_spec`, and a
sweep lists its resolved runs without training with ``train.dry_run=true``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scaling.accounting import count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.grid.shapes import PARAM_COUNTS, shape_for_params
from scaling.models import ModelShape
from scaling.records import FLOP_CONVENTIONS as CONVENTIONS

#: The parameter count each FLOP convention multiplies (exact FLOPs include the head, like six_n).
DEFAULT_COUNT = {"kaplan": "non_embedding", "six_n": "with_head", "exact": "with_head"}
#: Hoffmann et al. 2022's compute-optimal tokens per parameter, rounded.
DEFAULT_TOKENS_PER_PARAM = 20.0


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScalingError(f"{what} must be a positive number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ScalingError(f"{what} must be a positive number, got {value!r}")
    return number


def _convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ScalingError(f"FLOP convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return convention


def n_ladder(n_min: float, n_max: float, count: int) -> list[float]:
    """``count`` log-spaced model sizes from ``n_min`` to ``n_max`` inclusive."""
    lo, hi = _positive(n_min, "n_min"), _positive(n_max, "n_max")
    if lo > hi:
        raise ScalingError(f"n_min={n_min:g} exceeds n_max={n_max:g}")
    if int(count) != count or count < 1:
        raise ScalingError(f"a ladder needs a positive whole number of sizes, got {count!r}")
    if count == 1:
        if lo != hi:
            raise ScalingError(f"a one-size ladder needs n_min == n_max, got {n_min:g} and {n_max:g}")
        return [lo]
    step = math.log(hi / lo) / (count - 1)
    return [lo * math.exp(step * i) for i in range(count - 1)] + [hi]


def _round_to_batches(tokens: float, round_to: int, what: str) -> int:
    if int(round_to) != round_to or round_to < 1:
        raise ScalingError(f"round_to must be a positive whole number of tokens, got {round_to!r}")
    if tokens < round_to:
        raise ScalingError(f"{what} buys {tokens:.4g} tokens, less than one batch of {round_to} tokens")
    return int(round(tokens / round_to)) * int(round_to)


def tokens_for_multiplier(shape: ModelShape, multiplier: float, *, count: str = "with_head", round_to: int = 1) -> int:
    """D = multiplier · N (tokens per parameter), rounded to whole batches of ``round_to`` tokens."""
    if count not in PARAM_COUNTS:
        raise ScalingError(f"count must be one of {', '.join(PARAM_COUNTS)}, got {count!r}")
    mult = _positive(multiplier, "tokens-per-parameter multiplier")
    n = getattr(count_params(shape), count)
    return _round_to_batches(mult * n, round_to, f"{mult:g} tokens per parameter")


def tokens_for_budget(shape: ModelShape, flops: float, convention: str, round_to: int = 1) -> int:
    """Tokens D such that flops_per_token(shape).<convention> · D equals ``flops``.

    D is rounded to the nearest multiple of ``round_to`` (one batch), so the
    residual |F·D − C| is at most half a batch's FLOPs, always under one batch.
    A budget that does not buy one batch raises :class:`ScalingError`.
    """
    budget = _positive(flops, "FLOP budget")
    per_token = getattr(flops_per_token(shape), _convention(convention))
    return _round_to_batches(budget / per_token, round_to, f"budget {budget:.4g} FLOPs ({convention})")


def n_opt_prior(budget: float, prior: float | str = DEFAULT_TOKENS_PER_PARAM) -> float:
    """The expected compute-optimal N at ``budget``: centre of an isoFLOP profile.

    A number r is a tokens-per-parameter rule under C = 6ND: N = sqrt(C / (6r)).
    A string names a law of :mod:`scaling.laws` (``hoffmann2022``, ...) whose
    compute-optimal allocation is used.
    """
    c = _positive(budget, "FLOP budget")
    if isinstance(prior, str):
        try:
            prior = float(prior)
        except ValueError:
            from scaling.laws import get_law

            return get_law(prior).compute_optimal(c).n
    r = _positive(prior, "prior tokens per parameter")
    return math.sqrt(c / (6.0 * r))


def _offset(offset: Any) -> float:
    try:
        value = float(offset)
    except (TypeError, ValueError):
        raise ScalingError(f"grid offset must be a number, got {offset!r}") from None
    if not math.isfinite(value):
        raise ScalingError(f"grid offset must be finite, got {offset!r}")
    return value


def isoflop_point(
    budget: float,
    offset: float,
    *,
    family: str,
    vocab_size: int,
    context: int,
    convention: str = "six_n",
    count: str | None = None,
    prior: float | str = DEFAULT_TOKENS_PER_PARAM,
    ratio: float = 2.0,
    round_to: int = 1,
    tie_embeddings: bool = False,
    aspect: tuple[float, float] | None = None,
    head_dim: int | None = None,
    n_layers: int | None = None,
    arch: Mapping[str, Any] | None = None,
) -> tuple[ModelShape, int]:
    """The (shape, tokens) of one isoFLOP run: N = N_prior(C) · ratio**offset, D spends C.

    ``count`` (default: the count the convention multiplies) says which parameter
    count the shape must match.
    """
    c = _positive(budget, "FLOP budget")
    _convention(convention)
    step = _positive(ratio, "isoFLOP ratio")
    if step <= 1:
        raise ScalingError(f"isoFLOP ratio must exceed 1, got {ratio}")
    target = n_opt_prior(c, prior) * step ** _offset(offset)
    shape = shape_for_params(
        target,
        family,
        count=count or DEFAULT_COUNT[convention],
        vocab_size=vocab_size,
        context=context,
        tie_embeddings=tie_embeddings,
        aspect=aspect,
        head_dim=head_dim,
        n_layers=n_layers,
        arch=arch,
    )
    return shape, tokens_for_budget(shape, c, convention, round_to)
