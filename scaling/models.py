"""Model families built from real ``transformers`` classes.

Models are plain ``GPT2LMHeadModel`` / ``LlamaForCausalLM`` instances, so a
checkpoint loads with ``from_pretrained`` and architectures compare like for
like. A family is chosen by name; the shape comes from ``d_model``,
``n_layers``, ``n_heads``, ``d_ff`` (default from the family), ``context``,
``vocab_size`` and ``tie_embeddings``.

Architecture variants (:mod:`scaling.variants`) change one choice of a family at a
time, each still a class ``transformers`` ships, so that a comparison changes one
thing: LayerNorm for RMSNorm on LLaMA is StableLM's block (``StableLmForCausalLM``
with full rotary, no QKV bias, sequential residual), RoPE for learned positions on
GPT-2 is GPT-NeoX's (``GPTNeoXForCausalLM``, sequential residual), GeGLU for SwiGLU
is LLaMA's ``hidden_act``, grouped-query attention is ``num_key_value_heads``
(Ainslie et al. 2023) and a mixture of experts is Mixtral's top-k routed SwiGLU
experts (``MixtralForCausalLM``; Jiang et al. 2024). Combinations no shipped class
builds are refused with one line.
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
    activation: str  # the MLP's default: gelu (GPT-2's plain MLP) | swiglu (LLaMA's gated one)
    norm: str  # layernorm | rmsnorm
    activations: tuple[str, ...]  # what this family's classes can build
    norms: tuple[str, ...]
    positions: tuple[str, ...]

    @property
    def position(self) -> str:
        return "learned" if self.learned_positions else "rope"


FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        "gpt2",
        lambda d: 4 * d,
        mlp_matrices=2,
        learned_positions=True,
        activation="gelu",
        norm="layernorm",
        activations=("gelu",),
        norms=("layernorm",),
        positions=("learned", "rope"),
    ),
    "llama": Family(
        "llama",
        _llama_default_d_ff,
        mlp_matrices=3,
        learned_positions=False,
        activation="swiglu",
        norm="rmsnorm",
        activations=("swiglu", "geglu"),
        norms=("rmsnorm", "layernorm"),
        positions=("rope",),
    ),
}

# The activation inside LLaMA's gated MLP: SwiGLU gates with SiLU, GeGLU with GELU (Shazeer 2020).
_GATED_ACT = {"swiglu": "silu", "geglu": "gelu"}


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
    # Architecture variant choices; None = the family's own (filled by ``resolved``).
    activation: str | None = None
    norm: str | None = None
    position: str | None = None
    n_kv_heads: int | None = None  # grouped-query attention: key/value heads (divides n_heads)
    n_experts: int | None = None  # mixture of experts: experts per layer; None = a dense MLP
    experts_top_k: int | None = None  # experts each token is routed to
    variant: str | None = None  # the variant's name (scaling.variants), for records and tags

    @property
    def is_moe(self) -> bool:
        return bool(self.n_experts)

    @property
    def position_embeddings(self) -> bool:
        return self.position == "learned"

    @property
    def hf_class(self) -> str:
        """The ``transformers`` class that builds this shape (``resolved`` checks one exists)."""
        if self.family == "gpt2":
            return "GPT2LMHeadModel" if self.position in (None, "learned") else "GPTNeoXForCausalLM"
        if self.is_moe:
            return "MixtralForCausalLM"
        return "StableLmForCausalLM" if self.norm == "layernorm" else "LlamaForCausalLM"

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
                **{k: cfg.get(k) for k in VARIANT_FIELDS if cfg.get(k) is not None},
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
        d_ff = family.default_d_ff(self.d_model) if self.d_ff is None else self.d_ff
        if d_ff <= 0:
            raise ScalingError(f"model.d_ff must be positive, got {d_ff}")
        arch = {
            "activation": self.activation or family.activation,
            "norm": self.norm or family.norm,
            "position": self.position or family.position,
        }
        for key, known in (
            ("activation", family.activations),
            ("norm", family.norms),
            ("position", family.positions),
        ):
            if arch[key] not in known:
                raise ScalingError(
                    f"model.{key}={arch[key]} has no {self.family} class in transformers; known: {', '.join(known)}"
                )
        if arch["position"] == "rope" and (self.d_model // self.n_heads) % 2:
            raise ScalingError(
                f"model.n_heads={self.n_heads} gives an odd head dimension {self.d_model // self.n_heads}; RoPE needs it even"
            )
        n_kv = self.n_heads if self.n_kv_heads is None else int(self.n_kv_heads)
        if n_kv <= 0 or self.n_heads % n_kv:
            raise ScalingError(f"model.n_kv_heads={n_kv} must be positive and divide model.n_heads={self.n_heads}")
        if n_kv != self.n_heads and self.family != "llama":
            raise ScalingError(f"model.n_kv_heads (grouped-query attention) needs family llama, not {self.family}")
        experts, top_k = self.n_experts or None, self.experts_top_k
        if experts is not None:
            if self.family != "llama" or arch["norm"] != "rmsnorm" or arch["activation"] != "swiglu":
                raise ScalingError(
                    "model.n_experts (Mixtral's mixture of experts) needs family llama with rmsnorm and swiglu"
                )
            top_k = 2 if top_k is None else int(top_k)
            if experts < 1 or top_k < 1:
                raise ScalingError(f"model.n_experts={experts} and model.experts_top_k={top_k} must be positive")
            if top_k > experts:
                raise ScalingError(
                    f"model.experts_top_k={top_k} is larger than model.n_experts={experts}: a token cannot use more experts than exist"
                )
        elif top_k is not None:
            raise ScalingError(
                "model.experts_top_k is set but model.n_experts is not: set both for a mixture of experts"
            )
        return replace(self, d_ff=d_ff, **arch, n_kv_heads=n_kv, n_experts=experts, experts_top_k=top_k)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The ModelShape fields a variant sets, beyond the dense shape (all null by default in the YAML).
VARIANT_FIELDS = ("activation", "norm", "position", "n_kv_heads", "n_experts", "experts_top_k", "variant")


def hf_config(shape: ModelShape, attn_implementation: str = "sdpa", eos_token_id: int | None = None):
    """The ``transformers`` config object for ``shape`` (dropout off: small-scale laws are fitted without it)."""
    shape = shape.resolved()
    common = {
        "vocab_size": shape.vocab_size,
        "tie_word_embeddings": shape.tie_embeddings,
        "attn_implementation": attn_implementation,
        "use_cache": False,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
    }
    full_rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}
    if shape.hf_class == "GPT2LMHeadModel":
        from transformers import GPT2Config

        return GPT2Config(
            n_positions=shape.context,
            n_embd=shape.d_model,
            n_layer=shape.n_layers,
            n_head=shape.n_heads,
            n_inner=shape.d_ff,
            activation_function="gelu_new",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
    if shape.hf_class == "GPTNeoXForCausalLM":
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            hidden_size=shape.d_model,
            num_hidden_layers=shape.n_layers,
            num_attention_heads=shape.n_heads,
            intermediate_size=shape.d_ff,
            hidden_act="gelu_new",
            max_position_embeddings=shape.context,
            use_parallel_residual=False,  # GPT-2's sequential block, so only the position encoding differs
            attention_bias=True,
            attention_dropout=0.0,
            hidden_dropout=0.0,
            rope_parameters=full_rope,
            **common,
        )
    llama_like = {
        "hidden_size": shape.d_model,
        "intermediate_size": shape.d_ff,
        "num_hidden_layers": shape.n_layers,
        "num_attention_heads": shape.n_heads,
        "num_key_value_heads": shape.n_kv_heads,
        "max_position_embeddings": shape.context,
        "hidden_act": _GATED_ACT[str(shape.activation)],
        "pad_token_id": None,
        **common,
    }
    if shape.hf_class == "StableLmForCausalLM":
        from transformers import StableLmConfig

        return StableLmConfig(
            use_qkv_bias=False,
            qk_layernorm=False,
            use_parallel_residual=False,
            rope_parameters=full_rope,
            **llama_like,
        )
    if shape.hf_class == "MixtralForCausalLM":
        from transformers import MixtralConfig

        return MixtralConfig(
            num_local_experts=shape.n_experts,
            num_experts_per_tok=shape.experts_top_k,
            router_jitter_noise=0.0,
            output_router_logits=False,
            sliding_window=None,
            **llama_like,
        )
    from transformers import LlamaConfig

    return LlamaConfig(attention_bias=False, mlp_bias=False, **llama_like)


def build_model(
    shape: ModelShape,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    eos_token_id: int | None = None,
    experts_implementation: str | None = None,
):
    """Instantiate the model with a seeded initialisation.

    ``experts_implementation`` picks how a mixture of experts runs its experts
    (transformers' default, ``grouped_mm``, or ``eager``: a loop of plain matmuls,
    the one ``FlopCounterMode`` can see, so the accounting test uses it).
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = hf_config(shape, attn_implementation, eos_token_id)
    extra = {"experts_implementation": experts_implementation} if experts_implementation and shape.is_moe else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation, **extra)
    return model
