"""Parameter counts and FLOP conventions against ground truth.

``exact`` is checked against ``torch.utils.flop_counter.FlopCounterMode`` on a real
forward+backward step. The CPU flash-attention kernel is scored as 0 FLOPs by
torch's counter, so the measurement uses SDPA's math kernel, whose matmuls the
counter sees.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from scaling.accounting import count_params, flops_per_token, measured_param_counts
from scaling.models import ModelShape, build_model

SHAPES = [
    # d_model, n_layers, n_heads, context, vocab, tie
    (64, 2, 2, 128, 2048, False),
    (96, 3, 4, 64, 1000, True),
    (128, 4, 8, 256, 4096, False),
    (256, 2, 4, 32, 512, False),
]


def _shape(family: str, spec: tuple) -> ModelShape:
    d, layers, heads, ctx, vocab, tie = spec
    return ModelShape(family, d, layers, heads, ctx, vocab, tie_embeddings=tie).resolved()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("spec", SHAPES)
def test_param_counts_match_the_model(family: str, spec: tuple) -> None:
    shape = _shape(family, spec)
    model = build_model(shape)
    counts = count_params(shape)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts == measured_param_counts(model, shape)
    embedding_like = shape.vocab_size * shape.d_model * (1 if shape.tie_embeddings else 2)
    if family == "gpt2":
        embedding_like += shape.context * shape.d_model
    assert counts.total - counts.non_embedding == embedding_like
    assert counts.with_head - counts.non_embedding == shape.vocab_size * shape.d_model


def _measured_flops_per_token(shape: ModelShape) -> float:
    """FlopCounterMode's count of one forward+backward step, per token (eager experts for an MoE)."""
    model = build_model(shape, experts_implementation="eager")
    batch = 2
    ids = torch.randint(0, shape.vocab_size, (batch, shape.context))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        logits = model(input_ids=ids).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), ids.reshape(-1)).backward()
    return counter.get_total_flops() / (batch * shape.context)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("spec", SHAPES)
def test_exact_flops_match_flop_counter(family: str, spec: tuple) -> None:
    shape = _shape(family, spec)
    assert flops_per_token(shape).exact == pytest.approx(_measured_flops_per_token(shape), rel=0.02)


# One architecture change at a time, each a transformers class (scaling.models), plus mixtures.
VARIANT_SHAPES = {
    "gpt2+rope (GPT-NeoX)": {"family": "gpt2", "position": "rope"},
    "gpt2+rope tied": {"family": "gpt2", "position": "rope", "tie_embeddings": True},
    "llama+layernorm (StableLM)": {"family": "llama", "norm": "layernorm"},
    "llama+geglu": {"family": "llama", "activation": "geglu"},
    "llama+gqa": {"family": "llama", "n_heads": 4, "n_kv_heads": 2},
    "llama+mqa tied": {"family": "llama", "n_heads": 4, "n_kv_heads": 1, "tie_embeddings": True},
    "mixtral 4x top2": {"family": "llama", "n_experts": 4},
    "mixtral 8x top1 gqa": {"family": "llama", "n_heads": 4, "n_kv_heads": 2, "n_experts": 8, "experts_top_k": 1},
    "mixtral 3x top3": {"family": "llama", "n_experts": 3, "experts_top_k": 3, "d_ff": 96},
}


def _variant(name: str) -> ModelShape:
    fields = {"d_model": 64, "n_layers": 2, "n_heads": 2, "context": 32, "vocab_size": 300, **VARIANT_SHAPES[name]}
    return ModelShape(**fields).resolved()


@pytest.mark.parametrize("name", VARIANT_SHAPES)
def test_variant_param_counts_match_the_model(name: str) -> None:
    shape = _variant(name)
    model = build_model(shape)
    assert type(model).__name__ == shape.hf_class
    counts = count_params(shape)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts == measured_param_counts(model, shape)
    if shape.is_moe:
        assert counts.active < counts.with_head or shape.experts_top_k == shape.n_experts
    else:
        assert counts.active == counts.with_head


@pytest.mark.parametrize("name", VARIANT_SHAPES)
def test_variant_exact_flops_match_flop_counter(name: str) -> None:
    shape = _variant(name)
    assert flops_per_token(shape).exact == pytest.approx(_measured_flops_per_token(shape), rel=0.02)


def test_moe_six_n_counts_active_parameters() -> None:
    moe = _variant("mixtral 4x top2")
    params, flops = count_params(moe), flops_per_token(moe)
    assert flops.six_n == 6 * params.active
    d, f = moe.d_model, moe.d_ff
    # Two of four experts unused per layer: the active count drops by 2·3·d·f per layer.
    assert params.with_head - params.active == moe.n_layers * 2 * 3 * d * f


def test_conventions_differ_as_documented() -> None:
    shape = _shape("llama", SHAPES[0])
    params, flops = count_params(shape), flops_per_token(shape)
    assert flops.kaplan == 6 * params.non_embedding
    assert flops.six_n == 6 * params.with_head
    # Attention and the head make exact larger than Kaplan's 6N at small scale.
    assert flops.exact > flops.kaplan


def test_swiglu_has_three_ffn_matrices() -> None:
    gpt2 = ModelShape("gpt2", 64, 1, 2, 16, 300, d_ff=128).resolved()
    llama = ModelShape("llama", 64, 1, 2, 16, 300, d_ff=128).resolved()
    mlp_gpt2 = count_params(gpt2).non_embedding - 4 * 64 * 64
    mlp_llama = count_params(llama).non_embedding - 4 * 64 * 64
    assert mlp_llama - 3 * 64 * 128 < 64 * 4  # norms only
    assert mlp_gpt2 - 2 * 64 * 128 < 64 * 16  # biases and norms only
