"""A prepared corpus on disk: ``manifest.json`` plus token shards training reads.

Layout of a prepared folder::

    manifest.json          what was tokenized, how, and every shard's sha256
    train/000000.bin ...   raw token ids (dtype in the manifest), documents separated by EOS
    val/000000.bin ...     held-out documents, same format

Shards are flat arrays so training can ``np.memmap`` them without loading a
10B-token corpus into memory (the nanoGPT ``.bin`` convention). The manifest is
the only source of truth: a shard file it does not list is a leftover of an
interrupted run, and a folder whose manifest is not ``complete`` is never used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError

MANIFEST = "manifest.json"
FORMAT = "scaling-prepared"
FORMAT_VERSION = 1
SPLITS = ("train", "val")


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, read in chunks (shards can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def corpus_fingerprint(manifest: dict[str, Any]) -> str:
    """Stable hash of the token content: every shard's sha256 plus the tokenizer identity.

    Two preparations with the same fingerprint hold identical token streams
    under the same tokenizer, whatever folder they live in, so run records can
    name the exact data a loss was measured on.
    """
    tok = manifest.get("tokenizer", {})
    payload = {
        "shards": {s: [sh["sha256"] for sh in manifest["splits"][s]["shards"]] for s in SPLITS},
        "dtype": manifest.get("dtype"),
        "tokenizer": {k: tok.get(k) for k in ("vocab_size", "eos_token_id", "content_sha256")},
    }
    if not tok.get("content_sha256"):  # a slow tokenizer has no serialised form: name it instead
        payload["tokenizer"]["spec"] = tok.get("spec")
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a prepared folder, or ScalingError naming why it cannot be read."""
    folder = Path(path)
    file = folder / MANIFEST
    if not folder.is_dir():
        raise ScalingError(f"prepared corpus {folder} does not exist: run `scaling prepare` first")
    if not file.is_file():
        raise ScalingError(f"prepared corpus {folder} has no {MANIFEST}: run `scaling prepare` on it")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ScalingError(f"corrupt manifest {file}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ScalingError(f"{file} is not a scaling prepared-corpus manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ScalingError(
            f"{file} has format_version {manifest.get('format_version')}, this code reads {FORMAT_VERSION}: "
            "prepare it again"
        )
    return manifest


@dataclass
class PreparedCorpus:
    """Read-only view of a complete prepared corpus (the contract with training)."""

    path: Path
    manifest: dict[str, Any]
    train: list[np.ndarray]
    val: list[np.ndarray]

    @property
    def train_tokens(self) -> int:
        return int(sum(len(s) for s in self.train))

    @property
    def val_tokens(self) -> int:
        return int(sum(len(s) for s in self.val))

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def eos_token_id(self) -> int:
        return int(self.manifest["tokenizer"]["eos_token_id"])

    @property
    def tokenizer_spec(self) -> str:
        return str(self.manifest["tokenizer"]["spec"])

    @property
    def name(self) -> str:
        """Corpus name for run records (``data.name`` at preparation time)."""
        return str(self.manifest.get("name") or self.path.name)


def open_prepared(path: str | Path, verify: bool = False) -> PreparedCorpus:
    """Memory-map every shard of a complete prepared corpus.

    Sizes are always checked against the manifest (a truncated copy would
    otherwise silently train on less data); ``verify=True`` also re-hashes
    every shard, which reads the whole corpus.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
        raise ScalingError(f"prepared corpus {folder} is incomplete (interrupted?): rerun `scaling prepare` to resume")
    try:
        dtype = np.dtype(manifest["dtype"])
        splits = {s: manifest["splits"][s]["shards"] for s in SPLITS}
        manifest["tokenizer"]["vocab_size"], manifest["tokenizer"]["eos_token_id"], manifest["fingerprint"]
    except (KeyError, TypeError) as err:
        raise ScalingError(f"corrupt manifest in {folder}: missing {err}") from None
    arrays: dict[str, list[np.ndarray]] = {}
    for split, shards in splits.items():
        arrays[split] = []
        for shard in shards:
            file = folder / shard["file"]
            if not file.is_file():
                raise ScalingError(f"prepared corpus {folder} is missing shard {shard['file']}")
            expected = int(shard["tokens"]) * dtype.itemsize
            size = file.stat().st_size
            if size != expected:
                raise ScalingError(f"shard {file} has {size} bytes, manifest says {expected}: corrupt copy?")
            if verify and file_sha256(file) != shard["sha256"]:
                raise ScalingError(f"shard {file} does not match its sha256 in the manifest: corrupt copy?")
            if shard["tokens"]:
                arrays[split].append(np.memmap(file, dtype=dtype, mode="r"))
    if not arrays["train"]:
        raise ScalingError(f"prepared corpus {folder} has no training tokens")
    return PreparedCorpus(path=folder, manifest=manifest, train=arrays["train"], val=arrays["val"])
