"""Exact parameter counts and training FLOPs per token, under three conventions.

Parameter counts (Kaplan et al. 2020, sec. 2.1; Porian et al. 2024, sec. 3):

* ``non_embedding``: Kaplan's N, every parameter except the token and position
  embeddings and the output head;
* ``with_head``: the output projection counted, the input embedding not
  (Porian et al.'s N; for tied embeddings the head is the embedding matrix, counted once here);
* ``total``: every unique parameter;
* ``active``: the parameters one token passes through, with the head: for a
  mixture of experts the attention, the router and ``top_k`` of the ``E`` experts
  of each layer (Clark et al. 2022; Krajewski et al. 2024), for a dense model
  ``with_head``.

Training FLOPs per token:

* ``kaplan``: 6·N_non_embedding (Kaplan et al. 2020, eq. 2.1 without the context term);
* ``six_n``: 6·N_with_head (the usual C ≈ 6ND of Hoffmann et al. 2022 with the head);
  for a mixture of experts both count the active parameters only, as a token's
  compute does (the dense numbers are unchanged: there active = all);
* ``exact``: every forward matmul, 2 FLOPs per multiply-add, times 3 for forward
  plus backward (Hoffmann et al. 2022, App. F; Chowdhery et al. 2022, App. B):
  QKV and output projections 8·d², attention scores QKᵀ and the weighted sum of
  values 2·2·T·d (the full T×T product, as dense kernels compute it), the MLP
  2·k·d·d_ff with k = 2 matrices for GELU (GPT-2) or 3 for SwiGLU (LLaMA), per
  layer; the LM head 2·d·V once. Norms, biases, softmax and RoPE are
  element-wise and left out, as ``torch.utils.flop_counter`` leaves them out.
  Grouped-query attention projects K and V to ``n_kv_heads`` heads (2·2·d·d_kv
  instead of 2·2·d²). A mixture of experts pays its router (2·d·E) and ``top_k``
  expert MLPs (2·3·d·d_ff each) per token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scaling.models import ModelShape


@dataclass(frozen=True)
class ParamCounts:
    non_embedding: int
    with_head: int
    total: int
    active: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class FlopCounts:
    kaplan: float
    six_n: float
    exact: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __mul__(self, tokens: float) -> FlopCounts:
        return FlopCounts(self.kaplan * tokens, self.six_n * tokens, self.exact * tokens)


def _gpt2_like(shape: ModelShape) -> bool:
    """GPT-2 and its RoPE variant (GPT-NeoX): biased fused QKV, a plain biased MLP, LayerNorms."""
    return shape.family == "gpt2"


def _attention_params(shape: ModelShape) -> int:
    d, kv = shape.d_model, int(shape.n_kv_heads or shape.n_heads) * shape.head_dim
    if _gpt2_like(shape):
        return 3 * d * d + 3 * d + d * d + d  # c_attn (d×3d + 3d) and c_proj (d×d + d)
    return 2 * d * d + 2 * d * kv  # q and o (d×d), k and v (d×d_kv), no biases


def _expert_params(shape: ModelShape) -> int:
    """One MLP: GPT-2's c_fc and c_proj with biases, or the three bias-free SwiGLU matrices."""
    d, f = shape.d_model, shape.d_ff
    assert f is not None
    return d * f + f + f * d + d if _gpt2_like(shape) else 3 * d * f


def _norm_params(shape: ModelShape) -> int:
    """One norm's parameters: LayerNorm has a weight and a bias, RMSNorm a weight."""
    return 2 * shape.d_model if shape.norm == "layernorm" else shape.d_model


def _layer_params(shape: ModelShape, experts: int) -> int:
    """One block with ``experts`` expert MLPs counted (plus the router for a mixture)."""
    router = shape.d_model * int(shape.n_experts) if shape.is_moe else 0
    return _attention_params(shape) + router + experts * _expert_params(shape) + 2 * _norm_params(shape)


def count_params(shape: ModelShape) -> ParamCounts:
    """Analytic parameter counts for ``shape`` (tested against ``sum(p.numel())``)."""
    shape = shape.resolved()
    d, V = shape.d_model, shape.vocab_size
    final_norm = _norm_params(shape)
    all_experts = int(shape.n_experts) if shape.is_moe else 1
    used_experts = int(shape.experts_top_k) if shape.is_moe else 1
    non_embedding = shape.n_layers * _layer_params(shape, all_experts) + final_norm
    active_non_embedding = shape.n_layers * _layer_params(shape, used_experts) + final_norm
    token_embedding = V * d
    positions = shape.context * d if shape.position_embeddings else 0
    head = 0 if shape.tie_embeddings else V * d
    return ParamCounts(
        non_embedding=non_embedding,
        with_head=non_embedding + V * d,
        total=non_embedding + token_embedding + positions + head,
        active=active_non_embedding + V * d,
    )


def forward_flops_per_token(shape: ModelShape) -> float:
    """Exact forward matmul FLOPs per token at full context (see module docstring)."""
    shape = shape.resolved()
    d, f, T, V = shape.d_model, shape.d_ff, shape.context, shape.vocab_size
    assert f is not None
    kv = int(shape.n_kv_heads or shape.n_heads) * shape.head_dim
    projections = 2 * (2 * d * d + 2 * d * kv)  # Q and O (d×d), K and V (d×d_kv)
    attention = 2 * 2 * T * d  # QKᵀ and softmax(QKᵀ)·V over all T keys
    matrices = 2 if _gpt2_like(shape) else 3
    if shape.is_moe:
        mlp = 2 * d * int(shape.n_experts) + int(shape.experts_top_k) * 2 * matrices * d * f  # router + top-k experts
    else:
        mlp = 2 * matrices * d * f
    head = 2 * d * V
    return float(shape.n_layers * (projections + attention + mlp) + head)


def flops_per_token(shape: ModelShape) -> FlopCounts:
    """Training FLOPs per token under the three conventions (6N counts active parameters)."""
    params = count_params(shape)
    non_embedding_active = params.non_embedding - (params.with_head - params.active)
    return FlopCounts(
        kaplan=6.0 * non_embedding_active,
        six_n=6.0 * params.active,
        exact=3.0 * forward_flops_per_token(shape),
    )


def measured_param_counts(model, shape: ModelShape) -> ParamCounts:
    """Count a built model's parameters by walking its modules (the ground truth for tests)."""
    import torch

    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings().weight
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    non_embedding = sum(p.numel() for k, p in unique.items() if k not in embeddings and k != id(head))
    # Expert weights are stacked along a leading axis of length E; a token uses top_k of them.
    unused = 0
    if shape.is_moe:
        experts, top_k = int(shape.n_experts), int(shape.experts_top_k)
        for module in model.modules():
            if getattr(module, "num_experts", None) == experts:
                stacked = (p for p in module.parameters(recurse=False) if p.dim() == 3)  # not the router's E×d
                unused += sum(p.numel() * (experts - top_k) // experts for p in stacked)
    with_head = non_embedding + head.numel()
    return ParamCounts(non_embedding=non_embedding, with_head=with_head, total=total, active=with_head - unused)
