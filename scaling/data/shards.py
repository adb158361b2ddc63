"""The on-disk format of a prepared corpus, both ways: writing shards and manifest, and reading them.

Layout of a prepared folder::

    manifest.json          what was tokenized, how, and every shard's sha256
    train/000000.bin ...   raw token ids (dtype in the manifest), documents separated by EOS
    val/000000.bin ...     held-out documents, same format

Shards are flat arrays so training can ``np.memmap`` them without loading a
10B-token corpus into memory (the nanoGPT ``.bin`` convention). The manifest is
the only source of truth: a shard file it does not list is a leftover of an
interrupted run, and a folder whose manifest is not ``complete`` is never used.
A shard is written as ``<index>.bin.partial`` and renamed into place only when it
is complete and fsynced, so a listed shard is never half written.

Writer (:class:`ShardWriter`, :func:`write_manifest`) and reader
(:func:`read_manifest`, :func:`open_prepared`) live together so the format has
one home; the preparation pipeline (prepare.py) decides what goes into it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling.damage import file_sha256
from scaling.errors import ScalingError
from scaling.records import atomic_write_json

MANIFEST = "manifest.json"
FORMAT = "scaling-prepared"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
_PARTIAL = ".partial"


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


# ----------------------------------------------------------------------------------------------- writing


class ShardWriter:
    """Appends documents to ``<split>/<index>.bin.partial``; closing renames it into place."""

    def __init__(self, root: Path, split: str, dtype: np.dtype, start_index: int):
        self.dir = root / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.dtype = dtype
        self.index = start_index
        self._fh: Any = None
        self._digest = hashlib.sha256()
        self.tokens = 0
        self.documents = 0

    def add(self, tokens: np.ndarray) -> None:
        if self._fh is None:
            self._fh = open(self.dir / f"{self.index:06d}.bin{_PARTIAL}", "wb", buffering=1 << 20)  # noqa: SIM115
        data = tokens.tobytes()
        self._fh.write(data)
        self._digest.update(data)
        self.tokens += len(tokens)
        self.documents += 1

    def close_shard(self) -> dict[str, Any] | None:
        """Make the open shard durable and return its manifest entry (None when empty)."""
        if self._fh is None:
            return None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        name = f"{self.index:06d}.bin"
        os.replace(self.dir / (name + _PARTIAL), self.dir / name)
        entry = {
            "file": f"{self.split}/{name}",
            "tokens": self.tokens,
            "documents": self.documents,
            "sha256": self._digest.hexdigest(),
        }
        self.index += 1
        self._digest = hashlib.sha256()
        self.tokens = 0
        self.documents = 0
        return entry

    def abandon(self) -> None:
        """Close the partial file without publishing it (it is discarded on resume)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def discard_unlisted(out: Path, splits: dict[str, dict[str, Any]]) -> None:
    """Remove partial shards and shards written after the last manifest update."""
    for split in SPLITS:
        listed = {sh["file"] for sh in splits[split]["shards"]}
        folder = out / split
        if not folder.is_dir():
            continue
        for file in folder.iterdir():
            rel = f"{split}/{file.name}"
            if rel not in listed and (file.name.endswith(".bin") or file.name.endswith(".bin" + _PARTIAL)):
                file.unlink()


def verify_listed(out: Path, splits: dict[str, dict[str, Any]], dtype: np.dtype) -> None:
    """Before a resume: every shard the manifest lists is present at its recorded size."""
    for split in SPLITS:
        for shard in splits[split]["shards"]:
            file = out / shard["file"]
            if not file.is_file() or file.stat().st_size != shard["tokens"] * dtype.itemsize:
                raise ScalingError(
                    f"cannot resume {out}: shard {shard['file']} is missing or has the wrong size; delete the folder"
                )


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Atomic write: a reader never sees half a manifest."""
    atomic_write_json(out / MANIFEST, manifest)


# ----------------------------------------------------------------------------------------------- reading


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


def _damaged(folder: Path, manifest: dict[str, Any], what: str) -> ScalingError:
    """One line for a damaged prepared corpus: what is wrong, and the command that prepares it again.

    Training stops rather than re-preparing by itself: a real corpus can take hours and
    the hub to rebuild, and a damaged copy is worth a look first.
    """

    return ScalingError(f"{what}: corrupt copy? re-prepare it: {reprepare_command(folder, manifest)}")


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
                raise _damaged(folder, manifest, f"shard {file} is missing")
            expected = int(shard["tokens"]) * dtype.itemsize
            size = file.stat().st_size
            if size != expected:
                raise _damaged(folder, manifest, f"shard {file} has {size} bytes, manifest says {expected}")
            if verify and file_sha256(file) != shard["sha256"]:
                raise _damaged(folder, manifest, f"shard {file} does not match its sha256 in the manifest")
            if shard["tokens"]:
                arrays[split].append(np.memmap(file, dtype=dtype, mode="r"))
    if not arrays["train"]:
        raise ScalingError(f"prepared corpus {folder} has no training tokens")
    return PreparedCorpus(path=folder, manifest=manifest, train=arrays["train"], val=arrays["val"])


def reprepare_command(folder: Path, manifest: dict[str, Any]) -> str:
    """The shell line that moves a damaged prepared folder aside and prepares the same corpus into it again.

    Built from what the manifest records (source, tokenizer, split and caps), with the flags of
    :func:`add_arguments`, so the new folder has the same identity as the damaged one.
    """
    source = manifest.get("source") or {}
    values = {
        "name": manifest.get("name"),
        "path": source.get("path"),
        "data_files": source.get("data_files"),
        "subset": source.get("config"),
        "split": source.get("split"),
        "text_field": source.get("text_field"),
        "revision": source.get("revision"),
        "tokenizer": (manifest.get("tokenizer") or {}).get("spec"),
        "val_fraction": manifest.get("val_fraction"),
        "max_documents": manifest.get("max_documents"),
        "max_tokens": manifest.get("max_tokens"),
        "shard_tokens": manifest.get("shard_tokens"),
    }
    words = ["scaling", "prepare"]
    for key, value in values.items():
        if value is None:
            continue
        files = value if isinstance(value, list) else [value]
        words += [f"--{key.replace('_', '-')}", *(str(v) for v in files)]
    if source.get("streaming"):
        words.append("--streaming")
    words += ["--out", str(folder)]
    aside = shlex.quote(f"{folder}.damaged")
    return f"mv {shlex.quote(str(folder))} {aside} && {shlex.join(words)}"
