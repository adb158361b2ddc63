"""What ``scaling fit`` prints: one readable table per law, then a FLAGS and a NOTES section.

Numbers are printed with 5 significant digits so the table can be compared with a paper's to 4.
The numbers themselves come from :class:`scaling.fit.results.FitResults` (the same object the JSON
is written from), so the terminal and ``--json`` cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scaling.fit.approach1 import OptimalScaling
from scaling.fit.results import FitResults
from scaling.laws import CHINCHILLA_PARAMS

MAX_CURVE_ROWS = 10


def fmt(x: Any) -> str:
    """5 significant digits; '-' for missing values."""
    if x is None:
        return "-"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "-" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.5g}"


def fmt_ci(ci: tuple[float, float] | list[float] | None) -> str:
    if ci is None:
        return ""
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def fmt_pct(rel: float) -> str:
    """A relative error as a signed percentage with 3 decimals; '-' when it is not finite."""
    return f"{100 * rel:+.3f}%" if math.isfinite(rel) else "-"


def _closing(notes: list[str]) -> list[str]:
    """A section's notes, then the blank line that separates it from the next section."""
    return [*(f"  note: {n}" for n in notes), ""]


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Left-aligned first column, right-aligned numbers, columns sized to their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for j, r in enumerate([header, *rows]):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)]
        out.append(indent + "  ".join(cells).rstrip())
        if j == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def render(res: FitResults) -> str:
    """The terminal report: one table per law, then FLAGS and NOTES."""
    lines: list[str] = []
    p = res.points
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(p.skipped.items()))
    lines.append(f"scaling fit {p.source}")
    lines.append(
        f"  {len(p)} run(s) fitted ({p.kind})"
        + (f"; skipped {skipped}" if skipped else "")
        + f"; N = {p.n_from}, C = {p.c_from}"
    )
    lines.append(f"  reporting budget C* = {fmt(res.at_flops)} FLOPs ({res.options.get('at_flops_source', '')})")
    lines += _closing(p.notes)
    lines += _approach3(res)
    lines += _kaplan(res)
    env = res.envelope
    lines += _optimal(
        res,
        "Approach 1 (Hoffmann et al. 2022, envelope of loss vs FLOPs)",
        res.approach1,
        [f"envelope from {env.mode}: {len(env)} frontier point(s)"] if env is not None else [],
    )
    lines += _approach2(res)
    lines += _learning(res)
    lines += _holdout(res)
    if res.forms is not None and (len(res.forms.fits) > 1 or res.forms.ranking is not None):
        lines += res.forms.render()
    flags = res.flags()
    lines.append("FLAGS" + ("" if flags else ": none"))
    lines += [f"  ! {w}" for w in flags]
    extra = [(law, t) for law, texts in res.notes.items() for t in texts]
    if extra:
        lines.append("NOTES")
        lines += [f"  - {law}: {t}" for law, t in extra]
    return "\n".join(lines)


def _approach3(res: FitResults) -> list[str]:
    title = "Approach 3 (Hoffmann et al. 2022): L(N,D) = E + A/N^alpha + B/D^beta"
    if res.approach3 is None:
        return [title, "  not fitted (see NOTES)", ""]
    f, boot = res.approach3, res.approach3_boot
    d = res.approach3_derived()
    ci_d, se_d = d.get("ci95", {}), d.get("se", {})
    header = ["parameter", "value"] + (["se", "95% CI"] if boot is not None else [])
    rows = []
    names = [*CHINCHILLA_PARAMS, "a", "b", "G"]
    for k in names:
        v = getattr(f, k)
        row = [k, fmt(v)]
        if boot is not None:
            row += [fmt(boot.se.get(k)), fmt_ci(boot.ci95.get(k))]
        rows.append(row)
    for k, label in (("N_opt", "N_opt(C*)"), ("D_opt", "D_opt(C*)"), ("loss_opt", "L_opt(C*)")):
        row = [label, fmt(d[k])]
        if boot is not None:
            row += [fmt(se_d.get(k)), fmt_ci(ci_d.get(k))]
        rows.append(row)
    lines = [title + f"   [{f.n_points} points]"]
    lines += table(header, rows)
    lines.append(
        f"  a = beta/(alpha+beta), b = alpha/(alpha+beta); N_opt, D_opt at C = 6ND. "
        f"grad_norm {fmt(f.grad_norm)}, converged {fmt(bool(f.converged))}, "
        f"best start on grid edge {fmt(bool(f.best_start_on_edge))}"
        + (f", {np.asarray(boot.samples).shape[0]} bootstrap resamples of runs" if boot is not None else "")
        + (
            f" (drawn as {boot.n_groups} training runs: WSD branch records travel with their run)"
            if boot is not None and boot.n_groups < f.n_points
            else ""
        )
    )
    lines.append("")
    return lines


def _kaplan(res: FitResults) -> list[str]:
    k = res.kaplan
    if k is None:
        return []
    lines = [f"Kaplan et al. 2020 ({k.form})"]
    header = ["law", "exponent", "value", "scale", "value", "E", "points", "rmse(log)"]
    ci = k.ci95
    if ci:
        header.insert(3, "95% CI")
    rows = []
    for fit, v in ((k.l_n, "N"), (k.l_d, "D"), (k.l_c, "C")):
        if fit is None:
            continue
        row = [
            fit.law + ("" if v != "C" else ""),
            f"alpha_{v}",
            fmt(fit.alpha),
            f"{v}_c",
            fmt(fit.x_c),
            fmt(fit.e) if k.irreducible else "-",
            fmt(fit.n_points),
            fmt(fit.rmse_log),
        ]
        if ci:
            row.insert(3, fmt_ci(ci.get(f"alpha_{v}")))
        rows.append(row)
    if k.joint is not None:
        j = k.joint
        rows.append(
            ["L(N,D) joint", "alpha_N", fmt(j.alpha_n)]
            + ([fmt_ci(ci.get("joint_alpha_N"))] if ci else [])
            + [
                "N_c",
                fmt(math.exp(j.log_n_c)),
                fmt(j.e) if k.irreducible else "-",
                fmt(j.n_points),
                fmt(j.rmse_log),
            ]
        )
        rows.append(
            ["", "alpha_D", fmt(j.alpha_d)]
            + ([fmt_ci(ci.get("joint_alpha_D"))] if ci else [])
            + ["D_c", fmt(math.exp(j.log_d_c)), "", "", ""]
        )
    if rows:
        lines += table(header, rows)
        if k.joint is not None:
            lines.append(f"  joint law: {k.joint.form}")
        if ci:
            lines.append(f"  CIs from {k.n_boot} bootstrap resamples of runs")
    else:
        lines.append("  no Kaplan law could be fitted (see NOTES)")
    return lines + _closing(k.notes)


def _optimal(res: FitResults, title: str, fit: OptimalScaling | None, extra: list[str] | None = None) -> list[str]:
    if fit is None:
        return [title, "  not fitted (see NOTES)", ""]
    rows = []
    for key, label, value, rmse in (
        ("a", "a  (N_opt ∝ C^a)", fit.a, fit.rmse_log_n),
        ("b", "b  (D_opt ∝ C^b)", fit.b, fit.rmse_log_d),
        ("N_opt", "N_opt(C*)", float(fit.n_at(res.at_flops)), None),
        ("D_opt", "D_opt(C*)", float(fit.d_at(res.at_flops)), None),
    ):
        row = [label, fmt(value), fmt(rmse) if rmse is not None else ""]
        if fit.ci95:
            row.append(fmt_ci(fit.ci95.get(key)))
        rows.append(row)
    header = ["quantity", "value", "rmse(log)"] + (["95% CI"] if fit.ci95 else [])
    lines = [title, *table(header, rows)]
    if fit.ci95:
        lines.append(f"  CIs from {fit.n_boot} bootstrap resamples of runs")
    return lines + _closing([*(extra or []), *fit.notes])


def _approach2(res: FitResults) -> list[str]:
    r = res.approach2
    title = "Approach 2 (Hoffmann et al. 2022, isoFLOP parabolas of loss vs log N)"
    if r is not None and r.estimator != "parabola":
        title = f"Approach 2 (Hoffmann et al. 2022; isoFLOP minima by {r.estimator}, Porian et al. 2024)"
    if r is None:
        return [title, "  not fitted (see NOTES)", ""]
    rows = [
        [
            fmt(b.budget),
            fmt(b.n_points),
            f"{fmt(b.n_range[0])}..{fmt(b.n_range[1])}",
            fmt(b.n_opt),
            fmt(b.d_opt),
            fmt(b.loss_min),
            "yes" if b.used else "NO",
        ]
        for b in r.budgets
    ]
    lines = [title]
    if rows:
        lines += table(["budget C", "points", "N range", "N_opt", "D_opt", "L_min", "used"], rows)
    if r.fit is not None:
        sub = _optimal(res, "", r.fit)
        lines += sub[1:-1]
    if r.estimators:
        lines.append("  a by isoFLOP estimator (95% CI: bootstrap of each budget's points):")
        rows = [
            [
                name + (" *" if name == r.estimator else ""),
                fmt(e.n_used),
                fmt(e.a_unweighted),
                fmt(e.a_weighted),
                fmt_ci(e.ci95_a),
            ]
            for name, e in r.estimators.items()
        ]
        lines += table(["estimator", "budgets", "a (OLS)", "a (1/var weights)", "95% CI"], rows, indent="    ")
        lines.append(f"    * chosen (--isoflop-estimator); its power law is {'weighted' if r.weighted else 'OLS'}")
    return lines + _closing(r.notes)


def _learning(res: FitResults) -> list[str]:
    r = res.learning
    if r is None:
        return []
    lines = [f"Learning curves ({r.law} law): {r.form} per run"]
    if r.law == "annealing":
        lines.append(
            "  (Tissue et al. 2024: S1 = forward area, S2 = annealing area of the learning rates, in units of the peak)"
        )
        if r.shared:
            lines.append(
                f"  shared by all {r.shared['n_runs']} runs' whole curves: alpha = {fmt(r.shared['alpha'])}, "
                f"B = {fmt(r.shared['B'])}; each prediction uses (alpha, B) refitted without its training run"
            )
    else:
        lines.append("  (t = tokens)")
    if not r.runs:
        return lines + _closing(r.notes)
    shown = sorted(r.runs, key=lambda c: (c.n, c.t_final))
    if len(shown) > MAX_CURVE_ROWS:  # every run is in the JSON; the terminal gets an even sample by N
        pick = np.unique(np.linspace(0, len(shown) - 1, MAX_CURVE_ROWS).round().astype(int))
        shown = [shown[i] for i in pick]
    for law in ("annealing", "power"):  # runs without a schedule fall back to the power law
        of_law = [c for c in shown if c.law == law]
        if not of_law:
            continue
        names = list(of_law[0].parameters)
        if law == "annealing":
            names = ["L0", "A"]  # alpha and B are shared (above)
        rows = [
            [c.run_id, *map(fmt, (c.n, *(c.parameters[k] for k in names), c.predicted, c.actual)), fmt_pct(c.rel_error)]
            for c in of_law
        ]
        if law == "power" and r.law == "annealing":
            lines.append("  power law L(t) = L_inf + (t_c/t)^alpha_t for runs without a schedule:")
        lines += table(["run", "N", *names, "pred final", "final", "error"], rows)
    if len(shown) < len(r.runs):
        lines.append(f"  ({len(shown)} of {len(r.runs)} runs shown, spread over N; all are in the --json output)")
    s = r.summary()
    if s:
        lines.append(
            f"  final loss predicted from the eval points at tokens <= {r.fraction:g} x each run's tokens: "
            f"median |error| {100 * s['median_abs_rel_error']:.3f}%, mean error {100 * s['mean_rel_error']:+.3f}%, "
            f"max |error| {100 * s['max_abs_rel_error']:.3f}% over {s['n_runs']} run(s)"
        )
    return lines + _closing(r.notes)


def _holdout(res: FitResults) -> list[str]:
    h = res.holdout
    if h is None:
        return []
    lines = [
        f"Hold-out: fitted on {h.n_train} run(s) with C < {fmt(h.threshold)}, "
        f"predicting {len(h.rows)} run(s) at or above it"
    ]
    rows = [
        [r.run_id, *map(fmt, (r.n, r.d, r.c, r.actual, r.pred_approach3)), fmt_pct(r.err_approach3)]
        + [fmt(r.pred_kaplan), fmt_pct(r.err_kaplan)]
        for r in h.rows
    ]
    lines += table(["run", "N", "D", "C", "loss", "Approach 3", "error", "Kaplan joint", "error"], rows)
    for key, label in (("approach3", "Approach 3"), ("kaplan", "Kaplan joint")):
        s = h.summary(key)
        if s:
            best = f", best run {fmt_pct(s['best_run_rel_error'])}" if "best_run_rel_error" in s else ""
            lines.append(
                f"  {label}: mean |error| {100 * s['mean_abs_rel_error']:.3f}%, "
                f"max |error| {100 * s['max_abs_rel_error']:.3f}%{best}"
            )
    lines.append("")
    return lines
