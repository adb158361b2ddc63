"""What decides a corpus preparation: the hydra ``data`` node, validated into :class:`PrepareSettings`.

Its own module because three readers need it: the preparation pipeline
(prepare.py), training through ``ensure_prepared``, and the ``scaling prepare``
CLI (prepare_cli.py), which composes ``configs/data`` presets with hydra
(``load_preset``) so that a command line and a training run see the same defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.config import CONFIG_DIR
from scaling.data.hf import SourceSpec
from scaling.errors import ScalingError

DEFAULT_TOKENIZER = "gpt2"
DEFAULT_SHARD_TOKENS = 2**26
DEFAULT_VAL_FRACTION = 0.005
BATCH_DOCS = 256

REPO_CONFIGS = CONFIG_DIR  # importing scaling.config also registers the schema the presets name


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
