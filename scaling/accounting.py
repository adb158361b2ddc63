"""Exact parameter counts and training FLOPs per token, under three conventions.

Parameter counts (Kaplan et al. 2020, sec. 2.1; Porian et al. 2024, sec. 3):

* ``non_embedding``: Kaplan's N, every parameter except the token and position
  embeddings and the output head;
* ``with_head``: the output projection counted, the input embedding not
  (Porian et al.'s N; for tied embeddings the head is the embedding matrix, counted once here);
* ``total``: every unique parameter.

Training FLOPs per token:

* ``kaplan``: 6·N_non_embedding (Kaplan et al. 2020, eq. 2.1 without the context term);
* ``six_n``: 6·N_with_head (the usual C ≈ 6ND of Hoffmann et al. 2022 with the head);
* ``exact``: every forward matmul, 2 FLOPs per multiply-add, times 3 for forward
  plus backward (Hoffmann et al. 2022, App. F; Chowdhery et al. 2022, App. B):
  QKV and output projections 8·d², attention scores QKᵀ and the weighted sum of
  values 2·2·T·d (the full T×T product, as dense kernels compute it), the MLP
  2·k·d·d_ff with k = 2 matrices for GELU (GPT-2) or 3 for SwiGLU (LLaMA), per
  layer; the LM head 2·d·V once. Norms, biases, softmax and RoPE are
  element-wise and left out, as ``torch.utils.flop_counter`` leaves them out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scaling.models import ModelShape, get_family


@dataclass(frozen=True)
class ParamCounts:
    non_embedding: int
    with_head: int
    total: int

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


def _layer_params(shape: ModelShape) -> int:
    d, f = shape.d_model, shape.d_ff
    assert f is not None
    if shape.family == "gpt2":
        # c_attn (d×3d + 3d), attn c_proj (d×d + d), c_fc (d×f + f), mlp c_proj (f×d + d), two LayerNorms (2·2d)
        return 3 * d * d + 3 * d + d * d + d + d * f + f + f * d + d + 4 * d
    # LLaMA: q, k, v, o without bias (4d²), gate/up/down (3·d·f), two RMSNorm weights (2d)
    return 4 * d * d + 3 * d * f + 2 * d


def count_params(shape: ModelShape) -> ParamCounts:
    """Analytic parameter counts for ``shape`` (tested against ``sum(p.numel())``)."""
    shape = shape.resolved()
    family = get_family(shape.family)
    d, V = shape.d_model, shape.vocab_size
    final_norm = 2 * d if shape.family == "gpt2" else d
    non_embedding = shape.n_layers * _layer_params(shape) + final_norm
    token_embedding = V * d
    positions = shape.context * d if family.learned_positions else 0
    head = 0 if shape.tie_embeddings else V * d
    return ParamCounts(
        non_embedding=non_embedding,
        with_head=non_embedding + V * d,
        total=non_embedding + token_embedding + positions + head,
    )


def forward_flops_per_token(shape: ModelShape) -> float:
    """Exact forward matmul FLOPs per token at full context (see module docstring)."""
    shape = shape.resolved()
    family = get_family(shape.family)
    d, f, T, V = shape.d_model, shape.d_ff, shape.context, shape.vocab_size
    assert f is not None
    projections = 2 * 4 * d * d  # Q, K, V, O
    attention = 2 * 2 * T * d  # QKᵀ and softmax(QKᵀ)·V over all T keys
    mlp = 2 * family.mlp_matrices * d * f
    head = 2 * d * V
    return float(shape.n_layers * (projections + attention + mlp) + head)


def flops_per_token(shape: ModelShape) -> FlopCounts:
    """Training FLOPs per token under the three conventions."""
    params = count_params(shape)
    return FlopCounts(
        kaplan=6.0 * params.non_embedding,
        six_n=6.0 * params.with_head,
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
    return ParamCounts(non_embedding=non_embedding, with_head=non_embedding + head.numel(), total=total)
