"""``scaling fit PATH``: fit every scaling law the data supports and report them together.

Reading the laws side by side is the point: Kaplan's power laws, Chinchilla's three
approaches and per-run learning curves disagree in instructive ways, and a law that
the data cannot support is named in a note rather than silently dropped. Flags
(bounds hit, no convergence, extrapolated minima) are collected into one FLAGS
section and into each law's ``warnings`` in the JSON.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.approach1 import bootstrap_approach1, compute_envelope, fit_approach1
from scaling.fit.approach2 import bootstrap_approach2, fit_approach2
from scaling.fit.isoflop_minimum import ESTIMATORS
from scaling.fit.kaplan import fit_kaplan
from scaling.fit.learning_curve import CURVE_LAWS, fit_learning_curves
from scaling.fit.points import FitPoints, load_points, require_fittable
from scaling.fit.render import render
from scaling.fit.results import FitResults
from scaling.fit.selection import HOLDOUT_BY, forms_report
from scaling.intervals import percentile_ci
from scaling.laws import FORMS
from scaling.progress import PhaseProgress
from scaling.records import FIT_PARAM_COUNTS, FLOP_CONVENTIONS, atomic_write_json

#: Kaplan / Approach 1 / Approach 2 refits per bootstrap are capped: they are cheap but not free.
LAW_BOOT_CAP = 1000
APPROACH3_PARAMS = 5


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be positive and finite: {text!r}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        help="directory searched for runs/*.json records, one record, a CSV (N, D, loss[, C, run_id]), "
        "a `scaling collect` table (CSV/Parquet) or Epoch's Chinchilla CSV",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write all fitted laws to this JSON file")
    parser.add_argument("--plots", metavar="DIR", help="write PNG figures into this folder")
    parser.add_argument(
        "--bootstrap", metavar="K", type=_nonneg_int, default=0, help="resample runs K times for CIs (0: off)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--params",
        choices=FIT_PARAM_COUNTS,
        default="with_head",
        help="parameter count used as N (default with_head; active: a mixture of experts' routed parameters)",
    )
    parser.add_argument("--flops", choices=FLOP_CONVENTIONS, default="exact", help="FLOP convention (default exact)")
    parser.add_argument(
        "--holdout-above",
        metavar="C",
        type=_positive_float,
        help="fit on runs with C below this, report the error predicting each larger run",
    )
    parser.add_argument(
        "--holdout-largest-budget",
        action="store_true",
        help="fit on every isoFLOP budget but the largest, report the error predicting each run of the largest",
    )
    parser.add_argument(
        "--at-flops",
        metavar="C",
        type=_positive_float,
        help="reporting budget for N_opt, D_opt and loss (default 10x the largest budget in the data)",
    )
    parser.add_argument(
        "--kaplan-irreducible",
        action="store_true",
        help="add an irreducible term E to Kaplan's laws (useful at small scale)",
    )
    parser.add_argument(
        "--drop-highest-loss",
        metavar="K",
        type=_nonneg_int,
        default=0,
        help="drop the K highest-loss runs first (Epoch's Chinchilla replication uses 5)",
    )
    parser.add_argument(
        "--budget-tolerance",
        metavar="REL",
        type=_positive_float,
        default=0.05,
        help="Approach 2: runs whose C differ by less than this fraction share a budget (default 0.05)",
    )
    parser.add_argument(
        "--isoflop-estimator",
        choices=ESTIMATORS,
        default="parabola",
        help="Approach 2: each budget's minimum from a parabola through all its points (Hoffmann et al. 2022), "
        "one through the 5 sizes nearest the lowest loss, or an Akima interpolant with a power law weighted by "
        "each minimum's bootstrap spread (Porian et al. 2024) (default parabola)",
    )
    parser.add_argument(
        "--experiment",
        metavar="NAME",
        help="table input with an `experiment` column (e.g. Open-Athena's isoFLOP table): fit this one",
    )
    parser.add_argument(
        "--curve-fraction",
        metavar="F",
        type=float,
        default=0.5,
        help="learning curves: predict the final loss from the points at tokens <= F x the run's tokens (default 0.5)",
    )
    parser.add_argument(
        "--curve-law",
        choices=CURVE_LAWS,
        default="annealing",
        help="learning-curve law: annealing (Tissue et al. 2024, needs the record's learning-rate schedule; "
        "runs without one use power) or power (Kaplan et al. 2020, blind to the schedule) (default annealing)",
    )
    parser.add_argument(
        "--delta", type=_positive_float, default=1e-3, help="Huber delta of the Approach 3 fit (default 1e-3)"
    )
    parser.add_argument(
        "--sensitivity",
        action="store_true",
        help="also refit under every parameter count, FLOP convention and final vs smoothed loss, and print "
        "a, b and N_opt of Approaches 3 and 2 for each (run records only)",
    )
    dc = parser.add_argument_group("data-constrained (Muennighoff et al. 2023; scaling.fit.data_constrained)")
    dc.add_argument(
        "--form",
        choices=tuple(FORMS),
        default="chinchilla",
        help="the law the fit recommends (JSON selected_form): chinchilla (Hoffmann et al. 2022, Approach 3), "
        "kaplan (Kaplan et al. 2020 eq. 1.5), overtrain (Gadre et al. 2024, L(C, M)) or data-constrained "
        "(Muennighoff et al. 2023: fit R_D*, R_N* to runs with N, D, U (unique tokens) and loss)",
    )
    forms = parser.add_argument_group("form selection (scaling.fit.forms, scaling.fit.selection)")
    forms.add_argument(
        "--rank-forms",
        action="store_true",
        help="fit every form (and Approach 3 under other Huber deltas, residuals and weights) on all runs but the "
        "largest and print them ranked by their error on the runs left out",
    )
    forms.add_argument(
        "--select",
        action="store_true",
        help="rank as --rank-forms does, refit the best on all runs and recommend it (JSON selected_form)",
    )
    forms.add_argument(
        "--holdout-by",
        choices=HOLDOUT_BY,
        default="budget",
        help="what --rank-forms/--select leave out: the largest compute budget or the largest model size(s) "
        "(default budget)",
    )
    forms.add_argument(
        "--holdout-sizes",
        type=int,
        choices=(1, 2),
        default=1,
        help="with --holdout-by size: how many of the largest sizes to leave out (default 1)",
    )
    dc.add_argument("--base", metavar="FIT.json", help="hold this Approach 3 fit as the base (default: C4 constants)")
    dc.add_argument("--joint", action="store_true", help="fit the base law jointly with R_D*, R_N*")
    dc.add_argument(
        "--objective",
        choices=("log-huber", "raw-huber", "datablations"),
        default="log-huber",
        help="summed Huber of log or raw residuals, or the datablations notebook's float32 L-BFGS (default log-huber)",
    )
    dc.add_argument("--only", metavar="COLUMN", help="table input: keep rows whose boolean COLUMN is true")


def run(args: argparse.Namespace) -> int:
    if args.form == "data-constrained":
        from scaling.fit import data_constrained

        return data_constrained.run(args)
    points = load_points(
        args.path,
        params=args.params,
        flops=args.flops,
        drop_highest_loss=args.drop_highest_loss,
        experiment=args.experiment,
    )
    require_fittable(points, APPROACH3_PARAMS, "Approach 3 (L = E + A/N^alpha + B/D^beta)")
    if not 0 < args.curve_fraction < 1:
        raise ScalingError(f"--curve-fraction must be in (0, 1), got {args.curve_fraction}")
    if args.holdout_largest_budget:
        from scaling.fit.holdout import largest_budget_threshold

        if args.holdout_above:
            raise ScalingError("--holdout-above and --holdout-largest-budget exclude each other")
        args.holdout_above = largest_budget_threshold(points, args.budget_tolerance)
    if args.holdout_above:
        from scaling.fit.holdout import split_by_compute

        split_by_compute(points, args.holdout_above)  # a threshold that leaves nothing to test fails now, not last
    at_flops = args.at_flops if args.at_flops else 10.0 * float(points.c.max())
    options: dict[str, Any] = {
        "params": args.params,
        "flops": args.flops,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "holdout_above": args.holdout_above,
        "at_flops": at_flops,
        "at_flops_source": "--at-flops" if args.at_flops else "10x the largest C in the data",
        "kaplan_irreducible": args.kaplan_irreducible,
        "drop_highest_loss": args.drop_highest_loss,
        "budget_tolerance": args.budget_tolerance,
        "isoflop_estimator": args.isoflop_estimator,
        "curve_fraction": args.curve_fraction,
        "curve_law": args.curve_law,
        "delta": args.delta,
    }
    panel = None
    if args.sensitivity:
        from scaling.fit.sensitivity import require_records, sensitivity_panel

        require_records(points, args.path)  # fail before the main fit, not after it
    res = fit_all(points, options)
    res.forms = forms_report(
        res,
        form=args.form,
        rank_forms=args.rank_forms,
        select=args.select,
        holdout_by=args.holdout_by,
        holdout_sizes=args.holdout_sizes,
    )
    print(render(res))
    if args.sensitivity:
        from scaling.fit.sensitivity import render_sensitivity

        panel = sensitivity_panel(
            args.path,
            at_flops,
            drop_highest_loss=args.drop_highest_loss,
            delta=args.delta,
            budget_tolerance=args.budget_tolerance,
            estimator=args.isoflop_estimator,
        )
        print()
        print(render_sensitivity(panel))
    if args.json:
        out = res.as_json()
        if panel is not None:
            out["sensitivity"] = panel
        atomic_write_json(args.json, out)
        print(f"\nwrote {args.json}")
    if args.plots:
        from scaling.fit.plots import write_plots

        for path in write_plots(res, args.plots):
            print(f"wrote {path}")
    sys.stdout.flush()
    return 0


def fit_all(points: FitPoints, options: dict[str, Any]) -> FitResults:
    """Every law in turn; a law the data cannot support records a note and the others go on."""
    from scaling.fit.approach3 import fit_approach3
    from scaling.fit.bootstrap import bootstrap_approach3, resample_counts

    res = FitResults(points, options, float(options["at_flops"]))
    k = int(options.get("bootstrap") or 0)
    seed = int(options.get("seed") or 0)
    irreducible = bool(options.get("kaplan_irreducible"))

    res.approach3 = fit_approach3(points.n, points.d, points.loss, delta=options.get("delta", 1e-3))
    # One draw of the resamples (multiplicities of each point) for every law: Approach 3 uses all k rows,
    # the other laws the first LAW_BOOT_CAP.
    counts = resample_counts(points.groups, k, np.random.default_rng(seed)) if k else None
    if k:
        res.approach3_boot = bootstrap_approach3(
            points.n,
            points.d,
            points.loss,
            groups=points.groups,  # a WSD run's branch records are drawn together
            n_boot=k,
            seed=seed,
            delta=options.get("delta", 1e-3),
            point_fit=res.approach3,
            counts=counts,
        )

    res.envelope = compute_envelope(points)
    try:
        res.approach1 = fit_approach1(points, res.envelope)
    except ScalingError as err:
        res.note("approach1", f"not fitted: {err}")
    res.kaplan = fit_kaplan(points, res.envelope.c, res.envelope.loss, irreducible=irreducible)
    if res.envelope.mode == "final points":
        res.kaplan.notes.append("no eval curves: L(C_min) uses the Pareto frontier of final points")
    res.approach2 = fit_approach2(
        points,
        float(options.get("budget_tolerance", 0.05)),
        str(options.get("isoflop_estimator", "parabola")),
        compare=True,
    )
    if points.has_curves:
        res.learning = fit_learning_curves(
            points, float(options.get("curve_fraction", 0.5)), str(options.get("curve_law", "annealing"))
        )
    else:
        res.note("learning_curve", "not fitted: the input holds no eval curves (final points only)")
    if counts is not None:
        _bootstrap_laws(res, counts[:LAW_BOOT_CAP], k)
    if options.get("holdout_above"):
        from scaling.fit.holdout import run_holdout

        res.holdout = run_holdout(
            points, float(options["holdout_above"]), kaplan_irreducible=irreducible, delta=options.get("delta", 1e-3)
        )
    return res


def _bootstrap_laws(res: FitResults, counts: np.ndarray, k: int) -> None:
    """Percentile CIs for Kaplan's exponents and Approaches 1-2 by refitting on resampled runs.

    ``counts`` (n_boot, n_points) holds each resample's multiplicities, drawn once from the seed and
    shared with Approach 3 (the same resamples for every law). Each law turns the whole matrix into
    arrays of samples; a law that cannot be fitted on a resample gives NaN there, so its CIs rest on
    the resamples where it could.
    """
    from scaling.fit.kaplan import bootstrap_kaplan
    from scaling.fit.resampled_envelope import resampled_envelopes

    n_boot = counts.shape[0]
    at = res.at_flops
    warm = res.kaplan
    tol = float(res.options.get("budget_tolerance", 0.05))
    progress = PhaseProgress(f"bootstrap of Kaplan and Approaches 1-2 ({n_boot} resamples)", 3 * n_boot)
    cols: dict[str, np.ndarray] = {}
    # Every resample's compute-efficient frontier, once: Kaplan's L(C_min) and Approach 1 both rest on it.
    envelopes = resampled_envelopes(res.points, counts) if warm is not None or res.approach1 is not None else None
    if warm is not None:
        cols.update({f"kaplan.{key}": v for key, v in bootstrap_kaplan(res.points, counts, warm, envelopes).items()})
    progress.advance(n_boot)
    if res.approach1 is not None:
        a1 = bootstrap_approach1(res.points, counts, at, envelopes=envelopes)
        cols.update({f"a1.{key}": v for key, v in a1.items()})
    progress.advance(n_boot)
    if res.approach2 is not None and res.approach2.fit is not None:
        a2 = bootstrap_approach2(res.points, counts, at, tol, res.approach2.estimator, weighted=res.approach2.weighted)
        cols.update({f"a2.{key}": v for key, v in a2.items()})
    progress.advance(n_boot)
    progress.close()
    if cols:
        failed = int(np.all(np.isnan(np.column_stack(list(cols.values()))), axis=1).sum())
        if failed:
            res.note("bootstrap", f"{failed} of {n_boot} resamples could not be refitted")
    if warm is not None:
        warm.samples = {key.split(".", 1)[1]: v for key, v in cols.items() if key.startswith("kaplan.")}
        warm.ci95 = {name: percentile_ci(v) for name, v in warm.samples.items() if not name.startswith("E_")}
        warm.n_boot = _count(warm.samples.get("alpha_N"))
    for prefix, fit in (("a1.", res.approach1), ("a2.", res.approach2.fit if res.approach2 else None)):
        if fit is None:
            continue
        fit.samples = {key[len(prefix) :]: v for key, v in cols.items() if key.startswith(prefix)}
        fit.ci95 = {name: percentile_ci(v) for name, v in fit.samples.items()}
        fit.n_boot = _count(fit.samples.get("a"))
        if fit.n_boot < n_boot:
            fit.notes.append(f"bootstrap: law defined on {fit.n_boot} of {n_boot} resamples")
    if k > n_boot:
        res.note("bootstrap", f"Kaplan / Approach 1 / Approach 2 CIs use the first {n_boot} of {k} resamples")


def _count(v: np.ndarray | None) -> int:
    return 0 if v is None else int(np.isfinite(v).sum())


def main(argv: list[str] | None = None) -> int:
    """Run ``scaling fit`` directly (``python -m scaling.fit.cli``)."""
    from scaling.cli import SUBCOMMANDS
    from scaling.errors import OneLineArgumentParser, report_user_errors

    parser = OneLineArgumentParser(prog="scaling fit", description=SUBCOMMANDS["fit"].help)
    add_arguments(parser)
    return int(report_user_errors(run)(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
