"""`scaling fit` end to end: a CSV, a directory of run records, Epoch's Chinchilla data, bad input."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scaling.cli import main
from scaling.records import write_record

# An Epoch-like Chinchilla law at small scale: a = beta / (alpha + beta) = 0.5139.
E, A, B, ALPHA, BETA = 1.8, 400.0, 2000.0, 0.35, 0.37
A_TRUE = BETA / (ALPHA + BETA)
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
PLOTS = ("loss_vs_N.png", "loss_vs_D.png", "loss_vs_C.png", "isoflop.png", "optimal_scaling.png", "residuals.png")


def law(n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray | float:
    return E + A / np.asarray(n) ** ALPHA + B / np.asarray(d) ** BETA


def isoflop_runs(
    budgets: tuple[float, ...] = (1e15, 3e15, 1e16, 3e16), sizes: int = 6
) -> Iterator[tuple[float, float, float]]:
    """(budget, N, D) of an isoFLOP grid centred on the true optimum of each budget."""
    for c in budgets:
        for n in G * (c / 6) ** A_TRUE * np.logspace(-0.6, 0.6, sizes):
            yield c, float(round(n)), float(round(c / (6 * n)))


def write_records(root: Path, seed: int = 0, n_eval: int = 12) -> int:
    """Finished runs of an isoFLOP grid with eval curves, plus one diverged and one running record."""
    rng = np.random.default_rng(seed)
    count = 0
    for c, n, d in isoflop_runs():
        fpt = {"kaplan": 6 * 0.8 * n, "six_n": 6 * n, "exact": 6.6 * n}
        tokens = np.linspace(d / n_eval, d, n_eval)
        curve = [
            {
                "step": i + 1,
                "tokens": float(t),
                "flops": {k: v * float(t) for k, v in fpt.items()},
                "train_loss": None,
                "val_loss": float(law(n, t) * np.exp(rng.normal(0, 0.003))),
                "lr": 1e-3,
            }
            for i, t in enumerate(tokens)
        ]
        run_id = f"b{c:.0e}-n{int(n)}"
        rec: dict[str, Any] = {
            "run_id": run_id,
            "status": "finished",
            "experiment": "synthetic",
            "config": {"grid": {"budget": c}},
            "model": {"family": "gpt2"},
            "params": {"non_embedding": 0.8 * n, "with_head": n, "total": 1.1 * n},
            "tokens": d,
            "flops": {k: v * d for k, v in fpt.items()},
            "flops_per_token": fpt,
            "curve": curve,
            "final": {"val_loss": curve[-1]["val_loss"], "train_loss": None},
        }
        write_record(root / "synthetic" / "runs" / f"{run_id}.json", rec)
        count += 1
    stub = {k: rec[k] for k in ("experiment", "config", "model", "params", "tokens", "flops", "curve")}
    write_record(root / "synthetic" / "runs" / "div.json", {**stub, "run_id": "div", "status": "diverged", "final": {}})
    write_record(root / "other" / "runs" / "run.json", {**stub, "run_id": "run", "status": "running", "final": {}})
    return count


def run_cli(args: list[str]) -> int:
    return main(["fit", *[str(a) for a in args]])


def test_fit_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    rows = [(n, d, law(n, d) * np.exp(rng.normal(0, 0.003))) for _, n, d in isoflop_runs(sizes=7)]
    csv = tmp_path / "points.csv"
    pd.DataFrame(rows, columns=["N", "D", "loss"]).to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    assert run_cli([csv, "--json", out, "--plots", tmp_path / "plots"]) == 0
    text = capsys.readouterr().out
    assert "Approach 3" in text and "Approach 2" in text and "FLAGS" in text
    fit = json.loads(out.read_text())
    a3 = fit["approach3"]
    for key in ("E", "A", "B", "alpha", "beta", "a", "b", "G", "grad_norm", "best_start_on_edge", "warnings"):
        assert key in a3
    assert a3["a"] == pytest.approx(A_TRUE, abs=0.03)
    assert fit["approach2"]["a"] == pytest.approx(A_TRUE, abs=0.03)
    assert fit["input"]["path"] == str(csv) and fit["input"]["kind"] == "csv"
    assert fit["learning_curve"]["not_fitted"]
    for name in PLOTS:
        assert (tmp_path / "plots" / name).stat().st_size > 10_000


def test_fit_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n_runs = write_records(tmp_path / "results")
    out = tmp_path / "fit.json"
    args = [tmp_path / "results", "--json", out, "--plots", tmp_path / "plots", "--bootstrap", 20]
    assert run_cli([*args, "--holdout-above", 2e16, "--params", "non_embedding", "--flops", "six_n"]) == 0
    text = capsys.readouterr().out
    assert "skipped 1 diverged, 1 running" in text and "Hold-out" in text
    fit = json.loads(out.read_text())
    assert fit["input"]["params"] == "non_embedding" and fit["input"]["flops"] == "six_n"
    assert fit["input"]["n_runs"] == n_runs and fit["input"]["skipped"] == {"diverged": 1, "running": 1}
    a3 = fit["approach3"]
    assert set(a3["se"]) >= {"E", "A", "B", "alpha", "beta", "a", "b", "G"}
    assert set(a3["ci95"]) >= {"E", "A", "B", "alpha", "beta", "a", "b", "G", "N_opt", "D_opt", "loss_opt"}
    assert np.asarray(a3["samples"]).shape == (20, 5)
    assert a3["ci95"]["a"][0] <= a3["a"] <= a3["ci95"]["a"][1]
    for key in ("alpha_N", "N_c", "alpha_D", "D_c", "alpha_C", "C_c", "form"):
        assert key in fit["kaplan"]
    assert fit["approach1"]["a"] > 0 and "ci95" in fit["approach1"]
    assert fit["approach2"]["a"] == pytest.approx(A_TRUE, abs=0.03)  # from the config.grid.budget tags
    assert len(fit["approach2"]["budgets"]) == 4
    assert len(fit["learning_curve"]["runs"]) == n_runs
    assert fit["learning_curve"]["median_abs_rel_error"] < 0.05
    held = fit["holdout"]
    assert held["n_heldout"] == 6 and held["n_train"] == n_runs - 6
    assert held["approach3"]["mean_abs_rel_error"] < 0.05
    assert isinstance(fit["flags"], list)
    for name in (*PLOTS, "learning_curves.png", "holdout.png"):
        assert (tmp_path / "plots" / name).is_file()


def test_fit_chinchilla_epoch(chinchilla_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Besiroglu et al. 2024's refit of Chinchilla: E = 1.8172 on the 240 points left after dropping 5."""
    out = tmp_path / "fit.json"
    assert run_cli([chinchilla_csv, "--drop-highest-loss", 5, "--json", out]) == 0
    fit = json.loads(out.read_text())
    assert fit["input"]["kind"] == "epoch" and fit["input"]["n_runs"] == 240
    a3 = fit["approach3"]
    assert a3["E"] == pytest.approx(1.8172, rel=0.005)
    assert a3["a"] == pytest.approx(0.514, abs=0.005)
    # Only final points: the envelope laws still run, with a note saying what they rest on.
    assert any("Pareto" in n for n in fit["approach1"]["notes"])
    assert fit["learning_curve"]["not_fitted"]
    assert "FLAGS" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad input: one line, exit 2


def _bad_csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing", "no such file or directory"),
        (lambda p: p, "no run records"),
        (lambda p: _bad_csv(p, "N,D,loss\n1e6,1e8,4\n2e6,1e8,3.9\n3e6,1e8,3.8\n4e6,1e8,3.7\n"), "only 4 run"),
        (lambda p: _bad_csv(p, "N,D,loss\n1e6,1e8,nan\n"), "column 'loss' must be positive"),
        (lambda p: _bad_csv(p, "N,D,loss\n1e6,-1e8,4\n"), "column 'D' must be positive"),
        (lambda p: _bad_csv(p, "N,D,loss\n0,1e8,4\n"), "column 'N' must be positive"),
        (lambda p: _bad_csv(p, "N,D,loss\n" + "".join(f"1e6,{k}e8,4\n" for k in range(1, 7))), "at one N"),
        (lambda p: _bad_csv(p, "N,tokens,loss\n1e6,1e8,4\n"), "missing column"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, match: str) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli([make(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(match, err), err


def test_corrupt_record_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_records(tmp_path)
    bad = tmp_path / "synthetic" / "runs" / "zz-broken.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        run_cli([tmp_path])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: corrupt run record") and "zz-broken.json" in err and "\n" not in err


def test_holdout_without_larger_runs_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_records(tmp_path)
    with pytest.raises(SystemExit):
        run_cli([tmp_path, "--holdout-above", 1e30])
    assert "no run at or above it" in capsys.readouterr().err


def test_holdout_largest_budget_fits_the_smaller_budgets_and_predicts_the_largest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n_runs = write_records(tmp_path / "results")
    out = tmp_path / "fit.json"
    assert run_cli([tmp_path / "results", "--holdout-largest-budget", "--json", out]) == 0
    text = capsys.readouterr().out
    assert "Hold-out: fitted on 18 run(s)" in text and "best run" in text
    held = json.loads(out.read_text())["holdout"]
    assert held["n_train"] == n_runs - 6 and held["n_heldout"] == 6
    assert all(r["C"] == pytest.approx(3e16 * 1.1, rel=0.01) for r in held["runs"])  # exact = 1.1 x 6ND
    best = min(held["runs"], key=lambda r: r["loss"])
    assert held["approach3"]["best_run_rel_error"] == pytest.approx(best["approach3_rel_error"])
    assert abs(held["approach3"]["best_run_rel_error"]) < 0.01  # a 0.3%-noise law extrapolates one budget


def test_holdout_largest_budget_needs_two_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_records(tmp_path / "results")
    for budget in ("1e+15", "3e+15", "1e+16"):  # leave the 3e16 budget alone
        for path in (tmp_path / "results" / "synthetic" / "runs").glob(f"b{budget}-*.json"):
            path.unlink()
    with pytest.raises(SystemExit) as exit_info:
        run_cli([tmp_path / "results", "--holdout-largest-budget"])
    assert exit_info.value.code == 2
    assert "needs at least 2 isoFLOP budgets" in capsys.readouterr().err
