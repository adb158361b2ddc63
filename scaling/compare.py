"""``scaling compare``: recipes and architectures side by side as fitted laws, not single runs.

Each input is a ``scaling fit --json`` file. For every fit the table shows the
Approach 3 exponents and, at one common compute budget, the compute-optimal N,
D and loss, each with its 95% bootstrap interval. For each pair it reports the
difference in optimal loss and in the exponent ``a`` with a 95% interval from
independent bootstrap replicates paired at random (the fits are independent
experiments), so "B beats A" is only claimed when the interval excludes zero.

Comparing laws fitted under different parameter counts or FLOP conventions is
meaningless (Porian et al. 2024), so that is an error.

For each pair it also gives the compute multiplier k(C) (:func:`scaling.laws.compute_multiplier`:
the compute A needs to reach B's optimal loss at C, divided by C) at several budgets with 95%
intervals, and says "B needs k x less compute" only where the interval excludes 1.

``--joint RESULTS...`` instead reads run records, groups them by variant (``model.variant``, else
the family) and fits all variants together in nested forms (:mod:`scaling.fit.joint`), choosing
the form by likelihood-ratio tests; the multiplier then comes from that joint fit's bootstrap,
which resamples runs within each variant.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import numpy as np

from scaling.errors import ScalingError
from scaling.intervals import percentile_ci
from scaling.laws import ChinchillaLaw, compute_multiplier
from scaling.plan.fitted_law import FittedLaw, load_fit, paired_draws, read_fit_json
from scaling.records import FIT_PARAM_COUNTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fits", nargs="+", type=Path, help="two or more FIT.json files from `scaling fit --json`")
    parser.add_argument("--labels", help="comma-separated names (default: the fit files' folder names)")
    parser.add_argument("--at-flops", type=float, help="common budget C (default: the largest at_flops of the fits)")
    parser.add_argument("--plot", type=Path, help="write a PNG of L_opt(C) and N_opt(C) with 95%% bands")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random pairing of bootstrap replicates (default 0)"
    )
    parser.add_argument(
        "--joint",
        action="store_true",
        help="the inputs are run-record folders: fit their variants jointly (nested forms, likelihood-ratio test)",
    )
    parser.add_argument(
        "--params", choices=FIT_PARAM_COUNTS, default="with_head", help="--joint: the N of the law (default with_head)"
    )
    parser.add_argument("--bootstrap", type=int, default=200, help="--joint: resamples of runs (default 200)")
    parser.add_argument(
        "--budgets",
        help="comma-separated budgets C for the compute multiplier (default: the largest budget x 0.1, 1, 10, 100)",
    )
    parser.add_argument("--json", type=Path, help="write the comparison, with compute_multiplier, as JSON")


def _convention(meta: dict) -> str:
    """How N and C were counted: the options of a fit made from records or a `scaling collect` table;
    a plain CSV or Epoch's table is fitted with N and C as given, where --params/--flops do not apply."""
    kind = (meta.get("input") or {}).get("kind")
    if kind in ("csv", "epoch"):
        return "N and C as given in the table"
    return f"{meta.get('flops')} FLOP convention, N = {meta.get('params')}"


def _optimum(law: ChinchillaLaw, flops: float) -> dict[str, np.ndarray]:
    """N_opt, D_opt, L_opt and a of ``law`` (one law or its bootstrap draws) at ``flops`` (C = 6ND)."""
    opt = law.compute_optimal(flops)
    return {"N_opt": opt.n, "D_opt": opt.d, "L_opt": opt.loss, "a": law.a}


def _draws(fit: FittedLaw) -> ChinchillaLaw | None:
    """The fit's bootstrap rows as one vectorised law, or None with fewer than two."""
    return ChinchillaLaw.from_rows(fit.samples) if fit.samples is not None and len(fit.samples) > 1 else None


def run(args: argparse.Namespace) -> int:
    if args.joint:
        return run_joint(args)
    if len(args.fits) < 2:
        raise ScalingError("scaling compare needs at least two fit files")
    labels = args.labels.split(",") if args.labels else [p.parent.name or p.stem for p in args.fits]
    if len(labels) != len(args.fits):
        raise ScalingError(f"--labels names {len(labels)} fits but {len(args.fits)} were given")
    fits = [load_fit(p) for p in args.fits]  # first, so that a file that is no fit is named as such
    metas = [read_fit_json(p) for p in args.fits]
    conventions = {_convention(m) for m in metas}
    if len(conventions) > 1:
        raise ScalingError(
            f"the fits use different N / FLOP conventions ({'; '.join(sorted(conventions))}); refit them alike"
        )
    flops = args.at_flops or max(float(m.get("at_flops") or 0) for m in metas)
    if not flops or flops <= 0:
        raise ScalingError("no common budget: pass --at-flops C")
    rng = np.random.default_rng(args.seed)

    points, boots = [], []
    for fit in fits:
        points.append(_optimum(fit.law, flops))
        draws = _draws(fit)
        boots.append(_optimum(draws, flops) if draws is not None else None)

    print(f"Approach 3 laws compared at C = {flops:.4g} FLOPs ({_convention(metas[0])})")
    header = f"{'fit':<16} {'alpha':>8} {'beta':>8} {'a':>22} {'N_opt':>26} {'D_opt':>26} {'L_opt':>22}"
    print(header)
    print("-" * len(header))
    for label, fit, point, boot in zip(labels, fits, points, boots, strict=True):

        def cell(key: str, fmt: str, boot: dict | None = boot, point: dict = point) -> str:
            text = format(point[key], fmt)
            if boot is not None:
                lo, hi = percentile_ci(boot[key])
                text += f" [{lo:{fmt}},{hi:{fmt}}]"
            return text

        print(
            f"{label:<16} {fit.law.alpha:>8.4f} {fit.law.beta:>8.4f} {cell('a', '.4f'):>22} "
            f"{cell('N_opt', '.3e'):>26} {cell('D_opt', '.3e'):>26} {cell('L_opt', '.4f'):>22}"
        )
    print()
    for (i, a), (j, b) in itertools.combinations(enumerate(labels), 2):
        d_loss = points[j]["L_opt"] - points[i]["L_opt"]
        d_a = points[j]["a"] - points[i]["a"]
        if boots[i] is not None and boots[j] is not None:
            k = min(len(boots[i]["L_opt"]), len(boots[j]["L_opt"]))
            pi, pj = rng.permutation(len(boots[i]["L_opt"]))[:k], rng.permutation(len(boots[j]["L_opt"]))[:k]
            lo, hi = percentile_ci(boots[j]["L_opt"][pj] - boots[i]["L_opt"][pi])
            alo, ahi = percentile_ci(boots[j]["a"][pj] - boots[i]["a"][pi])
            verdict = f"{b} is lower" if hi < 0 else f"{b} is higher" if lo > 0 else "not distinguishable"
            line = (
                f"{b} - {a}: dL_opt = {d_loss:+.4f} (95% CI [{lo:+.4f}, {hi:+.4f}]: {verdict}); "
                f"da = {d_a:+.4f} (95% CI [{alo:+.4f}, {ahi:+.4f}])"
            )
        else:
            line = (
                f"{b} - {a}: dL_opt = {d_loss:+.4f}, da = {d_a:+.4f} "
                "(no bootstrap samples: rerun `scaling fit --bootstrap K` for intervals)"
            )
        print(line)
    pairs = {(a, b): (fits[i].law, fits[j].law) for (i, a), (j, b) in itertools.combinations(enumerate(labels), 2)}
    boot_pairs = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(labels), 2):
        # Independent fits: replicates paired at random, a fresh draw per pair (the explorer pairs them alike).
        paired = paired_draws(fits[i], fits[j], np.random.default_rng(args.seed))
        if paired is not None:
            boot_pairs[(a, b)] = paired
    budgets = _budgets(args.budgets, flops)
    payload = {"labels": labels, "at_flops": flops}
    return _multipliers_out(args, pairs, boot_pairs, budgets, payload, lambda: _plot(args.plot, labels, fits, flops))


def _multipliers_out(args, pairs, boot_pairs, budgets, payload: dict, plot) -> int:  # noqa: ANN001
    """The multiplier table, then the figure (``plot``) and the JSON (``payload`` + compute_multiplier) if asked."""
    print()
    multipliers = _report_multipliers(pairs, boot_pairs, budgets)
    if args.plot:
        plot()
        print(f"wrote {args.plot}")
    if args.json:
        _write_json(args.json, {**payload, "compute_multiplier": multipliers})
    return 0


def _budgets(text: str | None, largest: float) -> np.ndarray:
    """The budgets of the multiplier table: ``--budgets`` or the largest budget x 0.1, 1, 10, 100."""
    if not text:
        return largest * np.array([0.1, 1.0, 10.0, 100.0])
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ScalingError(f"--budgets must be comma-separated numbers, got {text!r}") from None
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ScalingError(f"--budgets must be positive, got {text!r}")
    return values


def _report_multipliers(
    pairs: dict[tuple[str, str], tuple[ChinchillaLaw, ChinchillaLaw]],
    boot_pairs: dict[tuple[str, str], tuple[ChinchillaLaw, ChinchillaLaw]],
    budgets: np.ndarray,
) -> list[dict]:
    """Print k(C) per pair and budget with its 95% interval and a verdict where it excludes 1; return it as rows."""
    out = []
    for (a, b), (law_a, law_b) in pairs.items():
        value = np.asarray(compute_multiplier(law_a, law_b, budgets), dtype=float)
        boot = boot_pairs.get((a, b))
        ks = None if boot is None else np.asarray(compute_multiplier(boot[0], boot[1], budgets[:, None]), dtype=float)
        print(f"compute multiplier k(C) = compute {a} needs to reach {b}'s optimal loss at C, / C:")
        points = []
        for m, c in enumerate(budgets):
            ci = None if ks is None else [float(x) for x in percentile_ci(ks[m][np.isfinite(ks[m])])]
            if ci is None:
                verdict = "no bootstrap samples: no interval"
            elif ci[0] > 1:
                verdict = f"{b} needs {value[m]:.3g}x less compute than {a}"
            elif ci[1] < 1:
                verdict = f"{a} needs {1 / max(value[m], 1e-300):.3g}x less compute than {b}"
            else:
                verdict = "not distinguishable from 1"
            ci_text = "" if ci is None else f" (95% CI [{ci[0]:.3g}, {ci[1]:.3g}])"
            print(f"  C = {c:.3g}: k = {value[m]:.3g}{ci_text}: {verdict}")
            points.append({"C": float(c), "value": float(value[m]), "ci95": ci})
        if ks is not None and len(budgets) > 1:
            # d log k / d log C between the smallest and the largest budget, from the exponents' difference
            with np.errstate(all="ignore"):
                slope = np.log(ks[-1] / ks[0]) / np.log(budgets[-1] / budgets[0])
            lo, hi = percentile_ci(slope[np.isfinite(slope)])
            with np.errstate(all="ignore"):
                point = float(np.log(value[-1] / value[0]) / math.log(budgets[-1] / budgets[0]))
            trend = "grows with scale" if lo > 0 else "shrinks with scale" if hi < 0 else "no trend with scale shown"
            print(f"  d log k / d log C = {point:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}]): k {trend}")
        out.append({"a": a, "b": b, "points": points})
    return out


def _write_json(path: Path, payload: dict) -> None:
    from scaling.records import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload)
    print(f"wrote {path}")


def load_variant_runs(paths: list[Path], params: str, flops: str = "exact") -> list:
    """Finished runs of every record folder, grouped by variant (model.variant, else the family)."""
    from scaling.fit.joint import VariantRuns
    from scaling.records import read_unique_records, record_to_row

    groups: dict[str, list[tuple[float, float, float]]] = {}
    for path in paths:
        if not path.exists():
            raise ScalingError(f"no such file or directory: {path}")
        records, _ = read_unique_records(path)
        if not records:
            raise ScalingError(f"no run records (runs/*.json) found under {path}")
        for _, rec in records:
            if rec["status"] != "finished":
                continue
            row = record_to_row(rec)
            name = str(row["variant"] or row["family"])
            groups.setdefault(name, []).append((float(row[f"N_{params}"]), float(row["D"]), float(row["loss"])))
    return [VariantRuns(name, *(np.array(col) for col in zip(*rows, strict=True))) for name, rows in groups.items()]


def run_joint(args: argparse.Namespace) -> int:
    """``scaling compare --joint RESULTS...``: the variants of run records fitted together."""
    from scaling.fit.joint import fit_joint

    variants = load_variant_runs(list(args.fits), args.params)
    joint = fit_joint(variants, n_boot=args.bootstrap, seed=args.seed)
    counts = ", ".join(f"{v.name} ({len(v.loss)} runs)" for v in variants)
    print(f"Joint Approach 3 fit of {counts}; N = {args.params}, C = 6ND, squared log-loss residuals")
    header = f"{'form':<20} {'params':>6} {'log-lik':>10} {'AIC':>10} {'BIC':>10}"
    print(header)
    print("-" * len(header))
    for name, form in joint.forms.items():
        mark = "  <- chosen" if name == joint.chosen else ""
        print(f"{name:<20} {form.n_params:>6} {form.log_likelihood:>10.2f} {form.aic:>10.2f} {form.bic:>10.2f}{mark}")
    for test in joint.lrt:
        print(
            f"likelihood ratio {test['small']} vs {test['large']}: 2 dlogL = {float(test['statistic']):.2f}, "
            f"df = {test['df']}, p = {float(test['p']):.3g}"
        )
    print(f"chosen: {joint.chosen} (the largest form each step to which is significant at 5%)")
    laws = joint.forms[joint.chosen].laws
    for name, law in laws.items():
        print(f"  {name}: E={law.E:.4f} A={law.A:.4g} B={law.B:.4g} alpha={law.alpha:.4f} beta={law.beta:.4f}")
        if law.alpha <= 0.0201 or law.beta <= 0.0201 or law.E <= 0.00101:
            print(f"  warning: {name}'s law sits on a bound of the search (E, alpha or beta): these runs do not")
            print("  identify it, and the multiplier below extrapolates a degenerate law; add sizes or budgets")
    if joint.boot is None:
        print("(no bootstrap: --bootstrap K with K > 1 for intervals)")
    largest = 6.0 * max(float(np.max(v.n * v.d)) for v in variants)
    budgets = _budgets(args.budgets, largest)
    names = joint.variants
    pairs = {(a, b): (laws[a], laws[b]) for a, b in itertools.combinations(names, 2)}
    boot = joint.boot or {}
    boot_pairs = {(a, b): (boot[a], boot[b]) for a, b in pairs if boot}
    payload = {"joint": joint.summary(), "params": args.params}
    return _multipliers_out(
        args, pairs, boot_pairs, budgets, payload, lambda: _plot_multiplier(args.plot, pairs, boot_pairs, budgets)
    )


def _plot_multiplier(
    path: Path,
    pairs: dict[tuple[str, str], tuple[ChinchillaLaw, ChinchillaLaw]],
    boot_pairs: dict[tuple[str, str], tuple[ChinchillaLaw, ChinchillaLaw]],
    budgets: np.ndarray,
) -> None:
    """k(C) of every pair over the budgets' range, with its 95% band and the line k = 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.logspace(np.log10(budgets.min()), np.log10(budgets.max()), 50)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (a, b), (law_a, law_b) in pairs.items():
        (line,) = ax.plot(grid, compute_multiplier(law_a, law_b, grid), label=f"k: {a} vs {b}")
        if (a, b) in boot_pairs:
            ks = np.asarray(compute_multiplier(*boot_pairs[(a, b)], grid[:, None]), dtype=float)
            bands = np.array([percentile_ci(row[np.isfinite(row)]) for row in ks])
            ax.fill_between(grid, bands[:, 0], bands[:, 1], color=line.get_color(), alpha=0.2, label="95% CI")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("C (FLOPs, 6ND)")
    ax.set_ylabel("compute multiplier k(C)")
    ax.set_title("compute A needs for B's optimal loss, / C")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot(path: Path, labels: list[str], fits: list[FittedLaw], flops: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.logspace(np.log10(flops) - 3, np.log10(flops) + 1, 60)
    fig, (ax_l, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, fit in zip(labels, fits, strict=True):
        curve = _optimum(fit.law, grid)
        (line,) = ax_l.plot(grid, curve["L_opt"], label=label)
        ax_n.plot(grid, curve["N_opt"], color=line.get_color(), label=label)
        draws = _draws(fit)
        if draws is not None:
            on_grid = ChinchillaLaw.from_rows(draws.rows()[:, None, :])  # (K, 1) parameters: (K, M) values
            boot = _optimum(on_grid, grid)
            for ax, key in ((ax_l, "L_opt"), (ax_n, "N_opt")):
                lo, hi = percentile_ci(boot[key], axis=0)
                ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)
    for ax, name in ((ax_l, "compute-optimal loss L_opt(C)"), (ax_n, "compute-optimal N_opt(C)")):
        ax.set_xscale("log")
        ax.set_xlabel("C (FLOPs)")
        ax.axvline(flops, color="grey", lw=0.8, ls=":")
        ax.set_title(name)
        ax.legend()
    ax_n.set_yscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
