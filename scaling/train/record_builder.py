"""Assemble run records from a resolved run (see :mod:`scaling.records` for the schema)."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from typing import Any

from scaling.data.corpus import TrainingCorpus
from scaling.train.spec import RunSpec


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Library versions that change numerics: recorded in every run."""
    import accelerate
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the code that trained, when run from a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_record(
    *,
    run_id: str,
    status: str,
    cfg: dict[str, Any],
    spec: RunSpec,
    corpus: TrainingCorpus,
    curve: list[dict[str, Any]],
    steps: int,
    throughput: dict[str, float],
    device: str,
    world_size: int,
    final: dict[str, float] | None = None,
    reason: str | None = None,
    branch_of: str | None = None,
) -> dict[str, Any]:
    """One record for one (N, D) point: the main run or a WSD cooldown branch."""
    tokens = steps * spec.tokens_per_step
    record: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "experiment": cfg.get("experiment_name", "default"),
        "config": cfg,
        "model": {"family": spec.shape.family, **spec.shape.as_dict()},
        "params": spec.params.as_dict(),
        "tokens": tokens,
        "steps": steps,
        "flops": (spec.flops_per_token * tokens).as_dict(),
        "flops_per_token": spec.flops_per_token.as_dict(),
        "curve": curve,
        "final": final or {"val_loss": None, "train_loss": None},
        "throughput": throughput,
        "training": {
            "batch_size": spec.batch_size,
            "micro_batch_size": spec.micro_batch_size,
            "grad_accum": spec.grad_accum,
            "tokens_per_step": spec.tokens_per_step,
            "lr": spec.lr,
            "warmup_steps": spec.warmup_steps,
            "schedule": spec.schedule.name,
            "total_steps": steps,
            "epochs": tokens / max(1, len(corpus.train)),
            "world_size": world_size,
            "device": device,
            **spec.derived,
        },
        "corpus": corpus.describe(),
        "tokenizer": corpus.tokenizer,
        "versions": versions(),
        "git_commit": git_commit(),
    }
    if reason:
        record["reason"] = reason
    if branch_of:
        record["branch_of"] = branch_of
    return record
