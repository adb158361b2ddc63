"""Multi-process training (DDP over gloo, on CPU) is the same run as one process.

`torchrun --nproc_per_node 2` on the same config (same global batch) must give the
same run id, the same loss curve within float tolerance, and a single run record
written by rank 0. Gradient accumulation is on (two micro-batches per rank), so the
no_sync path of the loop is the one exercised.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_train, tiny_overrides

from scaling.records import iter_record_paths, read_record
from scaling.train.run import run_training

pytestmark = pytest.mark.slow  # every test here starts torchrun and trains

SETTINGS = ("train.tokens=20000", "train.micro_batch_size=2", "train.device=cpu")  # global batch 8


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    one = run_training(compose_train(tiny_overrides(tmp_path / "one", *SETTINGS)))
    assert one.status == "finished"

    run_dir = tmp_path / "hydra-run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "scaling.train.app",
        *tiny_overrides(tmp_path / "two", *SETTINGS),
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]

    # Rank 0 alone reports and writes: one line, one record, one checkpoint, one run directory.
    assert done.stdout.count(f"run {one.run_id} finished") == 1, done.stdout
    (path,) = iter_record_paths(tmp_path / "two")
    two = read_record(path)
    a = read_record(one.record)
    assert two["run_id"] == one.run_id and two["status"] == "finished"
    # One checkpoint folder, written by rank 0 alone: the newest and the previous complete one (issue 18).
    saved = sorted(p.name for p in (tmp_path / "two" / "default" / "ckpt" / one.run_id).iterdir())
    assert saved in (["current"], ["current", "previous"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hydra-run", "one", "two"]

    # The same global batch, split: 2 ranks x 2 micro-batches of 2 vs 1 process x 4 micro-batches.
    assert (a["training"]["world_size"], two["training"]["world_size"]) == (1, 2)
    assert a["training"]["batch_size"] == two["training"]["batch_size"] == 8
    assert (a["training"]["grad_accum"], two["training"]["grad_accum"]) == (4, 2)
    assert a["tokens"] == two["tokens"]

    # The same curve within float tolerance (gloo's all-reduce sums in another order).
    assert [p["step"] for p in two["curve"]] == [p["step"] for p in a["curve"]]
    worst = 0.0
    for p, q in zip(a["curve"], two["curve"], strict=True):
        worst = max(worst, abs(p["val_loss"] - q["val_loss"]), abs(p["train_loss"] - q["train_loss"]))
    assert worst < 1e-4, worst
    assert two["final"]["val_loss"] == pytest.approx(a["final"]["val_loss"], abs=1e-4)
    assert two["final"]["val_loss"] < a["curve"][0]["val_loss"]  # it learnt
