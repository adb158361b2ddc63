"""``scaling plan --fit``: every printed number carries a 95% interval from the fit's bootstrap draws."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from scaling.cli import main
from scaling.laws import ChinchillaLaw, chinchilla_inference_optimal, inference_optimal
from scaling.plan.data_constrained import DRAW_QUANTITIES, make_data_constrained_plan
from scaling.plan.fitted_law import load_fit
from scaling.plan.planner import make_plan

CENTRE = [1.8172, 482.01, 2085.43, 0.3478, 0.3658]  # Besiroglu et al. 2024
PLAN = {"inference_tokens": 2e11, "price_per_gpu_hour": 2.5}


def _fit(path: Path, rows: list[list[float]] | None) -> Path:
    a3: dict = dict(zip(("E", "A", "B", "alpha", "beta"), CENTRE, strict=True))
    if rows is not None:
        a3["samples"] = rows
    path.write_text(json.dumps({"params": "total", "approach3": a3, "input": {"max_C": 1e20}}))
    return path


def _noisy(scale: float, k: int = 300) -> list[list[float]]:
    rng = np.random.default_rng(1)
    return (np.array(CENTRE) * (1 + scale * rng.standard_normal((k, 5)))).tolist()


def _point_values(plan) -> dict[str, float]:  # noqa: ANN001 - a Plan
    o, inf = plan.optimum, plan.inference
    exact = plan.shape.flops_exact
    return {
        "n": o.n,
        "d": o.d,
        "tokens_per_param": o.tokens_per_param,
        "loss": o.loss,
        "flops_exact": exact,
        "gpu_hours_six_n": plan.gpu_hours(plan.flops),
        "gpu_hours_exact": plan.gpu_hours(exact),
        "cost_six_n": plan.cost(plan.flops),
        "cost_exact": plan.cost(exact),
        "inference.n": inf.aware.n,
        "inference.d": inf.aware.d,
        "inference.loss": inf.aware.loss,
        "inference.total_flops": inf.total(inf.aware),
        "inference.chinchilla_total_flops": inf.total(inf.chinchilla),
        "inference.saving": inf.saving,
    }


def _interval(plan, key: str) -> tuple[float, float]:  # noqa: ANN001 - a Plan
    if key.startswith("inference."):
        return plan.inference.ci[key.split(".", 1)[1]]
    return plan.ci[key]


def test_identical_draws_give_zero_width_intervals_at_the_point(tmp_path: Path) -> None:
    plan = make_plan(load_fit(_fit(tmp_path / "f.json", [CENTRE] * 20)), 1e20, **PLAN)
    assert plan.n_draws == 20
    for key, value in _point_values(plan).items():
        lo, hi = _interval(plan, key)
        assert lo == pytest.approx(value, rel=1e-6) and hi == pytest.approx(value, rel=1e-6), key


def test_intervals_bracket_the_point_and_widen_with_the_draws(tmp_path: Path) -> None:
    narrow = make_plan(load_fit(_fit(tmp_path / "n.json", _noisy(0.003))), 1e20, **PLAN)
    wide = make_plan(load_fit(_fit(tmp_path / "w.json", _noisy(0.03))), 1e20, **PLAN)
    for key, value in _point_values(wide).items():
        lo_w, hi_w = _interval(wide, key)
        lo_n, hi_n = _interval(narrow, key)
        if key in ("gpu_hours_six_n", "cost_six_n"):  # every draw spends C = 6 N_opt D_opt
            assert hi_w - lo_w == pytest.approx(0, abs=1e-9 * value)
            continue
        assert lo_w < value < hi_w, key
        # Exact FLOPs step with the discrete shapes, so they widen less than in proportion.
        assert hi_w - lo_w > (1 if "exact" in key else 3) * (hi_n - lo_n), key
    # Hours and cost are the exact FLOPs through the planner's one throughput model, draw by draw.
    assert wide.ci["gpu_hours_exact"] == pytest.approx(tuple(wide.gpu_hours(np.array(wide.ci["flops_exact"]))))
    assert wide.ci["cost_exact"] == pytest.approx(tuple(2.5 * np.array(wide.ci["gpu_hours_exact"])))


def test_vectorised_inference_optimum_is_the_scalar_one_per_draw() -> None:
    rows = np.array(_noisy(0.03, k=5))
    draws = ChinchillaLaw.from_rows(rows)
    at = draws.compute_optimal(1e20)
    aware = chinchilla_inference_optimal(draws, at.loss, 2e11)
    for i, row in enumerate(rows):
        law = ChinchillaLaw(*row)
        one = inference_optimal(law, law.compute_optimal(1e20), 2e11)
        assert aware.n[i] == pytest.approx(one.n, rel=1e-12) and aware.loss[i] == pytest.approx(at.loss[i])
    zero = chinchilla_inference_optimal(draws, at.loss, 0.0)  # no inference: the compute-optimal model
    assert np.allclose(zero.n, at.n, rtol=1e-9) and np.allclose(zero.d, at.d, rtol=1e-9)


NUMBER = re.compile(r"\d")


def test_cli_prints_an_interval_on_every_estimated_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit = _fit(tmp_path / "fit.json", _noisy(0.01))
    argv = ["plan", "--fit", str(fit), "--flops", "1e20", "--inference-tokens", "2e11", "--price-per-gpu-hour", "2.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for label in ("N_opt", "D_opt", "tokens/param", "loss", "training", "cost"):
        assert "95% CI" in lines[label], label
    assert "GPU-hours" in out and re.search(r"GPU-hours.*exact [\d.e+-]+  \[95% CI", out)
    assert "same loss for" in out and re.search(r"fewer total FLOPs", lines["same"]) and "95% CI" in lines["same"]
    assert out.count("95% CI low") == 2 and out.count("95% CI high") == 2  # both rows of the inference table
    assert "same cost formula" in out
    assert main([*argv, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["n_draws"] == 300 and {"cost_exact", "gpu_hours_exact", "loss"} <= set(plan["ci95"])
    assert plan["cost"]["price_per_gpu_hour"] == 2.5 and "saving" in plan["inference"]["ci95"]


def test_fit_without_draws_and_published_laws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--fit", str(_fit(tmp_path / "plain.json", None)), "--flops", "1e20"]) == 0
    out = capsys.readouterr().out
    assert "95% CI" not in out and "scaling fit --bootstrap 1000 --json" in out
    assert main(["plan", "--law", "hoffmann2022", "--flops", "1e20", "--price-per-gpu-hour", "2"]) == 0
    out = capsys.readouterr().out
    assert "CI" not in out and "cost           at $2/GPU-hour" in out
    with pytest.raises(SystemExit):
        main(["plan", "--flops", "1e20", "--price-per-gpu-hour", "-1"])
    assert "--price-per-gpu-hour" in capsys.readouterr().err


def _dc_fit(path: Path, rows: list[list[float]] | None) -> Path:
    row = [*CENTRE, 15.0, 5.0]
    body: dict = dict(zip(("E", "A", "B", "alpha", "beta", "R_D", "R_N"), row, strict=True))
    if rows is not None:
        body["samples"] = rows
    path.write_text(json.dumps({"form": "data-constrained", "data_constrained": body}))
    return path


def test_data_constrained_plan_intervals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = [*CENTRE, 15.0, 5.0]
    same = make_data_constrained_plan(None, str(_dc_fit(tmp_path / "s.json", [row] * 5)), 1e20, 2.5e9)
    assert same.ci is not None and set(same.ci) == set(DRAW_QUANTITIES) and same.n_draws == 5
    points = {"n": same.optimum.n, "loss": same.optimum.loss, "compute_penalty": same.compute_penalty}
    for key, value in points.items():
        assert same.ci[key] == pytest.approx((value, value), rel=1e-9), key
    rng = np.random.default_rng(2)
    rows = (np.array(row) * (1 + 0.01 * rng.standard_normal((40, 7)))).tolist()
    fit = _dc_fit(tmp_path / "w.json", rows)
    wide = make_data_constrained_plan(None, str(fit), 1e20, 2.5e9)
    for key, value in points.items():
        lo, hi = wide.ci[key]
        assert lo < value < hi, key
    assert main(["plan", "--fit", str(fit), "--flops", "1e20", "--unique-tokens", "2.5e9"]) == 0
    out = capsys.readouterr().out
    assert out.count("95% CI") >= 9 and "40 bootstrap draws" in out
    assert (
        main(["plan", "--fit", str(_dc_fit(tmp_path / "p.json", None)), "--flops", "1e20", "--unique-tokens", "2.5e9"])
        == 0
    )
    assert "scaling fit --bootstrap 1000 --json" in capsys.readouterr().out


def test_reference_models_on_a_fit_carry_intervals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--models` on a fit with draws: each placement's loss, N_opt, N/N_opt and efficiency get an interval
    that brackets the point (zero width for identical draws), in the text and in the JSON."""
    from scaling.plan.planner import place_models

    same = place_models(load_fit(_fit(tmp_path / "same.json", [CENTRE] * 50)))
    for p in same:
        assert p.ci is not None
        assert p.ci["loss"] == pytest.approx((p.loss, p.loss), rel=1e-12)
        assert p.ci["n_opt"] == pytest.approx((p.optimum.n, p.optimum.n), rel=1e-9)
    wide = place_models(load_fit(_fit(tmp_path / "wide.json", _noisy(0.02))))
    for p in wide:
        point = {"loss": p.loss, "n_opt": p.optimum.n, "n_over_n_opt": p.ratio, "efficiency": p.efficiency}
        for key, value in point.items():
            lo, hi = p.ci[key]
            assert lo < value < hi, key
    assert main(["plan", "--fit", str(tmp_path / "wide.json"), "--models"]) == 0
    out = capsys.readouterr().out
    rows_text = out.splitlines()
    assert sum(r.startswith("  95% low ") for r in rows_text) == len(wide)
    assert sum(r.startswith("  95% high ") for r in rows_text) == len(wide)
    assert main(["plan", "--fit", str(tmp_path / "wide.json"), "--models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert all(set(r["ci95"]) == {"loss", "n_opt", "n_over_n_opt", "efficiency"} for r in rows)
    assert main(["plan", "--law", "hoffmann2022", "--models"]) == 0
    assert "95% low" not in capsys.readouterr().out  # a published law has no draws


def test_plan_uses_the_selected_chinchilla_family_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fit that recommends Gadre et al.'s form plans with it (Chinchilla with alpha = beta) and its draws;
    one that recommends Kaplan's joint law plans with Approach 3 and says why."""
    from scaling.laws import OvertrainLaw

    demo = Path(__file__).resolve().parents[1] / "results" / "demo_reference"
    fit = tmp_path / "ot.json"
    assert main(["fit", str(demo), "--form", "overtrain", "--bootstrap", "30", "--json", str(fit)]) == 0
    capsys.readouterr()
    data = json.loads(fit.read_text())
    fitted = load_fit(fit, selected=True)
    expected = OvertrainLaw(**data["forms"]["overtrain"]["params"]).as_chinchilla()
    assert fitted.law.alpha == pytest.approx(fitted.law.beta, rel=1e-12)
    assert fitted.law.compute_optimal(1.6e13).n == pytest.approx(expected.compute_optimal(1.6e13).n, rel=1e-12)
    assert fitted.samples is not None and len(fitted.samples) >= 2
    assert np.allclose(fitted.samples[:, 3], fitted.samples[:, 4])
    assert load_fit(fit).law.alpha == pytest.approx(data["approach3"]["alpha"])  # compare/explore keep Approach 3
    data["selected_form"] = "kaplan"
    fit.write_text(json.dumps(data))
    assert "the fit recommends kaplan" in load_fit(fit, selected=True).law.description
