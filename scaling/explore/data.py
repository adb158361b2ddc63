"""The numbers the explorer page draws, computed in Python and embedded as one JSON object.

The page evaluates closed forms itself -- the Chinchilla law L = E + A/N^α + B/D^β (Hoffmann et al.
2022, eq. 2), its compute-optimal allocation (eq. 4) over the fit's bootstrap samples for the CIs, and
the inference-aware allocation (Sardana et al. 2023) and the data-constrained optimum (Muennighoff et al.
2023, the same grid-and-refine search as ``DataConstrainedLaw.optimum``) -- so that every slider answers
at once without a server. What needs the Python planner is precomputed here and only looked up by the page: the model
shape ``scaling plan`` picks for N_opt at each step of the budget slider, shapes on a fine grid of N
for the inference-aware size, and where the reference models sit on each fitted law.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scaling.explore.inputs import Variant
from scaling.fit.points import group_by_log
from scaling.intervals import percentile_ci
from scaling.laws import LAWS, MUENNIGHOFF2023, PF_DAY, Allocation, KaplanLaw, compute_multiplier
from scaling.plan.data_constrained import load_data_constrained_fit
from scaling.plan.fitted_law import paired_draws
from scaling.plan.planner import make_plan, place_models, plan_shape
from scaling.records import FLOP_CONVENTIONS, PARAM_COUNTS, record_to_row

#: Budget slider: steps of this many decades, anchored on the fit's reporting budget so its plan is a step.
BUDGET_STEP_DECADES = 0.1
#: Budgets shown reach at least this (FLOPs): frontier-model scale, where the reference models sit.
BUDGET_TOP = 1e26
#: Shapes for the inference-aware N are looked up on a log grid of N with this relative spacing (capped).
SHAPE_GRID_STEP = 0.02
SHAPE_GRID_MAX = 600
#: Planner defaults when there are no records to read the family, vocabulary and context from.
DEFAULT_SHAPE = {"family": "llama", "vocab_size": 50304, "context": 2048, "tie_embeddings": False}
#: Peak dense bf16 TFLOP/s per GPU (vendor datasheets, without sparsity), for the GPU-type selector.
GPU_PEAK_TFLOPS = {
    "H100 SXM": 989.0,
    "H200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.0,
    "MI300X": 1307.0,
    "RTX 4090": 165.0,
    "V100 (fp16)": 125.0,
}


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _shape_entry(sp: Any, tokens: float) -> dict[str, Any]:
    """A planner ShapePlan for ``tokens`` tokens as the page shows it, with exact FLOPs per token for GPU-hours."""
    if sp.shape is None:
        return {"error": sp.error}
    s = sp.shape
    return {
        **s.as_dict(),
        "head_dim": s.head_dim,
        "params": sp.params.as_dict(),
        "flops_per_token_exact": sp.flops_exact / tokens,
    }


def _run_entry(record: dict[str, Any]) -> dict[str, Any] | None:
    row = record_to_row(record)
    loss = _finite(row["loss"])
    if loss is None:
        return None
    curve = [p for p in record.get("curve", []) if _finite(p.get("val_loss")) and _finite(p.get("tokens"))]
    return {
        "id": row["run_id"],
        "shape": f"{row['family']} L{row['n_layers']} d{row['d_model']} h{row['n_heads']} ff{row['d_ff']}",
        "N": {c: float(row[f"N_{c}"]) for c in PARAM_COUNTS},
        "D": float(row["D"]),
        "C": {c: float(row[f"C_{c}"]) for c in FLOP_CONVENTIONS},
        "loss": loss,
        "curve": {"t": [float(p["tokens"]) for p in curve], "loss": [float(p["val_loss"]) for p in curve]},
    }


def _shape_settings(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Family, vocabulary and context of the runs (the first run's), so planned shapes match them."""
    if not records:
        return dict(DEFAULT_SHAPE)
    model = records[0].get("model") or {}
    return {
        "family": model.get("family") or DEFAULT_SHAPE["family"],
        "vocab_size": int(model.get("vocab_size") or DEFAULT_SHAPE["vocab_size"]),
        "context": int(model.get("context") or DEFAULT_SHAPE["context"]),
        "tie_embeddings": bool(model.get("tie_embeddings", False)),
    }


def _planner_tables(v: Variant, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Budget steps with the planner's shape at each, and a shape grid over N for the inference-aware size."""
    settings = _shape_settings(v.records)
    law = v.law.law
    at = float(v.fit["at_flops"])
    conv = str(v.fit["flops"])
    c_min = min((r["C"][conv] for r in runs), default=at / 1e3)
    lo, hi = math.log10(c_min) - 1.0, max(math.log10(BUDGET_TOP), math.log10(at) + 2.0)
    k_lo = math.floor((lo - math.log10(at)) / BUDGET_STEP_DECADES)
    k_hi = math.ceil((hi - math.log10(at)) / BUDGET_STEP_DECADES)
    shapes: list[dict[str, Any]] = []
    index: dict[str, int] = {}

    def intern(entry: dict[str, Any]) -> int:
        key = repr(sorted(entry.items()))
        if key not in index:
            index[key] = len(shapes)
            shapes.append(entry)
        return index[key]

    steps = []
    for k in range(k_lo, k_hi + 1):
        plan = make_plan(law, at * 10 ** (k * BUDGET_STEP_DECADES), **settings)  # the point law: shapes only, no draws
        steps.append(intern(_shape_entry(plan.shape, plan.optimum.d)))
    # The inference-aware N lies between the smallest N that reaches the smallest budget's optimal
    # loss (Sardana et al. 2023: D -> inf there) and N_opt at the largest budget.
    smallest = law.compute_optimal(at * 10 ** (k_lo * BUDGET_STEP_DECADES))
    n_lo = law.min_params_for_loss(smallest.loss)
    n_hi = law.compute_optimal(at * 10 ** (k_hi * BUDGET_STEP_DECADES)).n * 1.05
    n_lo = n_lo if math.isfinite(n_lo) and 0 < n_lo < n_hi else n_hi / 1e6
    step = max(math.log1p(SHAPE_GRID_STEP), math.log(n_hi / n_lo) / SHAPE_GRID_MAX)
    count = int(math.ceil(math.log(n_hi / n_lo) / step)) + 1
    grid = [
        intern(
            _shape_entry(
                plan_shape(Allocation(n=n_lo * math.exp(i * step), d=1.0, loss=math.nan), law, **settings), 1.0
            )
        )
        for i in range(count)
    ]
    return {
        **settings,
        "n_count": law.n_count,
        "at_flops": at,
        "budget_step_decades": BUDGET_STEP_DECADES,
        "budget_k_lo": k_lo,
        "budget_k_hi": k_hi,
        "step_shapes": steps,
        "grid_log_n_lo": math.log(n_lo),
        "grid_log_step": step,
        "grid_shapes": grid,
        "shapes": shapes,
    }


def _data_constrained_law(v: Variant) -> dict[str, Any]:
    """The law the unique-tokens slider plans under: what ``scaling plan --fit FIT --unique-tokens U`` uses.

    That command plans with the fit's own R_D*, R_N* (a ``data_constrained`` object) and refuses a
    Chinchilla fit without them; it never grafts the published R_D*, R_N* onto a fitted base law. So for
    such a fit the page shows the published muennighoff2023 plan (``scaling plan --unique-tokens U``),
    labelled as such, and not the user's law.
    """
    if isinstance(v.fit.get("data_constrained"), dict):
        law = load_data_constrained_fit(v.source).law
        source, command = "fit", f"scaling plan --fit {v.source}"
    else:
        law, source, command = MUENNIGHOFF2023, "published", f"scaling plan --law {MUENNIGHOFF2023.name}"
    b = law.base
    return {
        "source": source,
        "name": law.name,
        "description": law.description,
        "corpus": law.corpus,
        "command": command,
        "theta": [float(x) for x in (b.E, b.A, b.B, b.alpha, b.beta)],
        "r_d": float(law.r_d),
        "r_n": float(law.r_n),
    }


def _groups(runs: list[dict[str, Any]], conv: str, rel_tol: float) -> list[dict[str, Any]]:
    """isoFLOP groups: runs whose C under the fit's convention agree within ``rel_tol`` (as Approach 2 groups)."""
    if not runs:
        return []
    c = np.array([r["C"][conv] for r in runs])
    labels = group_by_log(c, rel_tol)
    out = []
    for g in range(int(labels.max()) + 1):
        members = [i for i in range(len(runs)) if labels[i] == g]
        out.append({"C": float(math.exp(np.mean(np.log(c[members])))), "runs": members})
    return out


def _variant_entry(v: Variant) -> dict[str, Any]:
    fit = v.fit
    runs = [r for r in (_run_entry(rec) for rec in v.records) if r is not None]
    runs.sort(key=lambda r: (r["N"]["with_head"], r["D"]))
    tol = float((fit.get("options") or {}).get("budget_tolerance", 0.05))
    a3 = fit["approach3"]
    samples = v.law.samples
    places = [
        {
            "name": p.model.name,
            "n": p.model.n,
            "d": p.model.d,
            "C": p.flops,
            "source": p.model.source,
            "n_opt": p.optimum.n,
            "ratio": p.ratio,
            "verdict": p.verdict,
        }
        for p in place_models(v.law.law)
    ]
    return {
        "label": v.label,
        "source": str(v.source),
        "records_root": str(v.records_root) if v.records_root else None,
        "params": str(fit["params"]),
        "flops": str(fit["flops"]),
        "at_flops": float(fit["at_flops"]),
        "theta": [float(a3[k]) for k in ("E", "A", "B", "alpha", "beta")],
        "samples": samples.tolist() if samples is not None else [],
        "dropped_samples": v.law.dropped_samples,
        "approach3": {k: a3.get(k) for k in ("ci95", "n_boot", "N_opt", "D_opt", "loss_opt", "converged", "warnings")},
        "approach1": fit.get("approach1"),
        "approach2": _without(fit.get("approach2"), "points"),
        "kaplan": fit.get("kaplan"),
        "holdout": fit.get("holdout"),
        "learning_curve": fit.get("learning_curve"),
        "flags": list(fit.get("flags") or []),
        "runs": runs,
        "groups": _groups(runs, str(fit["flops"]), tol),
        "references": places,
        "planner": _planner_tables(v, runs),
        "data_constrained": _data_constrained_law(v),
    }


def _without(obj: Any, key: str) -> Any:
    return {k: val for k, val in obj.items() if k != key} if isinstance(obj, dict) else obj


def _published_laws() -> list[dict[str, Any]]:
    """The planner's built-in laws, labelled with the parameter count and corpus each was fitted on."""
    out = []
    for law in LAWS.values():
        entry: dict[str, Any] = {"name": law.name, "description": law.description, "n_count": law.n_count}
        entry["corpus"] = law.corpus
        if isinstance(law, KaplanLaw):
            entry |= {
                "kind": "kaplan",
                "n_opt_coeff": law.n_opt_coeff,
                "n_opt_exponent": law.n_opt_exponent,
                "pf_day": PF_DAY,
            }
        else:
            entry |= {"kind": "chinchilla", "theta": [law.E, law.A, law.B, law.alpha, law.beta]}  # type: ignore[attr-defined]
        out.append(entry)
    return out


#: Budgets of the variants panel's compute multiplier, as multiples of the first input's reporting budget C*.
MULTIPLIER_BUDGETS = (1.0, 10.0, 100.0)


def _compute_multipliers(variants: list[Variant]) -> list[dict[str, Any]]:
    """k(C) of every other input against the first, at C*, 10 C* and 100 C*, with 95% intervals.

    The same numbers as ``scaling compare FIRST.json OTHER.json`` (:func:`scaling.laws.compute_multiplier`:
    the compute the first needs to reach the other's compute-optimal loss at C, over C; independent fits'
    draws paired at random with seed 0, as compare's default ``--seed``).
    """
    if len(variants) < 2:
        return []
    first = variants[0]
    budgets = float(first.fit["at_flops"]) * np.array(MULTIPLIER_BUDGETS)
    out = []
    for other in variants[1:]:
        rng = np.random.default_rng(0)
        value = np.asarray(compute_multiplier(first.law.law, other.law.law, budgets), dtype=float)
        paired = paired_draws(first.law, other.law, rng)
        ks = None if paired is None else np.asarray(compute_multiplier(*paired, budgets[:, None]), dtype=float)
        points = []
        for m, c in enumerate(budgets):
            ci = None if ks is None else [float(x) for x in percentile_ci(ks[m][np.isfinite(ks[m])])]
            points.append({"C": float(c), "k": float(value[m]), "ci95": ci})
        out.append({"a": first.label, "b": other.label, "points": points})
    return out


def explorer_data(variants: list[Variant]) -> dict[str, Any]:
    """Everything the page needs, JSON-serialisable."""
    return {
        "multipliers": _compute_multipliers(variants),
        "variants": [_variant_entry(v) for v in variants],
        "laws": _published_laws(),
        "gpus": GPU_PEAK_TFLOPS,
        "param_counts": list(PARAM_COUNTS),
        "flop_conventions": list(FLOP_CONVENTIONS),
    }
