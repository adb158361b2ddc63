"""Choose a functional form by what it predicts: leave-largest-out cross-validation (issue 16, item 2).

A law earns trust by predicting runs larger than those it was fitted on, so every candidate -- a form of
:data:`scaling.laws.FORMS` with an :class:`scaling.fit.forms.Objective` -- is refitted on all runs but the
largest and scored by its mean |relative error| on the runs left out:

* ``by="budget"``: hold out the top compute budget (runs grouped as Approach 2 groups them: budget tags,
  else C within a tolerance);
* ``by="size"``: hold out every run of the top ``sizes`` model sizes (1 or 2).

The ranking lists every candidate, best first; one the training runs cannot support is listed with the
reason instead of a number. Candidates whose held-out errors differ by less than :data:`TIE` are a tie,
said in a note; the first listed (the simpler, default one) is then kept. ``--select`` refits the winner
on all runs (:func:`scaling.fit.forms.fit_form`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.forms import DEFAULT_OBJECTIVE, Objective, describe, fit_form
from scaling.fit.points import group_by_log
from scaling.laws import FORMS

HOLDOUT_BY = ("budget", "size")
#: Held-out mean |relative errors| closer than this (0.01 percentage points) are a tie.
TIE = 1e-4
#: Model sizes within this relative tolerance are one size.
SIZE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Candidate:
    """One form fitted with one objective."""

    form: str
    objective: Objective = DEFAULT_OBJECTIVE
    #: False for the item-3 objective variants: ranked and printed, never selected. On Gadre et al.'s ladder
    #: the variant that wins leave-largest-out within the small runs is among the worst on the big runs
    #: (results/extrapolation/ladder.md), while the ranking of forms transfers.
    selectable: bool = True

    @property
    def label(self) -> str:
        return self.form if self.objective == DEFAULT_OBJECTIVE else f"{self.form} [{self.objective.label}]"


@dataclass(frozen=True)
class Split:
    """Which runs train and which test, and how that was decided (for the table's heading)."""

    train: np.ndarray  # bool mask
    test: np.ndarray  # bool mask
    description: str


def leave_largest_out(
    n: np.ndarray, c: np.ndarray, budget_labels: np.ndarray, *, by: str = "budget", sizes: int = 1
) -> Split:
    """Hold out the top budget (``budget_labels``: one integer label per run) or the top ``sizes`` sizes."""
    if by not in HOLDOUT_BY:
        raise ScalingError(f"--holdout-by must be one of {', '.join(HOLDOUT_BY)}, got {by!r}")
    n, c = np.asarray(n, dtype=float), np.asarray(c, dtype=float)
    if by == "budget":
        labels = np.asarray(budget_labels).ravel()
        distinct = np.unique(labels)
        if distinct.size < 2:
            raise ScalingError(
                f"held-out ranking needs at least 2 compute budgets to hold the largest out, found {distinct.size}"
            )
        values = {g: float(np.exp(np.mean(np.log(c[labels == g])))) for g in distinct}
        top = max(values, key=lambda g: values[g])
        test = labels == top
        text = f"the {int(test.sum())} run(s) of the largest budget (C ~ {values[top]:.3g})"
    else:
        if sizes not in (1, 2):
            raise ScalingError(f"--holdout-sizes must be 1 or 2, got {sizes}")
        labels = group_by_log(n, SIZE_TOLERANCE)
        distinct = np.unique(labels)
        if distinct.size < sizes + 2:
            raise ScalingError(
                f"held-out ranking by size needs at least {sizes + 2} model sizes to hold {sizes} out, found {distinct.size}"
            )
        test = labels > labels.max() - sizes
        text = f"the {int(test.sum())} run(s) of the largest {sizes} size(s) (N >= {n[test].min():.3g})"
    return Split(~test, test, text)


@dataclass
class RankRow:
    candidate: Candidate
    mean_abs: float = math.nan
    max_abs: float = math.nan
    mean_signed: float = math.nan
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "form": self.candidate.form,
            "objective": describe(self.candidate.form, self.candidate.objective),
        }
        if math.isfinite(self.mean_abs):
            out.update(
                mean_abs_rel_error=self.mean_abs, max_abs_rel_error=self.max_abs, mean_rel_error=self.mean_signed
            )
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Ranking:
    """Every candidate's held-out error, best first, with the split and any notes."""

    split: Split
    rows: list[RankRow]
    n_train: int
    n_test: int
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> RankRow | None:
        """The selectable candidate with the lowest held-out error (None when none could be scored)."""
        return next((r for r in self.rows if r.candidate.selectable and math.isfinite(r.mean_abs)), None)

    @property
    def best_overall(self) -> RankRow | None:
        """The lowest held-out error of any candidate, objective variants included."""
        return self.rows[0] if self.rows and math.isfinite(self.rows[0].mean_abs) else None

    def best_of(self, form: str) -> RankRow | None:
        """The best-ranked candidate of one form (its JSON ``heldout``)."""
        return next((r for r in self.rows if r.candidate.form == form and math.isfinite(r.mean_abs)), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "heldout": self.split.description,
            "n_train": self.n_train,
            "n_heldout": self.n_test,
            "rows": [r.as_dict() for r in self.rows],
            "selected": self.best.candidate.label if self.best else None,
            "notes": list(self.notes),
        }

    def render(self) -> list[str]:
        lines = [
            f"HELD-OUT RANKING (fit on {self.n_train} runs, predict {self.split.description})",
            f"  {'rank':<5}{'form':<18}{'objective':<50}{'mean |err|':>11}{'max |err|':>11}",
        ]
        for i, row in enumerate(self.rows, 1):
            nums = f"{row.mean_abs:>10.2%} {row.max_abs:>10.2%}" if math.isfinite(row.mean_abs) else f"  {row.note}"
            lines.append(
                f"  {i if math.isfinite(row.mean_abs) else '-':<5}{row.candidate.form:<18}"
                f"{describe(row.candidate.form, row.candidate.objective) + ('' if row.candidate.selectable else ' *'):<50}{nums}"
            )
        if any(not r.candidate.selectable for r in self.rows):
            lines.append(
                "  * measured, not selected: on a published ladder these objectives did not carry over to larger runs"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def default_candidates(has_unique: bool) -> list[Candidate]:
    """Every form with the default objective, then Approach 3 (chinchilla) under the item-3 objectives."""
    forms = [f for f in FORMS if has_unique or not FORMS[f].needs_unique]
    out = [Candidate(f) for f in forms]
    for obj in (  # item 3: measured beside the forms, not selected (see Candidate.selectable)
        Objective(delta=1e-2),
        Objective(delta=1e-1),
        Objective(delta=None),
        Objective(space="linear"),
        Objective(delta=None, space="linear"),
        Objective(weights="compute"),
    ):
        out.append(Candidate("chinchilla", obj, selectable=False))
    out.append(Candidate("overtrain", Objective(delta=None, space="linear"), selectable=False))  # Gadre et al.'s recipe
    return out


def rank(
    candidates: Sequence[Candidate],
    n: Any,
    d: Any,
    loss: Any,
    split: Split,
    *,
    unique: Any = None,
) -> Ranking:
    """Fit every candidate on ``split.train`` and score it on ``split.test``; best (lowest mean |error|) first."""
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    u = None if unique is None else np.asarray(unique, dtype=float)
    tr, te = split.train, split.test
    notes: list[str] = []
    if not te.any():
        raise ScalingError("held-out ranking: no run left out to predict")
    rows: list[RankRow] = []
    for cand in candidates:
        spec = FORMS[cand.form]
        if spec.needs_unique and u is None:
            rows.append(RankRow(cand, note="skipped: the input has no U (unique tokens) column"))
            continue
        if int(tr.sum()) <= len(spec.params):
            rows.append(RankRow(cand, note=f"skipped: {int(tr.sum())} training runs for {len(spec.params)} parameters"))
            continue
        try:
            fit = fit_form(
                cand.form, n[tr], d[tr], loss[tr], unique=None if u is None else u[tr], objective=cand.objective
            )
            pred = fit.predict(n[te], d[te], None if u is None else u[te])
        except ScalingError as err:
            rows.append(RankRow(cand, note=f"not fitted: {err}"))
            continue
        err = (pred - loss[te]) / loss[te]
        if not np.all(np.isfinite(err)):
            rows.append(RankRow(cand, note="prediction not finite on the held-out runs"))
            continue
        rows.append(RankRow(cand, float(np.mean(np.abs(err))), float(np.max(np.abs(err))), float(np.mean(err))))
    rows.sort(key=lambda r: r.mean_abs if math.isfinite(r.mean_abs) else math.inf)  # stable: ties keep list order
    scored = [r for r in rows if math.isfinite(r.mean_abs) and r.candidate.selectable]
    if not scored:
        notes.append("no candidate could be fitted on the training runs: nothing to select")
    elif len(scored) > 1 and scored[1].mean_abs - scored[0].mean_abs < TIE:
        notes.append(
            f"tie: {scored[0].candidate.label} and {scored[1].candidate.label} predict the held-out runs within "
            f"{TIE:.2%}; the first listed is kept"
        )
    if int(te.sum()) < 3:
        notes.append(f"only {int(te.sum())} held-out run(s): the ranking rests on very few predictions")
    return Ranking(split, rows, int(tr.sum()), int(te.sum()), notes)


# ----------------------------------------------------------------------------- `scaling fit` integration

#: Bootstrap resamples per form refitted one resample at a time (a quasi-Newton polish each, ~0.05-0.1 s);
#: the batched forms (:func:`scaling.fit.forms.is_batched`) take every resample.
FORM_BOOT_CAP = 200


@dataclass
class FormsReport:
    """The forms ``scaling fit`` fitted, the held-out ranking when asked, and the form it recommends."""

    fits: dict[str, Any]  # form name -> scaling.fit.forms.FormFit
    selected: str
    ranking: Ranking | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        forms: dict[str, Any] = {}
        for name, fit in self.fits.items():
            entry = fit.as_dict()
            row = self.ranking.best_of(name) if self.ranking is not None else None
            entry["heldout"] = (
                {"by": self.ranking.split.description, "n_train": self.ranking.n_train, **row.as_dict()}
                if row is not None and self.ranking is not None
                else {}
            )
            forms[name] = entry
        return {
            "forms": forms,
            "selected_form": self.selected,
            "form_ranking": self.ranking.as_dict() if self.ranking is not None else None,
            "forms_notes": list(self.notes),
        }

    def render(self) -> list[str]:
        lines = [f"FORMS (recommended: {self.selected})"]
        for name, fit in self.fits.items():
            params = ", ".join(f"{k} = {v:.4g}" for k, v in fit.params.items())
            lines.append(f"  {name:<18}{params}  [{describe(name, fit.objective)}]")
            if fit.samples:
                from scaling.intervals import percentile_ci

                cis = ", ".join(
                    f"{k} {lo:.3g}..{hi:.3g}" for k, (lo, hi) in ((k, percentile_ci(v)) for k, v in fit.samples.items())
                )
                lines.append(f"  {'':<18}95% CI: {cis}")
        if self.ranking is not None:
            lines += self.ranking.render()
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def _unique_tokens(points: Any) -> tuple[np.ndarray | None, str]:
    """U per run when the input is a table with a U column aligned with the fitted runs, else a note why not."""
    if points.kind not in ("csv", "collect"):
        return None, "data-constrained: not ranked (the input has no U, unique tokens, per run)"
    from scaling.fit.data_constrained import load_repeat_points

    try:
        rp = load_repeat_points(points.source)
    except ScalingError:
        return None, "data-constrained: not ranked (the input has no U, unique tokens, per run)"
    if len(rp.n) != len(points) or not np.allclose(rp.n, points.n) or not np.allclose(rp.d, points.d):
        return None, "data-constrained: not ranked (the U column does not align one row per run)"
    return rp.u, ""


def forms_report(
    res: Any,
    *,
    form: str = "chinchilla",
    rank_forms: bool = False,
    select: bool = False,
    holdout_by: str = "budget",
    holdout_sizes: int = 1,
) -> FormsReport:
    """Fit the requested form(s) beside today's Approach 3, rank them by held-out error when asked, and
    name the form the fit recommends: ``--select``'s winner, else ``--form`` (default chinchilla)."""
    from scaling.fit.approach2 import group_budgets
    from scaling.fit.forms import bootstrap_form, from_approach3, is_batched

    points = res.points
    options = res.options
    k = int(options.get("bootstrap") or 0)
    seed = int(options.get("seed") or 0)
    delta = float(options.get("delta", 1e-3))
    chin = from_approach3(res.approach3, res.approach3_boot, delta)
    fits: dict[str, Any] = {"chinchilla": chin}
    notes: list[str] = []
    unique, why = _unique_tokens(points) if (rank_forms or select) else (None, "")
    if why:
        notes.append(why)
    ranking = None
    chosen = Candidate(form, Objective(delta=delta))
    if rank_forms or select:
        labels, _, _ = group_budgets(points, float(options.get("budget_tolerance", 0.05)))
        split = leave_largest_out(points.n, points.c, labels, by=holdout_by, sizes=holdout_sizes)
        cands = default_candidates(unique is not None)
        if delta != 1e-3:
            cands.insert(1, Candidate("chinchilla", Objective(delta=delta)))
        ranking = rank(cands, points.n, points.d, points.loss, split, unique=unique)
        notes += ranking.notes
        if select:
            if ranking.best is None:
                notes.append(f"--select: no candidate could be scored; {form} stays the recommended form")
            else:
                chosen = ranking.best.candidate
    wanted = (
        {chosen.form: chosen.objective} if chosen.form != "chinchilla" or chosen.objective != chin.objective else {}
    )
    if rank_forms or select:
        # every ranked form under its selectable (default) objective, so the JSON holds each form's parameters
        # and draws; the objective variants are measured in the table only, as they are never selected
        for row in ranking.rows if ranking is not None else []:
            cand = row.candidate
            if (
                math.isfinite(row.mean_abs)
                and cand.selectable
                and cand.form not in wanted
                and cand.form != "chinchilla"
            ):
                wanted[cand.form] = cand.objective
    for name, objective in wanted.items():
        if FORMS[name].needs_unique and unique is None:
            raise ScalingError(f"--form {name} needs U (unique tokens) per run; the input has none")
        fit = fit_form(name, points.n, points.d, points.loss, unique=unique, objective=objective)
        if k:
            n_boot = k if is_batched(name, objective) else min(k, FORM_BOOT_CAP)
            bootstrap_form(
                fit, points.n, points.d, points.loss, n_boot=n_boot, seed=seed, groups=points.groups, unique=unique
            )
            if n_boot < k:
                fit.warnings.append(f"{name}: bootstrap capped at {n_boot} of {k} resamples")
        fits[name] = fit
    return FormsReport(fits, chosen.form, ranking, notes)
