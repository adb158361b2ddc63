"""What decides a corpus preparation: the ``data`` node, typed by :class:`scaling.config.HFDataConfig`.

Its own module because three readers need it: the preparation pipeline
(prepare.py), training through ``ensure_prepared``, and the ``scaling prepare``
CLI (prepare_cli.py). The CLI composes a ``data`` preset with Hydra, its flags
becoming ``data.<key>=...`` overrides (:func:`load_preset`), so a command line
and a training run see the same defaults (the YAML's, the only place they are
written) and the same schema checks a misspelt key or a wrong type.

:func:`checked` then validates what the schema cannot (ranges, counts written
as ``1e9`` or ``2**26``, the tokenizer processes) and returns the config
normalised, so the pipeline reads one typed object.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from scaling.config import CONFIG_DIR, HFDataConfig, from_node
from scaling.data.hf import SourceSpec, normalize_data_files
from scaling.errors import ScalingError

#: Documents per tokenizer call: a throughput knob, not a config key (the shards do not depend on it).
BATCH_DOCS = 256


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


def _tokenizer_spec(spec: str) -> str:
    """A local tokenizer folder as an absolute path, so the manifest's spec loads from any cwd."""
    local = Path(spec).expanduser()
    return str(local.absolute()) if local.exists() else spec


def _typed(data_cfg: HFDataConfig | Mapping[str, Any]) -> HFDataConfig:
    """A data node (DictConfig or dict with every key) as :class:`HFDataConfig`, checked by the schema."""
    if isinstance(data_cfg, HFDataConfig):
        return data_cfg
    if data_cfg.get("kind") != "hf":
        raise ScalingError(f"data.kind={data_cfg.get('kind')!r}: only 'hf' corpora are prepared by `scaling prepare`")
    return from_node(HFDataConfig, data_cfg)


def checked(data_cfg: HFDataConfig | Mapping[str, Any]) -> HFDataConfig:
    """The data config validated and normalised: counts as ints, files and tokenizer as absolute paths.

    Idempotent, so the pipeline may call it on a config that a caller already checked.
    """
    data = _typed(data_cfg)
    if not data.path:
        raise ScalingError("data.path is not set: give a hub dataset name, a local folder, or a builder like 'parquet'")
    if not 0.0 < data.val_fraction < 1.0:
        raise ScalingError(f"data.val_fraction must be in (0, 1), got {data.val_fraction}")
    if data.builder_kwargs is not None and not isinstance(data.builder_kwargs, Mapping):
        raise ScalingError(
            f"data.builder_kwargs must be a mapping (e.g. {{sample_by: document}}), got {data.builder_kwargs!r}"
        )
    shard_tokens = _count(data.shard_tokens, "shard_tokens")
    if shard_tokens is None:
        raise ScalingError("data.shard_tokens is not set: give the tokens per shard file, e.g. 2**26")
    return replace(
        data,
        path=str(data.path),
        data_files=normalize_data_files(data.data_files),
        tokenizer=_tokenizer_spec(data.tokenizer),
        max_documents=_count(data.max_documents, "max_documents"),
        max_tokens=_count(data.max_tokens, "max_tokens"),
        shard_tokens=shard_tokens,
        num_proc=_auto_num_proc() if data.num_proc is None else _count(data.num_proc, "num_proc"),
    )


def source_spec(data: HFDataConfig) -> SourceSpec:
    """Where the documents come from: the source part of a data config."""
    return SourceSpec(
        path=str(data.path),
        config=data.config,
        split=data.split,
        text_field=data.text_field,
        revision=data.revision,
        data_files=normalize_data_files(data.data_files),
        streaming=data.streaming,
        cache_dir=data.hf_cache_dir,
        builder_kwargs=tuple(sorted((str(k), v) for k, v in (data.builder_kwargs or {}).items())),
    )


def _override_value(value: Any) -> str:
    """A Python value in Hydra's override grammar; strings quoted, so paths with spaces or commas stay one value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{key}:{_override_value(v)}" for key, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    # Hydra's quoted strings: a backslash is an escape only before a quote (or the closing one).
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", str(value))
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"


def data_overrides(values: Mapping[str, Any]) -> list[str]:
    """``data.<key>=<value>`` overrides for :func:`load_preset`, one per key."""
    return [f"data.{key}={_override_value(value)}" for key, value in values.items()]


def load_preset(name: str, config_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> HFDataConfig:
    """Compose ``data/<name>.yaml`` of the config folder (:data:`~scaling.config.CONFIG_DIR`) with Hydra plus ``data.<key>=...`` overrides; the schema checks both."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    folder = Path(config_dir or CONFIG_DIR).resolve()
    if not (folder / "data").is_dir():
        raise ScalingError(f"no data presets under {folder}/data: pass --config-dir")
    available = sorted(p.stem for p in (folder / "data").glob("*.yaml"))
    if name not in available:
        raise ScalingError(f"unknown preset {name!r}: available {available}")
    try:
        with initialize_config_dir(config_dir=str(folder), version_base=None):
            cfg = compose(config_name=None, overrides=[f"+data={name}", *overrides])
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__ or err
        raise ScalingError(f"cannot compose preset {name!r}: {str(cause).splitlines()[0]}") from None
    return _typed(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]
