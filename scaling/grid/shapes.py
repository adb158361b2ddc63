"""Model shapes for a target parameter count.

A scaling sweep names models by their size N, but a transformer is built from
(n_layers, d_model, n_heads). This module turns a target N into a shape whose
analytic parameter count (``scaling.accounting.count_params``) is within 5% of
it, with a depth/width balance taken from public model ladders.

Aspect ratio (d_model / n_layers). Kaplan et al. 2020 (sec. 3.1, Fig. 5) found
the loss at fixed non-embedding N changes by only a few percent while d/L ranges
over roughly 20-200, so the exact choice matters little, but a sweep should keep
it *consistent* across sizes, otherwise the shape drift lands in the fitted
exponent. Public ladders sit in a narrower band:

* Pythia (Biderman et al. 2023, Table 1): 70M 512/6 = 85, 160M 768/12 = 64,
  410M 1024/24 = 43, 1B 2048/16 = 128, 1.4B 2048/24 = 85, 2.8B 2560/32 = 80,
  6.9B 4096/32 = 128, 12B 5120/36 = 142;
* OLMo 2 ladder (OLMo-core ``TransformerConfig.olmo2_*``, used by Bhagia et al.
  2024): 30M 256/4 = 64, 60M 384/8 = 48, 100M 512/12 = 43, 190M 768/12 = 64,
  370M 1024/16 = 64, 760M 1536/16 = 96, 1B 2048/16 = 128, 7B 4096/32 = 128;
* LLaMA 7B 4096/32 = 128, GPT-3 175B 12288/96 = 128.

Hence the default band [32, 128] with its geometric centre 64: it covers every
ladder model up to ~1B (43-128) and sits inside Kaplan's flat region.

Head dimension: 64 from d_model = 256 upwards (the GPT-2/Pythia/LLaMA choice,
and widths there are multiples of 64 for tensor-core friendly matmuls); below
that, the even divisor of d_model closest to 32, so a 48-wide model gets two
heads of 24 rather than failing. The head dimension is always even (RoPE
rotates pairs of channels) and always divides d_model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaling.accounting import count_params
from scaling.errors import ScalingError
from scaling.models import ModelShape, get_family
from scaling.records import PARAM_COUNTS

#: Default aspect-ratio band (d_model / n_layers); see the module docstring for its sources.
DEFAULT_ASPECT: tuple[float, float] = (32.0, 128.0)
#: Relative tolerance on the parameter count.
DEFAULT_TOLERANCE = 0.05
#: Relative tolerance on the parameter count when the depth is fixed (the width grid alone must hit N).
FIXED_DEPTH_TOLERANCE = 0.2

MIN_D_MODEL = 16
MAX_D_MODEL = 65536
MAX_LAYERS = 512
_SMALL_WIDTH_STEP = 8  # widths below 256 move in steps of 8
_WIDE_THRESHOLD = 256  # from here on, multiples of 64 with 64-wide heads


def _width_grid() -> list[int]:
    small = list(range(MIN_D_MODEL, _WIDE_THRESHOLD, _SMALL_WIDTH_STEP))
    mid = list(range(_WIDE_THRESHOLD, 16384, 64))
    wide = list(range(16384, MAX_D_MODEL + 1, 128))
    return small + mid + wide


_WIDTHS: list[int] = _width_grid()
#: With a fixed depth the width is the only knob, so below 64 it moves in steps of 4 (N steps of ~15-25%).
_FIXED_DEPTH_WIDTHS: list[int] = list(range(MIN_D_MODEL, 64, 4)) + [w for w in _WIDTHS if w >= 64]


def heads_for(d_model: int, head_dim: int | None = None) -> int:
    """The number of heads for a width: head_dim 64 from d=256, else the even divisor of d closest to 32.

    With an explicit ``head_dim`` it must divide ``d_model`` and be even.
    """
    if d_model <= 0:
        raise ScalingError(f"d_model must be positive, got {d_model}")
    if head_dim is not None:
        if head_dim <= 0 or head_dim % 2 or d_model % head_dim:
            raise ScalingError(f"head_dim={head_dim} must be even and divide d_model={d_model}")
        return d_model // head_dim
    return _default_heads(d_model)


@functools.lru_cache(maxsize=4096)
def _default_heads(d_model: int) -> int:
    target = 64 if d_model >= _WIDE_THRESHOLD else 32
    if d_model % target == 0:
        return d_model // target
    divisors = {h for i in range(1, math.isqrt(d_model) + 1) if d_model % i == 0 for h in (i, d_model // i)}
    even_dims = [d_model // h for h in divisors if (d_model // h) % 2 == 0]
    if not even_dims:
        raise ScalingError(f"d_model={d_model} has no even head dimension")
    best = min(even_dims, key=lambda hd: (abs(math.log(hd / target)), -hd))
    return d_model // best


def _check_aspect(aspect: tuple[float, float] | None) -> tuple[float, float]:
    lo, hi = DEFAULT_ASPECT if aspect is None else (float(aspect[0]), float(aspect[1]))
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ScalingError(f"aspect band must be two positive numbers lo <= hi, got {aspect}")
    return lo, hi


def _count(shape: ModelShape, count: str) -> int:
    return int(getattr(count_params(shape), count))


@dataclass(frozen=True)
class _Candidate:
    shape: ModelShape
    params: int
    rel_error: float
    aspect: float


def shape_for_params(
    target: float,
    family: str,
    *,
    count: str = "non_embedding",
    vocab_size: int,
    context: int,
    tie_embeddings: bool = False,
    aspect: tuple[float, float] | None = None,
    head_dim: int | None = None,
    n_layers: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    arch: Mapping[str, Any] | None = None,
) -> ModelShape:
    """A shape whose ``count_params(shape).<count>`` is within ``tolerance`` of ``target``.

    For every depth, the width grid (16..248 step 8, then multiples of 64, or
    multiples of ``head_dim``) is bisected for the count closest to the target.
    Among depths within tolerance, shapes whose d_model/n_layers lies in the
    ``aspect`` band win; ties are broken by the smallest
    ``(log(a/centre)/log(hi/centre))² + (error/tolerance)²``, which balances the
    aspect preference against hitting N: with the defaults a 2.5% miss costs as
    much as an aspect of 64·√2 ≈ 91 (halfway, in log, from the centre 64 to the
    edge 128). Deterministic for given arguments. ``arch`` holds an architecture
    variant's fields (norm, position, n_experts, ...), so its own count is matched.

    ``n_layers`` fixes the depth: only the width moves with N (a fixed-depth ladder), so
    neighbouring sizes never jump between depths, and the aspect band is not consulted.
    """
    get_family(family)
    if count not in PARAM_COUNTS:
        raise ScalingError(f"count must be one of {', '.join(PARAM_COUNTS)}, got {count!r}")
    try:
        target = float(target)
    except (TypeError, ValueError):
        raise ScalingError(f"target parameter count must be a positive number, got {target!r}") from None
    if not (math.isfinite(target) and target > 0):
        raise ScalingError(f"target parameter count must be a positive number, got {target!r}")
    if vocab_size <= 0 or context <= 0:
        raise ScalingError(f"vocab_size and context must be positive, got {vocab_size} and {context}")
    if not 0 < tolerance < 1:
        raise ScalingError(f"tolerance must be in (0, 1), got {tolerance}")
    lo, hi = _check_aspect(aspect)
    centre = math.sqrt(lo * hi)
    spread = math.log(hi / centre) if hi > lo else math.log(2.0)
    if head_dim is not None:
        if head_dim <= 0 or head_dim % 2:
            raise ScalingError(f"head_dim must be a positive even number, got {head_dim}")
        widths = list(range(head_dim, MAX_D_MODEL + 1, head_dim))
    elif n_layers is not None:
        widths = _FIXED_DEPTH_WIDTHS  # one depth: the ladder's only knob is the width, so a finer one
    else:
        widths = _WIDTHS

    def make(n_layers: int, d_model: int) -> ModelShape:
        return ModelShape(
            family=family,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=heads_for(d_model, head_dim),
            context=context,
            vocab_size=vocab_size,
            tie_embeddings=tie_embeddings,
            **dict(arch or {}),  # the variant's architecture fields (scaling.models.VARIANT_FIELDS)
        ).resolved()

    if n_layers is not None and not 1 <= int(n_layers) <= MAX_LAYERS:
        raise ScalingError(f"n_layers must be in [1, {MAX_LAYERS}], got {n_layers}")
    depths = range(1, MAX_LAYERS + 1) if n_layers is None else [int(n_layers)]
    if n_layers is not None:
        # One depth has only the width grid's steps (8 below 256): at small N a step moves N by
        # up to ~30%, so the nearest width is taken within FIXED_DEPTH_TOLERANCE instead.
        tolerance = max(tolerance, FIXED_DEPTH_TOLERANCE)
    candidates: list[_Candidate] = []
    for depth in depths:
        if _count(make(depth, widths[0]), count) > target * (1 + tolerance):
            break  # deeper models only grow
        # bisect for the first width whose count reaches the target
        left, right = 0, len(widths) - 1
        if _count(make(depth, widths[right]), count) < target:
            left = right
        while left < right:
            mid = (left + right) // 2
            if _count(make(depth, widths[mid]), count) >= target:
                right = mid
            else:
                left = mid + 1
        for i in sorted({max(left - 1, 0), left}):
            shape = make(depth, widths[i])
            params = _count(shape, count)
            err = abs(params / target - 1)
            if err <= tolerance:
                candidates.append(_Candidate(shape, params, err, shape.d_model / depth))
        if widths[left] / depth < lo and any(lo <= c.aspect <= hi for c in candidates):
            break  # deeper only moves further below the band, and an in-band shape already exists
    if not candidates:
        smallest = _count(make(1, widths[0]), count)
        hint = f" (the smallest {family} shape has {smallest:,} {count} parameters)" if smallest > target else ""
        raise ScalingError(
            f"no {family} shape has {count} parameters within {tolerance:.0%} of target {target:.4g}{hint}"
        )

    def score(c: _Candidate) -> tuple[int, float, int, int]:
        in_band = lo <= c.aspect <= hi
        cost = (math.log(c.aspect / centre) / spread) ** 2 + (c.rel_error / tolerance) ** 2
        if n_layers is not None:  # fixed depth: the width that hits N best
            return (0, c.rel_error, c.shape.n_layers, c.shape.d_model)
        return (0 if in_band else 1, cost, c.shape.n_layers, c.shape.d_model)

    return min(candidates, key=score).shape
