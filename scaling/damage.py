"""Damaged state on disk: one home for how it is reported, kept and told apart from a full disk.

Long sweeps meet damaged files (a node dies mid-write, a quota fills, a copy is
half synced). The rule everywhere (README, "What happens when…"): damage is
never a traceback, never silently used, and never deleted. A file that can be
rebuilt (a cache) or retrained (a checkpoint, a run record) is renamed aside
with :func:`set_aside` and reported in one ``warning:`` line; one that cannot
(a prepared corpus, a full disk) stops with one ``error:`` line that names the
path and the remedy (:class:`scaling.errors.ScalingError`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

# ENOSPC: the file system is full; EDQUOT: the user's quota is.
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# Writers in Rust (safetensors) report the OS error in their message only.
_DISK_FULL_TEXT = tuple(f"(os error {n})" for n in sorted(_DISK_FULL_ERRNOS))


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, read in chunks (shards can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def warn(message: str) -> None:
    """One ``warning:`` line on stderr: the run goes on."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def set_aside(path: Path) -> Path:
    """Rename a damaged file or folder to ``<name>.damaged-<UTC time>`` beside it, and return the new path.

    Kept rather than deleted, so the damage can be looked at; the new name matches
    no pattern that a reader looks for (``*.json`` records, ``current``/``previous``
    checkpoints, cache folders), so it is never read again.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(target)
    return target


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) says the disk or the quota is full."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(seen) for text in _DISK_FULL_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def disk_full_error(path: Path, kept: str) -> ScalingError:
    """The one line for a write that ran out of space: what failed, what is kept, what to do."""
    return ScalingError(f"disk full writing {path}: {kept}; free some space and run the same command again")


def file_checksums(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: {bytes, sha256}}`` of files below ``folder``, each fsynced first (durable before it is trusted)."""
    sums = {}
    for name in names:
        file = folder / name
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())
        sums[name] = {"bytes": file.stat().st_size, "sha256": file_sha256(file)}
    return sums


def checksum_problem(folder: Path, sums: Any) -> str | None:
    """Why the files below ``folder`` differ from ``sums`` (:func:`file_checksums`), or None when they match."""
    if not isinstance(sums, dict) or not sums:
        return "its checksums are unreadable"
    for name, expected in sums.items():
        file = folder / name
        try:
            size, digest = int(expected["bytes"]), str(expected["sha256"])
        except (TypeError, KeyError, ValueError):
            return "its checksums are unreadable"
        if not file.is_file():
            return f"{file} is missing"
        if file.stat().st_size != size:
            return f"{file} has {file.stat().st_size} bytes, expected {size}"
        if file_sha256(file) != digest:
            return f"{file} does not match its sha256"
    return None
