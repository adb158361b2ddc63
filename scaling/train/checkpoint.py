"""Checkpoints that survive a kill at any instant.

A checkpoint is a folder holding ``model/`` (``save_pretrained``: loads with
``from_pretrained``) and ``trainer_state.pt`` (optimizer state, step, the eval
curve so far, finished WSD branches). It is written to ``<dir>/.tmp`` and then
swapped in by renames: at every instant either ``current`` or ``previous`` holds
a complete checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "trainer_state.pt"


def save_checkpoint(folder: Path, model: Any, state: dict[str, Any]) -> Path:
    """Write a complete checkpoint and atomically make it ``current``."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp, current, previous = folder / ".tmp", folder / "current", folder / "previous"
    shutil.rmtree(tmp, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per checkpoint would drown the training bar
    model.save_pretrained(tmp / "model", safe_serialization=True)
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(previous, ignore_errors=True)
    if current.exists():
        current.rename(previous)
    tmp.rename(current)
    shutil.rmtree(previous, ignore_errors=True)
    return current


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder, if any."""
    for name in ("current", "previous"):
        path = folder / name
        if (path / STATE_FILE).is_file() and (path / "model").is_dir():
            return path
    return None


def load_state(path: Path) -> dict[str, Any]:
    """The trainer state saved beside the model."""
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
