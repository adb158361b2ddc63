"""``scaling compare``: recipes and architectures side by side as fitted laws, not single runs.

Each input is a ``scaling fit --json`` file. For every fit the table shows the
Approach 3 exponents and, at one common compute budget, the compute-optimal N,
D and loss, each with its 95% bootstrap interval. For each pair it reports the
difference in optimal loss and in the exponent ``a`` with a 95% interval from
independent bootstrap replicates paired at random (the fits are independent
experiments), so "B beats A" is only claimed when the interval excludes zero.

Comparing laws fitted under different parameter counts or FLOP conventions is
meaningless (Porian et al. 2024), so that is an error.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from scaling.errors import ScalingError
from scaling.intervals import percentile_ci
from scaling.laws import ChinchillaLaw
from scaling.plan.fitted_law import FittedLaw, load_fit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fits", nargs="+", type=Path, help="two or more FIT.json files from `scaling fit --json`")
    parser.add_argument("--labels", help="comma-separated names (default: the fit files' folder names)")
    parser.add_argument("--at-flops", type=float, help="common budget C (default: the largest at_flops of the fits)")
    parser.add_argument("--plot", type=Path, help="write a PNG of L_opt(C) and N_opt(C) with 95%% bands")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random pairing of bootstrap replicates (default 0)"
    )


def _meta(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ScalingError(f"cannot read fit {path}: {err}") from None


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
    if len(args.fits) < 2:
        raise ScalingError("scaling compare needs at least two fit files")
    labels = args.labels.split(",") if args.labels else [p.parent.name or p.stem for p in args.fits]
    if len(labels) != len(args.fits):
        raise ScalingError(f"--labels names {len(labels)} fits but {len(args.fits)} were given")
    fits = [load_fit(p) for p in args.fits]  # first, so that a file that is no fit is named as such
    metas = [_meta(p) for p in args.fits]
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
    if args.plot:
        _plot(args.plot, labels, fits, flops)
        print(f"wrote {args.plot}")
    return 0


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
