"""Tokenizers: a locally trained byte-level BPE, or any Hugging Face tokenizer.

Tiny models must not be all embedding, so the default corpus gets its own small
byte-level BPE (default vocab 2048) trained with ``tokenizers`` and wrapped as a
``PreTrainedTokenizerFast``. It is cached on disk keyed by the corpus fingerprint
and vocab size, so every run of a sweep shares one tokenizer and a changed
corpus can never silently reuse a stale one.

A prepared corpus records the tokenizer it was made with (:class:`TokenizerInfo`):
its spec, vocab, EOS and the sha256 of its serialised form, so a changed tokenizer
behind the same name gives a different corpus identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.damage import checksum_problem, file_checksums
from scaling.errors import ScalingError
from scaling.records import atomic_write_json

EOS = "<|endoftext|>"
LOCAL_BPE = "bpe"
CHECKSUMS = "checksums.json"


def _local_files_only() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def bpe_cache_path(cache_dir: str | Path, fingerprint: str, vocab_size: int) -> Path:
    """Folder of the cached BPE for this corpus fingerprint and vocab size."""
    return Path(cache_dir) / "tokenizers" / f"bpe-{fingerprint[:16]}-v{vocab_size}"


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | Path):  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE on ``texts`` and save it (atomically) to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257 + 1:
        raise ScalingError(f"data.vocab_size={vocab_size} is too small: a byte-level BPE needs at least 258")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    fast.save_pretrained(tmp)
    names = sorted(p.name for p in tmp.iterdir() if p.is_file())
    atomic_write_json(tmp / CHECKSUMS, file_checksums(tmp, names))  # lets a reuse spot a damaged copy
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # another process won the race: use its copy
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return fast


def cached_bpe_damage(path: Path) -> str | None:
    """Why a cached BPE folder cannot be trusted (a file missing, truncated or changed), or None.

    A folder cached before checksums were written is checked by loading it only.
    """
    if not (path / "tokenizer.json").is_file():
        return f"{path / 'tokenizer.json'} is missing"
    sums = path / CHECKSUMS
    if sums.is_file():
        try:
            problem = checksum_problem(path, json.loads(sums.read_text()))
        except (OSError, ValueError):
            problem = f"{sums} is unreadable"
        if problem:
            return problem
    try:
        load_hf_tokenizer(str(path))
    except ScalingError as err:
        return str(err)
    return None


def load_hf_tokenizer(name_or_path: str):  # -> PreTrainedTokenizerBase
    """Load any Hugging Face tokenizer by hub name or local path, or fail with one line."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=_local_files_only())
    except Exception as err:  # transformers raises OSError/ValueError/HFValidationError variants
        offline = " (hub access is off: HF_HUB_OFFLINE=1)" if _local_files_only() else ""
        raise ScalingError(
            f"unknown tokenizer {name_or_path!r}{offline}: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        ) from None
    if tok.eos_token_id is None:
        raise ScalingError(f"tokenizer {name_or_path!r} has no EOS token to separate documents")
    return tok


def describe(tokenizer, spec: str) -> dict[str, object]:
    """What the run record stores about a tokenizer."""
    return {
        "spec": spec,
        "name_or_path": getattr(tokenizer, "name_or_path", spec),
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
    }


@dataclass
class TokenizerInfo:
    """The loaded tokenizer plus the identity recorded in the manifest."""

    spec: str
    tokenizer: Any
    vocab_size: int
    eos_token_id: int
    content_sha256: str | None
    serialized: str | None  # backend JSON, shipped to worker processes

    def describe(self) -> dict[str, Any]:
        """The manifest's tokenizer entry: :func:`describe` plus the class, EOS text and content hash."""
        return {
            "spec": self.spec,
            "name_or_path": getattr(self.tokenizer, "name_or_path", self.spec),
            "class": type(self.tokenizer).__name__,
            "vocab_size": self.vocab_size,
            "eos_token_id": self.eos_token_id,
            "eos_token": self.tokenizer.eos_token,
            "content_sha256": self.content_sha256,
        }


def load_tokenizer_info(spec: str) -> TokenizerInfo:
    """Load the tokenizer (GPT-2 by default) and hash its full serialised form."""
    tok = load_hf_tokenizer(spec)
    serialized = tok.backend_tokenizer.to_str() if getattr(tok, "is_fast", False) else None
    content = hashlib.sha256(serialized.encode()).hexdigest() if serialized else None
    return TokenizerInfo(
        spec=spec,
        tokenizer=tok,
        vocab_size=len(tok),
        eos_token_id=int(tok.eos_token_id),
        content_sha256=content,
        serialized=serialized,
    )
