"""Compute-optimal exponent a per experiment of Open-Athena's isoFLOP table, by every approach (issue 16, item 8).

For each experiment of ``open_athena_isoflops.csv`` (clean rows: ``outlier`` False) it prints, as markdown:

* Approach 1 on final points (the Pareto frontier: degenerate, since an envelope of final points is no
  frontier; printed so that the reader sees how far off it is, marked as such);
* Approach 2 under each isoFLOP estimator (:mod:`scaling.fit.isoflop_minimum`), with the power law fitted
  by ordinary least squares and weighted by 1 / var(log N_opt) (Porian et al. 2024, arXiv 2406.19146);
* Approach 3 (L = E + A/N^alpha + B/D^beta, D from the file);

each with a 95% percentile CI from resampling the points (each point is its own run) ``--boot`` times.
Published values for comparison: Hoffmann et al. 2022's Approach 2 a = 0.49 (Chinchilla experiments),
and Llama 3's D_opt ∝ C^0.53, so a ≈ 0.47 (Llama 3 experiments).

``--synthetic`` instead prints each estimator's bias on isoFLOP grids of a Chinchilla surface with a known
a = beta / (alpha + beta), sampled centred and off-centre, with and without noise.

    python scripts/open_athena_table.py ../shared/data/open_athena_isoflops.csv > results/open_athena/table.md
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.errors import ScalingError  # noqa: E402
from scaling.fit.approach1 import bootstrap_approach1, fit_approach1  # noqa: E402
from scaling.fit.approach2 import bootstrap_approach2, fit_approach2  # noqa: E402
from scaling.fit.approach3 import fit_approach3  # noqa: E402
from scaling.fit.bootstrap import bootstrap_approach3, resample_counts  # noqa: E402
from scaling.fit.isoflop_minimum import ESTIMATORS  # noqa: E402
from scaling.fit.points import FitPoints, load_points  # noqa: E402
from scaling.intervals import percentile_ci  # noqa: E402

#: Published a where a paper states one: Hoffmann et al. 2022 (Approach 2) and Llama 3 (D_opt ∝ C^0.53).
PUBLISHED = {"epochai_chinchilla": 0.49, "ml_scalefit": 0.49, "llama_3": 0.47}


def published_a(experiment: str) -> float | None:
    return next((v for k, v in PUBLISHED.items() if experiment.startswith(k)), None)


def experiments(path: str) -> list[str]:
    import pandas as pd

    return sorted(pd.read_csv(path)["experiment"].astype(str).unique())


def cell(value: float, ci: tuple[float, float] | None = None) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci is not None and all(map(math.isfinite, ci)) else "")


def a_by_approach(points: FitPoints, n_boot: int, seed: int) -> dict[str, str]:
    """Every approach's a on one experiment, as table cells."""
    counts = resample_counts(points.groups, n_boot, np.random.default_rng(seed))
    at = 10 * float(points.c.max())
    out: dict[str, str] = {"runs": str(len(points))}
    try:
        a1 = fit_approach1(points)
        draws = bootstrap_approach1(points, counts, at)["a"]
        out["A1 (final points: degenerate)"] = cell(a1.a, percentile_ci(draws[np.isfinite(draws)]))
    except ScalingError as err:
        out["A1 (final points: degenerate)"] = f"not fitted ({err})"
    for est in ESTIMATORS:
        for weighted in (False, True):
            r = fit_approach2(points, estimator=est, weighted=weighted, compare=False)
            key = f"A2 {est} {'weighted' if weighted else 'OLS'}"
            if r.fit is None:
                out[key] = "-"
                continue
            draws = bootstrap_approach2(points, counts, at, 0.05, est, weighted=weighted)["a"]
            ok = np.isfinite(draws)
            out[key] = cell(r.fit.a, percentile_ci(draws[ok]) if ok.sum() >= 2 else None)
    fit3 = fit_approach3(points.n, points.d, points.loss)
    boot3 = bootstrap_approach3(
        points.n, points.d, points.loss, groups=points.groups, n_boot=n_boot, seed=seed, point_fit=fit3
    )
    out["A3"] = cell(fit3.a, boot3.ci95["a"])
    return out


def open_athena(path: str, n_boot: int, seed: int) -> str:
    lines = [
        f"a (N_opt ∝ C^a) per experiment of {Path(path).name}, clean rows (outlier False); "
        f"95% percentile CIs from {n_boot} resamples of the points (seed {seed}).",
        "",
    ]
    rows = []
    for name in experiments(path):
        points = load_points(path, experiment=name)
        cells = a_by_approach(points, n_boot, seed)
        pub = published_a(name)
        rows.append({"experiment": name, "published": f"{pub:.2f}" if pub else "-", **cells})
    header = list(rows[0])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- synthetic truth

#: Hoffmann et al. 2022's Approach 3 law; a = beta / (alpha + beta) = 0.4516.
TRUE_LAW = (1.69, 406.4, 410.7, 0.34, 0.28)


def synthetic_grid(shift: tuple[float, float], noise: float, seed: int, span: float = 1.0, sizes: int = 9) -> FitPoints:
    """7 budgets 1e18..1e21, ``sizes`` log-spaced sizes over ±``span`` decades around N_opt shifted by
    ``shift[0]`` decades at the smallest budget to ``shift[1]`` at the largest (a fixed size grid shared by
    all budgets, as in many sweeps, samples small budgets right and large ones left of their minimum)."""
    e, a_, b_, alpha, beta = TRUE_LAW
    g = (alpha * a_ / (beta * b_)) ** (1 / (alpha + beta))
    a_true = beta / (alpha + beta)
    rng = np.random.default_rng(seed)
    rows = []
    for c, sh in zip(np.logspace(18, 21, 7), np.linspace(shift[0], shift[1], 7), strict=True):
        for n in g * (c / 6) ** a_true * np.logspace(sh - span, sh + span, sizes):
            d = c / (6 * n)
            rows.append(
                tuple(map(float, (n, d, c, (e + a_ / n**alpha + b_ / d**beta) * math.exp(rng.normal(0, noise)))))
            )
    # Through the table reader, as a user's CSV would go (N, D, loss, budget tag).
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.csv"
        path.write_text(
            "N,D,C,loss,budget\n" + "".join(f"{n!r},{d!r},{c!r},{loss!r},{c!r}\n" for n, d, c, loss in rows)
        )
        return load_points(path)


SYNTHETIC_SETTINGS = {
    "centred": (0.0, 0.0),
    "off-centre ±0.6 dec": (-0.6, 0.6),
    "off-centre ±0.9 dec": (-0.9, 0.9),
}


def estimator_bias(shift: tuple[float, float], noise: float, seeds: int) -> dict[str, tuple[float, float]]:
    """(mean a - true a, sd of a) of each estimator and weighting over ``seeds`` noise draws."""
    beta, alpha = TRUE_LAW[4], TRUE_LAW[3]
    a_true = beta / (alpha + beta)
    found: dict[str, list[float]] = {}
    for s in range(seeds):
        points = synthetic_grid(shift, noise, s)
        for est in ESTIMATORS:
            for weighted in (False, True):
                fit = fit_approach2(points, estimator=est, weighted=weighted, compare=False).fit
                found.setdefault(f"{est} {'weighted' if weighted else 'OLS'}", []).append(fit.a if fit else math.nan)
    return {k: (float(np.nanmean(v) - a_true), float(np.nanstd(v))) for k, v in found.items()}


def synthetic(seeds: int) -> str:
    lines = [
        "Bias of a (mean a - true a 0.4516) and its sd over noise draws: Chinchilla surface (Hoffmann et al.'s "
        "Approach 3 law), 7 budgets 1e18..1e21, 9 sizes over ±1 decade per budget, centred on N_opt or shifted "
        f"from -s decades (smallest budget) to +s (largest); noise: multiplicative log-normal; {seeds} draws.",
        "",
    ]
    header = None
    for name, shift in SYNTHETIC_SETTINGS.items():
        for noise in (0.0, 0.005):
            bias = estimator_bias(shift, noise, 1 if noise == 0 else seeds)
            if header is None:
                header = ["sampling", "noise", *bias]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
            cells = [f"{b:+.4f}" + (f" ± {sd:.4f}" if noise else "") for b, sd in bias.values()]
            lines.append(f"| {name} | {noise:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="open_athena_isoflops.csv")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="print the estimators' bias on synthetic grids")
    parser.add_argument("--seeds", type=int, default=40, help="noise draws per synthetic setting (default 40)")
    args = parser.parse_args(argv)
    if args.synthetic:
        print(synthetic(args.seeds))
        return 0
    if not args.path:
        parser.error("the path of open_athena_isoflops.csv is required (or --synthetic)")
    print(open_athena(args.path, args.boot, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
