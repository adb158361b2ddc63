"""Load the points a scaling-law fit needs from run records or a table, and check them.

Every law downstream works on one :class:`FitPoints`: one *final point* per run
(N, D, C, loss) for the parametric fits, plus that run's eval curve (tokens,
FLOPs, loss) for the envelope laws (Chinchilla Approach 1, Kaplan's L(C_min)).
Keeping runs -- not loose points -- as the unit is what lets the bootstrap
resample whole runs, so the many correlated points of one curve never count as
independent evidence.

Inputs accepted:

* a directory searched at any depth for ``runs/*.json`` run records (or one record file);
* a CSV with columns ``N, D, loss`` (optional ``C``, default 6·N·D; optional
  ``run_id`` grouping the rows of one run's curve; optional ``budget`` isoFLOP tag);
  ``params, tokens`` may stand for ``N, D``, and a table of several experiments (Open-Athena's
  isoFLOP table: ``experiment``, ``outlier`` columns) is read one experiment at a time;
* the table written by ``scaling collect`` (CSV or Parquet, one row per run; its
  ``budget`` column is empty for runs without the tag);
* Epoch AI's Chinchilla extraction (columns ``Model Size``, ``Training FLOP``, ``loss``;
  D = C / (6 N), Besiroglu et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.records import (
    FIT_PARAM_COUNTS,
    FLOP_CONVENTIONS,
    curve_point,
    read_unique_records,
    record_to_row,
)
from scaling.train.schedule import Schedule

# Columns of the table written by ``scaling collect``: N_<params>, C_<flops>, D (or tokens), loss.
_COLLECT_N = {p: f"N_{p}" for p in FIT_PARAM_COUNTS}
_COLLECT_C = {f: f"C_{f}" for f in FLOP_CONVENTIONS}
_EPOCH_N, _EPOCH_C = "Model Size", "Training FLOP"


@dataclass(frozen=True)
class Curve:
    """One run's eval curve, sorted by tokens, with its model size ``n``.

    ``schedule`` is the learning-rate schedule that produced the curve, rebuilt from the run record
    (None for tables and for records that do not say enough): a schedule-aware learning-curve law
    (:mod:`scaling.fit.learning_curve`) needs the learning rate of every step, and
    ``tokens_per_step`` turns the curve's token counts into those steps.
    """

    run_id: str
    n: float
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    schedule: Schedule | None = None
    tokens_per_step: float | None = None

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class FitPoints:
    """One final point per run (arrays aligned by run), each run's curve, and where they came from.

    ``budget`` holds an explicit isoFLOP tag per run (NaN where absent), read from
    ``budget_from``: a record's ``budget.flops`` (:mod:`scaling.records`), else its
    ``config.grid.budget`` (hand-written records), or a table's ``budget`` column.
    ``curves[i]`` is run ``i``'s eval curve or ``None`` when the input held only final points.
    ``group`` names the training run each point comes from: a WSD cooldown branch record
    (:mod:`scaling.train.schedule`) shares its stable phase, and so its noise, with the main run it
    branched from (``branch_of``), so the bootstrap draws a training run with all its branch records
    together. Without it (None) every run is its own group.
    """

    run_id: np.ndarray
    n: np.ndarray
    d: np.ndarray
    c: np.ndarray
    loss: np.ndarray
    budget: np.ndarray
    curves: tuple[Curve | None, ...]
    source: str
    kind: str  # records | csv | collect | epoch
    params: str
    flops: str
    n_from: str
    c_from: str
    skipped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    budget_from: str = ""
    # What the loss was measured on (records only): corpus, tokenizer and vocab_size, each the one
    # value all runs share, a sorted list where they differ, absent where the input does not say.
    # A law in nats per token holds for that tokenizer only, so `scaling plan --fit` checks it.
    measured_on: dict[str, Any] = field(default_factory=dict)
    group: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.group is None:
            object.__setattr__(self, "group", np.array(self.run_id, dtype=object, copy=True))
        elif len(self.group) != len(self.run_id):
            raise ScalingError(f"FitPoints: {len(self.group)} group labels for {len(self.run_id)} runs")

    @property
    def groups(self) -> np.ndarray:
        """The training run of each point (never None: see ``group``)."""
        assert self.group is not None  # filled by __post_init__
        return self.group

    def __len__(self) -> int:
        return len(self.n)

    @property
    def has_curves(self) -> bool:
        """True when at least one run has an eval curve of two or more points."""
        return any(c is not None and len(c) >= 2 for c in self.curves)

    def take(self, index: np.ndarray) -> FitPoints:
        """The runs at ``index`` (a boolean mask or integer indices, repeats allowed)."""
        idx = np.arange(len(self))[index] if np.asarray(index).dtype == bool else np.asarray(index, dtype=int)
        return replace(
            self,
            run_id=self.run_id[idx],
            n=self.n[idx],
            d=self.d[idx],
            c=self.c[idx],
            loss=self.loss[idx],
            budget=self.budget[idx],
            curves=tuple(self.curves[i] for i in idx),
            group=self.groups[idx],
        )

    def resample(self, rng: np.random.Generator) -> FitPoints:
        """A bootstrap replicate: training runs drawn with replacement, each with all its points.

        Whole runs, never single curve points; and a WSD run's branch records travel together (see
        ``group``), since they share one trajectory. Groups are numbered in order of first appearance,
        so when every run is its own group the draws are exactly those of drawing runs (as before).
        """
        _, first, inverse = np.unique(self.groups, return_index=True, return_inverse=True)
        if first.size == len(self):  # every run its own group: group k is run k
            return self.take(rng.integers(0, len(self), size=len(self)))
        rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")[inverse.ravel()]
        members = [np.flatnonzero(rank == g) for g in range(first.size)]
        return self.take(np.concatenate([members[g] for g in rng.integers(0, first.size, size=first.size)]))

    def with_note(self, note: str) -> FitPoints:
        return replace(self, notes=(*self.notes, note))


# ----------------------------------------------------------------------------- loading


def load_points(
    path: str | Path,
    *,
    params: str = "with_head",
    flops: str = "exact",
    drop_highest_loss: int = 0,
    experiment: str | None = None,
) -> FitPoints:
    """Read ``path`` (records directory, record file, CSV or Parquet) into :class:`FitPoints`.

    ``experiment`` keeps the rows of one experiment of a table with an ``experiment`` column.
    """
    if params not in FIT_PARAM_COUNTS:
        raise ScalingError(f"--params must be one of {', '.join(FIT_PARAM_COUNTS)}, got {params!r}")
    if flops not in FLOP_CONVENTIONS:
        raise ScalingError(f"--flops must be one of {', '.join(FLOP_CONVENTIONS)}, got {flops!r}")
    path = Path(path)
    if not path.exists():
        raise ScalingError(f"no such file or directory: {path}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".json":
        if experiment is not None:
            raise ScalingError("--experiment selects rows of a table; run records have no experiment column")
        points = _load_records(path, params, flops)
    elif suffix in (".csv", ".parquet", ".pq", ".tsv"):
        points = _load_table(path, params, flops, experiment)
    else:
        raise ScalingError(f"cannot read {path}: expected a directory of run records, a .json record, .csv or .parquet")
    if drop_highest_loss:
        points = drop_highest(points, drop_highest_loss)
    return points


def drop_highest(points: FitPoints, k: int) -> FitPoints:
    """Drop the ``k`` runs with the highest final loss (Besiroglu et al. 2024 drop 5 outliers)."""
    if k < 0:
        raise ScalingError(f"--drop-highest-loss must be >= 0, got {k}")
    if k >= len(points):
        raise ScalingError(f"--drop-highest-loss {k} would drop all {len(points)} points")
    keep = np.ones(len(points), dtype=bool)
    keep[np.argsort(points.loss, kind="stable")[len(points) - k :]] = False
    return points.take(keep).with_note(f"dropped the {k} highest-loss point(s) (--drop-highest-loss {k})")


def _load_records(path: Path, params: str, flops: str) -> FitPoints:
    records, duplicates = read_unique_records(path)
    if not records:
        raise ScalingError(f"no run records (runs/*.json) found under {path}")
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for p, rec in records:
        if rec["status"] != "finished":
            skipped[rec["status"]] = skipped.get(rec["status"], 0) + 1
            continue
        rows.append(_record_row(rec, p, str(rec["run_id"]), params, flops))
    if not rows:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
        raise ScalingError(f"no finished runs under {path} ({detail})")
    budget, budget_from, notes = _budget_tags(
        np.array([r["budget"] for r in rows], dtype=float),
        [r["budget_convention"] for r in rows],
        [r["budget_from"] for r in rows],
    )
    return FitPoints(
        run_id=np.array([r["run_id"] for r in rows], dtype=object),
        n=np.array([r["n"] for r in rows], dtype=float),
        d=np.array([r["d"] for r in rows], dtype=float),
        c=np.array([r["c"] for r in rows], dtype=float),
        loss=np.array([r["loss"] for r in rows], dtype=float),
        budget=budget,
        curves=tuple(r["curve"] for r in rows),
        source=str(path),
        kind="records",
        params=params,
        flops=flops,
        n_from=f"params.{params}",
        c_from=f"flops.{flops}",
        skipped=skipped,
        notes=tuple(notes) if duplicates is None else (duplicates, *notes),
        budget_from=budget_from,
        measured_on=_measured_on([rec for _, rec in records if rec["status"] == "finished"]),
        group=np.array([r["group"] for r in rows], dtype=object),
    )


def _measured_on(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The corpus, tokenizer and vocabulary the runs were measured on, as recorded (see FitPoints)."""
    found: dict[str, set[Any]] = {"corpus": set(), "tokenizer": set(), "vocab_size": set()}
    for rec in records:
        corpus, tokenizer = rec.get("corpus") or {}, rec.get("tokenizer") or {}
        found["corpus"].add(corpus.get("name"))
        found["tokenizer"].add(tokenizer.get("spec") or tokenizer.get("name_or_path"))
        found["vocab_size"].add(tokenizer.get("vocab_size"))
    out: dict[str, Any] = {}
    for key, values in found.items():
        values.discard(None)
        if values:
            out[key] = values.pop() if len(values) == 1 else sorted(values, key=str)
    return out


def _positive(value: Any, what: str, where: str) -> float:
    """``value`` as a positive finite float, or one ScalingError naming ``where``."""
    if value is None:  # records store NaN as null
        raise ScalingError(f"{where}: {what} is missing or NaN (null)")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ScalingError(f"{where}: {what} is not a number ({value!r})") from None
    if not math.isfinite(x) or x <= 0:
        raise ScalingError(f"{where}: {what} must be positive and finite, got {value!r}")
    return x


def _record_row(rec: dict[str, Any], path: Path, run_id: str, params: str, flops: str) -> dict[str, Any]:
    """The fit's point and curve of one record, read through the record's table row (one mapping)."""
    where = f"run record {path}"
    table = record_to_row(rec)
    row: dict[str, Any] = {
        "run_id": run_id,
        "n": _positive(table[f"N_{params}"], f"params.{params}", where),
        "d": _positive(table["D"], "tokens", where),
        "c": _positive(table[f"C_{flops}"], f"flops.{flops}", where),
        "loss": _positive(table["loss"], "final.val_loss", where),
    }
    # A WSD branch record shares its training run's trajectory; a main record is its own run.
    row["group"] = str(table["branch_of"]) if table["branch_of"] else run_id
    row["budget"], row["budget_convention"], row["budget_from"] = math.nan, None, None
    if table["budget"] is not None:  # the record's isoFLOP tag (validated by read_record)
        row["budget"], row["budget_convention"] = float(table["budget"]), table["budget_convention"]
        row["budget_from"] = "run record budget.flops"
    else:  # a tag set by hand in the config, as records made outside scaling-train may carry
        grid = rec["config"].get("grid") if isinstance(rec["config"], dict) else None
        legacy = grid.get("budget") if isinstance(grid, dict) else None
        if isinstance(legacy, int | float) and legacy > 0:
            row["budget"], row["budget_from"] = float(legacy), "config.grid.budget"
    tokens, cflops, loss = [], [], []
    for i, pt in enumerate(rec["curve"]):
        if not isinstance(pt, dict):
            raise ScalingError(f"{where}: curve[{i}] is not an object")
        point = curve_point(pt)
        t = point["tokens"]
        if isinstance(t, int | float) and t <= 0:
            continue  # the step-0 evaluation has no tokens/FLOPs yet: nothing to place on a log axis
        tokens.append(_positive(t, f"curve[{i}].tokens", where))
        cflops.append(_positive(point[f"flops_{flops}"], f"curve[{i}].flops.{flops}", where))
        loss.append(_positive(point["val_loss"], f"curve[{i}].val_loss", where))
    order = np.argsort(tokens, kind="stable")
    schedule, tokens_per_step = _record_schedule(rec)
    row["curve"] = (
        Curve(
            run_id,
            row["n"],
            np.asarray(tokens)[order],
            np.asarray(cflops)[order],
            np.asarray(loss)[order],
            schedule,
            tokens_per_step,
        )
        if tokens
        else None
    )
    return row


def _record_schedule(rec: dict[str, Any]) -> tuple[Schedule | None, float | None]:
    """The learning-rate schedule a record ran under, and its tokens per step; (None, None) when unsure.

    Rebuilt as the trainer built it (:meth:`scaling.train.spec.RunSpec.schedule_for`): the record's
    own step count is its horizon, which for a WSD branch record is the branch's, not the main run's.
    The rebuild is trusted only where it reproduces every learning rate the record logged with its
    eval points (the lr of the update that ended at that step); a record written outside
    ``scaling-train`` or by an older version that lacks a field gets None, and the learning-curve law
    falls back to one that needs no schedule.
    """
    training, config = rec.get("training"), rec.get("config")
    sched_cfg = config.get("schedule") if isinstance(config, dict) else None
    if not isinstance(training, dict) or not isinstance(sched_cfg, dict):
        return None, None
    try:
        schedule = Schedule(
            str(training["schedule"]),
            float(training["lr"]),
            int(training["warmup_steps"]),
            int(rec["steps"]),
            float(sched_cfg["min_lr_ratio"]),
            float(sched_cfg["cooldown_frac"]),
        )
        tokens_per_step = float(training["tokens_per_step"])
    except (KeyError, TypeError, ValueError, ScalingError):
        return None, None
    if not tokens_per_step > 0 or schedule.total_steps < 1:
        return None, None
    logged = [(p.get("step"), p.get("lr")) for p in rec["curve"] if isinstance(p, dict)]
    checked = [(int(st), float(lr)) for st, lr in logged if isinstance(st, int) and st > 0 and lr is not None]
    if not checked or any(not math.isclose(schedule.lr_at(st - 1), lr, rel_tol=1e-6) for st, lr in checked):
        return None, None
    return schedule, tokens_per_step


def _read_frame(path: Path) -> Any:
    import pandas as pd  # deferred: pandas is slow to import and only tables need it

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError, OSError) as err:
        raise ScalingError(f"cannot read {path}: {str(err).splitlines()[0]}") from None


def _column(frame: Any, name: str, path: Path, rows: np.ndarray) -> np.ndarray:
    """Column ``name`` as floats; any non-positive, NaN or non-numeric cell is an error naming its line."""
    import pandas as pd

    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScalingError(
            f"{path} line {rows[i]}: column {name!r} must be positive and finite, got {frame[name].iloc[i]}"
        )
    return values


def _optional_column(frame: Any, name: str, path: Path, rows: np.ndarray) -> np.ndarray:
    """Column ``name`` as floats where empty cells stay NaN; any other cell must be positive and finite."""
    present = frame[name].notna().to_numpy()
    values = np.full(len(frame), math.nan, dtype=float)
    if present.any():
        values[present] = _column(frame[present], name, path, rows[present])
    return values


def _budget_tags(
    budget: np.ndarray, conventions: Sequence[str | None], sources: Sequence[str | None]
) -> tuple[np.ndarray, str, list[str]]:
    """The isoFLOP tags a fit may group budgets by, where they came from, and notes on what was not used.

    Tags group budgets only when every run has one (Approach 2 falls back to grouping by C within a
    tolerance otherwise, as for older records), and only under one FLOP convention: the same number
    under two conventions names two different budgets.
    """
    tagged = np.isfinite(budget)
    notes: list[str] = []
    named = sorted({str(c) for c, t in zip(conventions, tagged, strict=True) if t and c})
    if len(named) > 1:
        notes.append(f"budget tags under {len(named)} FLOP conventions ({', '.join(named)}): budgets grouped by C")
        return np.full(len(budget), math.nan, dtype=float), "", notes
    if 0 < tagged.sum() < len(budget):
        notes.append(f"budget tag on {int(tagged.sum())} of {len(budget)} runs only: budgets grouped by C")
    origin = sorted({str(s) for s, t in zip(sources, tagged, strict=True) if t and s})
    return budget, " and ".join(origin), notes


def _select_experiment(frame: Any, lower: dict[str, str], experiment: str | None, path: Path) -> tuple[Any, list[str]]:
    """One experiment's clean rows of a table that holds several (Open-Athena's isoFLOP table:
    ``experiment`` and ``outlier`` columns); rows flagged as outliers are dropped with a note."""
    notes: list[str] = []
    if "experiment" in lower:
        names = sorted(frame[lower["experiment"]].astype(str).unique())
        if experiment is None and len(names) > 1:
            raise ScalingError(
                f"{path} holds {len(names)} experiments; pick one with --experiment ({', '.join(names)})"
            )
        if experiment is not None:
            if experiment not in names:
                raise ScalingError(f"{path}: no experiment {experiment!r} (found: {', '.join(names)})")
            frame = frame[frame[lower["experiment"]].astype(str) == experiment]
            notes.append(f"experiment {experiment}")
    elif experiment is not None:
        raise ScalingError(f"{path}: --experiment needs an `experiment` column (found: {', '.join(lower.values())})")
    if "outlier" in lower:
        flagged = frame[lower["outlier"]].astype(str).str.lower().isin(("true", "1"))
        if flagged.any():
            notes.append(f"dropped {int(flagged.sum())} row(s) flagged in column {lower['outlier']!r}")
        frame = frame[~flagged.to_numpy()]
    return frame, notes


def _load_table(path: Path, params: str, flops: str, experiment: str | None = None) -> FitPoints:
    frame = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    lower = {c.lower(): c for c in columns}
    frame, notes = _select_experiment(frame, lower, experiment, path)
    skipped: dict[str, int] = {}
    if "status" in lower:  # a `scaling collect` table lists diverged/running runs too
        status = frame[lower["status"]].astype(str)
        for name, count in status[status != "finished"].value_counts().items():
            skipped[str(name)] = int(count)
        frame = frame[status == "finished"]
    if len(frame) == 0:
        detail = f" ({', '.join(f'{v} {k}' for k, v in sorted(skipped.items()))})" if skipped else ""
        raise ScalingError(f"no data rows in {path}{detail}")
    line = np.asarray(frame.index, dtype=int) + 2  # header is line 1

    if any(c in columns for c in _COLLECT_N.values()):
        kind = "collect"
        n_col, c_col = _COLLECT_N[params], _COLLECT_C[flops]
        d_col = "D" if "D" in columns else "tokens"
        need = [n_col, d_col, c_col, "loss"]
    elif _EPOCH_N in columns and _EPOCH_C in columns:
        kind, n_col, c_col, d_col = "epoch", _EPOCH_N, _EPOCH_C, None
        need = [n_col, c_col, "loss"]
        notes.append("Epoch layout: N = 'Model Size', C = 'Training FLOP', D = C / (6 N)")
    else:
        kind = "csv"
        n_col, d_col = lower.get("n", "N"), lower.get("d", "D")
        if "params" in lower and "tokens" in lower and "n" not in lower and "d" not in lower:
            n_col, d_col = lower["params"], lower["tokens"]  # Open-Athena's isoFLOP table
        c_col = lower.get("c")
        need = [n_col, d_col, lower.get("loss", "loss")]
    missing = [c for c in need if c not in columns]
    if missing:
        raise ScalingError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns)}); "
            "need N, D, loss [C, run_id] or a `scaling collect` table or Epoch's Model Size, Training FLOP, loss"
        )
    loss = _column(frame, lower.get("loss", "loss"), path, line)
    n = _column(frame, n_col, path, line)
    if kind == "epoch":
        c = _column(frame, c_col, path, line)
        d = c / (6.0 * n)
    else:
        d = _column(frame, d_col, path, line)
        c = _column(frame, c_col, path, line) if c_col else 6.0 * n * d
    if kind != "collect":
        notes.append("--params/--flops do not apply to this table: N and C are used as given")
    if c_col and kind != "epoch":  # Epoch's D is derived from C, so C = 6 N D there by construction
        notes.extend(_check_compute(n, d, c, path, line, c_col))
    if kind == "csv" and c_col is None:
        notes.append("no C column: C = 6 N D")
    budget, budget_from = np.full(len(frame), math.nan, dtype=float), ""
    if "budget" in lower:
        # A `scaling collect` table leaves the tag empty for runs without one; elsewhere it must be set.
        read = _optional_column if kind == "collect" else _column
        budget, budget_from = read(frame, lower["budget"], path, line), "column budget"
    given = frame[lower["budget_convention"]] if "budget_convention" in lower else [None] * len(frame)
    conventions = [c if isinstance(c, str) else None for c in given]
    budget, budget_from, budget_notes = _budget_tags(budget, conventions, [budget_from] * len(frame))
    notes.extend(budget_notes)
    if "run_id" in lower:
        run_id = frame[lower["run_id"]].astype(str).to_numpy(dtype=object)
    else:
        run_id = np.array([f"row{i}" for i in line], dtype=object)

    group = run_id
    if "branch_of" in lower:  # a `scaling collect` table: a WSD branch row names its training run
        branch_of = frame[lower["branch_of"]]
        group = np.where(branch_of.notna().to_numpy(), branch_of.astype(str).to_numpy(dtype=object), run_id)

    points = _group_rows(run_id, n, d, c, loss, budget, group, path, line)
    if kind == "collect":
        curves, note = _collect_curves(path, points["run_id"], points["n"], flops)
        if curves is not None:
            points["curves"] = curves
        notes.append(note)
    return FitPoints(
        **points,
        source=str(path),
        kind=kind,
        params=params,
        flops=flops,
        n_from=n_col,
        c_from=c_col if c_col else "6*N*D",
        skipped=skipped,
        notes=tuple(notes),
        budget_from=budget_from,
    )


#: C / (6 N D) outside [1/C_REFUSE_FACTOR, C_REFUSE_FACTOR] on any row is refused; outside
#: [1/C_WARN_FACTOR, C_WARN_FACTOR] it is reported. Every convention this project counts lies within
#: a few times 6 N D (Kaplan et al. 2020, eq. 2.1; attention and the head add at most a few times more
#: at small scale: 1.06-1.27 for the demo's exact FLOPs with N = with_head, up to 3.2 with
#: N = non_embedding), so a C column a hundred times off is not FLOPs of that N and D.
C_WARN_FACTOR = 3.0
C_REFUSE_FACTOR = 100.0


def _check_compute(n: np.ndarray, d: np.ndarray, c: np.ndarray, path: Path, line: np.ndarray, c_col: str) -> list[str]:
    """Refuse a C column that cannot be the compute of its N and D; a note when it is merely far from 6 N D."""
    ratio = c / (6.0 * n * d)
    worst = int(np.argmax(np.abs(np.log(ratio))))
    if not 1.0 / C_REFUSE_FACTOR <= ratio[worst] <= C_REFUSE_FACTOR:
        raise ScalingError(
            f"{path} line {line[worst]}: column {c_col!r} = {c[worst]:.4g} is {ratio[worst]:.3g} x 6 N D "
            f"(N = {n[worst]:.4g}, D = {d[worst]:.4g}); C must be within {C_REFUSE_FACTOR:g}x of 6 N D "
            "(drop the column to use C = 6 N D)"
        )
    if not 1.0 / C_WARN_FACTOR <= ratio[worst] <= C_WARN_FACTOR:
        return [f"C / (6 N D) ranges {ratio.min():.3g} to {ratio.max():.3g}: check that C and N use one convention"]
    return []


def _collect_curves(
    path: Path, run_ids: np.ndarray, n: np.ndarray, flops: str
) -> tuple[tuple[Curve | None, ...] | None, str]:
    """Eval curves from the ``curves.parquet`` that ``scaling collect`` writes beside its run table."""
    import pandas as pd

    curves_path = path.with_name("curves.parquet")
    if not curves_path.is_file():
        return None, f"no {curves_path.name} beside the table: final points only"
    try:
        frame = pd.read_parquet(curves_path)
    except (ValueError, OSError) as err:
        raise ScalingError(f"cannot read {curves_path}: {str(err).splitlines()[0]}") from None
    need = ["run_id", "tokens", f"flops_{flops}", "val_loss"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ScalingError(f"{curves_path}: missing column(s) {', '.join(missing)}")
    tokens = pd.to_numeric(frame["tokens"], errors="coerce").to_numpy(dtype=float)
    cflops = pd.to_numeric(frame[f"flops_{flops}"], errors="coerce").to_numpy(dtype=float)
    loss = pd.to_numeric(frame["val_loss"], errors="coerce").to_numpy(dtype=float)
    # Step-0 evaluations (no tokens yet) and points logged without a val loss carry nothing to fit.
    ok = np.isfinite(tokens) & (tokens > 0) & np.isfinite(cflops) & (cflops > 0) & np.isfinite(loss) & (loss > 0)
    ids = frame["run_id"].astype(str).to_numpy(dtype=object)
    by_run: dict[str, np.ndarray] = {}
    for rid in np.unique(ids[ok]):
        by_run[str(rid)] = np.flatnonzero(ok & (ids == rid))
    out: list[Curve | None] = []
    for rid, size in zip(run_ids, n, strict=True):
        idx = by_run.get(str(rid))
        if idx is None or idx.size == 0:
            out.append(None)
            continue
        idx = idx[np.argsort(tokens[idx], kind="stable")]
        out.append(Curve(str(rid), float(size), tokens[idx], cflops[idx], loss[idx]))
    found = sum(c is not None for c in out)
    return tuple(out), f"eval curves of {found} run(s) from {curves_path.name}"


def _group_rows(
    run_id: np.ndarray,
    n: np.ndarray,
    d: np.ndarray,
    c: np.ndarray,
    loss: np.ndarray,
    budget: np.ndarray,
    group: np.ndarray,
    path: Path,
    line: np.ndarray,
) -> dict[str, Any]:
    """Rows sharing a ``run_id`` are one run's curve; the run's final point is its row with the largest D."""
    order: dict[str, list[int]] = {}
    for i, r in enumerate(run_id):
        order.setdefault(r, []).append(i)
    finals: list[int] = []
    curves: list[Curve | None] = []
    for rid, idx in order.items():
        ix = np.asarray(idx)
        if np.ptp(n[ix]) > 1e-9 * n[ix].max():
            raise ScalingError(f"{path} line {line[ix[0]]}: run_id {rid!r} has rows with different N")
        ix = ix[np.argsort(d[ix], kind="stable")]
        finals.append(int(ix[-1]))
        curves.append(Curve(str(rid), float(n[ix[0]]), d[ix], c[ix], loss[ix]) if len(ix) >= 2 else None)
    f = np.asarray(finals)
    return {
        "run_id": run_id[f],
        "n": n[f],
        "d": d[f],
        "c": c[f],
        "loss": loss[f],
        "budget": budget[f],
        "curves": tuple(curves),
        "group": np.asarray(group, dtype=object)[f],
    }


# ----------------------------------------------------------------------------- checks and helpers


def require_fittable(points: FitPoints, n_params: int, law: str) -> None:
    """Raise when ``points`` cannot identify a law with ``n_params`` parameters that varies with N."""
    if len(points) < n_params:
        raise ScalingError(f"{law} has {n_params} parameters but the input holds only {len(points)} run(s)")
    if np.unique(points.n).size < 2:
        raise ScalingError(f"all {len(points)} points are at one N ({points.n[0]:.6g}): a scaling law needs >= 2 sizes")
    if np.unique(points.d).size < 2:
        raise ScalingError(f"all {len(points)} points are at one D ({points.d[0]:.6g}): {law} needs >= 2 token counts")


def group_by_log(values: np.ndarray, rel_tol: float) -> np.ndarray:
    """Cluster positive ``values`` whose neighbours (sorted) differ by less than ``rel_tol``; one label each.

    Single linkage in log space: grids made by a planner place budgets/sizes a factor >= 1.5 apart,
    while rounding N and D moves the realised value a few percent, so gaps separate groups.
    """
    values = np.asarray(values, dtype=float)
    labels = np.zeros(len(values), dtype=int)
    if len(values) == 0:
        return labels
    order = np.argsort(values, kind="stable")
    logs = np.log(values[order])
    breaks = np.concatenate([[0], np.cumsum(np.diff(logs) > math.log1p(rel_tol))])
    labels[order] = breaks
    return labels


def best_per_group(x: np.ndarray, loss: np.ndarray, rel_tol: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The lowest loss for each distinct ``x`` (within ``rel_tol``), then only the frontier where loss falls.

    Used for Kaplan's L(N) and L(D): the best loss per size comes from the run least limited by the
    other resource; a size whose best loss is not below every smaller size's is limited elsewhere.
    """
    labels = group_by_log(x, rel_tol)
    xs, ls = [], []
    for g in np.unique(labels):
        m = labels == g
        i = np.argmin(np.where(m, loss, np.inf))
        xs.append(x[i])
        ls.append(loss[i])
    xs_a, ls_a = np.asarray(xs), np.asarray(ls)
    order = np.argsort(xs_a)
    xs_a, ls_a = xs_a[order], ls_a[order]
    running = np.minimum.accumulate(np.concatenate([[np.inf], ls_a[:-1]]))
    keep = ls_a < running
    return xs_a[keep], ls_a[keep]
