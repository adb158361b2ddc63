"""``scaling predict FIT.json POINTS.csv``: a fitted law's loss, with its 95% interval, at any (N, D[, U]).

Two questions in one command: "what will my 7B run reach?" (``--n 7e9 --d 1.4e11``) and "does the law
hold on runs it never saw?" (a ``loss`` column: each row's error and whether the loss lies inside the
interval). Each prediction is the law's loss at the row; the interval is the 2.5 and 97.5 percentiles
of the same loss over the fit's bootstrap draws (:mod:`scaling.intervals`), so it carries the fit's
parameter uncertainty, not the run-to-run noise of a new run (a seed's spread comes on top).

A functional form is looked up by name in :data:`FORM_LOADERS` (:func:`predictive_law`): the
Chinchilla form (Hoffmann et al. 2022, eq. 2; the fit's ``approach3``), Kaplan's joint L(N, D) and
Gadre et al. 2024's over-training form (the fit's ``forms`` block, evaluated through
:data:`scaling.laws.FORMS`), and the data-constrained form (Muennighoff et al. 2023, eq. 5-7;
``scaling fit --form data-constrained``), which needs U. A fit file
may list several forms (``"forms": {name: {"params": {...}, "samples": ...}}``) and the one it
recommends (``"selected_form"``); a loader reads its own entry, so a new form is one more function.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.intervals import percentile_ci
from scaling.laws import CHINCHILLA_PARAMS, FORMS, ChinchillaLaw, DataConstrainedLaw
from scaling.plan.fitted_law import NO_DRAWS_HINT, load_fit, read_fit_json, samples_array
from scaling.records import atomic_write

#: Input columns a form reads, with the header names accepted for each (compared case-insensitively).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("n", "params", "parameters", "n_params", "num_params", "model_size", "model size"),
    "D": ("d", "tokens", "n_tokens", "num_tokens", "train_tokens", "training_tokens"),
    "U": ("u", "unique_tokens", "unique", "n_unique", "unique_data"),
    "loss": ("loss", "val_loss", "final_loss", "observed_loss"),
}

#: Columns ``scaling predict`` adds; an input that already has one is refused rather than overwritten.
OUTPUT_COLUMNS: tuple[str, ...] = ("pred", "lo", "hi")
CHECK_COLUMNS: tuple[str, ...] = ("error", "rel_error", "inside")


@dataclass(frozen=True)
class PredictiveLaw:
    """One functional form read from a fit file: its point loss and, with draws, its loss per draw.

    ``loss(cols)`` takes the input columns by name (arrays of M rows) and gives M losses;
    ``draw_losses(cols)`` gives (K, M), one row per bootstrap draw, or is None for a fit without draws.
    """

    form: str
    columns: tuple[str, ...]  # input columns the form needs, from COLUMN_ALIASES
    loss: Callable[[dict[str, np.ndarray]], np.ndarray]
    draw_losses: Callable[[dict[str, np.ndarray]], np.ndarray] | None
    n_draws: int
    description: str


def _chinchilla(data: dict[str, Any], path: Path) -> PredictiveLaw | None:
    """L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2): ``forms.chinchilla`` or the fit's ``approach3``."""
    entry = (data.get("forms") or {}).get("chinchilla")
    if isinstance(entry, dict):
        params = entry.get("params", entry)
        try:
            law = ChinchillaLaw(*(float(params[k]) for k in CHINCHILLA_PARAMS), name="chinchilla").checked()
        except (KeyError, TypeError, ValueError):
            raise ScalingError(f"{path}: forms.chinchilla needs numbers {', '.join(CHINCHILLA_PARAMS)}") from None
        samples, _ = samples_array(entry.get("samples"), path, "forms.chinchilla.samples")
        count = entry.get("n_count", data.get("params", "with_head"))
    elif isinstance(data.get("approach3"), dict):
        fitted = load_fit(path)
        law, samples, count = fitted.law, fitted.samples, fitted.law.n_count
    else:
        return None
    draws = ChinchillaLaw.from_rows(samples[:, None, :]) if samples is not None and len(samples) >= 2 else None
    return PredictiveLaw(
        form="chinchilla",
        columns=("N", "D"),
        loss=lambda c: np.asarray(law.loss(c["N"], c["D"]), dtype=float),
        draw_losses=None if draws is None else lambda c: np.asarray(draws.loss(c["N"], c["D"]), dtype=float),
        n_draws=0 if draws is None else len(samples),  # type: ignore[arg-type]
        description=f"L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022); N counts {count} parameters",
    )


def _data_constrained(data: dict[str, Any], path: Path) -> PredictiveLaw | None:
    """Muennighoff et al. 2023's L(N, D, U): the ``data_constrained`` object of ``scaling fit --form data-constrained``.

    U above D means no token repeats: the law is evaluated at min(U, D), as the fit itself counts U.
    """
    if not isinstance(data.get("data_constrained"), dict):
        return None
    from scaling.plan.data_constrained import load_data_constrained_fit

    fitted = load_data_constrained_fit(path)
    law, samples = fitted.law, fitted.samples
    draws = None
    if samples is not None and len(samples) >= 2:
        rows = samples[:, None, :]  # (K, 1, 7): broadcasts against M input rows
        draws = DataConstrainedLaw(ChinchillaLaw.from_rows(rows[..., :5]), rows[..., 5], rows[..., 6])

    def seen(c: dict[str, np.ndarray]) -> np.ndarray:
        return np.minimum(c["U"], c["D"])

    return PredictiveLaw(
        form="data-constrained",
        columns=("N", "D", "U"),
        loss=lambda c: np.asarray(law.loss(c["N"], c["D"], seen(c)), dtype=float),
        draw_losses=None if draws is None else lambda c: np.asarray(draws.loss(c["N"], c["D"], seen(c)), dtype=float),
        n_draws=0 if draws is None else len(samples),  # type: ignore[arg-type]
        description="L = E + A/N'^alpha + B/D'^beta with repeated data and excess parameters decayed "
        "(Muennighoff et al. 2023)",
    )


def _registered(name: str) -> Callable[[dict[str, Any], Path], PredictiveLaw | None]:
    """A reader of ``forms[name]`` (``scaling fit --form NAME`` / ``--select``), evaluated by :data:`scaling.laws.FORMS`.

    Used for the forms that live only in the ``forms`` block (Kaplan's joint law, Gadre et al.'s
    over-training law); their draws are the ``samples`` columns, one per parameter.
    """
    form = FORMS[name]

    def read(data: dict[str, Any], path: Path) -> PredictiveLaw | None:
        entry = (data.get("forms") or {}).get(name)
        if not isinstance(entry, dict):
            return None
        try:
            params = {k: float(entry["params"][k]) for k in form.params}
            raw = entry.get("samples") or {}
            columns = {k: np.asarray(raw[k], dtype=float) for k in form.params} if raw else {}
        except (KeyError, TypeError, ValueError):
            raise ScalingError(f"{path}: forms.{name} needs numbers {', '.join(form.params)}") from None
        if columns:
            ok = np.all([np.isfinite(v) for v in columns.values()], axis=0)
            columns = {k: v[ok][:, None] for k, v in columns.items()}
        n_draws = len(next(iter(columns.values()))) if columns else 0
        return PredictiveLaw(
            form=name,
            columns=("N", "D"),
            loss=lambda c: np.asarray(form.loss(params, c["N"], c["D"]), dtype=float),
            draw_losses=None if n_draws < 2 else lambda c: np.asarray(form.loss(columns, c["N"], c["D"]), dtype=float),
            n_draws=n_draws if n_draws >= 2 else 0,
            description=form.citation,
        )

    return read


#: Form name -> reader of that form from a fit file (None when the file does not hold it). One entry per form.
FORM_LOADERS: dict[str, Callable[[dict[str, Any], Path], PredictiveLaw | None]] = {
    "chinchilla": _chinchilla,
    "kaplan": _registered("kaplan"),
    "overtrain": _registered("overtrain"),
    "data-constrained": _data_constrained,
}
#: Other names a form goes by in fit files and on the command line.
FORM_ALIASES: dict[str, str] = {"approach3": "chinchilla", "data_constrained": "data-constrained"}


def recommended_form(data: dict[str, Any], path: Path) -> str:
    """The form the fit recommends (``selected_form``), else the one a single-form fit file names, else chinchilla.

    A recommendation this version cannot evaluate is an error, not a silent switch to another law.
    """
    for key in ("selected_form", "form"):
        name = data.get(key)
        if isinstance(name, str):
            name = FORM_ALIASES.get(name, name)
            if name not in FORM_LOADERS:
                raise ScalingError(
                    f"{path} recommends form {name!r}, which scaling predict cannot evaluate "
                    f"(known: {', '.join(FORM_LOADERS)}); choose one with --form"
                )
            return name
    return "chinchilla"


def predictive_law(path: str | Path, form: str | None = None) -> PredictiveLaw:
    """The law of ``form`` (default: the one the fit recommends) from a ``scaling fit --json`` file."""
    path = Path(path)
    data = read_fit_json(path)
    if not isinstance(data, dict):
        raise ScalingError(f"{path} is not a `scaling fit --json` file (top level is not an object)")
    name = FORM_ALIASES.get(form, form) if form else recommended_form(data, path)
    loader = FORM_LOADERS.get(name)
    if loader is None:
        raise ScalingError(f"unknown form {form!r}; known: {', '.join(FORM_LOADERS)}")
    law = loader(data, path)
    if law is None:
        held = [n for n, read in FORM_LOADERS.items() if n != name and _holds(data, n)]
        raise ScalingError(
            f"{path} holds no {name} fit"
            + (f" (it holds: {', '.join(held)})" if held else "")
            + (f"; fit it with `scaling fit --form {name} --json`" if name != "chinchilla" else "")
        )
    return law


def _holds(data: dict[str, Any], name: str) -> bool:
    forms = data.get("forms") if isinstance(data.get("forms"), dict) else {}
    key = {"chinchilla": "approach3", "data-constrained": "data_constrained"}.get(name, name)
    return name in forms or isinstance(data.get(key), dict)


# ----------------------------------------------------------------------------- input rows


@dataclass(frozen=True)
class Points:
    """The rows to predict: the input table as read (header and text cells) and the columns the law needs."""

    header: list[str]
    rows: list[list[str]]
    values: dict[str, np.ndarray]  # "N", "D"[, "U"][, "loss" (NaN where blank)]
    source: str


def _find_column(header: list[str], name: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for alias in COLUMN_ALIASES[name]:
        if alias in lowered:
            return lowered.index(alias)
    return None


def read_points(path: str | Path, needs: tuple[str, ...]) -> Points:
    """Read a CSV of rows to predict; one-line errors for a missing column or a value that is not positive."""
    path = Path(path)
    if not path.is_file():
        raise ScalingError(f"points file not found: {path}")
    try:
        with path.open(newline="") as fh:
            table = [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ScalingError(f"cannot read {path} as CSV ({err.__class__.__name__}: {err})") from None
    if not table:
        raise ScalingError(f"{path} is empty: need a header with {', '.join(needs)} and one row per point")
    header, rows = table[0], table[1:]
    if not rows:
        raise ScalingError(f"{path} has a header but no rows")
    taken = [c for c in OUTPUT_COLUMNS + CHECK_COLUMNS if c in (h.strip().lower() for h in header)]
    if taken:
        raise ScalingError(f"{path} already has column(s) {', '.join(taken)}, which predict writes; rename them")
    values: dict[str, np.ndarray] = {}
    for name in (*needs, "loss"):
        at = _find_column(header, name)
        if at is None:
            if name == "loss":
                continue
            raise ScalingError(
                f"{path}: missing column {name} (accepted names: {', '.join(COLUMN_ALIASES[name])}; "
                f"found: {', '.join(header)})"
            )
        values[name] = np.array(
            [_cell(row, at, name, path, line) for line, row in enumerate(rows, start=2)], dtype=float
        )
    return Points(header, rows, values, str(path))


def _cell(row: list[str], at: int, name: str, source: Any, line: int | None) -> float:
    """One value, checked; ``line`` None for a value given on the command line (``source`` names its option)."""
    text = row[at].strip() if at < len(row) else ""
    if name == "loss" and text == "":
        return math.nan  # a row without a measured loss: predicted, not checked
    where = source if line is None else f"{source} line {line}: {name}"
    try:
        value = float(text)
    except ValueError:
        raise ScalingError(f"{where} must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ScalingError(f"{where} must be a finite positive number, got {text!r}")
    return value


def points_from_arguments(n: str, d: str, u: str | None, needs: tuple[str, ...]) -> Points:
    """One row from ``--n``, ``--d`` (and ``--u``), checked like a CSV row."""
    given = {"N": n, "D": d} | ({"U": u} if u is not None else {})
    missing = [c for c in needs if c not in given]
    if missing:
        raise ScalingError(f"this form needs {', '.join(needs)}: give --{missing[0].lower()}")
    header = [c for c in ("N", "D", "U") if c in given]
    row = [given[c] for c in header]
    values = {c: np.array([_cell(row, i, c, f"--{c.lower()}", None)]) for i, c in enumerate(header)}
    return Points(header, [row], values, "command line")


# ----------------------------------------------------------------------------- predict


@dataclass(frozen=True)
class Predictions:
    pred: np.ndarray
    lo: np.ndarray  # NaN without draws
    hi: np.ndarray
    loss: np.ndarray | None  # the measured loss, NaN where a row has none

    @property
    def inside(self) -> np.ndarray:
        return (self.lo <= self.loss) & (self.loss <= self.hi)  # type: ignore[operator]


#: Input rows evaluated at once over all draws: bounds the (K, rows) array to ~80 MB with 1000 draws.
ROWS_PER_CHUNK = 10_000


def predict(law: PredictiveLaw, points: Points) -> Predictions:
    """The law's loss at every row and its 95% interval over the draws (chunks of rows bound the memory)."""
    cols = {c: points.values[c] for c in law.columns}
    pred = law.loss(cols)
    lo, hi = np.full(pred.shape, np.nan), np.full(pred.shape, np.nan)
    if law.draw_losses is not None:
        for start in range(0, len(pred), ROWS_PER_CHUNK):
            part = {c: v[start : start + ROWS_PER_CHUNK] for c, v in cols.items()}
            lo[start : start + ROWS_PER_CHUNK], hi[start : start + ROWS_PER_CHUNK] = percentile_ci(
                law.draw_losses(part), axis=0
            )
    return Predictions(pred, lo, hi, points.values.get("loss"))


def _number(x: float, digits: int = 4) -> str:
    return "" if not math.isfinite(x) else f"{x:.{digits}f}"


def output_rows(points: Points, result: Predictions) -> tuple[list[str], list[list[str]]]:
    """The input table with pred, lo, hi (and error, rel_error, inside where a loss was measured) added."""
    header = [*points.header, *OUTPUT_COLUMNS]
    checked = result.loss is not None
    if checked:
        header += list(CHECK_COLUMNS)
    rows = []
    for i, row in enumerate(points.rows):
        out = [*row, *([""] * (len(points.header) - len(row)))]
        out += [_number(result.pred[i]), _number(result.lo[i]), _number(result.hi[i])]
        if checked:
            assert result.loss is not None
            measured = result.loss[i]
            if math.isfinite(measured):
                has_ci = math.isfinite(result.lo[i])
                inside = ("yes" if result.inside[i] else "no") if has_ci else ""
                out += [f"{result.pred[i] - measured:+.4f}", f"{(result.pred[i] - measured) / measured:+.2%}", inside]
            else:
                out += ["", "", ""]
        rows.append(out)
    return header, rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *rows])


def summary(law: PredictiveLaw, result: Predictions) -> list[str]:
    """Mean and largest error and the coverage of the intervals, over the rows with a measured loss."""
    if result.loss is None or not np.isfinite(result.loss).any():
        return []
    ok = np.isfinite(result.loss)
    rel = np.abs(result.pred[ok] - result.loss[ok]) / result.loss[ok]
    line = f"{int(ok.sum())} rows with a measured loss: mean |error| {rel.mean():.2%}, max {rel.max():.2%}"
    if law.draw_losses is not None:
        line += f"; {int(result.inside[ok].sum())} of {int(ok.sum())} inside their 95% interval"
    return [line]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "fit", metavar="FIT.json", help="a `scaling fit --json` file (with --bootstrap K for intervals)"
    )
    parser.add_argument(
        "points",
        metavar="POINTS.csv",
        nargs="?",
        default=None,
        help="rows to predict: columns N, D (U for the data-constrained form), optional loss to check against",
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT.csv", default=None, help="write the table here (default: print it)"
    )
    parser.add_argument(
        "--form", default=None, help=f"law to use: {', '.join(FORM_LOADERS)} (default: the one the fit recommends)"
    )
    parser.add_argument("--n", default=None, metavar="N", help="one point instead of a CSV: parameters, e.g. 7e9")
    parser.add_argument("--d", default=None, metavar="D", help="with --n: training tokens, e.g. 1.4e11")
    parser.add_argument("--u", default=None, metavar="U", help="with --n: unique tokens (data-constrained form)")


def run(args: argparse.Namespace) -> int:
    one = args.n is not None or args.d is not None or args.u is not None
    if one and args.points is not None:
        raise ScalingError("give POINTS.csv or --n/--d, not both")
    if not one and args.points is None:
        raise ScalingError("give POINTS.csv, or one point with --n N --d D")
    if one and (args.n is None or args.d is None):
        raise ScalingError("one point needs both --n and --d")
    law = predictive_law(args.fit, args.form)
    if one:
        points = points_from_arguments(args.n, args.d, args.u, law.columns)
    else:
        points = read_points(args.points, law.columns)
    result = predict(law, points)
    header, rows = output_rows(points, result)
    notes = [f"law: {law.form} from {args.fit}: {law.description}"]
    notes.append(
        f"lo, hi: 95% interval over {law.n_draws} bootstrap draws of the fit (parameter uncertainty only)"
        if law.draw_losses is not None
        else NO_DRAWS_HINT
    )
    if args.output:
        atomic_write(args.output, lambda tmp: tmp.write_text(as_csv(header, rows)))
        print("\n".join([*notes, *summary(law, result), f"wrote {args.output} ({len(rows)} rows)"]))
        return 0
    print("\n".join([*notes, "", _table(header, rows), *([""] + summary(law, result) if summary(law, result) else [])]))
    return 0


def as_csv(header: list[str], rows: list[list[str]]) -> str:
    """The table as CSV text (what ``-o`` writes)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue()
