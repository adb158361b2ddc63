"""Reading documents from a Hugging Face ``datasets`` source, hub or local.

One place turns a data config (hub name or local builder, subset, split, text
field, revision, streaming) into an ordered stream of text batches, so that
preparation is deterministic: the same source always yields the same documents
in the same order, which is what lets an interrupted preparation resume by
document index and still produce byte-identical shards.

Every failure a user can cause (unknown dataset, hub unreachable while offline,
wrong split/subset, missing text column, unreadable files) becomes one
:class:`ScalingError` line instead of a traceback from deep inside ``datasets``.
"""

from __future__ import annotations

import copy
import glob
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

# Local builders shipped with ``datasets``: they read ``data_files`` from disk.
LOCAL_BUILDERS = ("parquet", "json", "csv", "text", "arrow")
_MAX_STAT_FILES = 100_000


def _offline() -> bool:
    flags = (os.environ.get("HF_DATASETS_OFFLINE", "0"), os.environ.get("HF_HUB_OFFLINE", "0"))
    return any(flag.lower() in ("1", "true", "yes", "on") for flag in flags)


def _first_line(err: BaseException, limit: int = 240) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:limit]


def normalize_data_files(data_files: Any) -> str | list[str] | dict[str, list[str]] | None:
    """Local data file paths made absolute, so a config means the same files from any cwd."""
    if data_files is None:
        return None

    def fix(entry: Any) -> str:
        entry = str(entry)
        if "://" in entry or entry.startswith("hf://"):
            return entry
        return str(Path(entry).expanduser().absolute())

    if isinstance(data_files, str | os.PathLike):
        return fix(data_files)
    if isinstance(data_files, Mapping):
        return {
            str(k): [fix(v)] if isinstance(v, str | os.PathLike) else [fix(x) for x in v] for k, v in data_files.items()
        }
    if isinstance(data_files, Sequence):
        if not data_files:
            raise ScalingError("data.data_files is an empty list: name at least one file")
        return [fix(x) for x in data_files]
    raise ScalingError(f"data.data_files must be a path, a list of paths or a split->paths mapping, got {data_files!r}")


@dataclass(frozen=True)
class SourceSpec:
    """Where the documents come from (the ``source`` part of a data config)."""

    path: str
    config: str | None = None
    split: str = "train"
    text_field: str = "text"
    revision: str | None = None
    data_files: str | list[str] | dict[str, list[str]] | None = None
    streaming: bool = False
    cache_dir: str | None = None
    builder_kwargs: tuple[tuple[str, Any], ...] = ()  # e.g. (("sample_by", "document"),) for the text builder

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "config": self.config,
            "split": self.split,
            "text_field": self.text_field,
            "revision": self.revision,
            "data_files": self.data_files,
            "streaming": self.streaming,
            "builder_kwargs": dict(self.builder_kwargs) or None,
        }

    def is_local(self) -> bool:
        """True for a packaged builder on local files or a local folder (no hub involved)."""
        return self.path in LOCAL_BUILDERS or Path(self.path).expanduser().exists()

    def local_files(self) -> list[str]:
        """The local files this source reads (globs expanded), for a content-change fingerprint."""
        patterns: list[str] = []
        files = self.data_files
        if isinstance(files, str):
            patterns.append(files)
        elif isinstance(files, list):
            patterns.extend(files)
        elif isinstance(files, dict):
            for values in files.values():
                patterns.extend(values)
        found: set[str] = set()
        for pattern in patterns:
            if "://" not in pattern:
                found.update(name for name in glob.glob(pattern, recursive=True) if os.path.isfile(name))
        local = Path(self.path).expanduser()
        if local.is_file():
            found.add(str(local.absolute()))
        elif local.is_dir():
            for file in itertools.islice(local.absolute().rglob("*"), _MAX_STAT_FILES):
                if file.is_file() and not any(
                    part.startswith(".") for part in file.relative_to(local.absolute()).parts
                ):
                    found.add(str(file))
        return sorted(found)


def local_files_stat(spec: SourceSpec) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` of each local input file: a changed file means a new preparation."""
    out: list[list[Any]] = []
    for name in spec.local_files():
        st = os.stat(name)
        out.append([name, st.st_size, st.st_mtime_ns])
    return out


@dataclass
class LoadedSource:
    """A loaded dataset split plus what ``datasets`` tells about its identity."""

    spec: SourceSpec
    dataset: Any  # datasets.Dataset | datasets.IterableDataset
    num_rows: int | None
    resolved: dict[str, Any] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        return self.num_rows is None


def _load_error(spec: SourceSpec, err: BaseException) -> ScalingError:
    """Translate an exception from ``datasets`` into one line that names the cause."""
    from datasets.exceptions import DatasetNotFoundError

    what = f"dataset {spec.path!r}" + (f" (subset {spec.config!r})" if spec.config else "")
    msg = _first_line(err)
    if isinstance(err, ConnectionError) or "OfflineModeIsEnabled" in msg or "Couldn't reach" in msg:
        if _offline():
            return ScalingError(
                f"{what} is not in the local cache and the hub is off (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE=1): "
                "unset them to download it, or point data.path at local files"
            )
        return ScalingError(f"cannot reach the Hugging Face hub for {what}: {msg}")
    if isinstance(err, DatasetNotFoundError):
        return ScalingError(f"unknown {what}: {msg}")
    if isinstance(err, FileNotFoundError):
        return ScalingError(f"no data files for {what}: {msg}")
    if "Dataset scripts are no longer supported" in msg:
        return ScalingError(
            f"{what} is script-based, which datasets>=4 cannot load: use its Parquet export "
            "(data.revision=refs/convert/parquet)"
        )
    if "BuilderConfig" in msg and "not found" in msg:
        return ScalingError(f"unknown subset data.config={spec.config!r} for {what}: {msg}")
    if "Config name is missing" in msg:
        return ScalingError(f"{what} has several subsets: choose one with data.config ({msg})")
    if "Unknown split" in msg or "Bad split" in msg:
        return ScalingError(f"unknown split data.split={spec.split!r} for {what}: {msg}")
    return ScalingError(f"cannot load {what}: {type(err).__name__}: {msg}")


def load_source(spec: SourceSpec) -> LoadedSource:
    """Load one split, streaming or not, recording the resolved revision/fingerprint.

    Mirrors ``datasets.load_dataset`` but keeps the builder, whose ``hash`` is
    the resolved hub commit (or a hash of local files), so the manifest can
    name exactly which data was tokenized even when ``revision`` was not pinned.
    """
    import datasets

    if spec.path in LOCAL_BUILDERS and not spec.data_files:
        raise ScalingError(f"data.path={spec.path!r} is a local builder: set data.data_files to the files to read")
    try:
        builder = datasets.load_dataset_builder(
            spec.path,
            name=spec.config,
            data_files=spec.data_files,
            revision=spec.revision,
            cache_dir=spec.cache_dir,
            **dict(spec.builder_kwargs),
        )
        split_names = list(builder.info.splits.keys()) if builder.info.splits else None
        if split_names and spec.split not in split_names and "[" not in spec.split and "+" not in spec.split:
            raise ScalingError(
                f"unknown split data.split={spec.split!r} for dataset {spec.path!r}: available {split_names}"
            )
        if spec.streaming:
            ds = builder.as_streaming_dataset(split=spec.split)
            num_rows = None
        else:
            builder.download_and_prepare()
            ds = builder.as_dataset(split=spec.split)
            num_rows = len(ds)
    except ScalingError:
        raise
    except Exception as err:  # datasets raises many types; each is a user-facing cause here
        raise _load_error(spec, err) from None
    resolved: dict[str, Any] = {
        "builder": type(builder).__name__,
        "config_name": builder.config.name,
        "builder_hash": getattr(builder, "hash", None),
        "datasets_version": datasets.__version__,
    }
    if not spec.is_local():
        # For hub datasets the builder hash is the commit sha the revision resolved to.
        resolved["resolved_revision"] = resolved["builder_hash"]
    if num_rows is not None:
        resolved["dataset_fingerprint"] = getattr(ds, "_fingerprint", None)
        resolved["num_rows"] = num_rows
    return LoadedSource(spec=spec, dataset=ds, num_rows=num_rows, resolved=resolved)


def check_text_field(source: LoadedSource) -> None:
    """Fail with one line naming the field and the available columns when the text column is absent."""
    ds = source.dataset
    columns = ds.column_names
    if columns is None:  # streaming without known features: look at the first example
        try:
            first = next(iter(ds.take(1)), None)
        except Exception as err:
            raise _read_error(source.spec, err) from None
        columns = sorted(first) if first else []
    if source.spec.text_field not in columns:
        raise ScalingError(
            f"text field {source.spec.text_field!r} not in dataset {source.spec.path!r}: "
            f"available columns {list(columns)} (set data.text_field)"
        )


def _read_error(spec: SourceSpec, err: BaseException) -> ScalingError:
    return ScalingError(f"reading dataset {spec.path!r} failed: {type(err).__name__}: {_first_line(err)}")


@dataclass
class TextBatch:
    """Consecutive documents ``first, first+1, ...`` and how to restart at ``first``."""

    first: int
    texts: list[str | None]
    resume: dict[str, Any]


def iter_text_batches(
    source: LoadedSource, batch_size: int, resume: dict[str, Any] | None = None
) -> Iterator[TextBatch]:
    """Yield the split's documents in order, in batches, starting at a resume point.

    ``resume`` is a ``TextBatch.resume`` recorded earlier: ``{"doc": i}`` for an
    indexable dataset, plus ``"state"`` (``IterableDataset.state_dict()``) for a
    streaming one, so a resumed streaming preparation seeks instead of
    re-downloading everything before the last checkpoint. Batches continue from
    document ``resume["doc"]``.
    """
    field_name = source.spec.text_field
    start = int(resume["doc"]) if resume else 0
    if not source.streaming:
        ds = source.dataset.select_columns([field_name])
        n = source.num_rows or 0
        for first in range(start, n, batch_size):
            try:
                texts = ds[first : min(first + batch_size, n)][field_name]
            except Exception as err:
                raise _read_error(source.spec, err) from None
            yield TextBatch(first=first, texts=texts, resume={"doc": first})
        return
    yield from _iter_streaming(source, batch_size, start, (resume or {}).get("state"))


def _iter_streaming(
    source: LoadedSource, batch_size: int, start: int, state: dict[str, Any] | None
) -> Iterator[TextBatch]:
    field_name = source.spec.text_field
    ds = source.dataset.select_columns([field_name])
    skip = 0
    if start and state is not None:
        try:
            ds.load_state_dict(state)
        except Exception:  # state from another datasets version: fall back to reading through
            state, skip = None, start
    elif start:
        skip = start
    if skip:
        ds = ds.skip(skip)
    can_checkpoint = skip == 0
    it = ds.iter(batch_size=batch_size)
    first = start
    try:
        while True:
            snapshot: dict[str, Any] = {"doc": first}
            if can_checkpoint:
                try:
                    snapshot["state"] = copy.deepcopy(ds.state_dict())
                except Exception:
                    can_checkpoint = False
            try:
                batch = next(it)
            except StopIteration:
                return
            except Exception as err:
                raise _read_error(source.spec, err) from None
            texts = batch[field_name]
            yield TextBatch(first=first, texts=texts, resume=snapshot)
            first += len(texts)
    finally:
        it.close()
