"""What ``scaling explore PATH...`` reads: one variant per path, each a fit and the runs it was fitted on.

A path is either a results folder (its run records, and the ``fit.json`` that ``scaling fit --json``
wrote beside them) or a fit JSON (its runs are found beside it or at the ``input.path`` it names).
Every problem with the inputs is a :class:`ScalingError`, so the command prints one line and exits 2:
a folder without records, a fit JSON from an older ``scaling fit`` that lacks keys the page needs,
and inputs fitted under different FLOP conventions or parameter counts, whose laws cannot share axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError
from scaling.plan.fitted_law import FittedLaw, load_fit, read_fit_json
from scaling.records import load_records

#: Newest fit JSON layout the explorer understands. ``scaling fit --json`` does not write a
#: ``format_version`` yet; a file without one is accepted when it has every key in FIT_KEYS_NEEDED.
FIT_FORMAT_VERSION = 1
#: Keys of the fit JSON the page cannot do without (top level, then inside ``approach3``).
FIT_KEYS_NEEDED = ("params", "flops", "at_flops", "approach3")
APPROACH3_KEYS_NEEDED = ("E", "A", "B", "alpha", "beta")
FIT_FILE_NAME = "fit.json"


@dataclass
class Variant:
    """One input: a fitted law, the raw fit JSON, and the finished runs it was fitted on."""

    label: str
    source: Path
    fit: dict[str, Any]
    law: FittedLaw
    records: list[dict[str, Any]] = field(default_factory=list)
    records_root: Path | None = None


def checked_fit_json(path: Path) -> dict[str, Any]:
    """The fit JSON at ``path``, checked for the keys the page needs (older files lack some)."""
    data = read_fit_json(path)
    if not isinstance(data, dict):
        raise ScalingError(f"{path} is not a fit JSON (top level is not an object)")
    if "run_id" in data and "curve" in data:
        raise ScalingError(f"{path} is a run record, not a fit: give its results folder instead")
    version = data.get("format_version")
    if version is not None and (not isinstance(version, int) or version > FIT_FORMAT_VERSION):
        raise ScalingError(
            f"{path}: fit JSON format_version {version!r} is newer than this explorer reads "
            f"(<= {FIT_FORMAT_VERSION}); update scaling"
        )
    missing = [k for k in FIT_KEYS_NEEDED if k not in data]
    a3 = data.get("approach3")
    if isinstance(a3, dict):
        missing += [f"approach3.{k}" for k in APPROACH3_KEYS_NEEDED if k not in a3]
    elif "approach3" in data:
        raise ScalingError(f"{path}: the fit has no Approach 3 law (approach3 is {a3!r}); the explorer needs it")
    if missing:
        raise ScalingError(
            f"{path}: fit JSON from an older `scaling fit` (no {', '.join(missing)}); "
            "rerun `scaling fit RESULTS --bootstrap 1000 --json FIT.json`"
        )
    return data


def _records_beside(fit_path: Path, fit: dict[str, Any]) -> tuple[list[dict[str, Any]], Path | None]:
    """The runs a fit JSON was made from: its own folder when that holds records, else ``input.path``."""
    candidates = [fit_path.parent]
    named = (fit.get("input") or {}).get("path") if isinstance(fit.get("input"), dict) else None
    if named:
        candidates += [Path(named), fit_path.parent / named]
    for root in candidates:
        if root.is_dir() and any(root.rglob("runs/*.json")):
            return load_records(root), root
    return [], None


def load_variant(path: str | Path) -> Variant:
    """Read one input path (results folder or fit JSON) into a :class:`Variant`."""
    path = Path(path)
    if path.is_dir():
        records = load_records(path)
        if not records:
            raise ScalingError(f"{path}: no finished run records below it (expected runs/*.json)")
        fit_path = path / FIT_FILE_NAME
        if not fit_path.is_file():
            raise ScalingError(
                f"{path}: no {FIT_FILE_NAME}; run `scaling fit {path} --bootstrap 1000 --json {fit_path}` first"
            )
        fit = checked_fit_json(fit_path)
        root: Path | None = path
        label = path.resolve().name
    elif path.is_file():
        fit_path = path
        fit = checked_fit_json(fit_path)
        records, root = _records_beside(fit_path, fit)
        label = fit_path.stem if fit_path.name != FIT_FILE_NAME else fit_path.resolve().parent.name
    else:
        raise ScalingError(f"no such results folder or fit JSON: {path}")
    return Variant(label=label, source=fit_path, fit=fit, law=load_fit(fit_path), records=records, records_root=root)


def load_variants(paths: list[str | Path]) -> list[Variant]:
    """Every input as a variant with a unique label; inputs must share one FLOP convention and count."""
    if not paths:
        raise ScalingError("give at least one results folder or fit JSON")
    variants = [load_variant(p) for p in paths]
    for key, what, option in (("flops", "FLOP conventions", "--flops"), ("params", "parameter counts", "--params")):
        seen = {str(v.fit[key]) for v in variants}
        if len(seen) > 1:
            listing = ", ".join(f"{v.source} {v.fit[key]}" for v in variants)
            raise ScalingError(
                f"inputs mix {what} ({listing}); refit them under one (`scaling fit {option} ...`) to compare"
            )
    counts: dict[str, int] = {}
    for v in variants:
        counts[v.label] = counts.get(v.label, 0) + 1
        if counts[v.label] > 1:
            v.label = f"{v.label} ({counts[v.label]})"
    return variants
