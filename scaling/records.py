"""Run records: the durable, atomic JSON file each training run leaves behind.

One file per run at ``results/<experiment>/runs/<run_id>.json``. The fitting stage
reads nothing else, so the schema is the contract between training and fitting:

``run_id, status (finished|diverged|running), config, model, params
{non_embedding, with_head, total}, tokens, flops {kaplan, six_n, exact},
flops_per_token {...}, curve [eval points], final {val_loss, train_loss},
throughput {tokens_per_s, flops_per_s}, corpus {name, fingerprint}, tokenizer,
versions, git_commit, budget {...}``.

Each eval point is ``{step, tokens, flops {kaplan, six_n, exact}, train_loss,
val_loss, lr}``.

``budget`` tags the record with the budget its (N, D) point was asked to spend,
so that a fit groups isoFLOP profiles by what the sweep meant rather than by C
values that rounding to whole batches moves by a few percent:

* ``flops``: the isoFLOP budget C (``train.flops``), null when the budget was
  given in tokens; ``flops_convention``: the convention C is counted in
  (``train.flops_convention``; null without ``flops``);
* ``tokens`` / ``tokens_per_param``: the budget when given that way instead
  (exactly one of ``flops``, ``tokens``, ``tokens_per_param`` is set);
* ``grid_kind``: ``grid.kind`` (``isoflop`` or ``none``); ``grid_offset``: the
  size's ``grid.offset`` on an isoFLOP grid (N = N_prior(C) * ratio^offset),
  else null;
* ``fraction``: this horizon's share of the run's main budget, 1.0 for the
  main run and f < 1 for a WSD cooldown branch, whose budget above is already
  f times the main one (so each branch is its own isoFLOP budget).

Records written before the tag existed (schema version 1 all along: the tag is
optional) load unchanged; their budget columns are empty and fits group their
budgets by C. The tag is never inferred from such a record's config, since a
WSD branch's config holds the main run's budget, not its own.

Writes go to a temporary file in the same directory and are renamed over the
target (``os.replace`` is atomic on POSIX), so a reader or a killed writer never
sees half a record, and two sweeps writing to one folder never clash.

A record becomes a table row in one place, :func:`record_to_row` (columns
:data:`COLUMNS`), and its curve in one place, :func:`curve_rows` (columns
:data:`CURVE_COLUMNS`): ``scaling collect`` writes those rows, ``scaling fit``
reads its points from them, and the W&B tracker logs them as the run's summary
and history, so every consumer sees the same names and values.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from scaling.damage import disk_full_error, is_disk_full
from scaling.errors import ScalingError

SCHEMA_VERSION = 1
STATUSES = ("finished", "diverged", "running")
PARAM_COUNTS = ("non_embedding", "with_head", "total")
# The counts a law may use as N: the three every record holds, and ``active`` (the parameters a token
# passes through; a mixture of experts' N, Clark et al. 2022), which records before it lack: there it is
# ``with_head``, as for every dense model.
FIT_PARAM_COUNTS = (*PARAM_COUNTS, "active")
FLOP_CONVENTIONS = ("kaplan", "six_n", "exact")
REQUIRED_KEYS = ("run_id", "status", "config", "model", "params", "tokens", "flops", "curve", "final")
# The optional ``budget`` tag (see the module docstring).
BUDGET_KEYS = ("flops", "flops_convention", "tokens", "tokens_per_param", "grid_kind", "grid_offset", "fraction")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def runs_dir(results_root: str | Path, experiment: str) -> Path:
    """Folder that holds one experiment's run records."""
    return Path(results_root) / experiment / "runs"


def run_paths(cfg: Mapping[str, Any], run_id: str) -> tuple[Path, Path]:
    """(record path, checkpoint folder) of a run: where ``paths`` and ``experiment_name`` put it."""
    results = Path(cfg["paths"]["results"])
    experiment = str(cfg["experiment_name"])
    ckpt_root = cfg["paths"]["checkpoints"] or results / experiment / "ckpt"
    return record_path(results, experiment, run_id), Path(ckpt_root) / run_id


def record_path(results_root: str | Path, experiment: str, run_id: str) -> Path:
    """Where the record of ``run_id`` lives."""
    return runs_dir(results_root, experiment) / f"{run_id}.json"


def _json_default(obj: object) -> object:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_or_none(obj: Any) -> Any:
    """JSON has no NaN; store non-finite floats as null so the file stays standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    return obj


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Produce ``path`` atomically: ``write`` fills a temp file beside it, which is fsynced and renamed.

    A reader never sees half a file and a killed writer leaves the old file in place (``os.replace``
    is atomic on POSIX). The one home for atomic writes: records, caches, manifests and tables.
    A full disk or quota leaves the old file too, and is one ScalingError naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.close(fd)
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(err):
            kept = "the previous version is kept" if path.exists() else "nothing was written"
            raise disk_full_error(path, kept) from None
        raise


def atomic_write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as standard JSON (NaN as null) to ``path`` atomically."""
    text = json.dumps(_finite_or_none(data), indent=1, default=_json_default, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """Validate and atomically write one run record."""
    record = {"schema_version": SCHEMA_VERSION, **record}
    validate_record(record, source=str(path))
    atomic_write_json(path, record)


def validate_record(record: Any, source: str = "run record") -> dict[str, Any]:
    """Check the keys the fitting stage relies on; raise one clear error if absent."""
    if not isinstance(record, dict):
        raise ScalingError(f"corrupt run record {source}: top level is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ScalingError(f"corrupt run record {source}: missing key(s) {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise ScalingError(f"corrupt run record {source}: unknown status {record['status']!r}")
    for group, keys in (("params", PARAM_COUNTS), ("flops", FLOP_CONVENTIONS)):
        value = record[group]
        if not isinstance(value, dict) or any(k not in value for k in keys):
            raise ScalingError(f"corrupt run record {source}: '{group}' must hold {', '.join(keys)}")
    if not isinstance(record["curve"], list):
        raise ScalingError(f"corrupt run record {source}: 'curve' is not a list")
    _validate_budget(record.get("budget"), source)
    return record


def _validate_budget(budget: Any, source: str) -> None:
    """An absent tag is fine (older records); a present one must say a usable C."""
    if budget is None:
        return
    if not isinstance(budget, dict):
        raise ScalingError(f"corrupt run record {source}: 'budget' is not an object")
    flops = budget.get("flops")
    if flops is None:
        return
    if isinstance(flops, bool) or not isinstance(flops, int | float) or not math.isfinite(flops) or flops <= 0:
        raise ScalingError(f"corrupt run record {source}: budget.flops must be a positive number, got {flops!r}")
    if budget.get("flops_convention") not in FLOP_CONVENTIONS:
        raise ScalingError(
            f"corrupt run record {source}: budget.flops_convention must be one of {', '.join(FLOP_CONVENTIONS)}, "
            f"got {budget.get('flops_convention')!r}"
        )


def read_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one record; a missing, truncated or malformed file is a ScalingError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScalingError(f"run record not found: {path}") from None
    except OSError as err:
        raise ScalingError(f"cannot read run record {path}: {err.strerror}") from None
    except UnicodeDecodeError:  # flipped bytes
        raise ScalingError(f"corrupt run record {path}: not UTF-8 text") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ScalingError(
            f"corrupt run record {path}: invalid JSON ({err.msg}: line {err.lineno} column {err.colno})"
        ) from None
    return validate_record(record, source=str(path))


def iter_record_paths(root: str | Path) -> Iterator[Path]:
    """Every ``*.json`` under a ``runs/`` folder below ``root``, at any depth, sorted."""
    root = Path(root)
    if root.is_file():
        yield root
        return
    yield from sorted(p for p in root.rglob("*.json") if p.parent.name == "runs")


def read_unique_records(root: str | Path) -> tuple[list[tuple[Path, dict[str, Any]]], str | None]:
    """Every record below ``root`` once per run id, with its path, and a one-line note of copies dropped.

    The same folder copied twice under one path (``results/demo`` and ``results/backup/demo``) must
    not count its runs twice: a record whose run id was already read and whose content is identical
    is a copy and is dropped. Two records of one id that differ are two versions of one run (the id
    hashes the config, :mod:`scaling.runid`); neither can be picked silently, so that is an error
    naming both files.
    """
    first: dict[str, tuple[Path, dict[str, Any]]] = {}
    copies = 0
    for path in iter_record_paths(root):
        record = read_record(path)
        run_id = str(record["run_id"])
        if run_id not in first:
            first[run_id] = (path, record)
            continue
        kept_path, kept = first[run_id]
        if kept != record:
            raise ScalingError(f"run records {kept_path} and {path} share run id {run_id} but differ; keep one of them")
        copies += 1
    note = f"{copies} duplicate record(s) skipped: same run id and content as a record already read" if copies else None
    return list(first.values()), note


def load_records(root: str | Path, status: str | None = "finished") -> list[dict[str, Any]]:
    """Load all run records below ``root``, each run once (optionally only those with ``status``)."""
    root = Path(root)
    if not root.exists():
        raise ScalingError(f"no such results path: {root}")
    records = [record for _, record in read_unique_records(root)[0]]
    if status is not None:
        records = [r for r in records if r["status"] == status]
    return records


# -- the record as a table row ------------------------------------------------------------

# Where the W&B reader finds each column of a run (see scaling.tracking): ``static`` columns are
# known before training and logged in the W&B config's ``derived``; ``result`` columns only a
# finished or stopped run knows, logged in its summary; ``both`` are in both (the summary shows N);
# ``config`` columns are read from the run's config itself.
COLUMN_SOURCES: dict[str, str] = {
    "run_id": "result",
    "experiment": "config",
    "status": "result",
    "family": "static",
    "d_model": "static",
    "n_layers": "static",
    "n_heads": "static",
    "d_ff": "static",
    "context": "static",
    "vocab_size": "static",
    "tie_embeddings": "static",
    "variant": "static",
    "N_non_embedding": "both",
    "N_with_head": "both",
    "N_total": "both",
    "N_active": "both",
    "D": "result",
    "steps": "result",
    "C_kaplan": "result",
    "C_six_n": "result",
    "C_exact": "result",
    "budget": "result",
    "budget_convention": "result",
    "grid_offset": "result",
    "loss": "result",
    "train_loss": "result",
    "lr": "static",
    "batch_size": "static",
    "tokens_per_step": "static",
    "warmup_steps": "static",
    "schedule": "static",
    "branch_of": "result",
    "epochs": "result",
    "tokens_per_s": "result",
    "flops_per_s": "result",
    "corpus": "result",
    "corpus_fingerprint": "result",
    "seed": "config",
    "git_commit": "result",
    "reason": "result",
}

# Order of the columns of the run table (runs.parquet / runs.csv). The names are the contract with
# ``scaling fit``: N_<count> (the three parameter counts), D (tokens trained), C_<convention>
# (training FLOPs under each convention), loss (final held-out loss, nats/token) and the isoFLOP
# tag: budget (C), budget_convention and grid_offset (empty for records without the tag).
COLUMNS: tuple[str, ...] = tuple(COLUMN_SOURCES)
# Columns known before training starts (the tracker logs them as W&B config ``derived``).
STATIC_COLUMNS: tuple[str, ...] = tuple(c for c, s in COLUMN_SOURCES.items() if s in ("static", "both"))
# Columns only a finished (or stopped) run knows (the tracker logs them in the W&B summary).
RESULT_COLUMNS: tuple[str, ...] = tuple(c for c, s in COLUMN_SOURCES.items() if s in ("result", "both"))

# The columns of one eval point (a W&B history row), and of the long-format curve table.
HISTORY_KEYS: tuple[str, ...] = (
    "step",
    "tokens",
    *(f"flops_{conv}" for conv in FLOP_CONVENTIONS),
    "train_loss",
    "val_loss",
    "lr",
)
CURVE_COLUMNS: tuple[str, ...] = ("run_id", *HISTORY_KEYS)


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _part(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``record[key]`` when it is an object, else empty: optional parts never break a row."""
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def record_to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One table row (:data:`COLUMNS`) from one validated run record."""
    model, training, final = _part(record, "model"), _part(record, "training"), _part(record, "final")
    throughput, corpus, budget = _part(record, "throughput"), _part(record, "corpus"), _part(record, "budget")
    params, flops = record["params"], record["flops"]
    row: dict[str, Any] = {
        "run_id": record["run_id"],
        "experiment": record.get("experiment", _get(record, "config", "experiment_name")),
        "status": record["status"],
        **{k: model.get(k) for k in ("family", "d_model", "n_layers", "n_heads", "d_ff", "context", "vocab_size")},
        "tie_embeddings": model.get("tie_embeddings"),
        "variant": model.get("variant"),
        **{f"N_{count}": params[count] for count in PARAM_COUNTS},
        "N_active": params.get("active", params["with_head"]),  # records before MoE: dense, active = with_head
        "D": record["tokens"],
        "steps": record.get("steps", training.get("total_steps")),
        **{f"C_{conv}": flops[conv] for conv in FLOP_CONVENTIONS},
        "budget": budget.get("flops"),
        "budget_convention": budget.get("flops_convention"),
        "grid_offset": budget.get("grid_offset"),
        "loss": final.get("val_loss"),
        "train_loss": final.get("train_loss"),
        "lr": training.get("lr"),
        "batch_size": training.get("batch_size"),
        "tokens_per_step": training.get("tokens_per_step"),
        "warmup_steps": training.get("warmup_steps"),
        "schedule": record.get("schedule", training.get("schedule")),
        "branch_of": record.get("branch_of"),
        "epochs": training.get("epochs"),
        "tokens_per_s": throughput.get("tokens_per_s"),
        "flops_per_s": throughput.get("flops_per_s"),
        "corpus": corpus.get("name"),
        "corpus_fingerprint": corpus.get("fingerprint"),
        "seed": _get(record, "config", "seed"),
        "git_commit": record.get("git_commit"),
        "reason": record.get("reason"),
    }
    return {c: row.get(c) for c in COLUMNS}


def curve_point(point: Mapping[str, Any]) -> dict[str, Any]:
    """One eval point of a record's ``curve`` as a flat row (:data:`HISTORY_KEYS`)."""
    flops = _part(point, "flops")
    return {
        "step": point.get("step"),
        "tokens": point.get("tokens"),
        **{f"flops_{conv}": flops.get(conv) for conv in FLOP_CONVENTIONS},
        "train_loss": point.get("train_loss"),
        "val_loss": point.get("val_loss"),
        "lr": point.get("lr"),
    }


def curve_rows(run_id: str, curve: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Long-format curve rows (:data:`CURVE_COLUMNS`, one per eval point) from a record's ``curve``."""
    return [{"run_id": run_id, **curve_point(point)} for point in curve]
