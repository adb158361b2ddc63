"""Prototype: does a schedule-aware learning-curve law predict a run's final loss from its first half?

Two laws are fitted per run on the eval points of the first half of the run (tokens <= D/2,
and, for comparison, the first half of the eval points as scaling.fit.learning_curve does):

* ``power``: L(t) = L_inf + (t_c/t)^alpha (Kaplan et al. 2020, sec. 5), blind to the schedule;
* ``anneal``: L(s) = L0 + A * S1(s)^(-alpha) - B * S2(s) (Tissue et al. 2024, "Scaling Law with
  Learning Rate Annealing", eq. 1): S1 = sum of the learning rates up to step s (forward area),
  S2 = sum of the annealing momentum m_i = lam * m_{i-1} + (eta_{i-1} - eta_i) (annealing area),
  lam = 0.999 in the paper. The learning rates come from the run's own schedule.

Usage: python scripts/lc_annealing.py RESULTS_DIR [--lam 0.999]
"""

from __future__ import annotations

import argparse
import glob
import json
import math

import numpy as np
from scipy.optimize import nnls

from scaling.fit.learning_curve import fit_learning_curve
from scaling.train.schedule import Schedule


def areas(record: dict, lam: float, absolute: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 after each step 1..T of the record's schedule (in units of the peak lr)."""
    t = record["training"]
    sched_cfg = record["config"]["schedule"]
    total = int(t["total_steps"])
    steps = int(record["steps"])  # a WSD branch record: its own horizon
    sched = Schedule(
        t["schedule"],
        float(t["lr"]),
        int(t["warmup_steps"]),
        steps if t["schedule"] == "wsd" else total,
        float(sched_cfg.get("min_lr_ratio", 0.1)),
        float(sched_cfg.get("cooldown_frac", 0.2)),
    )
    eta = np.array([sched.lr_at(i) for i in range(steps)]) / (1.0 if absolute else float(t["lr"]))
    s1 = np.cumsum(eta)
    m = 0.0
    s2 = np.zeros(steps)
    acc = 0.0
    for i in range(steps):
        drop = max(0.0, (eta[i - 1] - eta[i])) if i > 0 else 0.0
        m = lam * m + drop
        acc += m
        s2[i] = acc
    return s1, s2


def fit_anneal(s1: np.ndarray, s2: np.ndarray, loss: np.ndarray) -> tuple[float, np.ndarray]:
    """Variable projection: grid over alpha, non-negative least squares for (L0, A, B)."""
    best = (math.inf, 0.0, np.zeros(3))
    for alpha in np.linspace(0.05, 2.0, 196):
        x = np.column_stack([np.ones_like(s1), s1 ** (-alpha), -s2])
        coef, res = nnls(x, loss)
        if res < best[0]:
            best = (res, alpha, coef)
    return best[1], best[2]


def fit_joint(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Shared (alpha, B) over runs, per-run (L0, A): the annealing coefficient is learnt from every first half."""

    def sse(alpha: float, b: float) -> float:
        total = 0.0
        for s1, s2, loss in runs:
            x = np.column_stack([np.ones_like(s1), s1 ** (-alpha)])
            _, res = nnls(x, loss + b * s2)
            total += res**2
        return total

    best = min((sse(a, b), a, b) for a in np.linspace(0.02, 1.5, 75) for b in np.geomspace(1e-7, 1e1, 65))
    _, a0, b0 = best
    best = min(
        (sse(a, b), a, b)
        for a in np.linspace(max(0.02, a0 - 0.05), a0 + 0.05, 11)
        for b in np.geomspace(b0 / 1.3, b0 * 1.3, 11)
    )
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--lam", type=float, default=0.999)
    ap.add_argument(
        "--absolute", action="store_true", help="S1, S2 in absolute learning-rate units (default: per peak lr)"
    )
    args = ap.parse_args()
    rows = []
    joint: list[tuple] = []
    full_curves: list[tuple] = []
    groups: list[str] = []
    for path in sorted(glob.glob(f"{args.results}/runs/*.json")):
        with open(path) as fh:
            r = json.load(fh)
        if r.get("status") != "finished":
            continue
        curve = [p for p in r["curve"] if p.get("val_loss") is not None]
        steps = np.array([p["step"] for p in curve])
        tokens = np.array([p["tokens"] for p in curve], dtype=float)
        loss = np.array([p["val_loss"] for p in curve])
        final_step, final = int(r["steps"]), float(r["final"]["val_loss"])
        s1, s2 = areas(r, args.lam, args.absolute)
        out = {"run": r["run_id"], "N": r["params"]["with_head"], "sched": r["training"]["schedule"]}
        for name, mask in (
            ("half_tokens", steps <= final_step / 2),
            ("half_points", np.arange(len(steps)) < max(3, len(steps) // 2)),
        ):
            if mask.sum() < 4:
                out[name] = (math.nan, math.nan)
                continue
            alpha, (l0, a, b) = fit_anneal(s1[steps[mask] - 1], s2[steps[mask] - 1], loss[mask])
            pred_anneal = l0 + a * s1[final_step - 1] ** (-alpha) - b * s2[final_step - 1]
            try:
                pl = fit_learning_curve(tokens[mask], loss[mask])
                pred_power = float(pl.predict(tokens[-1]))
            except Exception:
                pred_power = math.nan
            out[name] = ((pred_power - final) / final, (pred_anneal - final) / final, int(mask.sum()))
        rows.append(out)
        mask = steps <= final_step / 2
        full_curves.append((s1[steps - 1], s2[steps - 1], loss))
        groups.append(r.get("branch_of") or r["run_id"])  # a WSD run and its branches share one trajectory
        joint.append(
            (s1[steps[mask] - 1], s2[steps[mask] - 1], loss[mask], s1[final_step - 1], s2[final_step - 1], final)
        )
    for key in ("half_tokens", "half_points"):
        p = np.array([r[key][0] for r in rows if len(r[key]) == 3])
        a = np.array([r[key][1] for r in rows if len(r[key]) == 3])
        n = [r[key][2] for r in rows if len(r[key]) == 3]
        if p.size:
            print(
                f"{key}: {p.size} runs (median {np.median(n):.0f} points fitted); median |err| power law "
                f"{np.nanmedian(np.abs(p)):.2%} (max {np.nanmax(np.abs(p)):.2%}), annealing law "
                f"{np.nanmedian(np.abs(a)):.2%} (max {np.nanmax(np.abs(a)):.2%})"
            )

    # Leave one training run out (a WSD run with all its branch records): the shared (alpha, B) never
    # sees the trajectory of the run being predicted.
    first_halves = [(j[0], j[1], j[2]) for j in joint]
    strict, loo = [], []
    for i, (s1, s2, loss, s1f, s2f, final) in enumerate(joint):
        others = [k for k in range(len(joint)) if groups[k] != groups[i]]
        for errs, pool in ((strict, first_halves), (loo, full_curves)):
            alpha_i, b_i = fit_joint([pool[k] for k in others])
            x = np.column_stack([np.ones_like(s1), s1 ** (-alpha_i)])
            (l0, a), _ = nnls(x, loss + b_i * s2)
            errs.append((l0 + a * s1f ** (-alpha_i) - b_i * s2f - final) / final)
    for label, errs in (
        ("shared (alpha, B) from the other runs' FIRST HALVES only", strict),
        ("shared (alpha, B) from the other runs' whole curves", loo),
    ):
        e = np.abs(np.array(errs))
        print(
            f"annealing law, leave-one-run-out, {label}; L0, A from this record's first half (tokens <= D/2): "
            f"{len(errs)} records, median |err| {np.median(e):.2%}, max {e.max():.2%}, mean signed {np.mean(errs):+.2%}"
        )


if __name__ == "__main__":
    main()
