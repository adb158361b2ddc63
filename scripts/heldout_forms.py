"""Which form and which objective predict runs larger than those fitted? (issue 16, items 2 and 3)

Writes markdown tables into ``--out`` (default results/extrapolation/):

* ``ladder.md`` -- Gadre et al. 2024's published ladder (``--ladder``: the folder exp_data/models of a
  clone of github.com/mlfoundations/scaling, one JSON per run, or a CSV with the columns that
  :func:`read_ladder` builds; never copied into this project). Per training set, every form
  and objective is fitted on the small runs (< 500M parameters) and predicts the >= 1.4B runs. Two
  fitting sets: the paper's own (their four small sizes at M = 20 plus the 11M model at M = 320, as in
  the repository's ``fit_ds``) and all small runs. The form the harness would recommend is chosen by
  leave-largest-out within the fitting set only (the big runs are never seen), and its error on the big
  runs is the headline.
* ``choices.md`` -- item 3: Approach 3 (chinchilla) under each Huber δ, least squares, log against
  linear residuals, weights per run against by compute, and (on the demo, which has eval curves) the
  final loss against the curve's minimum and a smoothed final loss; on the ladder, on every experiment of
  ``../shared/data/open_athena_isoflops.csv`` (clean rows, the largest budget held out) and on the demo.
  For each: the exponent a = β/(α+β) fitted without the held-out runs and the held-out mean |error|.

Run: git clone https://github.com/mlfoundations/scaling /tmp/gadre
     python scripts/heldout_forms.py --ladder /tmp/gadre/exp_data/models
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import ScalingError
from scaling.fit.forms import Objective, fit_form
from scaling.fit.selection import Candidate, Split, default_candidates, leave_largest_out, rank

BIG = 1e9  # the ladder's runs at or above this many parameters are predicted, never fitted
SMALL = 5e8
DATASETS = ("c4_original", "rpj", "rw_original")
ITEM3 = (
    ("Huber 1e-3, log, per run (default)", Objective()),
    ("Huber 1e-2, log, per run", Objective(delta=1e-2)),
    ("Huber 1e-1, log, per run", Objective(delta=1e-1)),
    ("least squares, log, per run", Objective(delta=None)),
    ("Huber 1e-3, linear, per run", Objective(space="linear")),
    ("least squares, linear, per run", Objective(delta=None, space="linear")),
    ("Huber 1e-3, log, by compute", Objective(weights="compute")),
)


def pct(x: float) -> str:
    return f"{x:.2%}" if math.isfinite(x) else "n/a"


def errors(cand: Candidate, n, d, loss, train, test) -> tuple[float, float, float]:
    """(mean |rel err|, max |rel err|, a) of ``cand`` fitted on ``train``, predicting ``test``; NaN if unfitted."""
    try:
        fit = fit_form(cand.form, n[train], d[train], loss[train], objective=cand.objective)
    except ScalingError:
        return math.nan, math.nan, math.nan
    err = (fit.predict(n[test], d[test]) - loss[test]) / loss[test]
    p = fit.params
    if cand.form == "chinchilla":
        a = p["beta"] / (p["alpha"] + p["beta"])
    elif cand.form == "overtrain":
        a = 0.5
    else:
        a = math.nan
    return float(np.mean(np.abs(err))), float(np.max(np.abs(err))), a


# ----------------------------------------------------------------------------- the ladder

#: The ``val_data`` path fragment of each evaluation the ladder's JSON files hold, by column name.
LADDER_EVALS = {"loss_c4_val": "eval_data/c4_val/", "loss_openlm_val": "val_tok_mult/openlm/"}


def read_ladder(path: Path) -> pd.DataFrame:
    """One row per run: name, dataset, model, params, tokens, multiplier and the evaluations' losses.

    ``path`` is either a CSV with those columns or the ``exp_data/models`` folder of mlfoundations/scaling,
    whose files hold ``dataset_name``, ``hyperparameters`` (model, params, tokens, chinchilla_multiplier)
    and ``results`` (one loss per validation set, named by its ``val_data`` path).
    """
    if path.is_file():
        return pd.read_csv(path)
    rows = []
    for file in sorted(path.glob("*.json")):
        run = json.loads(file.read_text())
        hp = run["hyperparameters"]
        row = {
            "name": run["name"],
            "dataset": run["dataset_name"],
            "model": hp["model"],
            "params": hp["params"],
            "tokens": hp["tokens"],
            "multiplier": hp["chinchilla_multiplier"],
        }
        for column, fragment in LADDER_EVALS.items():
            hits = [r["loss"] for r in run["results"] if any(fragment in v for v in r["val_data"])]
            row[column] = hits[0] if hits else math.nan
        rows.append(row)
    if not rows:
        raise ScalingError(f"{path}: no run files (*.json) and not a CSV")
    return pd.DataFrame(rows)


def ladder(path: Path, loss_col: str) -> tuple[list[str], dict[str, float]]:
    frame = read_ladder(path)
    lines = [
        "# Gadre et al. 2024 ladder: fit below 500M parameters, predict the >= 1.4B runs",
        "",
        f"Loss: `{loss_col}` (C4 validation, the paper's loss target). N = `params`, D = `tokens`.",
        "`selected`: the candidate the harness picks by leave-largest-out *within the fitting set* (the",
        "largest small size held out; the big runs are never seen), among the forms with the default",
        "objective (Huber 1e-3, log residuals); the objective variants are ranked but not selectable. `paper set`: their four small sizes at",
        "M = 20 plus the 11M model at M = 320 (mlfoundations/scaling, scaling/shared.py `fit_ds`).",
        "",
    ]
    headline: dict[str, float] = {}
    for ds in DATASETS:
        sub = frame[frame["dataset"] == ds]
        if sub.empty:
            lines += [f"## {ds}: no runs in the ladder file", ""]
            continue
        n = sub["params"].to_numpy(float)
        d = sub["tokens"].to_numpy(float)
        loss = sub[loss_col].to_numpy(float)
        big = n >= BIG
        small = n < SMALL
        paper = small & (
            (sub["multiplier"].to_numpy(float) == 1.0)
            | ((sub["model"] == "d=96_l=8_h=4").to_numpy() & (sub["multiplier"].to_numpy(float) == 16.0))
        )
        big_names = ", ".join(
            f"{m} M={20 * x:g}" for m, x in zip(sub["model"][big], sub["multiplier"][big], strict=True)
        )
        lines += [f"## {ds} ({int(small.sum())} small runs; predicted: {big_names})", ""]
        if not big.any():
            lines += ["no >= 1.4B runs to predict", ""]
            continue
        for set_name, train in (("all small", small), ("paper set", paper)):
            idx = np.flatnonzero(train)
            selected, overall, note = None, None, ""
            try:
                split = leave_largest_out(n[idx], 6 * n[idx] * d[idx], np.zeros(idx.size), by="size", sizes=1)
                ranking = rank(default_candidates(False), n[idx], d[idx], loss[idx], split)
                if ranking.best is not None:
                    selected = ranking.best.candidate
                if ranking.best_overall is not None:
                    overall = ranking.best_overall.candidate
                cv = {r.candidate: r.mean_abs for r in ranking.rows}
            except ScalingError as err:
                note, cv = f"selection not possible: {err}", {}
            lines += [
                f"### {set_name} ({int(train.sum())} runs)" + (f" -- {note}" if note else ""),
                "",
                "| candidate | CV mean (small runs) | big runs mean | big runs max | a |",
                "|---|---|---|---|---|",
            ]
            for cand in default_candidates(False):
                mean, mx, a = errors(cand, n, d, loss, train, big)
                mark = " **selected**" if cand == selected else ""
                if cand == overall and cand != selected:
                    mark = " (best CV of all, objective variant)"
                lines.append(
                    f"| {cand.label}{mark} | {pct(cv.get(cand, math.nan))} | {pct(mean)} | {pct(mx)} | "
                    f"{a:.3f} |".replace("nan |", "n/a |")
                )
                if cand == selected:
                    headline[f"{ds} / {set_name}: {cand.label}"] = mean
            lines.append("")
    return lines, headline


# ----------------------------------------------------------------------------- item 3


def choices_table(title: str, n, d, loss, train, test) -> list[str]:
    out = [f"### {title} ({int(train.sum())} fitted, {int(test.sum())} held out)", ""]
    out += ["| objective | a | held-out mean | held-out max |", "|---|---|---|---|"]
    for label, obj in ITEM3:
        mean, mx, a = errors(Candidate("chinchilla", obj), n, d, loss, train, test)
        out.append(f"| {label} | {a:.3f} | {pct(mean)} | {pct(mx)} |".replace("nan |", "n/a |"))
    return [*out, ""]


def athena(path: Path) -> list[str]:
    frame = pd.read_csv(path)
    frame = frame[~frame["outlier"].astype(bool)]
    lines = ["## open_athena_isoflops.csv (clean rows; the largest budget held out)", ""]
    for exp, sub in frame.groupby("experiment"):
        n, d, loss = (sub[c].to_numpy(float) for c in ("params", "tokens", "loss"))
        _, labels = np.unique(sub["budget"].to_numpy(float), return_inverse=True)
        split = leave_largest_out(n, 6 * n * d, labels, by="budget")
        lines += choices_table(str(exp), n, d, loss, split.train, split.test)
    return lines


def demo(path: Path) -> list[str]:
    from scaling.fit.approach2 import group_budgets
    from scaling.fit.points import load_points

    points = load_points(str(path), params="with_head", flops="exact", drop_highest_loss=0)
    labels, _, _ = group_budgets(points)
    split = leave_largest_out(points.n, points.c, labels, by="budget")
    lines = [f"## demo ({path}; the largest budget held out)", ""]
    finals = points.loss
    minimum = np.array([c.loss.min() if c is not None else last for c, last in zip(points.curves, finals, strict=True)])
    smoothed = np.array(
        [
            c.loss[-3:].mean() if c is not None and len(c) >= 3 else last
            for c, last in zip(points.curves, finals, strict=True)
        ]
    )
    for label, loss in (("final loss", finals), ("curve minimum", minimum), ("mean of the last 3 evals", smoothed)):
        # the held-out runs are always scored against their final loss: that is what a user would train for
        rows = choices_table(f"fitted to: {label}", points.n, points.d, loss, split.train, split.test)
        if label != "final loss":
            rows = _rescore(rows, points, loss, split)
        lines += rows
    return lines


def _rescore(rows: list[str], points, fit_loss, split: Split) -> list[str]:
    """Rebuild a choices table fitted on ``fit_loss`` but scored against the held-out runs' final loss."""
    out = rows[:4]
    n, d = points.n, points.d
    for label, obj in ITEM3:
        try:
            fit = fit_form("chinchilla", n[split.train], d[split.train], fit_loss[split.train], objective=obj)
        except ScalingError:
            out.append(f"| {label} | n/a | n/a | n/a |")
            continue
        err = (fit.predict(n[split.test], d[split.test]) - points.loss[split.test]) / points.loss[split.test]
        p = fit.params
        out.append(
            f"| {label} | {p['beta'] / (p['alpha'] + p['beta']):.3f} | {pct(float(np.mean(np.abs(err))))} | "
            f"{pct(float(np.max(np.abs(err))))} |"
        )
    return [*out, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", type=Path, help="Gadre et al.'s ladder as a CSV (see the module docstring)")
    parser.add_argument("--loss-column", default="loss_c4_val")
    parser.add_argument("--athena", type=Path, default=Path("../shared/data/open_athena_isoflops.csv"))
    parser.add_argument("--demo", type=Path, default=Path("results/demo_reference/runs"))
    parser.add_argument("--out", type=Path, default=Path("results/extrapolation"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    summary = ["# Held-out error of the recommended fit", ""]
    if args.ladder is not None:
        lines, headline = ladder(args.ladder, args.loss_column)
        (args.out / "ladder.md").write_text("\n".join(lines) + "\n")
        summary += [f"- {k}: mean |error| on the >= 1.4B runs {pct(v)}" for k, v in headline.items()]
        frame = read_ladder(args.ladder)
        choices = ["# Item 3: loss and weighting choices (Approach 3, chinchilla form)", ""]
        for ds in DATASETS:
            sub = frame[frame["dataset"] == ds]
            if sub.empty:
                continue
            n, d, loss = (sub[c].to_numpy(float) for c in ("params", "tokens", args.loss_column))
            choices += choices_table(f"ladder {ds}: fit below 500M, predict >= 1.4B", n, d, loss, n < SMALL, n >= BIG)
    else:
        choices = ["# Item 3: loss and weighting choices (Approach 3, chinchilla form)", ""]
    if args.athena.exists():
        choices += athena(args.athena)
    if args.demo.exists():
        choices += demo(args.demo)
    (args.out / "choices.md").write_text("\n".join(choices) + "\n")
    (args.out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    print(f"wrote {args.out}/ in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
