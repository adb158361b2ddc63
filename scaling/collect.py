"""``scaling collect``: gather every run of an experiment into one table for fitting.

Two sources give the same table layout (one row per (N, D) point, so a WSD
cooldown branch is its own row):

* run records on disk (``results/EXP/runs/*.json``), the durable contract that
  training writes; this is the default and needs no network;
* finished W&B runs of a group (``--wandb ENTITY/PROJECT --group G``), for
  sweeps whose records live on other machines. The curve comes from
  ``Run.scan_history`` because ``Run.history`` samples at most 500 rows.

The column names are the contract with ``scaling fit``: ``N_non_embedding``,
``N_with_head``, ``N_total`` (the three parameter counts), ``D`` (tokens trained),
``C_kaplan``, ``C_six_n``, ``C_exact`` (training FLOPs under each convention) and
``loss`` (final held-out loss, nats/token).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError
from scaling.records import iter_record_paths, read_record

HELP = "collect run records (or finished W&B runs) into one Parquet/CSV table for fitting"

# Order of the columns of runs.parquet / runs.csv.
COLUMNS: tuple[str, ...] = (
    "run_id",
    "experiment",
    "status",
    "family",
    "d_model",
    "n_layers",
    "n_heads",
    "d_ff",
    "context",
    "vocab_size",
    "tie_embeddings",
    "N_non_embedding",
    "N_with_head",
    "N_total",
    "D",
    "steps",
    "C_kaplan",
    "C_six_n",
    "C_exact",
    "loss",
    "train_loss",
    "lr",
    "batch_size",
    "tokens_per_step",
    "warmup_steps",
    "schedule",
    "branch_of",
    "epochs",
    "tokens_per_s",
    "flops_per_s",
    "corpus",
    "corpus_fingerprint",
    "seed",
    "git_commit",
    "reason",
)

# Columns known before training starts (the tracker logs them as W&B config ``derived``).
STATIC_COLUMNS: tuple[str, ...] = (
    "family",
    "d_model",
    "n_layers",
    "n_heads",
    "d_ff",
    "context",
    "vocab_size",
    "tie_embeddings",
    "N_non_embedding",
    "N_with_head",
    "N_total",
    "lr",
    "batch_size",
    "tokens_per_step",
    "warmup_steps",
    "schedule",
)

# Columns only a finished (or stopped) run knows (the tracker logs them in the W&B summary).
RESULT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "status",
    "N_non_embedding",
    "N_with_head",
    "N_total",
    "D",
    "steps",
    "C_kaplan",
    "C_six_n",
    "C_exact",
    "loss",
    "train_loss",
    "branch_of",
    "epochs",
    "tokens_per_s",
    "flops_per_s",
    "corpus",
    "corpus_fingerprint",
    "git_commit",
    "reason",
)

CURVE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "step",
    "tokens",
    "flops_kaplan",
    "flops_six_n",
    "flops_exact",
    "train_loss",
    "val_loss",
    "lr",
)

# The history keys one eval point is logged under (see scaling.tracking.eval_metrics).
HISTORY_KEYS: tuple[str, ...] = CURVE_COLUMNS[1:]

OUTPUTS = ("runs.parquet", "runs.csv", "curves.parquet")


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


# -- rows from run records ----------------------------------------------------------------


def record_to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One table row from one validated run record (scaling.records schema)."""
    model, training = record.get("model") or {}, record.get("training") or {}
    params, flops = record["params"], record["flops"]
    final, throughput, corpus = record.get("final") or {}, record.get("throughput") or {}, record.get("corpus") or {}
    row: dict[str, Any] = {
        "run_id": record["run_id"],
        "experiment": record.get("experiment", _get(record, "config", "experiment_name")),
        "status": record["status"],
        **{k: model.get(k) for k in ("family", "d_model", "n_layers", "n_heads", "d_ff", "context", "vocab_size")},
        "tie_embeddings": model.get("tie_embeddings"),
        "N_non_embedding": params["non_embedding"],
        "N_with_head": params["with_head"],
        "N_total": params["total"],
        "D": record["tokens"],
        "steps": record.get("steps", training.get("total_steps")),
        "C_kaplan": flops["kaplan"],
        "C_six_n": flops["six_n"],
        "C_exact": flops["exact"],
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


def curve_rows(run_id: str, curve: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Long-format curve rows (one per eval point) from a record's ``curve``."""
    rows = []
    for point in curve:
        flops = point.get("flops") or {}
        rows.append(
            {
                "run_id": run_id,
                "step": point.get("step"),
                "tokens": point.get("tokens"),
                "flops_kaplan": flops.get("kaplan"),
                "flops_six_n": flops.get("six_n"),
                "flops_exact": flops.get("exact"),
                "train_loss": point.get("train_loss"),
                "val_loss": point.get("val_loss"),
                "lr": point.get("lr"),
            }
        )
    return rows


def collect_records(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run rows, curve rows) of every record below ``root``; a corrupt record is a ScalingError."""
    if not root.exists():
        raise ScalingError(f"no such results path: {root}")
    paths = list(iter_record_paths(root))
    if not paths:
        raise ScalingError(f"no run records under {root} (expected {root}/runs/<run_id>.json; train some runs first)")
    runs, curves = [], []
    for path in paths:
        record = read_record(path)
        runs.append(record_to_row(record))
        curves.extend(curve_rows(record["run_id"], record["curve"]))
    return runs, curves


# -- rows from W&B runs -------------------------------------------------------------------


def wandb_run_to_rows(
    run_id: str, config: Mapping[str, Any], summary: Mapping[str, Any], history: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run rows, curve rows) of one W&B run, from what the public API returns.

    ``config`` is ``Run.config`` (the resolved Hydra config plus ``derived``, the
    shape and hyperparameters the tracker resolved), ``summary`` is
    ``Run.summary_metrics`` (results, and ``wsd_branches``: one full row per
    cooldown branch), ``history`` is ``Run.scan_history()`` rows. Rows without a
    ``val_loss`` (the ``wsd/*`` branch end points) are not curve points.
    """
    derived = config.get("derived") or {}
    row: dict[str, Any] = {c: derived.get(c) for c in STATIC_COLUMNS}
    row.update({c: summary[c] for c in RESULT_COLUMNS if summary.get(c) is not None})
    row["run_id"] = summary.get("run_id") or run_id
    row["experiment"] = config.get("experiment_name")
    row["seed"] = config.get("seed")
    row.setdefault("status", "finished")
    rows = [{c: row.get(c) for c in COLUMNS}]
    branches = summary.get("wsd_branches") or {}
    for branch_id in sorted(branches):
        branch = {**row, "reason": None, **dict(branches[branch_id])}
        branch["run_id"] = branch.get("run_id") or branch_id
        rows.append({c: branch.get(c) for c in COLUMNS})
    curve = [
        {"run_id": row["run_id"], **{k: point.get(k) for k in HISTORY_KEYS}}
        for point in history
        if point.get("val_loss") is not None and point.get("tokens") is not None
    ]
    curve.sort(key=lambda p: (p["tokens"], p["step"] or 0))
    return rows, curve


def collect_wandb(path: str, group: str, api: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run rows, curve rows) of the finished W&B runs of ``group`` in ``ENTITY/PROJECT``."""
    import wandb

    from scaling.tracking import has_credentials

    if api is None and not has_credentials():
        raise ScalingError("no W&B credentials: set WANDB_API_KEY or run `wandb login` to collect from W&B")
    runs_out: list[dict[str, Any]] = []
    curves_out: list[dict[str, Any]] = []
    try:
        api = api or wandb.Api(timeout=30)
        for run in api.runs(path, filters={"group": group, "state": "finished"}):
            history = run.scan_history(keys=list(HISTORY_KEYS))
            rows, curve = wandb_run_to_rows(run.id, run.config, run.summary_metrics, history)
            runs_out.extend(rows)
            curves_out.extend(curve)
    except ScalingError:
        raise
    except Exception as err:  # network, auth, unknown project: one line, not a traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ScalingError(f"cannot read W&B runs of {path} group {group!r}: {first}") from None
    if not runs_out:
        raise ScalingError(f"no finished W&B runs in {path} with group {group!r}")
    return runs_out, curves_out


# -- writing ------------------------------------------------------------------------------


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temp file in the same folder and rename (a reader never sees half a table)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tables(runs: list[dict[str, Any]], curves: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write runs.parquet, runs.csv and curves.parquet to ``out`` atomically; return their paths."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(runs, columns=list(COLUMNS))
    table = table.sort_values(["experiment", "N_non_embedding", "D", "run_id"], na_position="last", kind="stable")
    curve = pd.DataFrame(curves, columns=list(CURVE_COLUMNS))
    paths = [out / name for name in OUTPUTS]
    _atomic(paths[0], lambda p: table.to_parquet(p, index=False))
    _atomic(paths[1], lambda p: table.to_csv(p, index=False))
    _atomic(paths[2], lambda p: curve.to_parquet(p, index=False))
    return paths


# -- command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=Path, help="results folder of an experiment (results/EXP)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: PATH, or results/G/wandb)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="collect finished W&B runs instead of records")
    parser.add_argument("--group", help="W&B group to collect (the experiment name); needed with --wandb")


def run(args: argparse.Namespace) -> int:
    if args.wandb:
        if args.path is not None:
            raise ScalingError("give either a results PATH or --wandb ENTITY/PROJECT, not both")
        if not args.group:
            raise ScalingError("--wandb needs --group G (the experiment name the runs were grouped by)")
        if args.wandb.count("/") != 1 or not all(args.wandb.split("/")):
            raise ScalingError(f"--wandb wants ENTITY/PROJECT, got {args.wandb!r}")
        runs, curves = collect_wandb(args.wandb, args.group)
        source, out = f"W&B {args.wandb} group {args.group}", args.out or Path("results") / args.group / "wandb"
    else:
        if args.path is None:
            raise ScalingError("give a results folder (scaling collect results/EXP) or --wandb ENTITY/PROJECT")
        runs, curves = collect_records(args.path)
        source = str(args.path)
        out = args.out or (args.path.parent if args.path.is_file() else args.path)
    paths = write_tables(runs, curves, out)
    counts = Counter(r["status"] for r in runs)
    branches = sum(1 for r in runs if r.get("branch_of"))
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(
        f"collected {len(runs)} runs ({summary}; {branches} WSD branches) and {len(curves)} curve points "
        f"from {source} -> {', '.join(str(p) for p in paths)}"
    )
    return 0
