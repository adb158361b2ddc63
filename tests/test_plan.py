"""``scaling plan``: compute-optimal formula, inference-aware allocation, fitted laws, shapes, CLI, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from scaling.accounting import count_params
from scaling.cli import main
from scaling.laws import (
    BESIROGLU2024,
    HOFFMANN2022,
    KAPLAN2020,
    PF_DAY,
    ChinchillaLaw,
    Law,
    get_law,
    inference_optimal,
)
from scaling.plan.fitted_law import load_fit
from scaling.plan.planner import make_plan, place_models


def _numeric_optimum(law: Law, flops: float) -> float:
    """argmin over N of L(N, C/(6N)), independently of eq. 4."""
    res = minimize_scalar(
        lambda x: float(law.loss(math.exp(x), flops / (6 * math.exp(x)))),
        bounds=(math.log(1e3), math.log(1e15)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(res.x)


@pytest.mark.parametrize("law", [HOFFMANN2022, BESIROGLU2024], ids=lambda law: law.name)
@pytest.mark.parametrize("flops", [1e18, 1e21, 5.76e23, 1e26])
def test_closed_form_optimum_matches_numeric_minimisation(law: ChinchillaLaw, flops: float) -> None:
    opt = law.compute_optimal(flops)
    assert opt.n == pytest.approx(_numeric_optimum(law, flops), rel=1e-5)
    assert opt.flops == pytest.approx(flops)
    assert opt.loss == pytest.approx(float(law.loss(opt.n, opt.d)))


def test_hoffmann_approach3_at_gopher_budget() -> None:
    numeric = _numeric_optimum(HOFFMANN2022, 5.76e23)
    opt = HOFFMANN2022.compute_optimal(5.76e23)
    assert opt.n == pytest.approx(numeric, rel=1e-5)
    assert 30e9 < numeric < 50e9  # Approach 3 gives ~40B (Hoffmann et al. 2022, Table 3)
    a = HOFFMANN2022.beta / (HOFFMANN2022.alpha + HOFFMANN2022.beta)
    assert HOFFMANN2022.compute_optimal(5.76e24).n / opt.n == pytest.approx(10**a)  # N_opt ∝ C^a


def test_optimal_flops_for_loss_inverts_the_optimum() -> None:
    for law in (HOFFMANN2022, BESIROGLU2024):
        loss = law.compute_optimal(3e22).loss
        assert law.optimal_flops_for_loss(loss) == pytest.approx(3e22, rel=1e-9)
        assert Law.optimal_flops_for_loss(law, loss) == pytest.approx(3e22, rel=1e-6)  # generic bisection


def test_bootstrap_draws_take_the_point_estimates_code_path() -> None:
    """A vectorised law (one row per draw) gives, entry by entry, the very numbers of each row's own law:
    the CIs and the point estimate come from one implementation of Hoffmann et al.'s eq. 4."""
    rng = np.random.default_rng(0)
    rows = np.column_stack(
        [rng.uniform(1, 3, 200), *np.exp(rng.uniform(0, 12, (2, 200))), *rng.uniform(0.05, 1.5, (2, 200))]
    )
    draws = ChinchillaLaw.from_rows(rows)
    at = draws.compute_optimal(3.2e21)
    grid = np.logspace(12, 24, 7)
    on_grid = ChinchillaLaw.from_rows(rows[:, None, :]).compute_optimal(grid)
    assert on_grid.n.shape == (200, 7)
    for i, row in enumerate(rows):
        law = ChinchillaLaw(*map(float, row))
        one = law.compute_optimal(3.2e21)
        assert (one.n, one.d, one.loss) == (at.n[i], at.d[i], at.loss[i])
        assert (law.a, law.b, law.G) == (draws.a[i], draws.b[i], draws.G[i])
        assert np.array_equal(law.compute_optimal(grid).loss, on_grid.loss[i])
    assert np.array_equal(draws.rows(), rows)


def test_laws_module_imports_no_stage() -> None:
    """scaling.laws sits below grid/, plan/ and fit/: importing it loads none of them, nor torch."""
    code = "import sys, scaling.laws; print(sorted(m for m in sys.modules if m.startswith(('scaling', 'torch'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['scaling', 'scaling.errors', 'scaling.laws']"


def test_kaplan_law_follows_paper_constants() -> None:
    n, d = 1e9, 2e10
    expected = ((8.8e13 / n) ** (0.076 / 0.095) + 5.4e13 / d) ** 0.095
    assert float(KAPLAN2020.loss(n, d)) == pytest.approx(expected)
    opt = KAPLAN2020.compute_optimal(PF_DAY)
    assert opt.n == pytest.approx(1.3e9) and opt.flops == pytest.approx(PF_DAY)
    assert KAPLAN2020.compute_optimal(10 * PF_DAY).n / opt.n == pytest.approx(10**0.73)


@pytest.mark.parametrize("law", [HOFFMANN2022, BESIROGLU2024, KAPLAN2020], ids=lambda law: law.name)
def test_inference_aware_is_smaller_at_equal_loss(law: Law) -> None:
    chin = law.compute_optimal(1e22)
    t = 2e12
    aware = inference_optimal(law, chin, t)
    assert aware.n < chin.n and aware.d > chin.d
    assert abs(aware.loss - chin.loss) < 1e-6
    total = lambda a: 6 * a.n * a.d + 2 * a.n * t  # noqa: E731
    assert total(aware) < total(chin)
    # no perturbation of N along the iso-loss curve does better
    for factor in (0.97, 1.03):
        n = aware.n * factor
        d = law.tokens_for_loss(n, chin.loss)
        assert 6 * n * d + 2 * n * t >= total(aware) * (1 - 1e-9)


def test_inference_aware_without_inference_is_compute_optimal() -> None:
    chin = HOFFMANN2022.compute_optimal(1e22)
    aware = inference_optimal(HOFFMANN2022, chin, 0)
    assert aware.n == pytest.approx(chin.n, rel=1e-4)


def test_plan_shape_within_five_percent_and_gpu_hours() -> None:
    plan = make_plan(HOFFMANN2022, 1e21, family="llama", mfu=0.4, peak_tflops=989)
    shape = plan.shape.shape
    assert shape is not None and shape.vocab_size == 50304 and shape.context == 2048
    assert abs(count_params(shape).total / plan.optimum.n - 1) <= 0.05
    assert plan.gpu_hours(1e21) == pytest.approx(1e21 / (0.4 * 989e12) / 3600)
    assert plan.shape.flops_exact is not None and plan.shape.flops_exact > 1e21  # attention + head on top of 6ND
    tiny = make_plan(HOFFMANN2022, 1e12)  # N_opt far below a 50k-vocab model
    assert tiny.shape.shape is None and "no llama shape" in (tiny.shape.error or "")


def _write_fit(path: Path, samples: object = None, **extra: object) -> Path:
    fit = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658, **extra}
    if samples is not None:
        fit["samples"] = samples
        fit["se"] = {"E": 0.01, "A": 5.0, "B": 20.0, "alpha": 0.003, "beta": 0.003}
        fit["ci95"] = {
            "E": [1.8, 1.83],
            "A": [470, 490],
            "B": [2050, 2120],
            "alpha": [0.34, 0.35],
            "beta": [0.36, 0.37],
        }
    path.write_text(json.dumps({"approach3": fit}))
    return path


def test_plan_from_fit_json_has_ci_around_the_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centre = np.array([1.8172, 482.01, 2085.43, 0.3478, 0.3658])
    rows = (centre * (1 + 0.01 * rng.standard_normal((300, 5)))).tolist()
    rows.append([None, 1, 1, 1, 1])  # a failed bootstrap replicate
    fitted = load_fit(_write_fit(tmp_path / "fit.json", rows))
    assert fitted.samples is not None and len(fitted.samples) == 300 and fitted.dropped_samples == 1
    plan = make_plan(fitted, 1e21)
    assert plan.optimum.n == pytest.approx(BESIROGLU2024.compute_optimal(1e21).n)
    assert plan.ci is not None
    for key, value in (("n", plan.optimum.n), ("d", plan.optimum.d), ("loss", plan.optimum.loss)):
        lo, hi = plan.ci[key]
        assert lo < value < hi
    dict_rows = [dict(zip(("E", "A", "B", "alpha", "beta"), r, strict=True)) for r in rows[:300]]
    assert np.allclose(load_fit(_write_fit(tmp_path / "dicts.json", dict_rows)).samples, fitted.samples)
    no_samples = load_fit(_write_fit(tmp_path / "plain.json"))
    assert make_plan(no_samples, 1e21).ci is None


def test_bad_fit_files_raise_one_line(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "corrupt.json": "{not json",
        "noa3.json": json.dumps({"approach1": {}}),
        "partial.json": json.dumps({"approach3": {"E": 1, "A": 2}}),
        "negative.json": json.dumps({"approach3": {"E": 1, "A": -2, "B": 1, "alpha": 0.3, "beta": 0.3}}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(Exception) as info:
            load_fit(path)
        assert info.type.__name__ == "ScalingError", name
        assert "\n" not in str(info.value)


def test_reference_models_placement() -> None:
    by_name = {p.model.name: p for p in place_models(BESIROGLU2024)}
    assert by_name["Chinchilla"].verdict == "yes"
    assert by_name["GPT-3"].verdict.startswith("no: N too large")
    assert by_name["LLaMA-7B"].verdict.startswith("no: N too small")
    assert by_name["GPT-3"].flops == pytest.approx(6 * 175e9 * 300e9)
    for p in place_models(HOFFMANN2022):
        assert 0 < p.efficiency <= 1 + 1e-9  # the optimum reaches any loss with no more compute
    assert all(p.efficiency is None for p in place_models(KAPLAN2020))


def test_unknown_law_lists_known() -> None:
    with pytest.raises(Exception, match="unknown law 'chinchilla'; known: kaplan2020, hoffmann2022, besiroglu2024"):
        get_law("chinchilla")


def test_cli_plan_and_models_subprocess() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scaling.cli", "plan", "--flops", "1e21", "--law", "hoffmann2022"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "N_opt" in out and "D_opt" in out and "n_layers=" in out and "GPU-hours" in out
    out = subprocess.run(
        [sys.executable, "-m", "scaling.cli", "plan", "--models"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("GPT-3", "Gopher", "Chinchilla", "LLaMA-7B"):
        assert name in out


def test_cli_json_with_inference(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["plan", "--flops", "1e21", "--inference-tokens", "1e12", "--models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plan"]["inference"]["aware"]["n"] < data["plan"]["optimum"]["n"]
    assert data["plan"]["inference"]["saving"] > 0
    assert len(data["models"]) == 4
    fit = _write_fit(tmp_path / "fit.json", [[1.8172, 482.01, 2085.43, 0.3478, 0.3658]] * 3)
    assert main(["plan", "--flops", "1e20", "--fit", str(fit), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["n_count"] == "with_head"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--flops", "-1"], "--flops must be a finite positive number"),
        (["plan", "--flops", "nan"], "--flops must be a finite positive number"),
        (["plan", "--flops", "lots"], "--flops must be a number"),
        (["plan"], "give --flops"),
        (["plan", "--flops", "1e21", "--law", "nope"], "unknown law 'nope'; known: kaplan2020"),
        (["plan", "--flops", "1e21", "--fit", "/nonexistent/fit.json"], "fit file not found"),
        (["plan", "--flops", "1e21", "--mfu", "1.5"], "--mfu"),
        (["plan", "--flops", "1e21", "--inference-tokens", "-5"], "--inference-tokens"),
        (["plan", "--flops", "1e21", "--family", "rwkv"], "unknown model family"),
    ],
)
def test_cli_bad_input_is_one_error_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
