"""``scaling plan``: compute-optimal N, D, shape and cost for a FLOP budget under a published or fitted law."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from scaling.errors import ScalingError
from scaling.laws import LAWS, Allocation, Law, get_law
from scaling.models import FAMILIES
from scaling.plan.fitted_law import NO_DRAWS_HINT, FittedLaw, load_fit
from scaling.plan.planner import (
    OPTIMAL_FACTOR,
    InferencePlan,
    Plan,
    ShapePlan,
    make_plan,
    place_models,
)

DEFAULT_LAW = "hoffmann2022"
DEFAULT_VOCAB = 50304

#: A plan at more than this many times the fit's largest C is flagged. Hoffmann et al. (2022) planned
#: Chinchilla (5.76e23 FLOPs) about 200x past their largest isoFLOP budget (3e21); that far out a plan
#: rests on the fitted exponents more than on measured runs, so it is said out loud.
EXTRAPOLATION_FLAG = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flops", type=str, default=None, help="training budget C in FLOPs, e.g. 1e21")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--law", default=None, help=f"built-in law: {', '.join(LAWS)} (default {DEFAULT_LAW})")
    source.add_argument(
        "--fit", default=None, metavar="FIT.json", help="law fitted by `scaling fit --json` (approach3)"
    )
    parser.add_argument(
        "--unique-tokens",
        type=str,
        default=None,
        metavar="U",
        help="unique tokens available: plan under the data-constrained law (--law muennighoff2023 or a "
        "`scaling fit --form data-constrained` --fit)",
    )
    parser.add_argument("--family", default="llama", help=f"model family for the shape: {', '.join(FAMILIES)}")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help=f"vocabulary size for the shape (default: the fit's, else {DEFAULT_VOCAB})",
    )
    parser.add_argument(
        "--allow-vocab-mismatch",
        action="store_true",
        help="plan with a --vocab-size other than the one the --fit law was measured on",
    )
    parser.add_argument("--context", type=int, default=2048, help="context length for the shape (default 2048)")
    parser.add_argument("--tie-embeddings", action="store_true", help="tie input embedding and output head")
    parser.add_argument(
        "--inference-tokens", type=str, default=None, help="tokens to be served: also plan the inference-aware size"
    )
    parser.add_argument("--mfu", type=str, default="0.4", help="model FLOP utilisation for GPU-hours (default 0.4)")
    parser.add_argument("--peak-tflops", type=str, default="989", help="peak TFLOP/s per GPU (default 989, H100 bf16)")
    parser.add_argument(
        "--price-per-gpu-hour",
        type=str,
        default=None,
        metavar="USD",
        help="price of one GPU-hour: also print what training costs (with its 95%% CI for a --fit with draws)",
    )
    parser.add_argument("--models", action="store_true", help="place GPT-3, Gopher, Chinchilla, LLaMA-7B on the law")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def _number(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ScalingError(f"{what} must be a number, got {text!r}") from None


def _si(x: float, unit: str = "") -> str:
    """2.2e9 -> '2.22B': model and data sizes are read in K/M/B/T."""
    if not math.isfinite(x):
        return str(x)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def _sci(x: float) -> str:
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _ci(ci: dict[str, tuple[float, float]] | None, key: str, fmt: Any) -> str:
    if not ci or key not in ci:
        return ""
    lo, hi = ci[key]
    return f"  [95% CI {fmt(lo)} .. {fmt(hi)}]"


def _shape_lines(sp: ShapePlan, target: float, law: Law, title: str) -> list[str]:
    if sp.shape is None:
        return [f"{title:<15}none: {sp.error}"]
    s, p = sp.shape, sp.params
    assert p is not None
    matched = getattr(p, law.n_count)
    return [
        f"{title:<15}n_layers={s.n_layers}  d_model={s.d_model}  n_heads={s.n_heads} (head_dim {s.head_dim})  "
        f"d_ff={s.d_ff}  [{s.family}, vocab {s.vocab_size}, context {s.context}]",
        f"{'parameters':<15}non_embedding {_si(p.non_embedding)}  with_head {_si(p.with_head)}  total {_si(p.total)}"
        f"  ({law.n_count} {matched / target - 1:+.1%} vs N)",
    ]


def _law_lines(law: Law) -> list[str]:
    return [
        f"{'law':<15}{law.name}: {law.description}",
        f"{'':<15}loss in nats/token on {law.corpus}; N counts {law.n_count} parameters",
    ]


def _plan_text(plan: Plan, fitted: FittedLaw | None) -> list[str]:
    o, ci = plan.optimum, plan.ci
    lines = [f"Compute-optimal plan for C = {plan.flops:.3g} FLOPs (C = 6ND)", *_law_lines(plan.law)]
    lines += [
        f"{'N_opt':<15}{_si(o.n)} parameters{_ci(ci, 'n', _si)}",
        f"{'D_opt':<15}{_si(o.d)} tokens{_ci(ci, 'd', _si)}",
        f"{'tokens/param':<15}{o.tokens_per_param:.1f}{_ci(ci, 'tokens_per_param', lambda v: f'{v:.1f}')}",
        f"{'loss':<15}{o.loss:.4f}{_ci(ci, 'loss', lambda v: f'{v:.4f}')}",
    ]
    if fitted is not None and ci is None:
        lines.append(f"{'':<15}{NO_DRAWS_HINT}")
    elif fitted is not None and fitted.samples is not None:
        dropped = f", {fitted.dropped_samples} non-finite dropped" if fitted.dropped_samples else ""
        lines.append(f"{'':<15}(CI: percentiles over {len(fitted.samples)} bootstrap samples{dropped})")
    lines += ["", *_shape_lines(plan.shape, o.n, plan.law, "shape")]
    lines += ["", f"{'training FLOPs':<15}6ND {plan.flops:.3g}"]
    hours = f"GPU-hours at MFU {plan.mfu:g} x {plan.peak_tflops:g} TFLOP/s: 6ND {_sci(plan.gpu_hours(plan.flops))}"
    price = plan.price_per_gpu_hour
    money = f"at ${price:g}/GPU-hour: 6ND ${_sci(plan.gpu_hours(plan.flops) * price)}" if price is not None else ""
    exact = plan.shape.flops_exact
    if exact is not None:
        lines[-1] += f"   exact {exact:.3g}{_ci(ci, 'flops_exact', _sci)} (the shape's counted matmuls x D_opt)"
        hours += f"   exact {_sci(plan.gpu_hours(exact))}{_ci(ci, 'gpu_hours_exact', _sci)}"
        if price is not None:
            money += f"   exact ${_sci(plan.gpu_hours(exact) * price)}{_ci(ci, 'cost_exact', lambda v: '$' + _sci(v))}"
    lines.append(f"{'':<15}{hours}")
    if price is not None:
        lines.append(f"{'cost':<15}{money}")
    if ci is not None and exact is not None:
        lines.append(
            f"{'':<15}(CI: each draw's N_opt, D_opt through the same cost formula, a shape for N_opt x D_opt "
            "/ (MFU x peak); 6ND is C for every draw)"
        )
    if plan.inference is not None:
        lines += ["", *_inference_text(plan.inference, plan.law)]
    return lines


def _inference_text(inf: InferencePlan, law: Law) -> list[str]:
    def row(name: str, n: float, d: float, ratio: float, loss: float, train: float, infer: float, total: float) -> str:
        # One space before each right-aligned column keeps a far tail's long number from running into the next.
        d_per_n = f"{ratio:.1f}" if ratio < 1e6 else f"{ratio:.3g}"
        cells = (f"{_si(n):>8}", f"{_si(d):>8}", f"{d_per_n:>8}", f"{loss:>8.4f}")
        return f"{name:<17}" + "".join(f" {c}" for c in cells) + "".join(f" {x:>10.3g}" for x in (train, infer, total))

    def point(name: str, a: Allocation) -> str:
        return row(name, a.n, a.d, a.tokens_per_param, a.loss, a.flops, 2 * a.n * inf.tokens, inf.total(a))

    def bounds(prefix: str) -> list[str]:
        """The 2.5% and 97.5% ends of each column's interval, as two rows under the point row."""
        assert inf.ci is not None
        keys = ("n", "d", "tokens_per_param", "loss", "flops", "infer_flops", "total_flops")
        return [
            row(label, *(inf.ci[prefix + k][side] for k in keys))
            for side, label in ((0, "  95% CI low"), (1, "  95% CI high"))
        ]

    lines = [
        f"Inference-aware plan for {_si(inf.tokens)} inference tokens (Sardana et al. 2023: train 6ND + infer 2N/token)",
        f"{'':<17}{'N':>9}{'D':>9}{'D/N':>9}{'loss':>9}{'train':>11}{'infer':>11}{'total':>11}",
        point("compute-optimal", inf.chinchilla),
        *(bounds("chinchilla_") if inf.ci else []),
        point("inference-aware", inf.aware),
        *(bounds("") if inf.ci else []),
    ]
    saving = f"{inf.saving:.1%}"
    if inf.ci is not None:
        saving += f" [95% CI {inf.ci['saving'][0]:.1%} .. {inf.ci['saving'][1]:.1%}]"
    lines += [
        f"same loss for {saving} fewer total FLOPs "
        f"({_si(inf.aware.n)} params on {_si(inf.aware.d)} tokens instead of {_si(inf.chinchilla.n)} on "
        f"{_si(inf.chinchilla.d)})",
        *_shape_lines(inf.aware_shape, inf.aware.n, law, "aware shape"),
    ]
    if inf.ci is not None:
        lines.append(
            "(CI rows: each column's own interval; per bootstrap draw, its compute-optimal plan and the inference-aware "
            "optimum at that plan's loss)"
        )
    if not law.optimum_minimises_loss:
        lines.append(
            "note: Kaplan's C^0.73 frontier does not minimise its own L(N, D), so part of this saving "
            "exists even without inference"
        )
    return lines


def _models_text(law: Law, fitted: FittedLaw | None = None) -> list[str]:
    places = place_models(fitted or law)
    lines = [
        f"Reference models on {law.name} (compute-optimal = N within x{OPTIMAL_FACTOR:g} of N_opt at the same C = 6ND)",
        *_law_lines(law),
        f"{'model':<12}{'N':>7}{'D':>7}{'D/N':>7}{'C=6ND':>10}{'loss':>8}{'N_opt(C)':>10}{'N/N_opt':>9}"
        f"{'eff.':>6}  compute-optimal?",
    ]
    for p in places:
        eff = f"{p.efficiency:.2f}" if p.efficiency is not None else "-"
        lines.append(
            f"{p.model.name:<12}{_si(p.model.n):>7}{_si(p.model.d):>7}{p.model.d / p.model.n:>7.1f}{p.flops:>10.3g}"
            f"{p.loss:>8.4f}{_si(p.optimum.n):>10}{p.ratio:>9.2f}{eff:>6}  {p.verdict}"
        )
        if p.ci is not None:
            for side, label in ((0, "  95% low"), (1, "  95% high")):
                lines.append(
                    f"{label:<12}{'':>31}{p.ci['loss'][side]:>8.4f}{_si(p.ci['n_opt'][side]):>10}"
                    f"{p.ci['n_over_n_opt'][side]:>9.2f}{p.ci['efficiency'][side]:>6.2f}"
                )
    if any(p.ci is not None for p in places):
        lines.append(
            f"95% low/high: the 2.5 and 97.5 percentiles of each column on its own, over the fit's "
            f"{len(fitted.samples)} bootstrap draws"  # type: ignore[union-attr,arg-type]
        )
    lines.append(
        "eff. = FLOPs the law's optimal allocation needs to reach the same loss / the model's FLOPs"
        + ("" if law.optimum_minimises_loss else " (not shown: Kaplan's frontier is not optimal under its own L(N,D))")
    )
    return lines


def _vocab_size(given: int | None, fitted: FittedLaw | None, allow_mismatch: bool) -> int:
    """The vocabulary to plan with: a fitted law's loss is per token of the tokenizer it was measured on.

    A different vocabulary changes what a token is, so the fitted L(N, D) does not transfer (Tao et
    al. 2024, "Scaling Laws with Vocabulary"); planning with one needs --allow-vocab-mismatch.
    """
    measured = fitted.measured_on.get("vocab_size") if fitted else None
    if given is None:
        return measured if isinstance(measured, int) else DEFAULT_VOCAB
    if isinstance(measured, int) and given != measured and not allow_mismatch:
        raise ScalingError(
            f"--vocab-size {given} contradicts the fit, whose law was measured with a {measured}-token vocabulary "
            f"({fitted.path if fitted else ''}); omit --vocab-size, or pass --allow-vocab-mismatch"
        )
    return given


def _extrapolation(fitted: FittedLaw, flops: float) -> float | None:
    """How many times the fit's largest C the planned budget is (None for fit files that do not say)."""
    return flops / fitted.max_flops if fitted.max_flops else None


def _fit_lines(fitted: FittedLaw, flops: float) -> list[str]:
    """Where the fitted law comes from and how far the plan leaves it."""
    measured = ", ".join(f"{k} {v}" for k, v in fitted.measured_on.items()) or "not recorded in the fit file"
    lines = ["", f"{'measured on':<15}{measured}"]
    factor = _extrapolation(fitted, flops)
    if factor is None:
        lines.append(f"{'extrapolation':<15}unknown: the fit file does not record its largest C (refit to add it)")
        return lines
    lines.append(f"{'extrapolation':<15}{factor:.3g}x the fit's largest C ({fitted.max_flops:.3g} FLOPs)")
    if factor > EXTRAPOLATION_FLAG:
        lines.append(
            f"FLAG: this plan extrapolates {factor:.3g}x beyond the largest fitted budget (flagged past "
            f"{EXTRAPOLATION_FLAG:g}x); N_opt and D_opt there rest on the exponents alone"
        )
    return lines


def _fit_json(fitted: FittedLaw, flops: float) -> dict[str, Any]:
    factor = _extrapolation(fitted, flops)
    return {
        "path": str(fitted.path),
        "measured_on": fitted.measured_on,
        "max_flops": fitted.max_flops,
        "extrapolation": factor,
        "flagged": factor is not None and factor > EXTRAPOLATION_FLAG,
    }


def _plan_json(plan: Plan) -> dict[str, Any]:
    def alloc(a: Allocation) -> dict[str, float]:
        return {"n": a.n, "d": a.d, "tokens_per_param": a.tokens_per_param, "loss": a.loss, "flops_6nd": a.flops}

    def shape(sp: ShapePlan) -> dict[str, Any]:
        return {
            "shape": sp.shape.as_dict() if sp.shape else None,
            "params": sp.params.as_dict() if sp.params else None,
            "error": sp.error,
            "flops_exact": sp.flops_exact,
        }

    out: dict[str, Any] = {
        "law": plan.law.name,
        "n_count": plan.law.n_count,
        "flops": plan.flops,
        "optimum": alloc(plan.optimum),
        "ci95": plan.ci,
        "n_draws": plan.n_draws,
        **shape(plan.shape),
        "gpu_hours": {
            "six_n": plan.gpu_hours(plan.flops),
            "exact": plan.gpu_hours(plan.shape.flops_exact) if plan.shape.flops_exact else None,
            "mfu": plan.mfu,
            "peak_tflops": plan.peak_tflops,
        },
    }
    if plan.price_per_gpu_hour is not None:
        exact = plan.shape.flops_exact
        out["cost"] = {
            "price_per_gpu_hour": plan.price_per_gpu_hour,
            "six_n": plan.cost(plan.flops),
            "exact": plan.cost(exact) if exact else None,
        }
    if plan.inference:
        inf = plan.inference
        out["inference"] = {
            "tokens": inf.tokens,
            "chinchilla": alloc(inf.chinchilla),
            "aware": alloc(inf.aware),
            "saving": inf.saving,
            "aware_shape": shape(inf.aware_shape),
            "ci95": inf.ci,
        }
    return out


def _models_json(law: Law, fitted: FittedLaw | None = None) -> list[dict[str, Any]]:
    return [
        {
            "model": p.model.name,
            "n": p.model.n,
            "d": p.model.d,
            "tokens_per_param": p.model.d / p.model.n,
            "flops_6nd": p.flops,
            "loss": p.loss,
            "n_opt": p.optimum.n,
            "n_over_n_opt": p.ratio,
            "efficiency": p.efficiency,
            "compute_optimal": p.verdict == "yes",
            "verdict": p.verdict,
            **({"ci95": p.ci} if p.ci is not None else {}),
        }
        for p in place_models(fitted or law)
    ]


def run(args: argparse.Namespace) -> int:
    flops = _number(args.flops, "--flops")
    unique = _number(args.unique_tokens, "--unique-tokens")
    if unique is not None:
        return _run_data_constrained(args, flops, unique)
    if flops is None and not args.models:
        raise ScalingError("give --flops C (e.g. --flops 1e21) or --models")
    fitted: FittedLaw | None = load_fit(args.fit, selected=True) if args.fit else None
    law: Law = fitted.law if fitted else get_law(args.law or DEFAULT_LAW)
    vocab_size = _vocab_size(args.vocab_size, fitted, args.allow_vocab_mismatch)
    if vocab_size <= 0 or args.context <= 0:
        raise ScalingError(f"--vocab-size and --context must be positive, got {vocab_size} and {args.context}")
    if args.family not in FAMILIES:
        raise ScalingError(f"unknown model family {args.family!r}; known: {', '.join(FAMILIES)}")
    plan = None
    if flops is not None:
        plan = make_plan(
            fitted or law,
            flops,
            family=args.family,
            vocab_size=vocab_size,
            context=args.context,
            tie_embeddings=args.tie_embeddings,
            inference_tokens=_number(args.inference_tokens, "--inference-tokens"),
            mfu=_number(args.mfu, "--mfu"),  # type: ignore[arg-type]
            peak_tflops=_number(args.peak_tflops, "--peak-tflops"),  # type: ignore[arg-type]
            price_per_gpu_hour=_number(args.price_per_gpu_hour, "--price-per-gpu-hour"),
        )
    if args.json:
        out: dict[str, Any] = {}
        if plan is not None:
            out["plan"] = _plan_json(plan)
            if fitted is not None:
                out["plan"]["fit"] = _fit_json(fitted, plan.flops)
        if args.models:
            out["models"] = _models_json(law, fitted)
        print(json.dumps(out, indent=2))
        return 0
    blocks = []
    if plan is not None:
        blocks.append(_plan_text(plan, fitted) + (_fit_lines(fitted, plan.flops) if fitted else []))
    if args.models:
        blocks.append(_models_text(law, fitted))
    print("\n\n".join("\n".join(b) for b in blocks))
    return 0


def _run_data_constrained(args: argparse.Namespace, flops: float | None, unique: float) -> int:
    """``--unique-tokens U``: the data-constrained plan (scaling.plan.data_constrained)."""
    from scaling.plan.data_constrained import make_data_constrained_plan, plan_json, plan_text

    if flops is None:
        raise ScalingError("--unique-tokens needs a budget: give --flops C")
    plan = make_data_constrained_plan(args.law, args.fit, flops, unique)
    print(
        json.dumps({"data_constrained_plan": plan_json(plan)}, indent=2)
        if args.json
        else "\n".join(plan_text(plan, _si))
    )
    return 0
