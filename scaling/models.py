"""Model families built from real ``transformers`` classes.

Models are plain ``GPT2LMHeadModel`` / ``LlamaForCausalLM`` instances, so a
checkpoint loads with ``from_pretrained`` and architectures compare like for
like. A family is chosen by name; the shape comes from ``d_model``,
``n_layers``, ``n_heads``, ``d_ff`` (default from the family), ``context``,
``vocab_size`` and ``tie_embeddings``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from scaling.errors import ScalingError


def _llama_default_d_ff(d_model: int) -> int:
    # SwiGLU keeps the MLP's parameter count near the 4d GELU MLP with a 2/3 factor
    # (Shazeer 2020; LLaMA, Touvron et al. 2023): 8d/3, rounded up to a multiple of 16.
    return int(math.ceil(8 * d_model / 3 / 16) * 16)


@dataclass(frozen=True)
class Family:
    """What differs between architectures: the default MLP width and the HF config."""

    name: str
    default_d_ff: Callable[[int], int]
    mlp_matrices: int  # 2 for a GELU MLP, 3 for SwiGLU (gate, up, down)
    learned_positions: bool


FAMILIES: dict[str, Family] = {
    "gpt2": Family("gpt2", lambda d: 4 * d, mlp_matrices=2, learned_positions=True),
    "llama": Family("llama", _llama_default_d_ff, mlp_matrices=3, learned_positions=False),
}


def get_family(name: str) -> Family:
    """Look a family up by name, or fail with the list of known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ScalingError(f"unknown model family {name!r} (model.family); known: {', '.join(FAMILIES)}") from None


@dataclass(frozen=True)
class ModelShape:
    """The full shape of one model; ``d_ff=None`` means the family default."""

    family: str
    d_model: int
    n_layers: int
    n_heads: int
    context: int
    vocab_size: int
    d_ff: int | None = None
    tie_embeddings: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], vocab_size: int | None = None) -> ModelShape:
        """Build from the hydra ``model`` node; ``vocab_size`` fills a null ``model.vocab_size``."""
        vocab = cfg["vocab_size"] or vocab_size
        if vocab is None:
            raise ScalingError("model.vocab_size is unset and no tokenizer provides one")
        try:
            shape = cls(
                family=str(cfg["family"]),
                d_model=int(cfg["d_model"]),
                n_layers=int(cfg["n_layers"]),
                n_heads=int(cfg["n_heads"]),
                context=int(cfg["context"]),
                vocab_size=int(vocab),
                d_ff=None if cfg["d_ff"] is None else int(cfg["d_ff"]),
                tie_embeddings=bool(cfg["tie_embeddings"]),
            )
        except KeyError as err:
            raise ScalingError(f"model.{err.args[0]} is missing from the config") from None
        except (TypeError, ValueError) as err:
            raise ScalingError(f"model config has a non-integer field: {err}") from None
        return shape.resolved()

    def resolved(self) -> ModelShape:
        """Validate and fill the family's default ``d_ff``."""
        family = get_family(self.family)
        for field in ("d_model", "n_layers", "n_heads", "context", "vocab_size"):
            if getattr(self, field) <= 0:
                raise ScalingError(f"model.{field} must be positive, got {getattr(self, field)}")
        if self.d_model % self.n_heads:
            raise ScalingError(f"model.n_heads={self.n_heads} does not divide model.d_model={self.d_model}")
        if self.family == "llama" and (self.d_model // self.n_heads) % 2:
            raise ScalingError(
                f"model.n_heads={self.n_heads} gives an odd head dimension {self.d_model // self.n_heads}; RoPE needs it even"
            )
        d_ff = family.default_d_ff(self.d_model) if self.d_ff is None else self.d_ff
        if d_ff <= 0:
            raise ScalingError(f"model.d_ff must be positive, got {d_ff}")
        return replace(self, d_ff=d_ff)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hf_config(shape: ModelShape, attn_implementation: str = "sdpa", eos_token_id: int | None = None):
    """The ``transformers`` config object for ``shape`` (dropout off: small-scale laws are fitted without it)."""
    shape = shape.resolved()
    if shape.family == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=shape.vocab_size,
            n_positions=shape.context,
            n_embd=shape.d_model,
            n_layer=shape.n_layers,
            n_head=shape.n_heads,
            n_inner=shape.d_ff,
            activation_function="gelu_new",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=shape.tie_embeddings,
            attn_implementation=attn_implementation,
            use_cache=False,
            bos_token_id=eos_token_id,
            eos_token_id=eos_token_id,
        )
    if shape.family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=shape.vocab_size,
            hidden_size=shape.d_model,
            intermediate_size=shape.d_ff,
            num_hidden_layers=shape.n_layers,
            num_attention_heads=shape.n_heads,
            num_key_value_heads=shape.n_heads,
            max_position_embeddings=shape.context,
            attention_bias=False,
            mlp_bias=False,
            tie_word_embeddings=shape.tie_embeddings,
            attn_implementation=attn_implementation,
            use_cache=False,
            bos_token_id=eos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=None,
        )
    raise AssertionError(f"family {shape.family} has no HF config builder")  # guarded by get_family


def build_model(shape: ModelShape, seed: int = 0, attn_implementation: str = "sdpa", eos_token_id: int | None = None):
    """Instantiate the model with a seeded initialisation."""
    import torch
    from transformers import AutoModelForCausalLM

    config = hf_config(shape, attn_implementation, eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    return model
