"""What ``scaling fit`` computed, as one results object, and its JSON (``scaling fit --json``).

Every fit problem (a parameter on a bound, no convergence, as many points as parameters, an
extrapolated isoFLOP minimum) lands in :meth:`FitResults.flags` and in the ``warnings`` list of its
law in the JSON: a doubtful number is never reported silently. :mod:`scaling.fit.render` prints the
same results for the terminal; the law maths (Approach 3's optimum and its bootstrap draws) is
:mod:`scaling.laws`, the intervals :mod:`scaling.intervals`.
"""

from __future__ import annotations

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
    forms: Any = None  # scaling.fit.selection.FormsReport: every fitted form, the ranking, selected_form
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
        if self.forms is not None:
            out += [w for name, fit in self.forms.fits.items() if name != "chinchilla" for w in fit.warnings]
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
                "max_C": float(p.c.max()),  # how far `scaling plan --fit` extrapolates is counted from here
                "measured_on": dict(p.measured_on),
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
            base["isoflop_estimator"] = a2.estimator
            base["weighted_power_law"] = a2.weighted
            base["a_by_estimator"] = {k: e.as_dict() for k, e in a2.estimators.items()}
            base["notes"] = list(a2.notes) + base.get("notes", [])
            base["warnings"] = a2.warnings
            out["approach2"] = base
        else:
            out["approach2"] = None
        out["learning_curve"] = self.learning.as_dict() if self.learning is not None else None
        out["holdout"] = self.holdout.as_dict() if self.holdout is not None else None
        if self.forms is not None:
            out.update(self.forms.as_json())
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
