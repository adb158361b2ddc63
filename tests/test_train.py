"""End-to-end training on the embedded corpus: records, resume, divergence, skipping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import compose_train, tiny_overrides

from scaling.records import read_record
from scaling.train.run import run_training


def _train(results: Path, *extra: str):
    budget = [] if any(e.startswith("train.tokens=") for e in extra) else ["train.tokens=20000"]
    return run_training(compose_train(tiny_overrides(results, *budget, *extra)))


@pytest.mark.slow
def test_run_writes_a_complete_record_and_learns(tmp_path: Path) -> None:
    outcome = _train(tmp_path, "model.family=gpt2", "train.tokens=60000", "optim.lr=1e-2")
    assert outcome.status == "finished"
    record = read_record(outcome.record)
    assert record["status"] == "finished"
    assert record["model"]["family"] == "gpt2"
    steps = record["steps"]
    assert record["tokens"] == steps * 8 * 64
    for conv in ("kaplan", "six_n", "exact"):
        assert record["flops"][conv] == pytest.approx(record["flops_per_token"][conv] * record["tokens"])
    curve = record["curve"]
    assert curve[-1]["step"] == steps and len(curve) >= 4
    assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)
    assert set(curve[0]) == {"step", "tokens", "flops", "train_loss", "val_loss", "lr"}
    # Real learning: the final loss beats the start and the unigram entropy of the corpus.
    assert record["final"]["val_loss"] < curve[0]["val_loss"]
    assert record["final"]["val_loss"] < record["corpus"]["unigram_entropy_nats"]
    assert record["corpus"]["fingerprint"] and record["versions"]["torch"]
    assert record["throughput"]["tokens_per_s"] > 0
    # No temp files are left beside the record.
    assert [p.name for p in outcome.record.parent.iterdir()] == [outcome.record.name]


@pytest.mark.slow
def test_same_config_same_run_id_and_rerun_skips(tmp_path: Path) -> None:
    first = _train(tmp_path)
    mtime = first.record.stat().st_mtime_ns
    second = _train(tmp_path)
    assert second.run_id == first.run_id
    assert second.status == "skipped" and "already finished" in second.message
    assert first.record.stat().st_mtime_ns == mtime
    other = _train(tmp_path, "seed=1")
    assert other.run_id != first.run_id


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted(tmp_path: Path) -> None:
    straight = _train(tmp_path / "a")
    stopped = _train(tmp_path / "b", "train.interrupt_at_step=10")
    assert stopped.status == "interrupted" and stopped.exit_code == 128 + 15
    partial = read_record(stopped.record)
    assert partial["status"] == "running" and partial["steps"] == 10
    resumed = _train(tmp_path / "b")
    assert resumed.run_id == straight.run_id
    a, b = read_record(straight.record), read_record(resumed.record)
    assert b["training"]["resumed_from_step"] == 10
    assert b["final"]["val_loss"] == pytest.approx(a["final"]["val_loss"], rel=1e-6, abs=1e-6)
    assert [p["step"] for p in b["curve"]] == [p["step"] for p in a["curve"]]
    for pa, pb in zip(a["curve"], b["curve"], strict=True):
        assert pb["val_loss"] == pytest.approx(pa["val_loss"], rel=1e-6, abs=1e-6)


@pytest.mark.slow
def test_sigterm_checkpoints_and_a_rerun_resumes(tmp_path: Path) -> None:
    """A real SIGTERM to a real scaling-train process: checkpoint, clean exit, resume."""
    args = [sys.executable, "-m", "scaling.train.app", *tiny_overrides(tmp_path, "train.tokens=200000")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    runs = tmp_path / "default" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        recs = list(runs.glob("*.json")) if runs.exists() else []
        if recs and len(json.loads(recs[0].read_text())["curve"]) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + 15, err
    assert "Traceback" not in err and "interrupted by SIGTERM" in out
    stopped_at = read_record(recs[0])["steps"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    record = read_record(recs[0])
    assert record["status"] == "finished"
    assert record["training"]["resumed_from_step"] == stopped_at > 0


@pytest.mark.slow
def test_nan_loss_marks_the_run_diverged(tmp_path: Path) -> None:
    outcome = _train(tmp_path, "optim.lr=1e30", "optim.grad_clip=0", "schedule.warmup_tokens=0")
    assert outcome.status == "diverged" and outcome.exit_code == 1
    record = read_record(outcome.record)
    assert record["status"] == "diverged"
    assert "non-finite" in record["reason"]
    # A diverged run is kept, not retrained.
    assert _train(tmp_path, "optim.lr=1e30", "optim.grad_clip=0", "schedule.warmup_tokens=0").status == "skipped"


@pytest.mark.slow
def test_checkpoint_loads_with_from_pretrained(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    outcome = _train(tmp_path, "model.family=llama")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "default" / "ckpt" / outcome.run_id / "current" / "model")
    assert type(model).__name__ == "LlamaForCausalLM"


def test_a_run_claimed_by_another_process_is_skipped(tmp_path: Path) -> None:
    from scaling.train.run import claim_run

    ckpt = tmp_path / "ckpt" / "abc"
    held = claim_run(ckpt)
    assert held is not None
    assert claim_run(ckpt) is None  # a second claimant (another sweep) backs off
    held.close()
    again = claim_run(ckpt)
    assert again is not None
    again.close()
