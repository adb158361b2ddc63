"""Token storage and deterministic batch sampling.

Tokens live in ``uint16``/``uint32`` memmaps (uint16 whenever the vocab fits), one
file or many shards per split, documents separated by EOS. Batches are random
windows whose offsets are a pure function of ``(seed, step)``: a resumed run sees
exactly the data an uninterrupted one would have, and the global batch is the
same whatever the number of processes (each rank takes its own slice of it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scaling.errors import ScalingError


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype that holds every token id (ids are < ``vocab_size``).

    The one rule for both token stores: the local corpus cache (corpus.py) and the
    prepared shards (prepare.py), so a vocab of up to 65,536 costs two bytes a token.
    """
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


class TokenStream:
    """A read-only concatenation of 1-D token shards addressed by global offset."""

    def __init__(self, shards: Sequence[np.ndarray]):
        self.shards = [s for s in shards if len(s)]
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def spread_sample(self, n_tokens: int, block: int = 1024) -> TokenStream:
        """``n_tokens`` tokens in contiguous blocks spread evenly over the stream (views, no copy).

        A data-constrained run's unique tokens (Muennighoff et al. 2023 subsample their corpus): a
        prefix would not do, because the embedded corpus is sorted by file and its first tokens are a
        few modules unlike the validation split, so a shorter prefix would change the distribution,
        not only the amount, of the data.
        """
        n_blocks = max(1, -(-n_tokens // block))
        sizes = [block] * (n_blocks - 1) + [n_tokens - block * (n_blocks - 1)]
        room = len(self) - block
        starts = [round(i * room / (n_blocks - 1)) if n_blocks > 1 else 0 for i in range(n_blocks)]
        pieces: list[np.ndarray] = []
        for start, size in zip(starts, sizes, strict=True):
            shard = int(np.searchsorted(self.starts, start, side="right") - 1)
            offset = start - int(self.starts[shard])
            while size > 0:
                pieces.append(self.shards[shard][offset : offset + size])
                size -= len(pieces[-1])
                shard, offset = shard + 1, 0
        return TokenStream(pieces)

    def window(self, start: int, length: int) -> np.ndarray:
        """``length`` tokens from global offset ``start`` as int64 (may span shards)."""
        out = np.empty(length, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self.starts, start, side="right") - 1)
        offset = start - int(self.starts[shard])
        while filled < length:
            piece = self.shards[shard][offset : offset + length - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
            shard, offset = shard + 1, 0
        return out

    def unigram_entropy(self, vocab_size: int) -> float:
        """Entropy of the unigram token distribution in nats: the loss of a model that learnt only frequencies."""
        counts = np.zeros(vocab_size, dtype=np.int64)
        for shard in self.shards:
            counts += np.bincount(shard, minlength=vocab_size)[:vocab_size]
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


def batch_offsets(seed: int, step: int, n_sequences: int, n_tokens: int, context: int) -> np.ndarray:
    """Start offsets of the global batch at ``step``: a pure function of (seed, step)."""
    span = n_tokens - (context + 1)
    if span <= 0:
        raise ScalingError(f"model.context={context} is longer than the training corpus ({n_tokens} tokens)")
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, span + 1, size=n_sequences)


def gather_windows(stream: TokenStream, offsets: Sequence[int], context: int) -> np.ndarray:
    """Stack windows of ``context + 1`` tokens (inputs and shifted targets)."""
    return np.stack([stream.window(int(o), context + 1) for o in offsets])


def eval_offsets(n_tokens: int, context: int, eval_tokens: int) -> np.ndarray:
    """Fixed, evenly spaced, non-overlapping validation windows covering up to ``eval_tokens``."""
    n_windows = min(max(1, eval_tokens // context), (n_tokens - 1) // context)
    if n_windows < 1:
        raise ScalingError(f"model.context={context} is longer than the validation split ({n_tokens} tokens)")
    stride = (n_tokens - 1 - context) // max(1, n_windows - 1) if n_windows > 1 else 0
    stride = max(stride, context)
    return np.arange(n_windows, dtype=np.int64) * stride


def write_tokens(path: Path, docs_tokens: Sequence[Sequence[int]] | object, dtype: np.dtype) -> int:
    """Write token lists (each already ending in EOS) to ``path`` atomically; return the count."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    n = 0
    with open(tmp, "wb") as fh:
        for ids in docs_tokens:  # type: ignore[union-attr]
            arr = np.asarray(ids, dtype=dtype)
            fh.write(arr.tobytes())
            n += len(arr)
    os.replace(tmp, path)
    return n


def open_tokens(path: Path, dtype: np.dtype) -> np.ndarray:
    """Memory-map a token file read-only."""
    return np.memmap(path, dtype=dtype, mode="r")


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None if absent or unreadable (a stale cache is rebuilt)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: invalid JSON or not UTF-8 (flipped bytes)
        return None
