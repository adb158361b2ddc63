"""Training on a prepared Hugging Face corpus (local Parquet, real load_dataset), and allow_repeat."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_MODEL, TINY_TRAIN, compose_train
from test_hf_prepare import WORDS

from scaling.data.tokenizer import train_bpe
from scaling.errors import ScalingError
from scaling.records import read_record
from scaling.train.run import run_training

pytestmark = pytest.mark.slow  # every test here trains


@pytest.fixture(scope="module")
def local_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Parquet file of 400 synthetic documents and a BPE trained on them."""
    root = tmp_path_factory.mktemp("hfcorpus")
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 120))) for _ in range(400)]
    pq.write_table(pa.table({"text": docs, "id": list(range(len(docs)))}), root / "docs.parquet")
    train_bpe(docs, 300, root / "tok")
    return root / "docs.parquet", root / "tok"


def _overrides(results: Path, corpus: tuple[Path, Path], *extra: str) -> list[str]:
    parquet, tok = corpus
    return [
        "data=hf",
        "data.name=local-parquet",
        "data.path=parquet",
        f"data.data_files={parquet}",
        f"data.tokenizer={tok}",
        "data.val_fraction=0.1",
        f"data.prepared_root={results / 'prepared'}",
        *TINY_MODEL,
        *TINY_TRAIN,
        f"paths.results={results}",
        *extra,
    ]


def test_trains_on_a_prepared_parquet_corpus(tmp_path: Path, local_corpus) -> None:
    outcome = run_training(compose_train(_overrides(tmp_path, local_corpus, "train.tokens=8192")))
    assert outcome.status == "finished"
    record = read_record(outcome.record)
    assert record["corpus"]["name"] == "local-parquet"
    assert record["corpus"]["source"]["path"] == "parquet"
    assert record["tokenizer"]["vocab_size"] == 300
    assert record["training"]["epochs"] < 1
    assert record["final"]["val_loss"] < record["curve"][0]["val_loss"]


def test_budget_beyond_the_data_needs_allow_repeat(tmp_path: Path, local_corpus) -> None:
    cfg = compose_train(_overrides(tmp_path, local_corpus, "train.tokens=60000"))
    with pytest.raises(ScalingError, match="data.allow_repeat=true"):
        run_training(cfg)
    outcome = run_training(
        compose_train(_overrides(tmp_path, local_corpus, "train.tokens=60000", "data.allow_repeat=true"))
    )
    assert outcome.status == "finished"
    assert read_record(outcome.record)["training"]["epochs"] > 1
