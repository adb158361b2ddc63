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


def budget_tag(cfg: dict[str, Any], fraction: float = 1.0) -> dict[str, Any]:
    """The record's ``budget`` tag (schema in :mod:`scaling.records`) for a horizon of this run.

    Read from the config the run was resolved from; a WSD branch at ``fraction`` of the main
    horizon is its own budget, ``fraction`` times the main one. With the ``chinchilla`` preset's
    ``schedule=wsd`` the config is already merged (``merge_wsd_budgets``: the largest budget, the
    smaller ones as branches), so each branch's tag gives back its own ``tokens_per_param``.
    """
    train, grid = cfg["train"], cfg["grid"]
    kind = str(grid["kind"])

    def scaled(key: str) -> float | None:
        if train[key] is None:
            return None
        value = float(train[key]) * fraction
        # b / B * B is not always b in floating point; 12 digits give the budget the sweep named.
        return value if fraction == 1.0 else float(f"{value:.12g}")

    flops = scaled("flops")
    return {
        "flops": flops,
        "flops_convention": str(train["flops_convention"]) if flops is not None else None,
        "tokens": scaled("tokens"),
        "tokens_per_param": scaled("tokens_per_param"),
        "grid_kind": kind,
        "grid_offset": grid["offset"] if kind == "isoflop" else None,
        "fraction": fraction,
    }


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
    fraction: float = 1.0,
) -> dict[str, Any]:
    """One record for one (N, D) point: the main run or a WSD cooldown branch at ``fraction`` of its budget."""
    tokens = steps * spec.tokens_per_step
    record: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "experiment": cfg["experiment_name"],
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
        "budget": budget_tag(cfg, fraction),
    }
    if reason:
        record["reason"] = reason
    if branch_of:
        record["branch_of"] = branch_of
    return record
