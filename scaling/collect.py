"""``scaling collect``: gather every run of an experiment into one table for fitting.

Two sources give the same table layout (one row per (N, D) point, so a WSD
cooldown branch is its own row):

* run records on disk (``results/EXP/runs/*.json``), the durable contract that
  training writes; this is the default and needs no network;
* finished W&B runs of a group (``--wandb ENTITY/PROJECT --group G``), for
  sweeps whose records live on other machines (read by
  :func:`scaling.tracking.collect_wandb`).

This module is the command only: the columns and the record -> row mapping are
the record contract and live in :mod:`scaling.records` (``COLUMNS``,
``record_to_row``, ``CURVE_COLUMNS``, ``curve_rows``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError
from scaling.records import (
    COLUMNS,
    CURVE_COLUMNS,
    atomic_write,
    curve_rows,
    read_unique_records,
    record_to_row,
)
from scaling.tracking import collect_wandb

OUTPUTS = ("runs.parquet", "runs.csv", "curves.parquet")


def collect_records(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """(run rows, curve rows, note on copies dropped) of every run below ``root``, each run once.

    A corrupt record, or two different records of one run id, is a ScalingError.
    """
    if not root.exists():
        raise ScalingError(f"no such results path: {root}")
    records, duplicates = read_unique_records(root)
    if not records:
        raise ScalingError(f"no run records under {root} (expected {root}/runs/<run_id>.json; train some runs first)")
    runs, curves = [], []
    for _, record in records:
        runs.append(record_to_row(record))
        curves.extend(curve_rows(record["run_id"], record["curve"]))
    return runs, curves, duplicates


# -- writing ------------------------------------------------------------------------------


def write_tables(runs: list[dict[str, Any]], curves: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write runs.parquet, runs.csv and curves.parquet to ``out`` atomically; return their paths."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(runs, columns=list(COLUMNS))
    table = table.sort_values(["experiment", "N_non_embedding", "D", "run_id"], na_position="last", kind="stable")
    curve = pd.DataFrame(curves, columns=list(CURVE_COLUMNS))
    paths = [out / name for name in OUTPUTS]
    atomic_write(paths[0], lambda p: table.to_parquet(p, index=False))
    atomic_write(paths[1], lambda p: table.to_csv(p, index=False))
    atomic_write(paths[2], lambda p: curve.to_parquet(p, index=False))
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
        duplicates = None
        source, out = f"W&B {args.wandb} group {args.group}", args.out or Path("results") / args.group / "wandb"
    else:
        if args.path is None:
            raise ScalingError("give a results folder (scaling collect results/EXP) or --wandb ENTITY/PROJECT")
        runs, curves, duplicates = collect_records(args.path)
        source = str(args.path)
        out = args.out or (args.path.parent if args.path.is_file() else args.path)
    if duplicates:
        print(duplicates)
    paths = write_tables(runs, curves, out)
    counts = Counter(r["status"] for r in runs)
    branches = sum(1 for r in runs if r.get("branch_of"))
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(
        f"collected {len(runs)} runs ({summary}; {branches} WSD branches) and {len(curves)} curve points "
        f"from {source} -> {', '.join(str(p) for p in paths)}"
    )
    return 0
