"""The embedded Python-source corpus: determinism, fingerprint, split, tokenizer cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train

from scaling.data.corpus import load_corpus
from scaling.data.pysource import load_pysource_corpus
from scaling.data.split import is_validation_doc
from scaling.data.tokens import TokenStream, batch_offsets, gather_windows
from scaling.errors import ScalingError

# The composed data node, every key present (the pysource preset with three keys changed).
TINY = compose_train(["data=pysource", "data.max_bytes=2000000", "data.vocab_size=512", "data.bpe_train_bytes=1e6"])[
    "data"
]


def test_corpus_is_the_stdlib_without_site_packages() -> None:
    corpus = load_pysource_corpus(("stdlib",))
    keys = [d.key for d in corpus.documents]
    assert keys == sorted(keys)
    assert len(keys) > 500 and corpus.n_bytes > 5_000_000
    assert not any("site-packages" in k for k in keys)
    assert any(k.endswith("/json/decoder.py") for k in keys)


def test_fingerprint_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    first = load_pysource_corpus((str(tmp_path),))
    assert load_pysource_corpus((str(tmp_path),)).fingerprint == first.fingerprint
    (tmp_path / "b.py").write_text("y = 3\n")
    assert load_pysource_corpus((str(tmp_path),)).fingerprint != first.fingerprint


def test_extra_roots_add_documents(tmp_path: Path) -> None:
    (tmp_path / "extra_module.py").write_text("print('hello')\n")
    base = load_pysource_corpus(("stdlib",), max_bytes=100_000)
    both = load_pysource_corpus((str(tmp_path), "stdlib"), max_bytes=100_000)
    assert any(d.key.endswith("extra_module.py") for d in both.documents)
    assert both.fingerprint != base.fingerprint


def test_train_and_validation_share_no_document() -> None:
    corpus = load_pysource_corpus(("stdlib",), max_bytes=2_000_000)
    val = {d.key for d in corpus.documents if is_validation_doc(d.key, 0.02)}
    train = {d.key for d in corpus.documents if not is_validation_doc(d.key, 0.02)}
    assert val and train and not (val & train)
    assert val | train == {d.key for d in corpus.documents}


def test_tokenized_splits_hold_exactly_their_documents() -> None:
    data = load_corpus(TINY)
    corpus = load_pysource_corpus(("stdlib",), max_bytes=2_000_000)
    val_docs = [d for d in corpus.documents if is_validation_doc(d.key, 0.02)]
    n_eos = int((np.asarray(data.val.shards[0]) == data.eos_token_id).sum())
    assert n_eos == len(val_docs)
    assert data.describe()["documents"] == {"train": len(corpus.documents) - len(val_docs), "val": len(val_docs)}
    # Validation text is never in training: a long validation window does not occur in train.
    probe = np.asarray(data.val.shards[0][100:164])
    train = np.asarray(data.train.shards[0])
    hits = np.flatnonzero(train[:-64] == probe[0])
    assert not any(np.array_equal(train[i : i + 64], probe) for i in hits)


def test_tokenizer_and_tokens_are_cached(scaling_cache: Path) -> None:
    first = load_corpus(TINY)
    cached = sorted(p.name for p in (scaling_cache / "tokenizers").iterdir())
    second = load_corpus(TINY)
    assert sorted(p.name for p in (scaling_cache / "tokenizers").iterdir()) == cached
    assert first.fingerprint == second.fingerprint and first.vocab_size == 512
    assert any(name.startswith(f"bpe-{first.fingerprint[:16]}-v512") for name in cached)


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    a = batch_offsets(0, 17, 8, 10_000, 64)
    assert np.array_equal(a, batch_offsets(0, 17, 8, 10_000, 64))
    assert not np.array_equal(a, batch_offsets(0, 18, 8, 10_000, 64))
    assert not np.array_equal(a, batch_offsets(1, 17, 8, 10_000, 64))


def test_token_stream_windows_span_shards() -> None:
    stream = TokenStream([np.arange(0, 5), np.arange(5, 12), np.arange(12, 20)])
    assert len(stream) == 20
    assert stream.window(3, 10).tolist() == list(range(3, 13))
    assert gather_windows(stream, [0, 9], 4).tolist() == [[0, 1, 2, 3, 4], [9, 10, 11, 12, 13]]


def test_unreadable_root_is_a_clear_error() -> None:
    with pytest.raises(ScalingError, match="corpus root is not a readable folder"):
        load_pysource_corpus(("/no/such/folder",))
