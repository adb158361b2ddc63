"""The preparation pipeline: tokenize a Hugging Face corpus into sharded token memmaps.

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

Around it: settings.py checks the ``data`` node (:class:`scaling.config.HFDataConfig`),
tokenizer.py identifies the tokenizer, shards.py owns the on-disk format, and
prepare_cli.py is ``scaling prepare``; training calls :func:`ensure_prepared`.
"""

from __future__ import annotations

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

from scaling.config import HFDataConfig
from scaling.data.hf import (
    LOCAL_BUILDERS,
    SourceSpec,
    check_text_field,
    iter_text_batches,
    load_source,
    local_files_stat,
)
from scaling.data.settings import BATCH_DOCS, checked, source_spec
from scaling.data.shards import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    ShardWriter,
    corpus_fingerprint,
    discard_unlisted,
    read_manifest,
    verify_listed,
    write_manifest,
)
from scaling.data.split import doc_hash, is_validation_doc
from scaling.data.tokenizer import TokenizerInfo, load_tokenizer_info
from scaling.data.tokens import token_dtype
from scaling.errors import ScalingError

_LOCK = ".prepare.lock"
SPLIT_RULE = (
    "a document goes to val iff blake2b-64(utf-8 text) < val_fraction * 2**64 (scaling.data.split.is_validation_doc)"
)


# ----------------------------------------------------------------------------------------------- identity


def identity(data: HFDataConfig, tok: TokenizerInfo) -> dict[str, Any]:
    """What decides the token content; equal identities give byte-identical shards.

    Streaming, num_proc and cache folders are left out: they change how the
    documents are read, not which tokens are written. ``data`` is a :func:`checked` config.
    """
    src = source_spec(data)
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
        "val_fraction": data.val_fraction,
        "max_documents": data.max_documents,
        "max_tokens": data.max_tokens,
        "shard_tokens": data.shard_tokens,
    }


def _identity_hash(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-._" else "_" for c in text)
    return keep.strip("._")[:60] or "corpus"


def source_stem(src: SourceSpec) -> str:
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


def resolve_prepared_dir(data: HFDataConfig, ident: dict[str, Any]) -> Path:
    """``prepared_dir`` if set, else ``<prepared_root>/<source>-<hash of identity>`` (stable for a given config)."""
    if data.prepared_dir:
        out = Path(data.prepared_dir).expanduser()
    else:
        src = source_spec(data)
        parts = [source_stem(src), src.config or "", src.split]
        out = (
            Path(data.prepared_root).expanduser()
            / f"{_slug('-'.join(p for p in parts if p))}-{_identity_hash(ident)[:12]}"
        )
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


# ----------------------------------------------------------------------------------------------- the resumable loop


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def prepare_corpus(
    data_cfg: HFDataConfig | Mapping[str, Any],
    out: str | Path | None = None,
    *,
    tokenizer: TokenizerInfo | None = None,
    progress_bar: bool | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    batch_docs: int = BATCH_DOCS,
) -> Path:
    """Prepare (or resume, or confirm) the corpus the data config describes; return its folder."""
    data = checked(data_cfg)
    tok = tokenizer or load_tokenizer_info(data.tokenizer)
    ident = identity(data, tok)
    out = Path(out) if out is not None else resolve_prepared_dir(data, ident)
    _check_out_dir(out)
    fresh = not out.exists()
    try:
        with _locked(out):
            return _prepare_locked(data, out, tok, ident, progress_bar, on_progress, batch_docs)
    except BaseException:
        if fresh and not (out / MANIFEST).exists():  # failed before starting: leave no empty folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _prepare_locked(
    data: HFDataConfig,
    out: Path,
    tok: TokenizerInfo,
    ident: dict[str, Any],
    progress_bar: bool | None,
    on_progress: Callable[[Progress], None] | None,
    batch_docs: int,
) -> Path:
    src = source_spec(data)
    dtype = token_dtype(tok.vocab_size)
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
        verify_listed(out, state.splits, dtype)
    discard_unlisted(out, state.splits)

    show = sys.stderr.isatty() if progress_bar is None else progress_bar
    with _datasets_bars(show):
        source = load_source(src)
        check_text_field(source)
    resumed_from = state.next_doc

    def manifest(complete: bool, stop_reason: str | None = None) -> dict[str, Any]:
        m: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "complete": complete,
            "name": data.name,
            "created": created,
            "updated": _now(),
            "identity": ident,
            "source": {**src.as_dict(), "resolved": source.resolved},
            "tokenizer": tok.describe(),
            "dtype": dtype.name,
            "val_fraction": data.val_fraction,
            "split_rule": SPLIT_RULE,
            "max_documents": data.max_documents,
            "max_tokens": data.max_tokens,
            "max_tokens_applies_to": "train tokens (EOS included); stops at the document reaching it",
            "shard_tokens": data.shard_tokens,
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
        write_manifest(out, manifest(False))

    writers = {s: ShardWriter(out, s, dtype, len(state.splits[s]["shards"])) for s in SPLITS}

    def checkpoint(complete: bool, stop_reason: str | None = None) -> None:
        for split, writer in writers.items():
            entry = writer.close_shard()
            if entry is not None:
                info = state.splits[split]
                info["shards"].append(entry)
                info["tokens"] += entry["tokens"]
                info["documents"] += entry["documents"]
        write_manifest(out, manifest(complete, stop_reason))

    stop_reason = "exhausted"
    started = time.perf_counter()
    bar = _progress_bar(data, source.num_rows, resumed_from, show)
    try:
        stop_reason = _run_batches(data, batch_docs, tok, dtype, source, state, writers, checkpoint, bar, on_progress)
        if state.splits["train"]["tokens"] + writers["train"].tokens == 0:
            raise ScalingError(f"dataset {src.path!r} has no text in field {src.text_field!r}")
        if state.splits["val"]["tokens"] + writers["val"].tokens == 0:
            raise ScalingError(
                f"no document fell in the validation split (val_fraction={data.val_fraction}, "
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


def _progress_bar(data: HFDataConfig, num_rows: int | None, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    total = num_rows
    if data.max_documents is not None:
        total = min(total, data.max_documents) if total is not None else data.max_documents
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
    data: HFDataConfig,
    batch_docs: int,
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
    batches = iter_text_batches(source, batch_docs, state.resume if resume_doc else None)
    num_proc = data.num_proc if tok.serialized is not None else 1
    args = (tok.serialized, tok.eos_token_id, dtype.name, tok.vocab_size, data.val_fraction)
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
            if data.max_documents is not None and state.next_doc >= data.max_documents:
                reason = "max_documents"
            elif data.max_tokens is not None and train_tokens >= data.max_tokens:
                reason = "max_tokens"
            if reason is not None:
                return reason
            if any(w.tokens >= data.shard_tokens for w in writers.values()):
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


def ensure_prepared(data_cfg: HFDataConfig | Mapping[str, Any]) -> Path:
    """The prepared folder for this data config, preparing (or resuming) it first if needed.

    Called by training with the hydra ``data`` node. A complete folder whose
    identity matches is returned at once (no dataset access, so training nodes
    work offline once the corpus is prepared).
    """
    data = checked(data_cfg)
    tok = load_tokenizer_info(data.tokenizer)
    ident = identity(data, tok)
    out = resolve_prepared_dir(data, ident)
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        _check_identity(out, manifest.get("identity", {}), ident)
        if manifest.get("complete"):
            return out
    print(f"preparing corpus {data.name!r} ({data.path}) into {out}", file=sys.stderr)
    return prepare_corpus(data, out, tokenizer=tok)
