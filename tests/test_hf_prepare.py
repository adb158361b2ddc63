"""Real-corpus preparation, offline: real ``datasets`` builders on local files, a real BPE.

Every test reads documents through ``datasets.load_dataset``'s own builders
(parquet, json, text) from files made in a temporary folder, tokenizes them with
a byte-level BPE trained here and loaded by path, and checks the shards on disk.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scaling.data.prepare import Progress, ensure_prepared, prepare_corpus
from scaling.data.settings import checked, data_overrides, load_preset
from scaling.data.shards import MANIFEST, corpus_fingerprint, open_prepared, read_manifest
from scaling.data.split import is_validation_doc
from scaling.data.tokenizer import EOS, load_hf_tokenizer, load_tokenizer_info, train_bpe
from scaling.errors import ScalingError

VAL_FRACTION = 0.1
WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "ran",
    "far",
    "away",
    "quickly",
    "slowly",
    "big",
    "small",
    "red",
    "blue",
    "tree",
    "house",
    "river",
    "stone",
]


def _make_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        sentences = [
            " ".join(rng.choices(WORDS, k=rng.randint(3, 12))).capitalize() + "." for _ in range(rng.randint(1, 6))
        ]
        docs.append(" ".join(sentences) if rng.random() < 0.7 else "\n".join(sentences))
    # Edge cases: non-ASCII text, a literal EOS string inside a document, an exact duplicate.
    docs[5] = "Ünïcödé — naïve café 東京 🐈 résumé."
    docs[7] = f"A page quoting the token {EOS} in its text."
    docs[9] = docs[8]
    return docs


DOCS = _make_docs(600)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Input files in three local formats plus a BPE trained on the documents."""
    root = tmp_path_factory.mktemp("hf_prepare")
    table = pa.table({"text": DOCS + [""], "id": list(range(len(DOCS) + 1))})  # one empty doc: skipped
    pq.write_table(table, root / "docs.parquet", row_group_size=97)
    with open(root / "docs.jsonl", "w") as fh:
        for i, doc in enumerate(DOCS + [""]):
            fh.write(json.dumps({"text": doc, "id": i}) + "\n")
    train_bpe(DOCS, 320, root / "tok")
    return root


@pytest.fixture(scope="module")
def tok(work: Path):
    return load_tokenizer_info(str(work / "tok"))


def _cfg(work: Path, **over) -> dict:
    """hf.yaml with these keys overridden, composed as ``scaling prepare`` composes its flags."""
    cfg = {
        "kind": "hf",
        "name": "test",
        "path": "parquet",
        "data_files": str(work / "docs.parquet"),
        "tokenizer": str(work / "tok"),
        "val_fraction": VAL_FRACTION,
        "shard_tokens": 3000,
        "num_proc": 1,
        "hf_cache_dir": str(work / "hf_cache"),
        "prepared_root": str(work / "prepared"),
    }
    cfg.update(over)
    return asdict(load_preset("hf", overrides=data_overrides(cfg)))


def _prepare(work: Path, tok, out: Path, batch_docs: int = 64, **over) -> Path:
    return prepare_corpus(_cfg(work, **over), out, tokenizer=tok, progress_bar=False, batch_docs=batch_docs)


def _split_docs(stream: np.ndarray, eos: int) -> list[np.ndarray]:
    ends = np.flatnonzero(stream == eos)
    assert len(ends) and ends[-1] == len(stream) - 1, "every document must end with EOS"
    return np.split(stream, ends + 1)[:-1]


def test_round_trip_counts_decode_and_split(work: Path, tok, tmp_path: Path) -> None:
    out = _prepare(work, tok, tmp_path / "p")
    corpus = open_prepared(out, verify=True)
    hf = load_hf_tokenizer(str(work / "tok"))
    train_docs = [d for d in DOCS if not is_validation_doc(d, VAL_FRACTION)]
    val_docs = [d for d in DOCS if is_validation_doc(d, VAL_FRACTION)]
    assert val_docs and train_docs

    def n_tokens(docs: list[str]) -> int:
        ids = hf(docs, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return sum(len(x) + 1 for x in ids)

    assert corpus.train_tokens == n_tokens(train_docs)
    assert corpus.val_tokens == n_tokens(val_docs)
    assert corpus.manifest["splits"]["train"]["documents"] == len(train_docs)
    assert corpus.manifest["documents_skipped_empty"] == 1
    assert corpus.manifest["documents_read"] == len(DOCS) + 1
    assert len(corpus.train) >= 3 and corpus.train[0].dtype == np.uint16
    assert all(isinstance(s, np.memmap) and not s.flags.writeable for s in corpus.train + corpus.val)
    assert corpus.vocab_size == 320 and corpus.eos_token_id == hf.eos_token_id
    assert corpus.fingerprint == corpus_fingerprint(corpus.manifest)

    # Decoding the shards gives back exactly the documents, in order, each once; the literal
    # "<|endoftext|>" inside docs[7] is text, not a document boundary.
    for shards, expected in ((corpus.train, train_docs), (corpus.val, val_docs)):
        pieces = _split_docs(np.concatenate(shards), corpus.eos_token_id)
        decoded = [hf.decode(p[:-1], clean_up_tokenization_spaces=False) for p in pieces]
        assert decoded == expected
    assert not set(train_docs) & set(val_docs)


def test_streaming_jsonl_and_two_processes_give_identical_tokens(work: Path, tok, tmp_path: Path) -> None:
    base = _prepare(work, tok, tmp_path / "parquet")
    streamed = _prepare(
        work, tok, tmp_path / "jsonl", path="json", data_files=str(work / "docs.jsonl"), streaming=True, num_proc=2
    )
    a, b = read_manifest(base), read_manifest(streamed)
    assert b["source"]["streaming"] is True and b["source"]["path"] == "json"
    assert a["fingerprint"] == b["fingerprint"]  # same content, different source format and reader
    assert a["splits"] == b["splits"]


def test_text_builder_one_document_per_line(work: Path, tok, tmp_path: Path) -> None:
    lines = [d.replace("\n", " ") for d in DOCS[:200]]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    out = _prepare(work, tok, tmp_path / "p", path="text", data_files=str(tmp_path / "lines.txt"))
    m = read_manifest(out)
    assert m["documents_read"] == 200
    assert m["splits"]["train"]["documents"] + m["splits"]["val"]["documents"] == 200
    # The text builder's own option makes each file one document instead.
    for i in range(3):
        (tmp_path / f"doc{i}.txt").write_text("\n".join(DOCS[10 * i : 10 * i + 10]))
    files = [str(tmp_path / f"doc{i}.txt") for i in range(3)]
    whole = {"builder_kwargs": {"sample_by": "document"}, "val_fraction": 0.4}
    m = read_manifest(_prepare(work, tok, tmp_path / "whole", path="text", data_files=files, **whole))
    assert m["documents_read"] == 3 and m["source"]["builder_kwargs"] == {"sample_by": "document"}


@pytest.mark.parametrize("streaming", [False, True])
def test_resume_after_interruption_is_byte_identical(work: Path, tok, tmp_path: Path, streaming: bool) -> None:
    over = {"path": "json", "data_files": str(work / "docs.jsonl"), "streaming": streaming}
    reference = _prepare(work, tok, tmp_path / "reference", batch_docs=32, **over)

    out = tmp_path / "interrupted"

    def interrupt(p: Progress) -> None:
        written = read_manifest(out)["splits"]["train"]["tokens"]
        if p.shards["train"] >= 2 and p.tokens["train"] > written:  # mid-way through the third shard
            raise KeyboardInterrupt

    settings = _cfg(work, **over)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(settings, out, tokenizer=tok, progress_bar=False, on_progress=interrupt, batch_docs=32)
    m = read_manifest(out)
    assert m["complete"] is False and len(m["splits"]["train"]["shards"]) == 2
    assert m["progress"]["next_doc"] > 0
    # A streaming source resumes by seeking the dataset iterator, not by reading it all again.
    assert ("state" in m["progress"]["resume"]) is streaming
    partial = list((out / "train").glob("*.partial"))
    assert partial and partial[0].stat().st_size > 0
    # A crash between publishing a shard and recording it leaves an unlisted shard: also discarded.
    (out / "train" / "000002.bin").write_bytes(b"\x01\x02" * 100)
    with pytest.raises(ScalingError, match="incomplete"):
        open_prepared(out)

    seen: list[int] = []
    prepare_corpus(
        settings, out, tokenizer=tok, progress_bar=False, on_progress=lambda p: seen.append(p.next_doc), batch_docs=32
    )
    assert seen[0] > m["progress"]["next_doc"]  # continued, did not start over
    assert len(seen) < len(DOCS) // 32  # fewer batches than a full pass

    ref, got = read_manifest(reference), read_manifest(out)
    assert got["complete"] is True and not list(out.rglob("*.partial"))
    assert got["splits"] == ref["splits"] and got["fingerprint"] == ref["fingerprint"]
    for split in ("train", "val"):
        ref_files = sorted(p.name for p in (reference / split).iterdir())
        assert ref_files == sorted(p.name for p in (out / split).iterdir())
        for name in ref_files:
            assert (out / split / name).read_bytes() == (reference / split / name).read_bytes()


def test_resume_refuses_a_changed_source(work: Path, tok, tmp_path: Path) -> None:
    out = tmp_path / "p"
    settings = _cfg(work)

    def stop_after_first_shard(p: Progress) -> None:
        if p.shards["train"] >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(
            settings, out, tokenizer=tok, progress_bar=False, on_progress=stop_after_first_shard, batch_docs=32
        )
    manifest = read_manifest(out)
    manifest["progress"]["last_doc_hash"] = "0" * 16  # as if the document at the resume point were another
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ScalingError, match="dataset changed since the interrupted preparation"):
        prepare_corpus(settings, out, tokenizer=tok, progress_bar=False, batch_docs=32)


def test_concurrent_preparers_share_one_result(work: Path, tok, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = checked(_cfg(work, max_documents=200))
    with ThreadPoolExecutor(2) as pool:
        outs = list(
            pool.map(lambda _: prepare_corpus(settings, tmp_path / "p", tokenizer=tok, progress_bar=False), [0, 1])
        )
    assert outs[0] == outs[1]
    corpus = open_prepared(outs[0], verify=True)
    assert corpus.manifest["documents_read"] == 200


def test_caps_stop_at_a_document_boundary(work: Path, tok, tmp_path: Path) -> None:
    m = read_manifest(_prepare(work, tok, tmp_path / "docs", max_documents=50))
    assert m["documents_read"] == 50 and m["stop_reason"] == "max_documents"
    m = read_manifest(_prepare(work, tok, tmp_path / "tokens", max_tokens="5e3"))
    train = m["splits"]["train"]
    assert m["stop_reason"] == "max_tokens" and 5000 <= train["tokens"] < 5000 + 400


def test_missing_text_field_names_field_and_columns(work: Path, tok, tmp_path: Path) -> None:
    with pytest.raises(ScalingError, match=r"text field 'content' not in .*\['text', 'id'\]"):
        _prepare(work, tok, tmp_path / "p", text_field="content")


def test_unknown_dataset_offline_is_one_clear_error(work: Path, tok, tmp_path: Path) -> None:
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1"
    with pytest.raises(ScalingError, match="not in the local cache and the hub is off") as info:
        _prepare(work, tok, tmp_path / "p", path="nobody-here/no-such-dataset", data_files=None)
    assert "\n" not in str(info.value)
    with pytest.raises(ScalingError, match="no data files"):
        _prepare(work, tok, tmp_path / "q", data_files=str(tmp_path / "missing.parquet"))


def test_ensure_prepared_reuses_and_separates_configs(work: Path, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    cfg = _cfg(work, prepared_root=str(tmp_path / "root"), max_documents=120)
    out = ensure_prepared(OmegaConf.create(cfg))
    assert out.parent == tmp_path / "root" and out.name.startswith("parquet-docs-train-")
    stamp = (out / MANIFEST).stat().st_mtime_ns
    assert ensure_prepared(cfg) == out and (out / MANIFEST).stat().st_mtime_ns == stamp  # reused as is
    assert open_prepared(out).manifest["documents_read"] == 120
    other = ensure_prepared({**cfg, "val_fraction": 0.2})
    assert other != out
    with pytest.raises(ScalingError, match="different config .*val_fraction"):
        ensure_prepared({**cfg, "val_fraction": 0.3, "prepared_dir": str(out)})


def test_open_prepared_refuses_missing_and_truncated(work: Path, tok, tmp_path: Path) -> None:
    with pytest.raises(ScalingError, match="does not exist"):
        open_prepared(tmp_path / "nothing")
    out = _prepare(work, tok, tmp_path / "p", max_documents=100)
    shard = out / read_manifest(out)["splits"]["train"]["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ScalingError, match="bytes, manifest says"):
        open_prepared(out)
    with pytest.raises(ScalingError, match="not a prepared corpus"):
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("mine")
        _prepare(work, tok, tmp_path / "busy")


def test_presets_compose_from_hf_defaults() -> None:
    expected = {
        "fineweb_edu": ("HuggingFaceFW/fineweb-edu", "sample-10BT", None),
        "openwebtext": ("Skylion007/openwebtext", None, "refs/convert/parquet"),
        "tinystories": ("roneneldan/TinyStories", None, None),
        "slimpajama": ("DKYoon/SlimPajama-6B", None, None),
    }
    for preset, (path, config, revision) in expected.items():
        cfg = load_preset(preset)
        assert (cfg.path, cfg.config, cfg.revision) == (path, config, revision)
        assert cfg.kind == "hf" and cfg.tokenizer == "gpt2" and cfg.streaming is True
        assert cfg.allow_repeat is False and cfg.name == preset
        checked(cfg)  # valid as a config


@pytest.mark.slow
def test_cli_prepare_in_a_subprocess(work: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "scaling.cli", "prepare", "--tokenizer", str(work / "tok"), "--num-proc", "1"]
    cmd += ["--hf-cache-dir", str(work / "hf_cache")]
    ok = subprocess.run(
        [*cmd, "--path", "json", "--data-files", str(work / "docs.jsonl"), "--text-field", "text"]
        + ["--out", str(tmp_path / "cli"), "--shard-tokens", "2**12", "--val-fraction", str(VAL_FRACTION)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["prepared_dir"] == str(tmp_path / "cli") and summary["documents"] == len(DOCS) + 1
    assert summary["fingerprint"] == open_prepared(tmp_path / "cli").fingerprint


def test_cli_user_error_is_one_line_exit_2(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scaling.cli import main

    argv = ["prepare", "--preset", "tinystories", "--tokenizer", str(work / "tok"), "--out", str(tmp_path / "ts")]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: dataset 'roneneldan/TinyStories' is not in the local cache")
    with pytest.raises(SystemExit):
        main(["prepare", "--tokenizer", str(work / "tok")])
    assert capsys.readouterr().err.startswith("error: give --preset NAME or --path")
