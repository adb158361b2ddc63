"""Grid generation: shapes for a target N, isoFLOP token budgets, hyperparameter laws, bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from itertools import pairwise

import pytest
from conftest import compose_train

from scaling.accounting import count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.grid import (
    CONVENTIONS,
    HParamLaws,
    heads_for,
    hparams_for,
    hparams_for_shape,
    isoflop_point,
    n_ladder,
    n_opt_prior,
    shape_for_params,
    tokens_for_budget,
    tokens_for_multiplier,
)
from scaling.laws import get_law
from scaling.models import ModelShape
from scaling.train.spec import RunSpec, resolve_spec

LADDER = n_ladder(5e4, 1e9, 12)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize(("count", "vocab"), [("non_embedding", 50304), ("with_head", 256), ("total", 512)])
def test_shape_within_five_percent_across_ladder(family: str, count: str, vocab: int) -> None:
    for target in LADDER:
        shape = shape_for_params(target, family, count=count, vocab_size=vocab, context=256)
        got = getattr(count_params(shape), count)
        assert abs(got / target - 1) <= 0.05, (family, count, target, shape)
        assert shape.d_model % shape.n_heads == 0
        assert shape.head_dim % 2 == 0
        assert shape == shape.resolved()  # valid, d_ff filled from the family
        if target >= 1e6 and count == "non_embedding":
            assert 32 <= shape.d_model / shape.n_layers <= 128, shape  # default aspect band


def test_shape_is_deterministic_and_honours_aspect_and_head_dim() -> None:
    kw = {"count": "non_embedding", "vocab_size": 50304, "context": 1024}
    assert shape_for_params(3e8, "llama", **kw) == shape_for_params(3e8, "llama", **kw)
    deep = shape_for_params(3e8, "llama", aspect=(16, 24), **kw)
    wide = shape_for_params(3e8, "llama", aspect=(150, 250), **kw)
    assert deep.n_layers > wide.n_layers
    assert 16 <= deep.d_model / deep.n_layers <= 24
    assert 150 <= wide.d_model / wide.n_layers <= 250
    custom = shape_for_params(3e8, "gpt2", head_dim=128, **kw)
    assert custom.head_dim == 128 and custom.d_model % 128 == 0


def test_head_rule_works_for_tiny_widths() -> None:
    assert heads_for(512) == 8  # head_dim 64 from d = 256
    assert heads_for(256) == 4
    assert heads_for(16) == 1  # 16 is the even head dim closest to 32
    assert heads_for(48) == 2  # 24 beats 48 and 16
    assert heads_for(96) == 3
    for d in range(16, 256, 8):
        h = heads_for(d)
        assert d % h == 0 and (d // h) % 2 == 0
    assert heads_for(768, head_dim=128) == 6
    with pytest.raises(ScalingError, match="head_dim"):
        heads_for(768, head_dim=100)


def test_impossible_targets_raise_naming_target_and_family() -> None:
    with pytest.raises(ScalingError, match=r"llama.*1e\+04|1e\+04.*llama"):
        shape_for_params(1e4, "llama", count="with_head", vocab_size=50304, context=2048)
    with pytest.raises(ScalingError, match="gpt2"):
        shape_for_params(10, "gpt2", count="non_embedding", vocab_size=50304, context=2048)
    with pytest.raises(ScalingError, match="positive"):
        shape_for_params(float("nan"), "gpt2", vocab_size=100, context=16)
    with pytest.raises(ScalingError, match="unknown model family"):
        shape_for_params(1e6, "mamba", vocab_size=100, context=16)
    with pytest.raises(ScalingError, match="count"):
        shape_for_params(1e6, "gpt2", count="embedding", vocab_size=100, context=16)
    with pytest.raises(ScalingError, match="aspect"):
        shape_for_params(1e6, "gpt2", vocab_size=100, context=16, aspect=(100, 10))


def test_n_ladder_is_log_spaced_with_exact_endpoints() -> None:
    ladder = n_ladder(1e6, 1e9, 4)
    assert ladder[0] == 1e6 and ladder[-1] == 1e9
    assert [round(b / a, 9) for a, b in pairwise(ladder)] == [10.0, 10.0, 10.0]
    assert n_ladder(5e6, 5e6, 1) == [5e6]
    for bad in [(0, 1e9, 3), (1e9, 1e6, 3), (1e6, 1e9, 0), (1e6, 1e9, 2.5)]:
        with pytest.raises(ScalingError):
            n_ladder(*bad)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_isoflop_tokens_spend_the_budget_within_one_batch(convention: str) -> None:
    batch = 64 * 256
    for budget in (3e14, 1e16, 1e17):
        sizes = []
        for offset in (-2, -1, 0, 1, 2):
            shape, tokens = isoflop_point(
                budget, offset, family="llama", vocab_size=4096, context=256, convention=convention, round_to=batch
            )
            per_token = getattr(flops_per_token(shape), convention)
            assert tokens % batch == 0 and tokens >= batch
            assert abs(per_token * tokens - budget) <= per_token * batch / 2  # residual under half a batch
            sizes.append(count_params(shape).non_embedding)
        assert sizes == sorted(sizes)  # offsets walk up in N


def test_isoflop_centre_follows_prior_and_is_deterministic() -> None:
    kw = {"family": "gpt2", "vocab_size": 4096, "context": 256, "convention": "six_n"}
    shape, tokens = isoflop_point(1e17, 0, **kw)
    n = count_params(shape).with_head
    assert abs(n / math.sqrt(1e17 / (6 * 20)) - 1) <= 0.05  # D = 20 N under C = 6ND
    assert abs(tokens / n / 20 - 1) < 0.15
    assert isoflop_point(1e17, 0, **kw) == (shape, tokens)
    shape_law, _ = isoflop_point(1e17, 0, prior="hoffmann2022", **kw)
    assert abs(count_params(shape_law).with_head / get_law("hoffmann2022").compute_optimal(1e17).n - 1) <= 0.05
    assert n_opt_prior(6e18, 20) == pytest.approx(math.sqrt(6e18 / 120))
    assert n_opt_prior(6e18, "20") == n_opt_prior(6e18, 20.0)
    with pytest.raises(ScalingError, match="unknown law"):
        n_opt_prior(1e18, "chinchilla70")


def test_too_small_budget_and_empty_grid_raise() -> None:
    shape = ModelShape("llama", d_model=256, n_layers=4, n_heads=4, context=256, vocab_size=4096).resolved()
    with pytest.raises(ScalingError, match=r"budget 1e\+09"):
        tokens_for_budget(shape, 1e9, "exact", round_to=65536)
    with pytest.raises(ScalingError, match="FLOP convention"):
        tokens_for_budget(shape, 1e15, "approx")
    with pytest.raises(ScalingError, match="positive"):
        tokens_for_budget(shape, -1.0, "six_n")
    assert tokens_for_multiplier(shape, 20, count="with_head", round_to=256) % 256 == 0


def _isoflop_spec(budget: float, offset: int) -> RunSpec:
    """One isoFLOP job resolved by the resolver training uses, batch and lr from the hparam laws."""
    overrides = ["grid.kind=isoflop", f"train.flops={budget}", f"grid.offset={offset}", "train.batch_size=null"]
    overrides += ["optim.lr=null", "model.vocab_size=4096", "model.context=256", "train.flops_convention=exact"]
    return resolve_spec(compose_train(overrides), 4096)


def test_isoflop_jobs_round_to_batches_and_cap_warmup() -> None:
    """The one resolver (training's) puts each isoFLOP job on its budget, in whole law-sized batches."""
    for budget in (1e15, 1e16):
        for offset in (-1, 0, 1):
            spec = _isoflop_spec(budget, offset)
            per_token = flops_per_token(spec.shape).exact
            law = hparams_for_shape(spec.shape, HParamLaws())
            assert spec.tokens_per_step == law.batch_tokens
            assert abs(per_token * spec.tokens - budget) <= per_token * spec.tokens_per_step / 2
            assert spec.params == count_params(spec.shape)
            # The law's warmup (N tokens), capped at schedule.max_warmup_frac (0.25) of the run.
            law_steps = round(law.warmup_tokens / spec.tokens_per_step)
            assert spec.warmup_steps == max(1, int(min(law_steps, 0.25 * spec.steps)))
    assert _isoflop_spec(1e16, 0) == _isoflop_spec(1e16, 0)


def test_hparam_laws_match_olmo_formula_at_reference_points() -> None:
    ref = hparams_for(108e6, context=2048)
    assert ref.lr == pytest.approx(0.0047)
    assert ref.batch_tokens == 160 * 2048
    eight = hparams_for(8 * 108e6, context=2048)
    assert eight.lr == pytest.approx(0.0047 / 2)  # (8)^(-1/3)
    assert eight.batch_tokens == 4 * 160 * 2048  # (8)^(2/3)
    assert ref.warmup_tokens == 108_000_000  # one token per parameter (the run's length caps it: resolve_spec)


def test_hparam_laws_are_monotone_and_clamped() -> None:
    ladder = n_ladder(1e5, 1e11, 13)
    hps = [hparams_for(n, context=512) for n in ladder]
    assert all(a.lr >= b.lr for a, b in pairwise(hps))
    assert all(a.batch_tokens <= b.batch_tokens for a, b in pairwise(hps))
    assert all(h.batch_tokens % 512 == 0 and h.batch_tokens >= 512 for h in hps)
    assert max(h.lr for h in hps) == pytest.approx(HParamLaws().lr_max)
    assert max(h.batch_tokens for h in hps) <= HParamLaws().batch_max_tokens


def test_hparam_config_overrides_and_errors() -> None:
    cfg = {
        "lr_ref": 0.003,
        "lr_ref_params": 1e8,
        "batch_ref_tokens": 65536,
        "batch_ref_params": 1e8,
        "lr_max": None,
        "count": "non_embedding",
    }
    hp = hparams_for(1e8, cfg, context=1024)
    assert hp.lr == pytest.approx(0.003) and hp.batch_tokens == 65536
    shape = ModelShape("gpt2", d_model=512, n_layers=8, n_heads=8, context=1024, vocab_size=50304).resolved()
    via_shape = hparams_for_shape(shape, cfg)
    assert via_shape == hparams_for(count_params(shape).non_embedding, cfg, context=1024)
    with pytest.raises(ScalingError, match="unknown hparams key 'lr_reff'"):
        hparams_for(1e8, {"lr_reff": 1})
    with pytest.raises(ScalingError, match="lr_min"):
        hparams_for(1e8, {"lr_min": 0.1, "lr_max": 0.01})
    with pytest.raises(ScalingError, match="n_params"):
        hparams_for(0)
    with pytest.raises(ScalingError, match="must be a float"):
        hparams_for(1e8, {"lr_ref": "fast"})


def test_grid_and_plan_do_not_import_torch() -> None:
    code = "import sys, scaling.grid, scaling.plan.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fixed_depth_is_a_width_ladder() -> None:
    """grid.n_layers fixes the depth, so neighbouring sizes differ only in width."""
    kw = dict(count="with_head", vocab_size=512, context=64, n_layers=2)
    shapes = [shape_for_params(n, "llama", **kw) for n in (3e4, 6e4, 1.2e5, 2.4e5)]
    assert {s.n_layers for s in shapes} == {2}
    assert [s.d_model for s in shapes] == sorted({s.d_model for s in shapes})


def _demo_grid() -> tuple[dict, list[float], list[float]]:
    import yaml

    from scaling.config import CONFIG_DIR

    preset = yaml.safe_load((CONFIG_DIR / "experiment" / "demo.yaml").read_text())
    params = preset["hydra"]["sweeper"]["params"]
    budgets = [float(v) for v in str(params["train.flops"]).split(",")]
    offsets = [float(v) for v in str(params["grid.offset"]).split(",")]
    return preset, budgets, offsets


def test_demo_grid_straddles_the_prior_optimum_at_every_budget() -> None:
    """The main job's design (issue 12): at every budget, sizes sit on both sides of the prior N_opt,
    on one fixed depth (a width ladder), with at least 4 budgets over at least 8x in C."""
    from scaling.train.dry_run import resolve_job

    preset, budgets, offsets = _demo_grid()
    assert len(budgets) >= 4 and max(budgets) / min(budgets) >= 8
    assert sorted(budgets) == sorted(float(b) for b in preset["grid"]["budgets"])
    for budget in budgets:
        sizes = []
        for offset in offsets:
            cfg = compose_train(["+experiment=demo", f"train.flops={budget}", f"grid.offset={offset}"])
            shape = resolve_job(cfg, []).spec.shape
            sizes.append(count_params(shape).with_head)
            assert shape.n_layers == preset["grid"]["n_layers"]
        prior = n_opt_prior(budget, preset["grid"]["prior"])
        below, above = [n for n in sizes if n < prior / 1.2], [n for n in sizes if n > prior * 1.2]
        assert len(below) >= 2 and len(above) >= 2, (budget, prior, sizes)
        assert sizes == sorted(sizes)


def test_demo_grid_trains_one_run_per_size() -> None:
    """WSD branches: the 20 (C, offset) points of the demo come from one training run per distinct size."""
    from scaling.runid import run_id_for
    from scaling.train.dry_run import resolve_job

    _, budgets, offsets = _demo_grid()
    runs, shapes = set(), set()
    for budget in budgets:
        for offset in offsets:
            job = resolve_job(compose_train(["+experiment=demo", f"train.flops={budget}", f"grid.offset={offset}"]), [])
            runs.add(run_id_for(job.config))
            shapes.add((job.spec.shape.d_model, job.spec.shape.n_layers))
    assert len(runs) == len(shapes) < len(budgets) * len(offsets)
