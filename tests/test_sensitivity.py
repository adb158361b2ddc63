"""`scaling fit --sensitivity` (issue 16, item 4): the same runs under every convention, on the demo reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.cli import main
from scaling.fit.points import Curve, FitPoints, load_points
from scaling.fit.sensitivity import SMOOTH_FRACTION, smoothed_loss
from scaling.records import FIT_PARAM_COUNTS, FLOP_CONVENTIONS

DEMO = Path(__file__).resolve().parents[1] / "results" / "demo_reference"


def test_panel_on_the_demo_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fit.json"
    assert main(["fit", str(DEMO), "--sensitivity", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Convention sensitivity" in text and "N_opt max/min" in text
    fit = json.loads(out.read_text())
    panel = fit["sensitivity"]
    rows = panel["rows"]
    assert len(rows) == len(FIT_PARAM_COUNTS) * len(FLOP_CONVENTIONS) * 2
    by_key = {(r["params"], r["flops"], r["loss"]): r for r in rows}
    # The default conventions' row is the main fit.
    main_row = by_key[("with_head", "exact", "final")]
    assert main_row["approach3"]["a"] == pytest.approx(fit["approach3"]["a"], rel=1e-12)
    assert main_row["approach2"]["a"] == pytest.approx(fit["approach2"]["a"], rel=1e-12)
    # Approach 3 fits L(N, D): the FLOP convention cannot move it; the parameter count does.
    for params in FIT_PARAM_COUNTS:
        a3 = {by_key[(params, f, "final")]["approach3"]["a"] for f in FLOP_CONVENTIONS}
        assert len(a3) == 1
    assert (
        by_key[("total", "exact", "final")]["approach3"]["a"]
        < by_key[("non_embedding", "exact", "final")]["approach3"]["a"]
    )
    # Approach 2 groups runs by budget in C: the convention moves its exponent.
    a2 = [by_key[("with_head", f, "final")]["approach2"]["a"] for f in FLOP_CONVENTIONS]
    assert max(a2) - min(a2) > 0.01
    spread = panel["spread"]["approach3"]
    assert spread["a_range"] == pytest.approx(spread["a_max"] - spread["a_min"])
    assert spread["N_opt_max_over_min"] > 1.0


def test_panel_needs_run_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    points = load_points(str(DEMO))
    csv = tmp_path / "points.csv"
    pd.DataFrame({"N": points.n, "D": points.d, "loss": points.loss}).to_csv(csv, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(csv), "--sensitivity"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "run records" in err[0]


def test_smoothed_loss_is_the_local_line_at_the_end() -> None:
    tokens = np.linspace(1e6, 1e8, 200)
    line = 4.0 - 0.1 * np.log(tokens)
    noise = np.random.default_rng(0).normal(0, 0.01, tokens.size)
    curve = Curve("r", 1e6, tokens, 6e6 * tokens, line + noise)
    base = load_points(str(DEMO))
    points = FitPoints(
        run_id=np.array(["r"]),
        n=np.array([1e6]),
        d=np.array([1e8]),
        c=np.array([6e14]),
        loss=np.array([line[-1] + noise[-1]]),
        budget=np.array([np.nan]),
        curves=(curve,),
        source="test",
        kind="records",
        params=base.params,
        flops=base.flops,
        n_from=base.n_from,
        c_from=base.c_from,
    )
    smoothed, kept = smoothed_loss(points)
    window = int((tokens >= (1 - SMOOTH_FRACTION) * tokens[-1]).sum())
    assert kept == 0
    # The line through ~40 noisy evals lands far closer to the truth than the last eval's noise.
    assert abs(smoothed[0] - line[-1]) < 3 * 0.01 * 2 / np.sqrt(window)
    assert abs(smoothed[0] - line[-1]) < abs(noise[-1]) or abs(noise[-1]) < 0.005


def test_panel_follows_the_chosen_isoflop_estimator() -> None:
    """Approach 2's column takes its minima with the fit's --isoflop-estimator, as the main fit does."""
    from scaling.fit.approach2 import fit_approach2
    from scaling.fit.sensitivity import sensitivity_panel

    points = load_points(str(DEMO))
    at = 10.0 * float(points.c.max())
    akima = sensitivity_panel(str(DEMO), at, estimator="akima")["rows"]
    parabola = sensitivity_panel(str(DEMO), at)["rows"]
    row = next(r for r in akima if (r["params"], r["flops"], r["loss"]) == ("with_head", "exact", "final"))
    assert row["approach2"]["a"] == pytest.approx(fit_approach2(points, 0.05, "akima").fit.a, rel=1e-12)
    assert row["approach2"]["a"] != pytest.approx(parabola[akima.index(row)]["approach2"]["a"], rel=1e-3)
