"""The main job's own check: does the law it measured hold up? One line per criterion, PASS or FAIL.

    python scripts/check_demo.py results/demo/fit.json

Reads only the fit JSON that ``scaling fit --json --holdout-largest-budget --bootstrap K`` wrote. The
criteria are the main job's goals (README, "The demo"); each line prints the measured numbers beside
its threshold, so a FAIL says by how much. The noise floor behind criteria 4 and 5 is measured in
results/noise_floor/.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

#: Thresholds of the main job's goals.
MIN_BUDGETS, MIN_SPAN = 4, 8.0
MAX_A_GAP = 0.1  # |a(Approach 2 or 1) - a(Approach 3)|
MIN_FRONTIER_SIZES = 3  # Approach 1 is held to the gap only where its frontier visits this many sizes
MAX_CI_WIDTH = 0.3  # of Approach 3's a
MAX_BEST_ERR, MAX_MEAN_ERR = 0.01, 0.02  # held-out largest budget: its best run, and its runs on average
MAX_CURVE_ERR = 0.03  # learning-curve law from the first half: median over runs


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def criteria(fit: dict[str, Any]) -> list[tuple[str, bool]]:
    """(line, passed) per criterion."""
    lines: list[tuple[str, bool]] = []
    a2, a3, a1 = fit.get("approach2") or {}, fit.get("approach3") or {}, fit.get("approach1") or {}
    budgets = a2.get("budgets") or []
    cs = [b["C"] for b in budgets]
    span = max(cs) / min(cs) if cs else 0.0
    ok = len(cs) >= MIN_BUDGETS and span >= MIN_SPAN * 0.99  # a budget is C to within half a batch
    lines.append(
        (f"1. {len(cs)} isoFLOP budgets spanning {span:.1f}x in C (goal >= {MIN_BUDGETS}, >= {MIN_SPAN:g}x)", ok)
    )
    interior = sum(1 for b in budgets if b.get("used"))
    lines.append(
        (
            f"2. interior minimum (parabola vertex inside the sampled sizes) at {interior} of {len(cs)} budgets",
            bool(cs) and interior == len(cs),
        )
    )
    gap2 = abs(a2.get("a", math.nan) - a3.get("a", math.nan))
    sizes = len({round(p["N_opt"]) for p in a1.get("points") or []})  # distinct sizes on Approach 1's frontier
    gap1 = abs(a1.get("a", math.nan) - a3.get("a", math.nan))
    a1_ok = sizes < MIN_FRONTIER_SIZES or gap1 <= MAX_A_GAP
    lines.append(
        (
            f"3. a: Approach 3 {a3.get('a', math.nan):.3f}, Approach 2 {a2.get('a', math.nan):.3f} (gap {gap2:.3f}), "
            f"Approach 1 {a1.get('a', math.nan):.3f} (gap {gap1:.3f}, frontier of {sizes} sizes); goal gaps <= {MAX_A_GAP}",
            gap2 <= MAX_A_GAP and a1_ok,
        )
    )
    lo, hi = (a3.get("ci95") or {}).get("a", (math.nan, math.nan))
    lines.append(
        (
            f"4. Approach 3's a: 95% CI [{lo:.3f}, {hi:.3f}], width {hi - lo:.3f} (goal <= {MAX_CI_WIDTH})",
            hi - lo <= MAX_CI_WIDTH,
        )
    )
    hold = fit.get("holdout") or {}
    held = (hold.get("approach3") or {}) if hold else {}
    if held:
        best, mean = held.get("best_run_rel_error", math.nan), held.get("mean_abs_rel_error", math.nan)
        lines.append(
            (
                f"5. held-out largest budget ({hold.get('n_heldout')} runs, fitted on {hold.get('n_train')} below "
                f"{hold.get('threshold_flops', math.nan):.3g} FLOPs): best run {best:+.2%}, mean |error| {mean:.2%} "
                f"(goal {MAX_BEST_ERR:.0%} and {MAX_MEAN_ERR:.0%})",
                abs(best) <= MAX_BEST_ERR and mean <= MAX_MEAN_ERR,
            )
        )
    else:
        lines.append(("5. held-out check: not in the fit (run scaling fit --holdout-largest-budget)", False))
    curve = fit.get("learning_curve") or {}
    med = curve.get("median_abs_rel_error", math.nan)
    lines.append(
        (
            f"6. learning-curve law from the first half of each run: median |error| of the final loss {med:.2%} "
            f"over {curve.get('n_runs', 0)} runs (goal <= {MAX_CURVE_ERR:.0%})",
            med <= MAX_CURVE_ERR,
        )
    )
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/check_demo.py FIT.json", file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as fh:
            fit = json.load(fh)
    except (OSError, ValueError) as err:
        print(f"error: cannot read {argv[0]}: {err}", file=sys.stderr)
        return 2
    results = criteria(fit)
    print("Does the law hold up? (the main job's goals)")
    for line, ok in results:
        print(f"  {verdict(ok)}  {line}")
    print(f"  {sum(ok for _, ok in results)} of {len(results)} criteria met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
