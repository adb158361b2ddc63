"""Stable run identities.

A run's id is a hash of its resolved config minus the keys that do not change
what is trained (output paths, logging, checkpoint cadence, device). The same
config therefore always maps to the same record: re-running a sweep finds and
skips finished runs and resumes interrupted ones, whatever Hydra's job number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Top-level groups and dotted keys that never affect the trained model or its data.
EXCLUDED = (
    "paths",
    "logging",
    "checkpoint",
    "hydra",
    "train.device",
    "train.interrupt_at_step",
    "train.compile",
    "train.threads",
    "train.dry_run",
)
# Keys added after runs were recorded: left out while null (their default), so older configs keep their ids.
OMITTED_WHEN_NULL = (
    "data.unique_tokens",
    "grid.n_layers",
    "grid.budgets",
    "grid.offsets",
    "model.variant",
    "model.activation",
    "model.norm",
    "model.position",
    "model.n_kv_heads",
    "model.n_experts",
    "model.experts_top_k",
)


def _strip(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if dotted in EXCLUDED or (value is None and dotted in OMITTED_WHEN_NULL):
            continue
        out[key] = _strip(value, dotted + ".") if isinstance(value, Mapping) else value
    return out


def run_id_for(cfg: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """16 hex digits of sha256 over the canonical JSON of the semantic config (+ ``extra``)."""
    payload = {"config": _strip(cfg), "extra": dict(extra or {})}
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
