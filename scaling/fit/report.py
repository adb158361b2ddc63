"""What ``scaling fit`` prints and writes: one readable table per law, a FLAGS section, and JSON.

Numbers are printed with 5 significant digits so the table can be compared with a
paper's to 4. Every fit problem (a parameter on a bound, no convergence, as many
points as parameters, an extrapolated isoFLOP minimum) lands in FLAGS and in the
``warnings`` list of its law in the JSON: a doubtful number is never reported silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.fit.approach1 import Envelope, OptimalScaling, optimal_as_dict
from scaling.fit.approach2 import Approach2Result
from scaling.fit.holdout import HoldoutReport
from scaling.fit.kaplan import KaplanResults
from scaling.fit.learning_curve import LearningCurveReport
from scaling.fit.points import FitPoints
from scaling.intervals import bootstrap_se, percentile_ci
from scaling.laws import CHINCHILLA_PARAMS, ChinchillaLaw

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


@dataclass
class FitResults:
    """Everything ``scaling fit`` computed; laws the data could not support are ``None`` with a note."""

    points: FitPoints
    options: dict[str, Any]
    at_flops: float
    approach3: Any = None
    approach3_boot: Any = None
    kaplan: KaplanResults | None = None
    envelope: Envelope | None = None
    approach1: OptimalScaling | None = None
    approach2: Approach2Result | None = None
    learning: LearningCurveReport | None = None
    holdout: HoldoutReport | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, law: str, text: str) -> None:
        self.notes.setdefault(law, []).append(text)

    # ------------------------------------------------------------------ Approach 3 derived numbers

    def approach3_draws(self, grid: bool = False) -> ChinchillaLaw | None:
        """The bootstrap laws as one vectorised law (parameters of shape (K,), or (K, 1) with ``grid``
        to evaluate on a grid of budgets), or None without a bootstrap."""
        if self.approach3_boot is None:
            return None
        samples = np.asarray(self.approach3_boot.samples, dtype=float)
        return ChinchillaLaw.from_rows(samples[:, None, :] if grid else samples)

    def approach3_derived(self) -> dict[str, Any]:
        """a, b, G and the optimum at the reporting budget, with percentile CIs over the bootstrap rows."""
        f = self.approach3
        opt = f.compute_optimal(self.at_flops)
        out: dict[str, Any] = {
            "a": float(f.a),
            "b": float(f.b),
            "G": float(f.G),
            "at_flops": self.at_flops,
            "N_opt": float(opt.n),
            "D_opt": float(opt.d),
            "loss_opt": float(opt.loss),
        }
        draws = self.approach3_draws()
        if draws is not None:
            at = draws.compute_optimal(self.at_flops)
            for key, col in (("N_opt", at.n), ("D_opt", at.d), ("loss_opt", at.loss)):
                out.setdefault("ci95", {})[key] = percentile_ci(col)
                out.setdefault("se", {})[key] = bootstrap_se(col)
        return out

    # ------------------------------------------------------------------ flags

    def flags(self) -> list[str]:
        """Every warning of every law, in report order, without duplicates."""
        out: list[str] = []
        if self.approach3 is not None:
            # The fitter words its own flags: bound hit, no convergence, best start on the grid's edge,
            # too few points for five parameters.
            out += [f"Approach 3: {w}" for w in self.approach3.warnings]
            if self.approach3_boot is not None and self.approach3.n_points <= len(CHINCHILLA_PARAMS):
                out.append(
                    "Approach 3: as many points as parameters, so every resample is fitted exactly: "
                    "the bootstrap CIs have no width and mean nothing"
                )
        if self.kaplan is not None:
            out += [f"Kaplan {w}" for w in self.kaplan.warnings]
            j = self.kaplan.joint
            if self.kaplan.ci95 and j is not None and j.n_points <= j.n_params:
                out.append("Kaplan L(N,D): as many points as parameters: its bootstrap CIs mean nothing")
        if self.approach1 is not None:
            out += self.approach1.warnings
        if self.approach2 is not None:
            out += self.approach2.warnings
        if self.learning is not None:
            out += self.learning.warnings
        if self.holdout is not None:
            out += self.holdout.warnings
        seen: set[str] = set()
        return [w for w in out if not (w in seen or seen.add(w))]  # type: ignore[func-returns-value]

    # ------------------------------------------------------------------ JSON

    def as_json(self) -> dict[str, Any]:
        p = self.points
        out: dict[str, Any] = {
            "input": {
                "path": p.source,
                "kind": p.kind,
                "params": p.params,
                "flops": p.flops,
                "N_from": p.n_from,
                "C_from": p.c_from,
                "D_from": "tokens" if p.kind == "records" else ("C/(6N)" if p.kind == "epoch" else "D"),
                "n_runs": len(p),
                "n_curve_points": int(sum(len(c) for c in p.curves if c is not None)),
                "skipped": dict(p.skipped),
                "notes": list(p.notes),
            },
            "options": dict(self.options),
            # Top level too: `scaling plan --fit` reads which parameter count N was.
            "params": p.params,
            "flops": p.flops,
            "at_flops": self.at_flops,
        }
        out["approach3"] = self._approach3_json()
        out["kaplan"] = self.kaplan.as_dict() if self.kaplan is not None else None
        out["approach1"] = (
            optimal_as_dict(self.approach1, self.at_flops, {"envelope_mode": self.envelope.mode})
            if self.approach1 is not None and self.envelope is not None
            else None
        )
        if out["approach1"] is not None:
            a1 = self.approach1
            assert a1 is not None
            out["approach1"]["points"] = [
                {"C": float(c), "N_opt": float(n), "D_opt": float(d)}
                for c, n, d in zip(a1.c, a1.n_opt, a1.d_opt, strict=True)
            ]
        if self.approach2 is not None:
            a2 = self.approach2
            base = optimal_as_dict(a2.fit, self.at_flops, {"grouping": a2.grouping}) if a2.fit else {}
            base["budgets"] = [b.as_dict() for b in a2.budgets]
            base["notes"] = list(a2.notes) + base.get("notes", [])
            base["warnings"] = a2.warnings
            out["approach2"] = base
        else:
            out["approach2"] = None
        out["learning_curve"] = self.learning.as_dict() if self.learning is not None else None
        out["holdout"] = self.holdout.as_dict() if self.holdout is not None else None
        for law, texts in self.notes.items():
            if isinstance(out.get(law), dict):
                out[law]["notes"] = list(texts) + list(out[law].get("notes", []))
            else:
                out[law] = {"not_fitted": True, "notes": list(texts)}
        out["flags"] = self.flags()
        return out

    def _approach3_json(self) -> dict[str, Any] | None:
        f = self.approach3
        if f is None:
            return None
        out = dict(f.as_dict())
        derived = self.approach3_derived()
        ci_derived = derived.pop("ci95", {})
        se_derived = derived.pop("se", {})
        out.update({k: float(getattr(f, k)) for k in CHINCHILLA_PARAMS})
        out.update(derived)
        out.update(
            grad_norm=float(f.grad_norm),
            best_start_on_edge=bool(f.best_start_on_edge),
            converged=bool(f.converged),
            n_points=int(f.n_points),
            form="L(N,D) = E + A/N^alpha + B/D^beta",
            optimum_convention="N_opt, D_opt at C = 6*N*D (Hoffmann et al. 2022, eq. 4)",
        )
        out["warnings"] = [w for w in self.flags() if w.startswith("Approach 3:")]
        boot = self.approach3_boot
        if boot is not None:
            out["n_boot"] = int(np.asarray(boot.samples).shape[0])
            out["se"] = {k: float(v) for k, v in boot.se.items()} | se_derived
            out["ci95"] = {k: [float(v[0]), float(v[1])] for k, v in boot.ci95.items()}
            out["ci95"].update({k: list(v) for k, v in ci_derived.items()})
            out["samples_columns"] = list(CHINCHILLA_PARAMS)
            out["samples"] = np.asarray(boot.samples, dtype=float).tolist()
        return out

    # ------------------------------------------------------------------ terminal

    def render(self) -> str:
        lines: list[str] = []
        p = self.points
        skipped = ", ".join(f"{v} {k}" for k, v in sorted(p.skipped.items()))
        lines.append(f"scaling fit {p.source}")
        lines.append(
            f"  {len(p)} run(s) fitted ({p.kind})"
            + (f"; skipped {skipped}" if skipped else "")
            + f"; N = {p.n_from}, C = {p.c_from}"
        )
        lines.append(f"  reporting budget C* = {fmt(self.at_flops)} FLOPs ({self.options.get('at_flops_source', '')})")
        lines += [f"  note: {n}" for n in p.notes]
        lines.append("")
        lines += self._render_approach3()
        lines += self._render_kaplan()
        env = self.envelope
        lines += self._render_optimal(
            "Approach 1 (Hoffmann et al. 2022, envelope of loss vs FLOPs)",
            self.approach1,
            [f"envelope from {env.mode}: {len(env)} frontier point(s)"] if env is not None else [],
        )
        lines += self._render_approach2()
        lines += self._render_learning()
        lines += self._render_holdout()
        flags = self.flags()
        lines.append("FLAGS" + ("" if flags else ": none"))
        lines += [f"  ! {w}" for w in flags]
        extra = [(law, t) for law, texts in self.notes.items() for t in texts]
        if extra:
            lines.append("NOTES")
            lines += [f"  - {law}: {t}" for law, t in extra]
        return "\n".join(lines)

    def _render_approach3(self) -> list[str]:
        title = "Approach 3 (Hoffmann et al. 2022): L(N,D) = E + A/N^alpha + B/D^beta"
        if self.approach3 is None:
            return [title, "  not fitted (see NOTES)", ""]
        f, boot = self.approach3, self.approach3_boot
        d = self.approach3_derived()
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
        )
        lines.append("")
        return lines

    def _render_kaplan(self) -> list[str]:
        k = self.kaplan
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
        lines += [f"  note: {n}" for n in k.notes]
        lines.append("")
        return lines

    def _render_optimal(self, title: str, fit: OptimalScaling | None, extra: list[str] | None = None) -> list[str]:
        if fit is None:
            return [title, "  not fitted (see NOTES)", ""]
        rows = []
        for key, label, value, rmse in (
            ("a", "a  (N_opt ∝ C^a)", fit.a, fit.rmse_log_n),
            ("b", "b  (D_opt ∝ C^b)", fit.b, fit.rmse_log_d),
            ("N_opt", "N_opt(C*)", float(fit.n_at(self.at_flops)), None),
            ("D_opt", "D_opt(C*)", float(fit.d_at(self.at_flops)), None),
        ):
            row = [label, fmt(value), fmt(rmse) if rmse is not None else ""]
            if fit.ci95:
                row.append(fmt_ci(fit.ci95.get(key)))
            rows.append(row)
        header = ["quantity", "value", "rmse(log)"] + (["95% CI"] if fit.ci95 else [])
        lines = [title, *table(header, rows)]
        if fit.ci95:
            lines.append(f"  CIs from {fit.n_boot} bootstrap resamples of runs")
        lines += [f"  note: {n}" for n in [*(extra or []), *fit.notes]]
        lines.append("")
        return lines

    def _render_approach2(self) -> list[str]:
        r = self.approach2
        title = "Approach 2 (Hoffmann et al. 2022, isoFLOP parabolas of loss vs log N)"
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
            sub = self._render_optimal("", r.fit)
            lines += sub[1:-1]
        lines += [f"  note: {n}" for n in r.notes]
        lines.append("")
        return lines

    def _render_learning(self) -> list[str]:
        r = self.learning
        if r is None:
            return []
        title = "Learning curves: L(t) = L_inf + (t_c/t)^alpha_t per run (t = tokens)"
        lines = [title]
        if not r.runs:
            lines += [f"  note: {n}" for n in r.notes] + [""]
            return lines
        shown = sorted(r.runs, key=lambda c: (c.n, c.t_final))
        if len(shown) > MAX_CURVE_ROWS:  # every run is in the JSON; the terminal gets an even sample by N
            pick = np.unique(np.linspace(0, len(shown) - 1, MAX_CURVE_ROWS).round().astype(int))
            shown = [shown[i] for i in pick]
        rows = [
            [
                c.run_id,
                fmt(c.n),
                fmt(c.full.e),
                fmt(c.full.x_c),
                fmt(c.full.alpha),
                fmt(c.predicted),
                fmt(c.actual),
                f"{100 * c.rel_error:+.3f}%" if math.isfinite(c.rel_error) else "-",
            ]
            for c in shown
        ]
        lines += table(["run", "N", "L_inf", "t_c", "alpha_t", "pred final", "final", "error"], rows)
        if len(shown) < len(r.runs):
            lines.append(f"  ({len(shown)} of {len(r.runs)} runs shown, spread over N; all are in the --json output)")
        s = r.summary()
        if s:
            lines.append(
                f"  final loss predicted from the first {r.fraction:.0%} of each curve: "
                f"median |error| {100 * s['median_abs_rel_error']:.3f}%, mean error {100 * s['mean_rel_error']:+.3f}%, "
                f"max |error| {100 * s['max_abs_rel_error']:.3f}% over {s['n_runs']} run(s)"
            )
        lines += [f"  note: {n}" for n in r.notes]
        lines.append("")
        return lines

    def _render_holdout(self) -> list[str]:
        h = self.holdout
        if h is None:
            return []
        lines = [
            f"Hold-out: fitted on {h.n_train} run(s) with C < {fmt(h.threshold)}, "
            f"predicting {len(h.rows)} run(s) at or above it"
        ]
        rows = [
            [
                r.run_id,
                fmt(r.n),
                fmt(r.d),
                fmt(r.c),
                fmt(r.actual),
                fmt(r.pred_approach3),
                f"{100 * r.err_approach3:+.3f}%",
                fmt(r.pred_kaplan),
                f"{100 * r.err_kaplan:+.3f}%" if math.isfinite(r.err_kaplan) else "-",
            ]
            for r in h.rows
        ]
        lines += table(["run", "N", "D", "C", "loss", "Approach 3", "error", "Kaplan joint", "error"], rows)
        for key, label in (("approach3", "Approach 3"), ("kaplan", "Kaplan joint")):
            s = h.summary(key)
            if s:
                lines.append(
                    f"  {label}: mean |error| {100 * s['mean_abs_rel_error']:.3f}%, "
                    f"max |error| {100 * s['max_abs_rel_error']:.3f}%"
                )
        lines.append("")
        return lines
