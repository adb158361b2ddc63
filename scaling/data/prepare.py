"""``scaling prepare``: tokenize a Hugging Face corpus into sharded token memmaps.

Each document (a row of the chosen split) is tokenized, followed by EOS, and
appended to the train or validation stream; which one is decided per document
by a hash of its text (``scaling.data.split.is_validation_doc``), so no
validation text is ever trained on. Streams are cut into shards of about
``shard_tokens`` tokens at document boundaries.

Why shards and a manifest: a 10B-token preparation takes hours, so it must
survive interruption. Whenever a train (or val) shard fills, *both* open shards
are closed, fsynced, renamed into place and recorded in ``manifest.json``
(atomically) with the document index reached and a resume point for the
dataset iterator. A restart discards partial files, seeks to that document and
continues; because the document order, the split rule and the cut rule are
deterministic, the final shards are byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from scaling.config import CONFIG_DIR
from scaling.data.hf import (
    LOCAL_BUILDERS,
    SourceSpec,
    check_text_field,
    iter_text_batches,
    load_source,
    local_files_stat,
)
from scaling.data.prepared import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    corpus_fingerprint,
    dtype_for_vocab,
    read_manifest,
)
from scaling.data.split import doc_hash, is_validation_doc
from scaling.errors import ScalingError
from scaling.records import atomic_write_json

HELP = "Tokenize a Hugging Face dataset (hub or local files) into sharded token memmaps for training."

DEFAULT_TOKENIZER = "gpt2"
DEFAULT_SHARD_TOKENS = 2**26
DEFAULT_VAL_FRACTION = 0.005
DEFAULT_ROOT = ".cache/scaling/prepared"
BATCH_DOCS = 256
_LOCK = ".prepare.lock"
_PARTIAL = ".partial"
SPLIT_RULE = (
    "a document goes to val iff blake2b-64(utf-8 text) < val_fraction * 2**64 (scaling.data.split.is_validation_doc)"
)

REPO_CONFIGS = CONFIG_DIR  # importing scaling.config also registers the schema the presets name


# ----------------------------------------------------------------------------------------------- settings


def _count(value: Any, key: str) -> int | None:
    """An optional positive count from YAML/CLI: accepts 67108864, 6.7e7, "1e9", "2**26"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    try:
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            if "**" in text:
                base, exp = text.split("**", 1)
                number = float(base) ** float(exp)
            else:
                number = float(text)
        else:
            number = float(value)
    except (TypeError, ValueError):
        raise ScalingError(f"data.{key} must be a positive number, got {value!r}") from None
    if not number.is_integer() or number <= 0:
        raise ScalingError(f"data.{key} must be a positive whole number, got {value!r}")
    return int(number)


def _auto_num_proc() -> int:
    # Measured (results/bench/prepare_num_proc.txt, 2 shared cores): one worker per core matches
    # or beats a single process using the tokenizer's Rust threads, and more workers than cores
    # loses. Tokenization is ~94% of the loop's time (profiled), so the single writer
    # process is not the bottleneck until ~16 workers.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 16))


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that decides a preparation, normalised from the hydra ``data`` node."""

    source: SourceSpec
    name: str = "hf"
    tokenizer: str = DEFAULT_TOKENIZER
    val_fraction: float = DEFAULT_VAL_FRACTION
    max_documents: int | None = None
    max_tokens: int | None = None
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    num_proc: int = 1
    prepared_dir: str | None = None
    prepared_root: str | None = None
    batch_docs: int = BATCH_DOCS


def _to_dict(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(data_cfg, DictConfig):
            return dict(OmegaConf.to_container(data_cfg, resolve=True))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    return dict(data_cfg)


def _builder_kwargs(value: Any) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ScalingError(f"data.builder_kwargs must be a mapping (e.g. {{sample_by: document}}), got {value!r}")
    return tuple(sorted((str(k), v) for k, v in value.items()))


def _tokenizer_spec(spec: str) -> str:
    """A local tokenizer folder as an absolute path, so the manifest's spec loads from any cwd."""
    local = Path(spec).expanduser()
    return str(local.absolute()) if local.exists() else spec


def settings_from_config(data_cfg: Mapping[str, Any]) -> PrepareSettings:
    """Validate a data config (DictConfig or dict) into :class:`PrepareSettings`."""
    from scaling.data.hf import normalize_data_files

    cfg = _to_dict(data_cfg)
    kind = cfg.get("kind", "hf")
    if kind != "hf":
        raise ScalingError(f"data.kind={kind!r}: only 'hf' corpora are prepared by `scaling prepare`")
    path = cfg.get("path")
    if not path:
        raise ScalingError("data.path is not set: give a hub dataset name, a local folder, or a builder like 'parquet'")
    val_fraction = float(cfg.get("val_fraction", DEFAULT_VAL_FRACTION))
    if not 0.0 < val_fraction < 1.0:
        raise ScalingError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    num_proc_raw = cfg.get("num_proc")
    num_proc = _auto_num_proc() if num_proc_raw in (None, "auto") else _count(num_proc_raw, "num_proc")
    source = SourceSpec(
        path=str(path),
        config=None if cfg.get("config") is None else str(cfg["config"]),
        split=str(cfg.get("split") or "train"),
        text_field=str(cfg.get("text_field") or "text"),
        revision=None if cfg.get("revision") is None else str(cfg["revision"]),
        data_files=normalize_data_files(cfg.get("data_files")),
        streaming=bool(cfg.get("streaming", False)),
        cache_dir=None if cfg.get("hf_cache_dir") is None else str(cfg["hf_cache_dir"]),
        builder_kwargs=_builder_kwargs(cfg.get("builder_kwargs")),
    )
    return PrepareSettings(
        source=source,
        name=str(cfg.get("name") or "hf"),
        tokenizer=_tokenizer_spec(str(cfg.get("tokenizer") or DEFAULT_TOKENIZER)),
        val_fraction=val_fraction,
        max_documents=_count(cfg.get("max_documents"), "max_documents"),
        max_tokens=_count(cfg.get("max_tokens"), "max_tokens"),
        shard_tokens=_count(cfg.get("shard_tokens"), "shard_tokens") or DEFAULT_SHARD_TOKENS,
        num_proc=num_proc or 1,
        prepared_dir=None if cfg.get("prepared_dir") is None else str(cfg["prepared_dir"]),
        prepared_root=None if cfg.get("prepared_root") is None else str(cfg["prepared_root"]),
    )


# ----------------------------------------------------------------------------------------------- tokenizer


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
    from scaling.data.tokenizer import load_hf_tokenizer

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


# ----------------------------------------------------------------------------------------------- identity


def identity(settings: PrepareSettings, tok: TokenizerInfo) -> dict[str, Any]:
    """What decides the token content; equal identities give byte-identical shards.

    Streaming, num_proc and cache folders are left out: they change how the
    documents are read, not which tokens are written.
    """
    src = settings.source
    return {
        "format_version": FORMAT_VERSION,
        "path": src.path,
        "config": src.config,
        "split": src.split,
        "revision": src.revision,
        "data_files": src.data_files,
        "builder_kwargs": dict(src.builder_kwargs) or None,
        "local_files": local_files_stat(src) if src.is_local() else None,
        "text_field": src.text_field,
        "tokenizer": tok.spec,
        "tokenizer_sha256": tok.content_sha256,
        "val_fraction": settings.val_fraction,
        "max_documents": settings.max_documents,
        "max_tokens": settings.max_tokens,
        "shard_tokens": settings.shard_tokens,
    }


def _identity_hash(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-._" else "_" for c in text)
    return keep.strip("._")[:60] or "corpus"


def _source_stem(src: SourceSpec) -> str:
    """A readable name for a source: hub name, local folder name, or builder + first file name."""
    if src.path in LOCAL_BUILDERS:
        files = src.local_files()
        return f"{src.path}-{Path(files[0]).stem}" if files else src.path
    return Path(src.path).name if Path(src.path).expanduser().exists() else src.path


def _hydra_cwd() -> Path:
    """The launch directory (hydra may chdir into the run folder)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.cwd)
    except Exception:  # hydra absent or not running: plain cwd
        pass
    return Path.cwd()


def resolve_prepared_dir(settings: PrepareSettings, ident: dict[str, Any]) -> Path:
    """``prepared_dir`` if set, else ``<root>/<source>-<hash of identity>`` (stable for a given config)."""
    if settings.prepared_dir:
        out = Path(settings.prepared_dir).expanduser()
    else:
        root = settings.prepared_root or os.environ.get("SCALING_DATA_DIR") or DEFAULT_ROOT
        src = settings.source
        parts = [_source_stem(src), src.config or "", src.split]
        out = Path(root).expanduser() / f"{_slug('-'.join(p for p in parts if p))}-{_identity_hash(ident)[:12]}"
    return out if out.is_absolute() else _hydra_cwd() / out


# ----------------------------------------------------------------------------------------------- encoding


@dataclass
class EncodedBatch:
    """Tokens of consecutive documents, each followed by EOS, in the shard dtype."""

    tokens: np.ndarray
    lengths: np.ndarray  # tokens per document incl. EOS; 0 for an empty document (skipped)
    is_val: np.ndarray  # bool per document


class Encoder:
    """Tokenize a batch of documents and assign each to train/val.

    Literal special-token text inside a document (e.g. "<|endoftext|>" quoted
    in a web page) is tokenized as ordinary text, so EOS appears only at real
    document boundaries (as nanoGPT's ``encode_ordinary`` does).
    """

    def __init__(self, serialized: str | None, hf_tokenizer: Any, eos: int, dtype: str, vocab: int, val: float):
        if serialized is not None:
            from tokenizers import Tokenizer

            self.backend = Tokenizer.from_str(serialized)
            self.backend.encode_special_tokens = True
        else:
            self.backend = None
        self.hf_tokenizer = hf_tokenizer
        self.eos = eos
        self.dtype = np.dtype(dtype)
        self.vocab = vocab
        self.val_fraction = val

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if self.backend is not None:
            # encode_batch_fast (tokenizers >= 0.21) skips computing offsets we do not need.
            encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
            return [e.ids for e in encode(texts, add_special_tokens=False)]
        out = self.hf_tokenizer(texts, add_special_tokens=False, split_special_tokens=True)
        return list(out["input_ids"])

    def __call__(self, texts: list[Any]) -> EncodedBatch:
        keep = []
        for text in texts:
            if text is not None and not isinstance(text, str):
                raise ScalingError(f"text field holds {type(text).__name__} values, not strings")
            keep.append(bool(text))
        present = [t for t, k in zip(texts, keep, strict=True) if k]
        ids = self._ids(present) if present else []
        lengths = np.zeros(len(texts), dtype=np.int64)
        is_val = np.zeros(len(texts), dtype=bool)
        eos = [self.eos]
        it = iter(ids)
        pieces: list[list[int]] = []
        for i, (text, k) in enumerate(zip(texts, keep, strict=True)):
            if not k:
                continue
            doc = next(it)
            pieces.append(doc)
            pieces.append(eos)
            lengths[i] = len(doc) + 1
            is_val[i] = is_validation_doc(text, self.val_fraction)
        total = int(lengths.sum())
        tokens = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=total)
        if total and int(tokens.max()) >= self.vocab:
            raise ScalingError(f"tokenizer produced id {int(tokens.max())} >= its vocab size {self.vocab}")
        return EncodedBatch(tokens=tokens.astype(self.dtype), lengths=lengths, is_val=is_val)


_WORKER_ENCODER: Encoder | None = None


def _init_worker(serialized: str, eos: int, dtype: str, vocab: int, val: float) -> None:
    # One tokenizer per worker, no Rust thread pool inside it: the processes are the parallelism.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it terminates us)
    global _WORKER_ENCODER
    _WORKER_ENCODER = Encoder(serialized, None, eos, dtype, vocab, val)


def _encode_in_worker(texts: list[Any]) -> EncodedBatch:
    assert _WORKER_ENCODER is not None
    return _WORKER_ENCODER(texts)


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


@dataclass
class Progress:
    """What an ``on_progress`` callback sees after each batch is written."""

    next_doc: int
    shards: dict[str, int]
    tokens: dict[str, int]
    documents: dict[str, int]


@dataclass
class _State:
    """Counters carried across a resume (stored in the manifest)."""

    next_doc: int = 0
    skipped_empty: int = 0
    splits: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {s: {"documents": 0, "tokens": 0, "shards": []} for s in SPLITS}
    )
    resume: dict[str, Any] | None = None
    last_doc_hash: str | None = None


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One preparer per folder: concurrent training jobs wait for the first to finish it."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / _LOCK, "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _check_out_dir(out: Path) -> None:
    allowed = {"train", "val", MANIFEST, _LOCK}
    if out.is_dir() and not (out / MANIFEST).exists():
        stray = sorted(p.name for p in out.iterdir() if p.name not in allowed and not p.name.startswith(f".{MANIFEST}"))
        if stray:
            raise ScalingError(f"{out} exists and is not a prepared corpus (holds {stray[:3]}): choose a new folder")


def _discard_unlisted(out: Path, state: _State) -> None:
    """Remove partial shards and shards written after the last manifest update."""
    for split in SPLITS:
        listed = {sh["file"] for sh in state.splits[split]["shards"]}
        folder = out / split
        if not folder.is_dir():
            continue
        for file in folder.iterdir():
            rel = f"{split}/{file.name}"
            if rel not in listed and (file.name.endswith(".bin") or file.name.endswith(".bin" + _PARTIAL)):
                file.unlink()


def _verify_listed(out: Path, state: _State, dtype: np.dtype) -> None:
    for split in SPLITS:
        for shard in state.splits[split]["shards"]:
            file = out / shard["file"]
            if not file.is_file() or file.stat().st_size != shard["tokens"] * dtype.itemsize:
                raise ScalingError(
                    f"cannot resume {out}: shard {shard['file']} is missing or has the wrong size; delete the folder"
                )


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Atomic write: a reader never sees half a manifest."""
    atomic_write_json(out / MANIFEST, manifest)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def prepare_corpus(
    settings: PrepareSettings,
    out: str | Path | None = None,
    *,
    tokenizer: TokenizerInfo | None = None,
    progress_bar: bool | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Path:
    """Prepare (or resume, or confirm) the corpus described by ``settings``; return its folder."""
    tok = tokenizer or load_tokenizer_info(settings.tokenizer)
    ident = identity(settings, tok)
    out = Path(out) if out is not None else resolve_prepared_dir(settings, ident)
    _check_out_dir(out)
    fresh = not out.exists()
    try:
        with _locked(out):
            return _prepare_locked(settings, out, tok, ident, progress_bar, on_progress)
    except BaseException:
        if fresh and not (out / MANIFEST).exists():  # failed before starting: leave no empty folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _prepare_locked(
    settings: PrepareSettings,
    out: Path,
    tok: TokenizerInfo,
    ident: dict[str, Any],
    progress_bar: bool | None,
    on_progress: Callable[[Progress], None] | None,
) -> Path:
    dtype = dtype_for_vocab(tok.vocab_size)
    state = _State()
    created = _now()
    if (out / MANIFEST).exists():
        old = read_manifest(out)
        _check_identity(out, old.get("identity", {}), ident)
        if old.get("complete"):
            return out
        created = old.get("created", created)
        prog = old.get("progress") or {}
        state = _State(
            next_doc=int(prog.get("next_doc", 0)),
            skipped_empty=int(prog.get("skipped_empty", 0)),
            splits=old["splits"],
            resume=prog.get("resume"),
            last_doc_hash=prog.get("last_doc_hash"),
        )
        _verify_listed(out, state, dtype)
    _discard_unlisted(out, state)

    show = sys.stderr.isatty() if progress_bar is None else progress_bar
    with _datasets_bars(show):
        source = load_source(settings.source)
        check_text_field(source)
    resumed_from = state.next_doc

    def manifest(complete: bool, stop_reason: str | None = None) -> dict[str, Any]:
        m: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "complete": complete,
            "name": settings.name,
            "created": created,
            "updated": _now(),
            "identity": ident,
            "source": {**settings.source.as_dict(), "resolved": source.resolved},
            "tokenizer": tok.describe(),
            "dtype": dtype.name,
            "val_fraction": settings.val_fraction,
            "split_rule": SPLIT_RULE,
            "max_documents": settings.max_documents,
            "max_tokens": settings.max_tokens,
            "max_tokens_applies_to": "train tokens (EOS included); stops at the document reaching it",
            "shard_tokens": settings.shard_tokens,
            "documents_read": state.next_doc,
            "documents_skipped_empty": state.skipped_empty,
            "splits": state.splits,
        }
        if complete:
            m["stop_reason"] = stop_reason
            m["fingerprint"] = corpus_fingerprint(m)
        else:
            m["progress"] = {
                "next_doc": state.next_doc,
                "skipped_empty": state.skipped_empty,
                "resume": state.resume,
                "last_doc_hash": state.last_doc_hash,
            }
        return m

    if not (out / MANIFEST).exists():
        _write_manifest(out, manifest(False))

    writers = {s: ShardWriter(out, s, dtype, len(state.splits[s]["shards"])) for s in SPLITS}

    def checkpoint(complete: bool, stop_reason: str | None = None) -> None:
        for split, writer in writers.items():
            entry = writer.close_shard()
            if entry is not None:
                info = state.splits[split]
                info["shards"].append(entry)
                info["tokens"] += entry["tokens"]
                info["documents"] += entry["documents"]
        _write_manifest(out, manifest(complete, stop_reason))

    stop_reason = "exhausted"
    started = time.perf_counter()
    bar = _progress_bar(settings, source.num_rows, resumed_from, show)
    try:
        stop_reason = _run_batches(settings, tok, dtype, source, state, writers, checkpoint, bar, on_progress)
        if state.splits["train"]["tokens"] + writers["train"].tokens == 0:
            raise ScalingError(f"dataset {settings.source.path!r} has no text in field {settings.source.text_field!r}")
        if state.splits["val"]["tokens"] + writers["val"].tokens == 0:
            raise ScalingError(
                f"no document fell in the validation split (val_fraction={settings.val_fraction}, "
                f"{state.next_doc} documents): raise data.val_fraction or prepare more documents"
            )
    except BaseException:
        for writer in writers.values():
            writer.abandon()
        raise
    finally:
        bar.close()
    checkpoint(True, stop_reason)
    elapsed = time.perf_counter() - started
    total = sum(state.splits[s]["tokens"] for s in SPLITS)
    print(
        f"prepared {out}: train {state.splits['train']['tokens']:,} tokens in {len(state.splits['train']['shards'])} "
        f"shards, val {state.splits['val']['tokens']:,} tokens; {state.next_doc - resumed_from:,} documents in "
        f"{elapsed:.1f}s ({total / max(elapsed, 1e-9) / 1e6:.2f}M tokens/s overall)",
        file=sys.stderr,
    )
    return out


def _check_identity(out: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    if old == new:
        return
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    raise ScalingError(
        f"{out} holds a preparation of a different config (differs in {', '.join(keys)}): "
        "delete it or choose another prepared_dir"
    )


def _progress_bar(settings: PrepareSettings, num_rows: int | None, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    total = num_rows
    if settings.max_documents is not None:
        total = min(total, settings.max_documents) if total is not None else settings.max_documents
    return tqdm(total=total, initial=initial, unit="doc", desc="tokenizing", disable=not enabled, dynamic_ncols=True)


@contextmanager
def _datasets_bars(enabled: bool) -> Iterator[None]:
    """Silence datasets' own bars when ours is off (non-TTY logs), restoring the previous setting."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled and was_enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            datasets.enable_progress_bars()


def _run_batches(
    settings: PrepareSettings,
    tok: TokenizerInfo,
    dtype: np.dtype,
    source: Any,
    state: _State,
    writers: dict[str, ShardWriter],
    checkpoint: Callable[..., None],
    bar: Any,
    on_progress: Callable[[Progress], None] | None,
) -> str:
    """Feed batches through the encoder(s) in order and route documents into shards.

    Results are consumed strictly in submission order, so the output does not
    depend on ``num_proc``. At most a few batches are in flight, so a streaming
    source is never read far ahead of what has been written.
    """
    resume_doc = state.next_doc
    batches = iter_text_batches(source, settings.batch_docs, state.resume if resume_doc else None)
    num_proc = settings.num_proc if tok.serialized is not None else 1
    args = (tok.serialized, tok.eos_token_id, dtype.name, tok.vocab_size, settings.val_fraction)
    pool = None
    if num_proc > 1:
        import multiprocessing

        # spawn: the parent may hold threads (fsspec, tqdm) that fork would copy mid-lock.
        pool = multiprocessing.get_context("spawn").Pool(num_proc, initializer=_init_worker, initargs=args)
        encode: Callable[[list[Any]], Any] = lambda texts: pool.apply_async(_encode_in_worker, (texts,))  # noqa: E731
    else:
        encoder = Encoder(tok.serialized, tok.tokenizer, *args[1:])
        encode = encoder
    inflight: deque[tuple[Any, Any]] = deque()
    max_inflight = 2 * num_proc + 1
    stop: str | None = None

    def consume(batch: Any, pending: Any) -> str | None:
        enc: EncodedBatch = pending.get() if pool is not None else pending
        offsets = np.concatenate([[0], np.cumsum(enc.lengths)])
        for k in range(len(batch.texts)):
            doc = batch.first + k
            if doc < resume_doc:
                if doc == resume_doc - 1:
                    _check_resume_hash(batch.texts[k], state.last_doc_hash)
                continue
            length = int(enc.lengths[k])
            if length == 0:
                state.skipped_empty += 1
            else:
                writer = writers["val" if enc.is_val[k] else "train"]
                writer.add(enc.tokens[offsets[k] : offsets[k] + length])
            state.next_doc = doc + 1
            train_tokens = state.splits["train"]["tokens"] + writers["train"].tokens
            reason = None
            if settings.max_documents is not None and state.next_doc >= settings.max_documents:
                reason = "max_documents"
            elif settings.max_tokens is not None and train_tokens >= settings.max_tokens:
                reason = "max_tokens"
            if reason is not None:
                return reason
            if any(w.tokens >= settings.shard_tokens for w in writers.values()):
                state.resume = batch.resume
                state.last_doc_hash = _text_hash(batch.texts[k])
                checkpoint(False)
        bar.update(max(0, batch.first + len(batch.texts) - max(batch.first, resume_doc)))
        bar.set_postfix(train_tokens=state.splits["train"]["tokens"] + writers["train"].tokens, refresh=False)
        if on_progress is not None:
            on_progress(
                Progress(
                    next_doc=state.next_doc,
                    shards={s: len(state.splits[s]["shards"]) for s in SPLITS},
                    tokens={s: state.splits[s]["tokens"] + writers[s].tokens for s in SPLITS},
                    documents={s: state.splits[s]["documents"] + writers[s].documents for s in SPLITS},
                )
            )
        return None

    try:
        for batch in batches:
            if resume_doc and batch.first + len(batch.texts) <= resume_doc - 1:
                continue  # wholly before the resume point (only when the source could not seek)
            inflight.append((batch, encode(batch.texts)))
            if len(inflight) >= max_inflight:
                stop = consume(*inflight.popleft())
                if stop:
                    break
        while inflight and not stop:
            stop = consume(*inflight.popleft())
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return stop or "exhausted"


def _text_hash(text: Any) -> str:
    return f"{doc_hash(text or ''):016x}"


def _check_resume_hash(text: Any, expected: str | None) -> None:
    if expected is not None and _text_hash(text) != expected:
        raise ScalingError(
            "the dataset changed since the interrupted preparation (the document at the resume point differs): "
            "delete the prepared folder and start again"
        )


# ----------------------------------------------------------------------------------------------- training entry


def ensure_prepared(data_cfg: Mapping[str, Any]) -> Path:
    """The prepared folder for this data config, preparing (or resuming) it first if needed.

    Called by training with the hydra ``data`` node. A complete folder whose
    identity matches is returned at once (no dataset access, so training nodes
    work offline once the corpus is prepared).
    """
    settings = settings_from_config(data_cfg)
    tok = load_tokenizer_info(settings.tokenizer)
    ident = identity(settings, tok)
    out = resolve_prepared_dir(settings, ident)
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        _check_identity(out, manifest.get("identity", {}), ident)
        if manifest.get("complete"):
            return out
    print(f"preparing corpus {settings.name!r} ({settings.source.path}) into {out}", file=sys.stderr)
    return prepare_corpus(settings, out, tokenizer=tok)


# ----------------------------------------------------------------------------------------------- CLI


def load_preset(name: str, config_dir: str | Path | None = None) -> dict[str, Any]:
    """Compose ``configs/data/<name>.yaml`` with hydra (so its defaults list and interpolations apply)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    folder = Path(config_dir or REPO_CONFIGS).resolve()
    if not (folder / "data").is_dir():
        raise ScalingError(f"no data presets under {folder}/data: pass --config-dir")
    available = sorted(p.stem for p in (folder / "data").glob("*.yaml"))
    if name not in available:
        raise ScalingError(f"unknown preset {name!r}: available {available}")
    try:
        with initialize_config_dir(config_dir=str(folder), version_base=None):
            cfg = compose(config_name=None, overrides=[f"+data={name}"])
    except HydraException as err:
        raise ScalingError(f"cannot compose preset {name!r}: {str(err).splitlines()[0]}") from None
    return dict(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]


_CLI_KEYS = {
    "name": "name",
    "path": "path",
    "data_files": "data_files",
    "subset": "config",
    "split": "split",
    "text_field": "text_field",
    "revision": "revision",
    "streaming": "streaming",
    "tokenizer": "tokenizer",
    "val_fraction": "val_fraction",
    "max_documents": "max_documents",
    "max_tokens": "max_tokens",
    "shard_tokens": "shard_tokens",
    "num_proc": "num_proc",
    "out": "prepared_dir",
    "hf_cache_dir": "hf_cache_dir",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="data preset from configs/data (e.g. fineweb_edu, tinystories)")
    parser.add_argument("--config-dir", help="hydra config folder holding data/ (default: the repo's configs/)")
    parser.add_argument("--name", help="corpus name recorded in run records")
    parser.add_argument("--path", help="hub dataset name, local folder, or builder: parquet | json | text | csv")
    parser.add_argument("--data-files", nargs="+", help="files (globs allowed) for a local builder")
    parser.add_argument("--subset", "--config", dest="subset", help="dataset subset/config name, e.g. sample-10BT")
    parser.add_argument("--split", help="dataset split (default train)")
    parser.add_argument("--text-field", help="column holding the document text (default text)")
    parser.add_argument("--revision", help="dataset revision: branch, tag, commit or refs/convert/parquet")
    parser.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=None, help="stream from the hub")
    parser.add_argument("--tokenizer", help=f"HF tokenizer name or local path (default {DEFAULT_TOKENIZER})")
    parser.add_argument(
        "--val-fraction", type=float, help=f"held-out document fraction (default {DEFAULT_VAL_FRACTION})"
    )
    parser.add_argument("--max-documents", help="stop after this many source documents (e.g. 1e6)")
    parser.add_argument("--max-tokens", help="stop once the train split holds this many tokens (e.g. 1e9)")
    parser.add_argument("--shard-tokens", help=f"tokens per shard (default 2**26 = {DEFAULT_SHARD_TOKENS})")
    parser.add_argument("--num-proc", help="tokenizer processes (default: min(cores, 16))")
    parser.add_argument("--out", help="output folder (default: $SCALING_DATA_DIR/<source>-<hash>)")
    parser.add_argument("--hf-cache-dir", help="datasets cache folder (default: the datasets default)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="tqdm bar (default: when a TTY)"
    )


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The data config the CLI describes: a preset (or hf.yaml) with flags on top."""
    if not args.preset and not args.path:
        raise ScalingError("give --preset NAME or --path (hub dataset, local folder, or parquet/json/text builder)")
    cfg = load_preset(args.preset or "hf", args.config_dir)
    for arg, key in _CLI_KEYS.items():
        value = getattr(args, arg, None)
        if value is not None:
            cfg[key] = value
    if args.path and not args.preset and args.name is None:
        cfg["name"] = _source_stem(SourceSpec(path=args.path, data_files=args.data_files))
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    settings = settings_from_config(cfg)
    try:
        out = prepare_corpus(settings, None, progress_bar=args.progress)
    except KeyboardInterrupt:
        print("\ninterrupted: completed shards are kept; run the same command again to resume", file=sys.stderr)
        return 130
    manifest = read_manifest(out)
    summary = {
        "prepared_dir": str(out),
        "train_tokens": manifest["splits"]["train"]["tokens"],
        "val_tokens": manifest["splits"]["val"]["tokens"],
        "documents": manifest["documents_read"],
        "fingerprint": manifest["fingerprint"],
    }
    print(json.dumps(summary))
    return 0
