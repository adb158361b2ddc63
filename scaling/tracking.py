"""Experiment tracking hooks (Weights & Biases). Placeholder-free: no tracker means records only."""

from __future__ import annotations

from typing import Any


def tracker_factory(cfg: dict[str, Any], run_id: str, spec: Any) -> Any:
    """Return a tracker for this run, or None when tracking is off."""
    return None
