"""Checkpoints that survive a kill at any instant, and are verified before they are trusted.

A checkpoint is a folder holding ``model/`` (``save_pretrained``: loads with
``from_pretrained``), ``trainer_state.pt`` (optimizer state, step, the eval
curve so far, finished WSD branches) and ``checksums.json`` (size and sha256 of
every other file, written last). It is written to ``<dir>/.tmp``, fsynced, and
then swapped in by renames: the old ``current`` becomes ``previous`` and the
new one ``current``. Both are kept, so at every instant at least one complete
checkpoint exists, and a damaged ``current`` (a truncated copy, flipped bytes)
still leaves the older one to resume from.

Resuming (:func:`find_checkpoint`) checks the sizes and sha256s and loads the
state and the weights inside one error path. A damaged checkpoint is set aside
(``current.damaged-<time>``, kept for inspection) and the older one used; with
no complete older one the run restarts from step 0 with one warning line. That
is the safe choice: the data order is a pure function of ``(seed, step)`` and
the initialisation of ``seed``, so a restart reaches exactly the result of an
uninterrupted run and costs only compute, whereas stopping would halt a whole
sweep (and fail every SLURM requeue) until someone removes the same folder.
A disk that fills during a save removes the half-written ``.tmp`` and leaves
``current`` and ``previous`` as they were.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from scaling.damage import checksum_problem, disk_full_error, file_checksums, is_disk_full, set_aside, warn

STATE_FILE = "trainer_state.pt"
WEIGHTS_FILE = "model/model.safetensors"
CHECKSUMS = "checksums.json"
NEWEST_FIRST = ("current", "previous")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def save_checkpoint(folder: Path, model: Any, state: dict[str, Any]) -> Path:
    """Write a complete, checksummed checkpoint and atomically make it ``current`` (the old one: ``previous``)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp, current, previous = folder / ".tmp", folder / "current", folder / "previous"
    shutil.rmtree(tmp, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per checkpoint would drown the training bar
    try:
        model.save_pretrained(tmp / "model", safe_serialization=True)
        with open(tmp / STATE_FILE, "wb") as fh:  # our handle: a full disk surfaces as OSError(ENOSPC)
            torch.save(state, fh)
        # fsynced before the rename publishes them: a node that dies leaves no empty file behind
        sums = json.dumps(file_checksums(tmp, _files(tmp)), indent=1)
        with open(tmp / CHECKSUMS, "w") as fh:
            fh.write(sums)
            fh.flush()
            os.fsync(fh.fileno())
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(err):
            newest = next((folder / n for n in NEWEST_FIRST if (folder / n).is_dir()), None)
            kept = f"the last checkpoint {newest} is kept" if newest else "no earlier checkpoint existed"
            raise disk_full_error(tmp, kept) from None
        raise
    if current.exists():
        shutil.rmtree(previous, ignore_errors=True)
        current.rename(previous)
    tmp.rename(current)
    return current


class DamagedCheckpoint(Exception):
    """A checkpoint folder that fails its checksums or cannot be loaded."""


def verify_checkpoint(path: Path) -> None:
    """Raise DamagedCheckpoint naming the first file whose size or sha256 differs from ``checksums.json``.

    A checkpoint written before checksums existed has none; it is verified by loading only.
    """
    sums_file = path / CHECKSUMS
    if not sums_file.is_file():
        return
    try:
        sums = json.loads(sums_file.read_text())
    except (OSError, ValueError) as err:
        raise DamagedCheckpoint(f"{sums_file} is unreadable ({type(err).__name__})") from None
    problem = checksum_problem(path, sums)
    if problem:
        raise DamagedCheckpoint(problem)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(trainer state, model weights) of a verified checkpoint; DamagedCheckpoint if it cannot be trusted."""
    from safetensors.torch import load_file

    verify_checkpoint(path)
    for name in (STATE_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise DamagedCheckpoint(f"{path / name} is missing")
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as err:
        raise DamagedCheckpoint(f"{path / STATE_FILE} cannot be loaded ({_first_line(err)})") from None
    try:
        weights = load_file(str(path / WEIGHTS_FILE))
    except Exception as err:
        raise DamagedCheckpoint(f"{path / WEIGHTS_FILE} cannot be loaded ({_first_line(err)})") from None
    if not isinstance(state, dict) or "step" not in state or "optimizer" not in state:
        raise DamagedCheckpoint(f"{path / STATE_FILE} holds no trainer state")
    return state, weights


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


@dataclass
class FoundCheckpoint:
    """What resuming found in a run's checkpoint folder: the newest usable checkpoint, and the damaged ones."""

    path: Path | None = None
    state: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    damaged: list[tuple[Path, str]] = field(default_factory=list)

    def set_damaged_aside(self) -> None:
        """Rename each damaged checkpoint aside (kept) and say in one line what the run does instead.

        Called on the main process only, after every process has read the folder.
        """
        for path, why in self.damaged:
            kept = set_aside(path)
            then = (
                f"resuming from the older complete checkpoint {self.path}"
                if self.path is not None
                else "no complete older checkpoint exists, so the run restarts from step 0"
            )
            warn(f"checkpoint {path} is damaged: {why}; kept as {kept.name}; {then}")


def find_checkpoint(folder: Path) -> FoundCheckpoint:
    """The newest checkpoint of ``folder`` that passes verification, plus any damaged newer ones (read only)."""
    found = FoundCheckpoint()
    for name in NEWEST_FIRST:
        path = folder / name
        if not path.is_dir():
            continue
        try:
            found.state, found.weights = load_checkpoint(path)
        except DamagedCheckpoint as err:
            found.damaged.append((path, str(err)))
            continue
        found.path = path
        break
    return found
