"""Turn the hydra ``data`` node into tokenized train and validation streams.

Two kinds of corpus:

* ``pysource`` (default): the interpreter's own Python source (see
  :mod:`scaling.data.pysource`), tokenized once into a cached memmap keyed by the
  corpus fingerprint, the tokenizer and the validation fraction;
* ``hf``: a Hugging Face dataset prepared into shards by ``scaling prepare``
  (see :mod:`scaling.data.prepare`).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scaling.config import PySourceDataConfig, from_node
from scaling.damage import checksum_problem, file_checksums, warn
from scaling.data import tokenizer as tok_mod
from scaling.data.pysource import load_pysource_corpus
from scaling.data.split import is_validation_doc
from scaling.data.tokens import TokenStream, open_tokens, read_json, token_dtype, write_tokens
from scaling.errors import ScalingError
from scaling.progress import PhaseProgress
from scaling.records import atomic_write_json


@dataclass
class TrainingCorpus:
    """Everything training needs from the data: streams, vocab and provenance."""

    name: str
    fingerprint: str
    train: TokenStream
    val: TokenStream
    vocab_size: int
    eos_token_id: int
    tokenizer: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    allow_repeat: bool = False

    def describe(self) -> dict[str, Any]:
        """The ``corpus`` block of a run record."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "train_tokens": len(self.train),
            "val_tokens": len(self.val),
            **self.extra,
        }


def default_cache_dir() -> Path:
    """``$SCALING_CACHE`` or ``~/.cache/scaling``: shared by every run of every sweep."""
    return Path(os.environ.get("SCALING_CACHE", "~/.cache/scaling")).expanduser()


def _tokenizer_for_pysource(data: PySourceDataConfig, corpus, cache_dir: Path):
    spec = str(data.tokenizer)
    if spec != tok_mod.LOCAL_BPE:
        return tok_mod.load_hf_tokenizer(spec), spec
    vocab = int(data.vocab_size)
    path = tok_mod.bpe_cache_path(cache_dir, corpus.fingerprint, vocab)
    if path.is_dir():
        damage = tok_mod.cached_bpe_damage(path)
        if damage is None:
            return tok_mod.load_hf_tokenizer(str(path)), spec
        warn(f"cached tokenizer {path} is damaged ({damage}): rebuilding it")
        shutil.rmtree(path, ignore_errors=True)  # derived from the corpus: nothing is lost
    # Train on training documents only, so validation text never shapes the vocabulary.
    budget = int(float(data.bpe_train_bytes))
    train_docs = [d for d in corpus.documents if not is_validation_doc(d.key, float(data.val_fraction))]
    stride = max(1, corpus.n_bytes // max(budget, 1))
    sample = train_docs[::stride] if stride > 1 else train_docs
    progress = PhaseProgress(f"[prepare] training a {vocab}-token BPE on {corpus.name} (once, cached)", 1)
    tok_mod.train_bpe(corpus.texts(sample), vocab, path)
    progress.close()
    return tok_mod.load_hf_tokenizer(str(path)), spec


def _tokenizer_id(tokenizer, spec: str) -> str:
    vocab = tokenizer.get_vocab()
    digest = hashlib.sha256(repr(sorted(vocab.items())).encode()).hexdigest()[:12]
    return f"{Path(spec).name if spec != tok_mod.LOCAL_BPE else 'bpe'}-v{len(tokenizer)}-{digest}"


def _encode_documents(tokenizer, texts, eos: int, batch: int = 64):
    """Yield each document's ids followed by EOS, encoding in batches (fast tokenizers parallelise)."""
    buf: list[str] = []
    for text in texts:
        buf.append(text)
        if len(buf) == batch:
            for ids in tokenizer(buf, add_special_tokens=False)["input_ids"]:
                yield [*ids, eos]
            buf = []
    if buf:
        for ids in tokenizer(buf, add_special_tokens=False)["input_ids"]:
            yield [*ids, eos]


def _counted(texts: Iterator[str], progress: PhaseProgress) -> Iterator[str]:
    """Pass ``texts`` through, advancing ``progress`` by each text's length (bytes, near enough)."""
    for text in texts:
        yield text
        progress.advance(len(text))


_TOKEN_FILES = ("train.bin", "val.bin")


def _token_cache_damage(folder: Path, meta: dict[str, Any] | None) -> str | None:
    """Why an existing token cache cannot be used, or None (a cache from before checksums is stale, not damaged).

    Every load re-hashes the cache (tens of MB for the embedded corpus: well under a second), so
    a truncated file or flipped bytes are never trained on.
    """
    if meta is None:
        return "meta.json is unreadable"
    if "files" not in meta:
        return None
    return checksum_problem(folder, meta["files"])


def load_pysource(data_cfg: Mapping[str, Any], cache_dir: Path) -> TrainingCorpus:
    """Tokenize (once, cached) the Python-source corpus and open its memmaps."""
    data = from_node(PySourceDataConfig, data_cfg)
    roots = tuple(data.roots) + tuple(data.extra_roots)
    max_bytes = data.max_bytes
    corpus = load_pysource_corpus(roots, None if max_bytes is None else int(float(max_bytes)))
    val_fraction = float(data.val_fraction)
    tokenizer, spec = _tokenizer_for_pysource(data, corpus, cache_dir)
    eos = tokenizer.eos_token_id
    dtype = token_dtype(len(tokenizer))
    folder = cache_dir / "tokens" / f"{corpus.fingerprint[:16]}-{_tokenizer_id(tokenizer, spec)}-val{val_fraction:g}"
    meta_path = folder / "meta.json"
    meta = read_json(meta_path)
    damage = _token_cache_damage(folder, meta) if meta_path.exists() else None
    if damage:
        warn(f"token cache {folder} is damaged ({damage}): rebuilding it")
    # A cache written before the entropy or the checksums were kept is stale: rebuilt without a word.
    stale = (
        meta is None
        or meta.get("fingerprint") != corpus.fingerprint
        or not {"unigram_entropy_nats", "files"} <= set(meta)
    )
    if damage or stale:
        folder.mkdir(parents=True, exist_ok=True)
        val_docs = [d for d in corpus.documents if is_validation_doc(d.key, val_fraction)]
        train_docs = [d for d in corpus.documents if not is_validation_doc(d.key, val_fraction)]
        if not val_docs or not train_docs:
            raise ScalingError(f"corpus {corpus.name} is too small to split with data.val_fraction={val_fraction}")
        counts = {}
        progress = PhaseProgress(
            f"[prepare] tokenizing {corpus.name} ({corpus.n_bytes / 1e6:.1f} MB, once, cached)", corpus.n_bytes
        )
        for split, docs in (("train", train_docs), ("val", val_docs)):
            counts[split] = write_tokens(
                folder / f"{split}.bin",
                _encode_documents(tokenizer, _counted(corpus.texts(docs), progress), eos),
                dtype,
            )
        progress.close()
        meta = {
            "fingerprint": corpus.fingerprint,
            "dtype": dtype.name,
            "tokens": counts,
            "documents": {"train": len(train_docs), "val": len(val_docs)},
            "val_keys_sha256": hashlib.sha256("\n".join(d.key for d in val_docs).encode()).hexdigest(),
        }
        vocab = len(tokenizer)
        meta["files"] = file_checksums(folder, list(_TOKEN_FILES))
        meta["unigram_entropy_nats"] = TokenStream([open_tokens(folder / "train.bin", dtype)]).unigram_entropy(vocab)
        atomic_write_json(meta_path, meta)  # written last: its presence marks a complete cache
    train = TokenStream([open_tokens(folder / "train.bin", np.dtype(meta["dtype"]))])
    val = TokenStream([open_tokens(folder / "val.bin", np.dtype(meta["dtype"]))])
    return TrainingCorpus(
        name=corpus.name,
        fingerprint=corpus.fingerprint,
        train=train,
        val=val,
        vocab_size=len(tokenizer),
        eos_token_id=eos,
        tokenizer=tok_mod.describe(tokenizer, spec),
        extra={
            "documents": meta["documents"],
            "bytes": corpus.n_bytes,
            "val_fraction": val_fraction,
            "roots": list(roots),
            # Loss of a model that only learnt token frequencies: a trained model must beat it.
            "unigram_entropy_nats": meta.get("unigram_entropy_nats"),
        },
        allow_repeat=bool(data.allow_repeat),
    )


def load_prepared_hf(data: Mapping[str, Any]) -> TrainingCorpus:
    """Open (preparing first if needed) a Hugging Face corpus in sharded memmaps."""
    from scaling.data.prepare import ensure_prepared
    from scaling.data.shards import open_prepared

    prepared = open_prepared(ensure_prepared(data))
    return TrainingCorpus(
        name=str(data["name"]),
        fingerprint=prepared.fingerprint,
        train=TokenStream(prepared.train),
        val=TokenStream(prepared.val),
        vocab_size=prepared.vocab_size,
        eos_token_id=prepared.eos_token_id,
        tokenizer={"spec": prepared.tokenizer_spec, "vocab_size": prepared.vocab_size},
        extra={"prepared_dir": str(prepared.path), "source": prepared.manifest.get("source")},
        allow_repeat=bool(data["allow_repeat"]),
    )


def load_corpus(data: Mapping[str, Any], cache_dir: Path | None = None) -> TrainingCorpus:
    """Dispatch on ``data.kind``; then cap the training split at ``data.unique_tokens`` when set."""
    kind = data["kind"]
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if kind == "pysource":
        corpus = load_pysource(data, cache_dir)
    elif kind == "hf":
        corpus = load_prepared_hf(data)
    else:
        raise ScalingError(f"unknown data.kind {kind!r}; known: pysource, hf")
    return cap_unique_tokens(corpus, data["unique_tokens"])


def cap_unique_tokens(corpus: TrainingCorpus, unique_tokens: Any) -> TrainingCorpus:
    """Train on U tokens of the training split only, repeated (Muennighoff et al. 2023's setup: a fixed
    pool of unique data seen for D/U epochs), taken in blocks spread over the split
    (:meth:`TokenStream.spread_sample`) so that the pool is drawn from the same files as validation.

    The record's ``corpus.train_tokens`` is then U and ``training.epochs`` is D/U;
    ``corpus.unique_tokens`` says the split was capped.
    """
    if unique_tokens is None:
        return corpus
    try:
        u = float(unique_tokens)
    except (TypeError, ValueError):
        raise ScalingError(f"data.unique_tokens must be a number of tokens or null, got {unique_tokens!r}") from None
    if not (math.isfinite(u) and u >= 1 and u == int(u)):
        raise ScalingError(f"data.unique_tokens must be a positive whole number of tokens, got {unique_tokens!r}")
    if u > len(corpus.train):
        raise ScalingError(
            f"data.unique_tokens={int(u)} exceeds the training split ({len(corpus.train)} tokens of {corpus.name})"
        )
    corpus.train = corpus.train.spread_sample(int(u))
    corpus.extra["unique_tokens"] = int(u)
    corpus.allow_repeat = True
    return corpus
