"""``scaling predict``: a fitted law's loss with its 95% interval at given (N, D[, U]), and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scaling.cli import main
from scaling.laws import ChinchillaLaw, DataConstrainedLaw
from scaling.plan.predict import Points, points_from_arguments, predict, predictive_law, read_points

REPO = Path(__file__).resolve().parents[1]
DEMO_FIT = REPO / "results" / "demo_reference" / "fit.json"
CENTRE = [1.8172, 482.01, 2085.43, 0.3478, 0.3658]  # Besiroglu et al. 2024


def _fit(path: Path, rows: list[list[float]] | None = None, centre: list[float] = CENTRE) -> Path:
    a3: dict = dict(zip(("E", "A", "B", "alpha", "beta"), centre, strict=True))
    if rows is not None:
        a3["samples"] = rows
    path.write_text(json.dumps({"params": "total", "approach3": a3}))
    return path


def _noisy(scale: float, k: int = 400, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return (np.array(CENTRE) * (1 + scale * rng.standard_normal((k, 5)))).tolist()


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def test_one_point_on_the_demo_fit_matches_the_formula(capsys: pytest.CaptureFixture[str]) -> None:
    """A hand check: E + A/N^alpha + B/D^beta with the fit's own numbers, inside its bootstrap interval."""
    a3 = json.loads(DEMO_FIT.read_text())["approach3"]
    n, d = 7e9, 1.4e11
    by_hand = a3["E"] + a3["A"] / n ** a3["alpha"] + a3["B"] / d ** a3["beta"]
    law = predictive_law(DEMO_FIT)
    assert law.form == "chinchilla" and law.n_draws == a3["n_boot"] == len(a3["samples"])
    result = predict(law, read_points_from(n, d))
    assert result.pred[0] == pytest.approx(by_hand, rel=1e-12)
    draws = [r[0] + r[1] / n ** r[3] + r[2] / d ** r[4] for r in a3["samples"]]
    assert (result.lo[0], result.hi[0]) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])), rel=1e-12)
    assert result.lo[0] < result.pred[0] < result.hi[0]
    assert main(["predict", str(DEMO_FIT), "--n", "7e9", "--d", "1.4e11"]) == 0
    out = capsys.readouterr().out
    assert f"{by_hand:.4f}" in out and f"{result.lo[0]:.4f}" in out and "1000 bootstrap draws" in out


def read_points_from(n: float, d: float) -> Points:
    return points_from_arguments(str(n), str(d), None, ("N", "D"))


def test_intervals_come_from_the_draws(tmp_path: Path) -> None:
    """Identical draws: zero width at the point; wider draws: wider intervals, all bracketing the point."""
    points = _csv(tmp_path / "p.csv", ["N", "D"], [[1e8, 2e9], [1e9, 2e10], [7e10, 1.4e12]])
    same = predict(predictive_law(_fit(tmp_path / "same.json", [CENTRE] * 50)), read_points(points, ("N", "D")))
    assert np.allclose(same.lo, same.pred, rtol=1e-12) and np.allclose(same.hi, same.pred, rtol=1e-12)
    narrow = predict(predictive_law(_fit(tmp_path / "n.json", _noisy(0.005))), read_points(points, ("N", "D")))
    wide = predict(predictive_law(_fit(tmp_path / "w.json", _noisy(0.05))), read_points(points, ("N", "D")))
    assert np.all(wide.hi - wide.lo > 3 * (narrow.hi - narrow.lo))
    for r in (narrow, wide):
        assert np.all(r.lo < r.pred) and np.all(r.pred < r.hi)
    truth = ChinchillaLaw(*CENTRE).loss(np.array([1e8, 1e9, 7e10]), np.array([2e9, 2e10, 1.4e12]))
    assert np.allclose(same.pred, truth, rtol=1e-12)


def test_csv_with_aliases_and_losses_end_to_end(tmp_path: Path) -> None:
    """Params/Tokens/Loss headers in any case, input columns kept, error and coverage per row, via subprocess."""
    law = ChinchillaLaw(*CENTRE)
    n, d = np.array([4e8, 1e9, 3e9]), np.array([8e9, 2e10, 6e10])
    measured = law.loss(n, d) + np.array([0.0, 0.02, 0.5])  # the last run is far off the law
    points = _csv(
        tmp_path / "runs.csv",
        ["name", "Params", "TOKENS", "Loss"],
        [["a", *row] for row in zip(n, d, measured, strict=True)] + [["b", 1e10, 2e11, ""]],
    )
    out_csv = tmp_path / "out" / "pred.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "scaling.cli", "predict", str(_fit(tmp_path / "fit.json", _noisy(0.01))), str(points)]
        + ["-o", str(out_csv)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out_csv} (4 rows)" in proc.stdout
    assert "3 rows with a measured loss" in proc.stdout and "inside their 95% interval" in proc.stdout
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["name", "Params", "TOKENS", "Loss", "pred", "lo", "hi", "error", "rel_error", "inside"]
    assert [float(r["pred"]) for r in rows[:3]] == pytest.approx(law.loss(n, d), abs=1e-4)
    assert float(rows[1]["error"]) == pytest.approx(-0.02, abs=1e-4)
    assert rows[0]["inside"] == "yes" and rows[2]["inside"] == "no"
    assert rows[3]["error"] == rows[3]["inside"] == "" and float(rows[3]["pred"]) > 0  # no measured loss


def test_data_constrained_form_needs_u(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = [*CENTRE, 15.0, 5.0]
    fit = tmp_path / "dc.json"
    fit.write_text(
        json.dumps(
            {
                "form": "data-constrained",
                "data_constrained": dict(zip(("E", "A", "B", "alpha", "beta", "R_D", "R_N"), row, strict=True))
                | {"samples": [row] * 5},
            }
        )
    )
    law = predictive_law(fit)
    assert law.form == "data-constrained" and law.columns == ("N", "D", "U")
    points = _csv(tmp_path / "p.csv", ["N", "D", "unique_tokens"], [[1e9, 1e11, 1e10], [1e9, 1e10, 5e10]])
    result = predict(law, read_points(points, law.columns))
    truth = DataConstrainedLaw(ChinchillaLaw(*CENTRE), 15.0, 5.0)
    # The second row's U exceeds D: no token repeats, so the law sees U = D.
    assert result.pred == pytest.approx([truth.loss(1e9, 1e11, 1e10), truth.loss(1e9, 1e10, 1e10)], rel=1e-12)
    assert np.allclose(result.lo, result.pred) and np.allclose(result.hi, result.pred)
    assert result.pred[0] > ChinchillaLaw(*CENTRE).loss(1e9, 1e11)  # ten epochs are worth less than fresh data
    with pytest.raises(SystemExit):
        main(["predict", str(fit), "--n", "1e9", "--d", "1e11"])
    assert "needs N, D, U" in capsys.readouterr().err


def test_forms_and_selected_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The contract for multi-form fits: forms.<name>.params/samples (columns) and selected_form."""
    fit = tmp_path / "forms.json"
    params = dict(zip(("E", "A", "B", "alpha", "beta"), CENTRE, strict=True))
    samples = {k: [v] * 3 for k, v in params.items()}  # columns, the other accepted layout besides rows
    data = {"selected_form": "chinchilla", "forms": {"chinchilla": {"params": params, "samples": samples}}}
    fit.write_text(json.dumps(data))
    law = predictive_law(fit)
    assert law.form == "chinchilla" and law.n_draws == 3
    fit.write_text(json.dumps(data | {"selected_form": "kaplan"}))
    with pytest.raises(SystemExit):
        main(["predict", str(fit), "--n", "1e9", "--d", "1e10"])
    assert "holds no kaplan fit (it holds: chinchilla)" in capsys.readouterr().err
    fit.write_text(json.dumps(data | {"selected_form": "gpt"}))
    with pytest.raises(SystemExit):
        main(["predict", str(fit), "--n", "1e9", "--d", "1e10"])
    assert "recommends form 'gpt'" in capsys.readouterr().err
    assert main(["predict", str(fit), "--n", "1e9", "--d", "1e10", "--form", "approach3"]) == 0


def test_the_selected_form_of_a_real_fit_predicts_by_its_own_formula(tmp_path: Path) -> None:
    """`scaling fit --select` on the demo, then predict: the default law is the selected form, and each of
    Kaplan's and Gadre et al.'s forms gives its own formula at the point and an interval from its draws."""
    fit = tmp_path / "fit.json"
    assert (
        main(["fit", str(REPO / "results" / "demo_reference"), "--select", "--bootstrap", "50", "--json", str(fit)])
        == 0
    )
    data = json.loads(fit.read_text())
    assert predictive_law(fit).form == data["selected_form"]
    n, d = 3e5, 6e6
    kaplan = data["forms"]["kaplan"]["params"]
    by_hand = ((kaplan["N_c"] / n) ** (kaplan["alpha_N"] / kaplan["alpha_D"]) + kaplan["D_c"] / d) ** kaplan["alpha_D"]
    over = data["forms"]["overtrain"]["params"]
    c, m = 6 * n * d, d / n
    by_hand_over = over["E"] + (over["a"] * m ** over["eta"] + over["b"] * m ** -over["eta"]) * c ** -over["eta"]
    for form, expected in (("kaplan", by_hand), ("overtrain", by_hand_over)):
        law = predictive_law(fit, form)
        assert law.n_draws >= 2
        result = predict(law, read_points_from(n, d))
        assert result.pred[0] == pytest.approx(expected, rel=1e-10)
        assert result.lo[0] < result.hi[0]


def test_fit_without_draws_says_how_to_get_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Point values only, and one line on how to get intervals; a CSV without a loss column is just predicted."""
    assert main(["predict", str(_fit(tmp_path / "plain.json")), "--n", "1e9", "--d", "2e10"]) == 0
    out = capsys.readouterr().out
    assert "scaling fit --bootstrap 1000 --json" in out and f"{ChinchillaLaw(*CENTRE).loss(1e9, 2e10):.4f}" in out
    points = _csv(tmp_path / "p.csv", ["n", "d"], [[1e9, 2e10]])
    assert main(["predict", str(_fit(tmp_path / "plain.json")), str(points)]) == 0
    out = capsys.readouterr().out
    assert "pred" in out and "rel_error" not in out and "measured loss" not in out


@pytest.mark.parametrize(
    ("csv_rows", "extra", "message"),
    [
        ([["N", "loss"], [1e9, 2.5]], [], "missing column D"),
        ([["N", "D"], ["nan", 2e10]], [], "N must be a finite positive number"),
        ([["N", "D"], [-1e9, 2e10]], [], "N must be a finite positive number"),
        ([["N", "D"], [1e9, "lots"]], [], "D must be a number"),
        ([["N", "D", "pred"], [1e9, 2e10, 1]], [], "already has column(s) pred"),
        ([["N", "D"], [1e9, 2e10]], ["--form", "nope"], "unknown form 'nope'"),
        ([["N", "D"], [1e9, 2e10]], ["--form", "data-constrained"], "holds no data-constrained fit"),
        ([["N", "D"], [1e9, 2e10]], ["--n", "1e9", "--d", "2e10"], "not both"),
    ],
    ids=["no-D", "nan", "negative", "text", "pred-taken", "form", "no-form", "csv-and-n"],
)
def test_bad_input_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv_rows: list[list[object]], extra: list[str], message: str
) -> None:
    fit = _fit(tmp_path / "fit.json", _noisy(0.01, k=20))
    points = _csv(tmp_path / "p.csv", [str(c) for c in csv_rows[0]], csv_rows[1:])
    with pytest.raises(SystemExit) as info:
        main(["predict", str(fit), str(points), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "7e9"], "needs both --n and --d"),
        ([], "give POINTS.csv"),
        (["--n", "0", "--d", "1e9"], "--n must be a finite positive number"),
        (["--n", "inf", "--d", "1e9"], "--n must be a finite positive number"),
    ],
)
def test_bad_one_point_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", str(_fit(tmp_path / "fit.json")), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_missing_fit_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path / "none.json"), "--n", "1e9", "--d", "1e10"])
    assert "fit file not found" in capsys.readouterr().err
