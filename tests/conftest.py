"""Shared test fixtures.

Tests run offline: no hub access, W&B in offline mode. Data under ``../shared/data``
(beside the checkout) is used where present; outside CI, where that folder is
absent, the tests that need it skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy fits: one BLAS thread is faster here
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCALING_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder; skip (or fail, in CI) when it is absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {SHARED_DATA}")
        pytest.skip(f"{SHARED_DATA} is absent outside CI")
    return SHARED_DATA


@pytest.fixture(scope="session")
def chinchilla_csv(shared_data: Path) -> Path:
    """Epoch AI's 245 points extracted from Chinchilla's Figure 4."""
    path = shared_data / "chinchilla_epoch_svg_extracted.csv"
    if not path.is_file():
        pytest.fail(f"{path} missing from shared data")
    return path


# -- training helpers --------------------------------------------------------------------

# A small, fast slice of the embedded corpus for training tests (the full corpus is
# exercised by the README command and the demo).
TINY_DATA = ["data.max_bytes=2000000", "data.vocab_size=512", "data.bpe_train_bytes=1e6"]
TINY_MODEL = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.context=64"]
TINY_TRAIN = [
    "train.batch_size=8",
    "train.eval_tokens=4096",
    "train.eval_points=6",
    "train.log_every=2",
    "logging.wandb=false",
    "logging.progress=false",
]


@pytest.fixture(scope="session", autouse=True)
def scaling_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer/token cache for the whole session, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("scaling-cache")
    os.environ["SCALING_CACHE"] = str(path)
    return path


def compose_train(overrides: list[str]) -> dict:
    """The resolved ``scaling-train`` config for ``overrides``, as scaling-train would see it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scaling.config import CONFIG_DIR  # importing it registers the config schema

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def tiny_overrides(results: Path, *extra: str) -> list[str]:
    """Overrides for a seconds-long CPU run writing under ``results``."""
    return [*TINY_DATA, *TINY_MODEL, *TINY_TRAIN, f"paths.results={results}", *extra]
