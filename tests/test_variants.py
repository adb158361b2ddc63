"""Variants as configuration: resolution, run ids, records, and their bad input (issue 14)."""

from __future__ import annotations

import pytest

from scaling.errors import ScalingError
from scaling.models import ModelShape
from scaling.records import record_to_row
from scaling.runid import run_id_for
from scaling.variants import apply_variant, known_variants

MODEL = {"family": "llama", "variant": None, "n_experts": None, "experts_top_k": None, "d_model": 64}


def test_no_variant_keeps_the_config_and_its_run_id() -> None:
    cfg = {"model": dict(MODEL), "grid": {"aspect": None}}
    assert apply_variant(cfg) == cfg
    without_keys = {"model": {"family": "llama", "d_model": 64}, "grid": {"aspect": None}}
    assert run_id_for(cfg) == run_id_for(without_keys)  # null variant keys are left out of the hash


def test_a_variant_merges_its_changes_and_changes_the_id() -> None:
    cfg = {"model": {**MODEL, "variant": "moe"}, "grid": {"aspect": None}}
    merged = apply_variant(cfg)
    assert merged["model"]["n_experts"] == 4 and merged["model"]["experts_top_k"] == 2
    assert apply_variant({"model": {**MODEL, "variant": "deep"}, "grid": {"aspect": None}})["grid"]["aspect"] == [
        16,
        32,
    ]
    assert run_id_for(merged) != run_id_for(cfg)


def test_every_shipped_variant_builds_a_shape() -> None:
    for name in known_variants():
        model = apply_variant({"model": {**MODEL, "variant": name}, "grid": {}})["model"]
        shape = ModelShape(
            family=model["family"],
            d_model=64,
            n_layers=2,
            n_heads=2,
            context=32,
            vocab_size=300,
            **{
                k: model[k]
                for k in (
                    "activation",
                    "norm",
                    "position",
                    "n_kv_heads",
                    "n_experts",
                    "experts_top_k",
                    "tie_embeddings",
                )
                if model.get(k) is not None
            },
        ).resolved()
        assert shape.hf_class


def test_unknown_variant_lists_the_known_ones() -> None:
    with pytest.raises(ScalingError, match=r"unknown variant 'nosuch' \(model.variant\); known: base, .*moe") as err:
        apply_variant({"model": {**MODEL, "variant": "nosuch"}, "grid": {}})
    assert "\n" not in str(err.value)


def test_a_key_set_against_the_variant_is_refused() -> None:
    with pytest.raises(ScalingError, match="model.experts_top_k=3 conflicts with variant 'moe'"):
        apply_variant({"model": {**MODEL, "variant": "moe", "experts_top_k": 3}, "grid": {}})


def test_top_k_larger_than_experts_is_one_line() -> None:
    with pytest.raises(ScalingError, match="experts_top_k=5 is larger than model.n_experts=4"):
        ModelShape("llama", 64, 2, 2, 32, 300, n_experts=4, experts_top_k=5).resolved()
    with pytest.raises(ScalingError, match="experts_top_k is set but model.n_experts is not"):
        ModelShape("llama", 64, 2, 2, 32, 300, experts_top_k=1).resolved()


def test_combinations_no_class_builds_are_refused() -> None:
    with pytest.raises(ScalingError, match="model.norm=rmsnorm has no gpt2 class"):
        ModelShape("gpt2", 64, 2, 2, 32, 300, norm="rmsnorm").resolved()
    with pytest.raises(ScalingError, match="needs family llama with rmsnorm and swiglu"):
        ModelShape("llama", 64, 2, 2, 32, 300, norm="layernorm", n_experts=4).resolved()
    with pytest.raises(ScalingError, match="n_kv_heads=3 must be positive and divide"):
        ModelShape("llama", 64, 2, 4, 32, 300, n_kv_heads=3).resolved()


def test_record_row_carries_variant_and_active_count() -> None:
    record = {
        "run_id": "x",
        "status": "finished",
        "config": {},
        "model": {"family": "llama", "variant": "moe"},
        "params": {"non_embedding": 1, "with_head": 3, "total": 4, "active": 2},
        "tokens": 10,
        "flops": {"kaplan": 1.0, "six_n": 1.0, "exact": 1.0},
        "curve": [],
        "final": {"val_loss": 3.0},
    }
    row = record_to_row(record)
    assert row["variant"] == "moe" and row["N_active"] == 2
    del record["params"]["active"]  # a record written before the count existed: dense, active = with_head
    assert record_to_row(record)["N_active"] == 3
