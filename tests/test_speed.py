"""Throughput helpers and the fast paths of the step: same maths as the plain reference, right peaks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT, compose_train

from scaling.errors import ScalingError
from scaling.models import ModelShape, build_model
from scaling.train.speed import (
    PEAK_TFLOPS,
    adamw_kwargs,
    cpu_threads,
    fused_adamw_supported,
    measured_matmul_peak,
    mfu,
    plain_torch_step,
    table_peak,
    use_causal_sdpa,
)

# -- MFU and peaks -------------------------------------------------------------------------


def test_mfu_is_achieved_over_peak() -> None:
    # GPT-2 small at ~0.9 GFLOP/token (exact, T=1024): 550k tokens/s on an H100 SXM is ~50%.
    assert mfu(494.7e12, 989.4e12) == pytest.approx(0.5)
    assert mfu(1e12, None) is None
    assert mfu(1e12, 0.0) is None


@pytest.mark.parametrize(
    ("name", "label", "bf16"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", "H100 NVL", 835.5),
        ("NVIDIA H200", "H200 SXM", 989.4),
        ("NVIDIA GH200 480GB", "GH200", 989.4),
        ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
        ("NVIDIA A100 80GB PCIe", "A100", 312.0),
        ("NVIDIA A10", "A10", 125.0),
        ("NVIDIA L4", "L4", 121.0),
        ("NVIDIA L40S", "L40S", 362.05),
        ("NVIDIA L40", "L40", 181.05),
        ("NVIDIA GeForce RTX 4090", "RTX 4090", 165.2),
    ],
)
def test_table_peak_matches_the_specific_part(name: str, label: str, bf16: float) -> None:
    peak = table_peak(name, "bf16")
    assert (peak.label, peak.tflops) == (label, bf16)
    assert peak.flops == pytest.approx(bf16 * 1e12)


def test_table_peak_unknown_device_or_dtype() -> None:
    assert table_peak("NVIDIA A10G").tflops is None  # not A10, not A100: no guess
    assert table_peak("Some Future GPU").label is None
    v100 = table_peak("Tesla V100-SXM2-16GB", "bf16")
    assert v100.label == "V100 SXM" and v100.tflops is None  # no bf16 tensor cores
    assert table_peak("Tesla V100-SXM2-16GB", "fp16").tflops == 125.0
    with pytest.raises(ValueError):
        table_peak("NVIDIA H100", "int8")
    assert all(re_peaks for _, _, re_peaks in PEAK_TFLOPS)


def test_measured_matmul_peak_on_cpu_is_a_rate() -> None:
    rate = measured_matmul_peak(torch.device("cpu"), torch.float32, size=128, repeats=3)
    assert math.isfinite(rate) and rate > 1e6


# -- fast paths: the same maths --------------------------------------------------------------


def _groups(model: torch.nn.Module) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def test_adamw_choice() -> None:
    assert fused_adamw_supported("cuda")
    assert adamw_kwargs("cpu", False) == {}
    assert adamw_kwargs("cuda", True) == {"fused": True}
    cpu = adamw_kwargs("cpu")
    assert cpu == ({"fused": True} if fused_adamw_supported("cpu") else {})


@pytest.mark.slow
def test_fused_and_foreach_adamw_match_the_per_tensor_reference() -> None:
    shape = ModelShape("llama", 32, 2, 2, 16, 64).resolved()
    models = {k: build_model(shape, seed=3) for k in ("reference", "fused", "foreach")}
    impl = {"reference": {"foreach": False}, "fused": adamw_kwargs("cpu"), "foreach": {"foreach": True}}
    opts = {k: torch.optim.AdamW(_groups(m), lr=3e-3, betas=(0.9, 0.95), **impl[k]) for k, m in models.items()}
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        x = torch.randint(0, 64, (4, 17), generator=gen)
        for k, model in models.items():
            logits = model(input_ids=x[:, :-1]).logits
            F.cross_entropy(logits.reshape(-1, 64), x[:, 1:].reshape(-1)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
    ref = dict(models["reference"].named_parameters())
    for k in ("fused", "foreach"):
        for name, p in models[k].named_parameters():
            torch.testing.assert_close(p, ref[name], rtol=1e-5, atol=1e-6, msg=f"{k}: {name}")


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_causal_sdpa_gives_the_same_logits_and_stays_causal(family: str) -> None:
    model = build_model(ModelShape(family, 32, 2, 2, 32, 128).resolved(), seed=1)
    x = torch.randint(0, 128, (3, 32), generator=torch.Generator().manual_seed(0))
    before = model(input_ids=x).logits
    assert use_causal_sdpa(model)
    after = model(input_ids=x).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    changed = x.clone()
    changed[:, 20] = (changed[:, 20] + 1) % 128
    moved = model(input_ids=changed).logits
    torch.testing.assert_close(moved[:, :20], after[:, :20], rtol=0, atol=1e-6)  # no look-ahead
    assert not torch.allclose(moved[:, 20:], after[:, 20:])
    eager = build_model(ModelShape(family, 32, 1, 2, 32, 128).resolved(), attn_implementation="eager")
    assert not use_causal_sdpa(eager)


def _synthetic_corpus(vocab: int, context: int):
    from scaling.data.corpus import TrainingCorpus
    from scaling.data.tokens import TokenStream

    rng = np.random.default_rng(0)
    train = TokenStream([rng.integers(0, vocab, 50_000).astype(np.uint16)])
    val = TokenStream([rng.integers(0, vocab, 8 * (context + 1)).astype(np.uint16)])
    return TrainingCorpus("synthetic", "-", train, val, vocab, 0, {})


@pytest.mark.slow
def test_train_step_matches_a_plain_reference_loop(tmp_path: Path) -> None:
    """Our step (fused AdamW, accelerate bypassed where it only forwards) = the textbook loop."""
    from scaling.data.tokens import batch_offsets, gather_windows
    from scaling.train.loop import Trainer
    from scaling.train.run import _accelerator
    from scaling.train.spec import resolve_spec

    overrides = [
        "model.d_model=32",
        "model.n_layers=2",
        "model.n_heads=2",
        "model.context=32",
        "model.vocab_size=128",
        "train.batch_size=4",
        "train.tokens=4096",
        "train.device=cpu",
        "optim.lr=1e-2",
        "logging.wandb=false",
    ]
    cfg = compose_train(overrides)
    spec = resolve_spec(cfg, 128)
    corpus = _synthetic_corpus(128, spec.context)
    acc = _accelerator(cfg)
    assert plain_torch_step(acc)
    trainer = Trainer(spec, corpus, build_model(spec.shape, seed=0), acc, cfg, tmp_path, progress=False)
    ref = build_model(spec.shape, seed=0)
    ref_opt = torch.optim.AdamW(_groups(ref), lr=spec.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    for step in range(5):
        ours = trainer.train_step(step, spec.schedule)
        for group in ref_opt.param_groups:
            group["lr"] = spec.schedule.lr_at(step)
        w = torch.from_numpy(
            gather_windows(corpus.train, batch_offsets(0, step, 4, len(corpus.train), spec.context), spec.context)
        )
        logits = ref(input_ids=w[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, 128), w[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        assert float(ours) == pytest.approx(loss.item(), rel=1e-5)
    ref_params = dict(ref.named_parameters())
    for name, p in trainer.raw_model.named_parameters():
        torch.testing.assert_close(p, ref_params[name], rtol=1e-5, atol=1e-6, msg=name)


def test_cpu_threads_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        assert cpu_threads("auto", "cpu") == 1 and torch.get_num_threads() == 1
        assert cpu_threads(3, "cpu") == 3 and torch.get_num_threads() == 3
        assert cpu_threads("torch", "cpu") is None and torch.get_num_threads() == 3
        assert cpu_threads("auto", "cuda") is None
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's or the packed launcher's choice wins
        assert cpu_threads("auto", "cpu") is None and torch.get_num_threads() == 3
        for bad in ("many", 0):
            with pytest.raises(ScalingError, match="train.threads"):
                cpu_threads(bad, "cpu")
    finally:
        torch.set_num_threads(before)


# -- the benchmark script ------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_script_runs_a_tiny_ladder_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_train.py"),
            "--quick",
            "--threads",
            "1",
            "--whole-machine",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},  # this checkout's package, whatever is installed
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# command: python scripts/bench_train.py --quick")
    assert any(line.startswith("tiny-1 llama d16") for line in lines)
    data = json.loads(out.read_text())
    assert [r["case"] for r in data["rows"]] == ["tiny-1", "tiny-2"]
    for row in data["rows"]:
        assert row["tokens_per_s"]["ours"] > 0 and row["tokens_per_s"]["base"] > 0
        assert row["flops_per_s"]["ours"] == pytest.approx(row["tokens_per_s"]["ours"] * row["exact_flops_per_token"])
        assert row["mfu_measured"]["ours"] > 0 and row["mfu_table"]["ours"] is None  # CPUs: no table peak
        assert row["fused_adamw"] == fused_adamw_supported("cpu")
    machine = data["whole_machine"]
    assert machine["k"] == 2 and [r["case"] for r in machine["rows"]] == ["tiny-1", "tiny-2"]
    for row in machine["rows"]:
        assert set(row["tokens_per_s"]) == {"base_default_threads", "ours_one_thread", "ours_packed"}
        assert all(rate > 0 for rate in row["tokens_per_s"].values())
    assert any(line.startswith("packed / base over shapes: median") for line in lines)


@pytest.mark.slow
def test_bench_demo_ladder_is_the_demo_sweep_as_trained() -> None:
    """The benchmark's demo shapes and their token weights are those of the committed demo records."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import bench_train
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    from scaling.records import load_records

    records = load_records(REPO_ROOT / "results" / "demo_reference")
    assert len(bench_train.demo_points()) == len(records) == 25  # 5 budgets x 5 offsets, one record each
    tokens = bench_train.demo_sweep_tokens()
    assert set(tokens) == {case.name for case in bench_train.demo_ladder()}
    mains = [r for r in records if not r.get("branch_of")]
    assert len(tokens) == len(mains) == 9  # one training run per size, its branches riding along
    # A run trains its main horizon plus a cooldown (20% of the branch's horizon) per WSD branch.
    trained = sum(r["tokens"] for r in mains) + sum(0.2 * r["tokens"] for r in records if r.get("branch_of"))
    assert sum(tokens.values()) == pytest.approx(trained, rel=1e-3)
    shapes = {(r["model"]["d_model"], r["model"]["n_layers"]) for r in records}
    assert {(s.d_model, s.n_layers) for s in bench_train.demo_shapes()} == shapes
