"""A Chinchilla law fitted by ``scaling fit --json``, read back for ``scaling plan --fit`` and ``scaling compare``.

The law itself (its loss, compute-optimal allocation and exponents) is :class:`scaling.laws.ChinchillaLaw`;
this module only reads the fit file and its bootstrap rows, and gives the planner percentile intervals by
evaluating the law on every row at once (the same code path as the point estimate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.intervals import percentile_ci
from scaling.laws import CHINCHILLA_PARAMS, ChinchillaLaw, OvertrainLaw

#: What the planner and ``scaling predict`` print for a fit without bootstrap draws: how to get intervals.
NO_DRAWS_HINT = (
    "(no CI: the fit JSON has no bootstrap draws; refit with `scaling fit --bootstrap 1000 --json FIT.json`)"
)


@dataclass(frozen=True)
class FittedLaw:
    """A Chinchilla-form law read from ``scaling fit --json``, with its bootstrap samples (rows E, A, B, α, β)."""

    law: ChinchillaLaw
    samples: np.ndarray | None  # shape (k, 5), finite rows only
    dropped_samples: int
    path: Path
    # The largest C among the fitted runs (input.max_C) and the corpus, tokenizer and vocab_size they were
    # measured on (input.measured_on); None and {} for fit files written before these were recorded.
    max_flops: float | None = None
    measured_on: dict[str, Any] = field(default_factory=dict)

    def allocation_ci(self, flops: float) -> dict[str, tuple[float, float]] | None:
        """95% percentile intervals of N_opt, D_opt, tokens/param and loss at ``flops`` over the samples."""
        if self.samples is None or len(self.samples) < 2:
            return None
        draws = ChinchillaLaw.from_rows(self.samples).compute_optimal(flops)
        # Extreme replicates overflow to inf; the intervals leave them out.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            ratio = draws.tokens_per_param
        out = {
            key: percentile_ci(values)
            for key, values in (("n", draws.n), ("d", draws.d), ("tokens_per_param", ratio), ("loss", draws.loss))
        }
        return None if any(np.isnan(lo) for lo, _ in out.values()) else out


def samples_array(raw: Any, path: Path, where: str = "approach3.samples") -> tuple[np.ndarray | None, int]:
    """Chinchilla bootstrap rows from ``raw`` (rows [E, A, B, alpha, beta], rows as dicts, or a dict of
    columns) and how many were dropped as non-finite; ``where`` names the key in error messages."""
    if raw is None:
        return None, 0
    try:
        if isinstance(raw, dict):
            arr = np.column_stack([np.asarray(raw[k], dtype=float) for k in CHINCHILLA_PARAMS])
        elif isinstance(raw, list) and raw and isinstance(raw[0], dict):
            arr = np.array([[row[k] for k in CHINCHILLA_PARAMS] for row in raw], dtype=float)
        else:
            arr = np.asarray(raw, dtype=float)
    except (KeyError, TypeError, ValueError):
        raise ScalingError(f"{path}: {where} must be rows of (E, A, B, alpha, beta)") from None
    if arr.size == 0:
        return None, 0
    if arr.ndim != 2 or arr.shape[1] != len(CHINCHILLA_PARAMS):
        raise ScalingError(f"{path}: {where} must be rows of (E, A, B, alpha, beta), got shape {arr.shape}")
    ok = np.isfinite(arr).all(axis=1) & (arr[:, 1:] > 0).all(axis=1)
    return arr[ok], int((~ok).sum())


def read_fit_json(path: Path) -> Any:
    """The parsed content of a ``scaling fit --json`` file, or a one-line error (missing, not JSON)."""
    if not path.is_file():
        raise ScalingError(f"fit file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ScalingError(f"{path} is not valid JSON ({err.__class__.__name__}: {err})") from None


def load_fit(path: str | Path, *, selected: bool = False) -> FittedLaw:
    """Read the ``approach3`` object of a ``scaling fit --json`` file as a law.

    Keys read: ``approach3.{E, A, B, alpha, beta}`` and, when present,
    ``approach3.samples`` (bootstrap rows E, A, B, alpha, beta) and the parameter
    count the fit used, ``params`` at top level or in ``approach3`` (default ``with_head``).

    ``selected``: use the form ``scaling fit --select`` recommends where it is a Chinchilla-form law
    (Gadre et al.'s over-training form is Chinchilla with α = β, :meth:`OvertrainLaw.as_chinchilla`), so
    the planner plans with the law that predicted held-out runs best; other forms (Kaplan's joint law has
    no compute-optimal rule of its own here) keep Approach 3, and the law's description says so.
    """
    path = Path(path)
    data = read_fit_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("approach3"), dict):
        raise ScalingError(f"{path} has no 'approach3' object; run `scaling fit --json` with Approach 3")
    fit = data["approach3"]
    missing = [k for k in CHINCHILLA_PARAMS if k not in fit]
    if missing:
        raise ScalingError(f"{path}: approach3 lacks {', '.join(missing)}")
    try:
        values = {k: float(fit[k]) for k in CHINCHILLA_PARAMS}
    except (TypeError, ValueError):
        raise ScalingError(f"{path}: approach3.{{E, A, B, alpha, beta}} must be numbers") from None
    count = fit.get("params", data.get("params", "with_head"))
    if count not in ("non_embedding", "with_head", "total"):
        count = "with_head"
    law = ChinchillaLaw(
        **values,
        name=f"fit:{path.name}",
        description=f"Approach 3 fit from {path}",
        n_count=str(count),
        corpus="the fitted runs' validation data",
    ).checked()
    samples, dropped = samples_array(fit.get("samples"), path)
    if selected:
        law, samples, dropped = _selected_form(data, path, law, samples, dropped)
    given = data.get("input") if isinstance(data.get("input"), dict) else {}
    max_c = given.get("max_C")
    measured_on = given.get("measured_on")
    return FittedLaw(
        law=law,
        samples=samples,
        dropped_samples=dropped,
        path=path,
        max_flops=float(max_c) if isinstance(max_c, int | float) and max_c > 0 else None,
        measured_on=dict(measured_on) if isinstance(measured_on, dict) else {},
    )


def paired_draws(a: FittedLaw, b: FittedLaw, rng: np.random.Generator) -> tuple[ChinchillaLaw, ChinchillaLaw] | None:
    """Two independent fits' bootstrap draws paired at random, as many pairs as the shorter has draws.

    Independent fits' replicates have no order in common, so a quantity of both laws (a loss difference,
    the compute multiplier) is evaluated on random pairs; None when either fit has fewer than two draws.
    """
    if a.samples is None or b.samples is None or len(a.samples) < 2 or len(b.samples) < 2:
        return None
    k = min(len(a.samples), len(b.samples))
    pa, pb = rng.permutation(len(a.samples))[:k], rng.permutation(len(b.samples))[:k]
    return ChinchillaLaw.from_rows(a.samples[pa]), ChinchillaLaw.from_rows(b.samples[pb])


def _selected_form(
    data: dict[str, Any], path: Path, law: ChinchillaLaw, samples: np.ndarray | None, dropped: int
) -> tuple[ChinchillaLaw, np.ndarray | None, int]:
    """The fit's ``selected_form`` as a Chinchilla-form law with its draws, or Approach 3 with a note why."""
    form = data.get("selected_form")
    if form in (None, "chinchilla"):
        return law, samples, dropped
    entry = (data.get("forms") or {}).get(form) if isinstance(data.get("forms"), dict) else None
    if form != "overtrain" or not isinstance(entry, dict):
        note = f"Approach 3 fit from {path} (the fit recommends {form}, which has no compute-optimal rule here)"
        return replace(law, description=note), samples, dropped
    try:
        params = {k: float(entry["params"][k]) for k in ("E", "a", "b", "eta")}
    except (KeyError, TypeError, ValueError):
        raise ScalingError(f"{path}: forms.overtrain needs numbers E, a, b, eta") from None
    point = OvertrainLaw(**params).as_chinchilla()
    chosen = replace(
        law,
        **{k: float(getattr(point, k)) for k in CHINCHILLA_PARAMS},
        description=f"Gadre et al. 2024 over-training form (the fit's selected_form; alpha = beta) from {path}",
    ).checked()
    raw = entry.get("samples")
    if not isinstance(raw, dict) or not raw:
        return chosen, None, 0
    try:
        draws = OvertrainLaw(*(np.asarray(raw[k], dtype=float) for k in ("E", "a", "b", "eta"))).as_chinchilla()
    except (KeyError, TypeError, ValueError):
        raise ScalingError(f"{path}: forms.overtrain.samples must be columns E, a, b, eta") from None
    rows = np.column_stack([np.asarray(getattr(draws, k), dtype=float) for k in CHINCHILLA_PARAMS])
    ok = np.isfinite(rows).all(axis=1) & (rows[:, 1:] > 0).all(axis=1)
    return chosen, rows[ok], int((~ok).sum())
