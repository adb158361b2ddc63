"""Leave-largest-out ranking picks the form that generated the data; --select writes selected_form (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.cli import main
from scaling.errors import ScalingError
from scaling.fit.points import group_by_log
from scaling.fit.selection import Candidate, default_candidates, leave_largest_out, rank
from scaling.laws import FORMS

LAWS = {
    "kaplan": {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13},
    "chinchilla": {"E": 1.7, "A": 300.0, "B": 3000.0, "alpha": 0.25, "beta": 0.45},  # alpha != beta: not overtrain
    "overtrain": {"E": 2.0, "a": 60.0, "b": 600.0, "eta": 0.13},
}


def synthetic_ladder(form: str, noise: float = 0.002) -> pd.DataFrame:
    """Six sizes x five token multipliers (M = 5 .. 640), loss from ``form``'s law times log-normal noise."""
    n = np.repeat(np.geomspace(1e7, 1e9, 6), 5)
    d = n * np.tile(np.geomspace(5, 640, 5), 6)
    loss = np.asarray(FORMS[form].loss(LAWS[form], n, d))
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(np.random.default_rng(3).normal(0, noise, n.size))})


@pytest.mark.parametrize(
    ("truth", "others"),
    # overtrain is chinchilla with alpha = beta, so on its own data chinchilla ties with it: rank it against kaplan
    [("kaplan", ("chinchilla", "overtrain")), ("chinchilla", ("kaplan", "overtrain")), ("overtrain", ("kaplan",))],
)
@pytest.mark.parametrize("by", ["size", "budget"])
def test_ranking_picks_the_true_form(truth: str, others: tuple[str, ...], by: str) -> None:
    frame = synthetic_ladder(truth)
    n, d, loss = (frame[c].to_numpy() for c in ("N", "D", "loss"))
    labels = group_by_log(6 * n * d, 0.3)
    split = leave_largest_out(n, 6 * n * d, labels, by=by, sizes=1)
    assert split.test.any() and split.train.sum() >= 20
    ranking = rank([Candidate(f) for f in (*others, truth)], n, d, loss, split)
    assert ranking.best is not None and ranking.best.candidate.form == truth
    runner_up = next(r for r in ranking.rows if r.candidate.form != truth)
    assert runner_up.mean_abs > 2 * ranking.best.mean_abs


def test_objective_variants_are_ranked_but_never_selected() -> None:
    cands = default_candidates(False)
    assert [c.form for c in cands if c.selectable] == ["chinchilla", "kaplan", "overtrain"]
    assert any(not c.selectable for c in cands)


def test_too_few_budgets_or_sizes_is_an_error() -> None:
    n = np.array([1e7, 2e7, 3e7, 4e7, 5e7, 6e7])
    with pytest.raises(ScalingError, match="at least 2 compute budgets"):
        leave_largest_out(n, n * 1e9, np.zeros(6), by="budget")
    with pytest.raises(ScalingError, match="at least 4 model sizes"):
        leave_largest_out(n[:3], n[:3] * 1e9, np.zeros(3), by="size", sizes=2)


def test_select_writes_selected_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "ladder.csv"
    synthetic_ladder("kaplan").to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    assert main(["fit", str(csv), "--select", "--holdout-by", "size", "--bootstrap", "20", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "HELD-OUT RANKING" in text and "FORMS (recommended: kaplan)" in text
    fit = json.loads(out.read_text())
    assert fit["selected_form"] == "kaplan"
    entry = fit["forms"]["kaplan"]
    assert set(entry["params"]) == {"alpha_N", "alpha_D", "N_c", "D_c"}
    assert len(entry["samples"]["alpha_N"]) == 20
    assert entry["heldout"]["mean_abs_rel_error"] < 0.005
    assert fit["forms"]["chinchilla"]["params"]["alpha"] == pytest.approx(fit["approach3"]["alpha"])
    assert "data-constrained" not in fit["forms"] and any("no U" in n for n in fit["forms_notes"])


def test_form_without_select_is_recommended_and_default_stays_chinchilla(tmp_path: Path) -> None:
    csv = tmp_path / "ladder.csv"
    synthetic_ladder("overtrain").to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    assert main(["fit", str(csv), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["selected_form"] == "chinchilla"
    assert main(["fit", str(csv), "--form", "kaplan", "--json", str(out)]) == 0
    fit = json.loads(out.read_text())
    assert fit["selected_form"] == "kaplan" and set(fit["forms"]) == {"chinchilla", "kaplan"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select"], "at least 2 compute budgets"),
    ],
)
def test_bad_input_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    csv = tmp_path / "one_budget.csv"
    n = np.geomspace(1e7, 1e8, 6)
    pd.DataFrame({"N": n, "D": 1e17 / (6 * n), "loss": 3 + 1e3 / n**0.3}).to_csv(csv, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(csv), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_unknown_form_is_refused_by_the_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(tmp_path / "x.csv"), "--form", "gpt"])
    assert exc.value.code == 2
    assert "invalid choice: 'gpt'" in capsys.readouterr().err.strip().splitlines()[-1]
