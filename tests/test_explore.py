"""``scaling explore``: the page is built from results/demo_reference and driven in a real headless Chromium.

The browser tests use Debian's ``chromium`` and ``chromium-driver`` through Selenium 4 (no browser
download). Outside CI they skip when either is absent; in CI (``CI`` set) they fail instead.
Set ``EXPLORER_SCREENSHOT=1`` to keep the screenshot as results/demo_reference/explorer.png, the README's
image (or ``EXPLORER_SCREENSHOT=PATH`` to put it elsewhere). Building the page takes seconds and each
browser test a few more, so those are ``slow``; the bad-input tests stay in the fast tier.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from scaling.cli import main
from scaling.errors import USER_ERROR_EXIT

DEMO = REPO_ROOT / "results" / "demo_reference"
SCREENSHOT = DEMO / "explorer.png"  # the README's image
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PLOTS = ("plot-dim", "plot-laws", "plot-isoflop", "plot-frontier", "plot-planner", "plot-resid")


def _fit() -> dict[str, Any]:
    return json.loads((DEMO / "fit.json").read_text())


def _write_fit(path: Path, fit: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fit))
    return path


def _explore_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["explore", *argv])
    assert exc.value.code == USER_ERROR_EXIT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# -- bad input: one line, exit 2 ----------------------------------------------------------------


def test_folder_without_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    assert "no finished run records" in _explore_error(
        [str(tmp_path / "empty"), "-o", str(tmp_path / "x.html")], capsys
    )


def test_fit_json_from_an_older_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit = _fit()
    del fit["at_flops"], fit["flops"]
    old = _write_fit(tmp_path / "old.json", fit)
    err = _explore_error([str(old), "-o", str(tmp_path / "x.html")], capsys)
    assert "older `scaling fit`" in err and "at_flops" in err and "flops" in err
    newer = _write_fit(tmp_path / "newer.json", {**_fit(), "format_version": 99})
    assert "newer" in _explore_error([str(newer), "-o", str(tmp_path / "x.html")], capsys)


def test_mixed_flop_conventions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = _write_fit(tmp_path / "six_n.json", {**_fit(), "flops": "six_n"})
    err = _explore_error([str(DEMO), str(other), "-o", str(tmp_path / "x.html")], capsys)
    assert "mix FLOP conventions" in err and "exact" in err and "six_n" in err


def test_missing_path_and_run_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such" in _explore_error([str(tmp_path / "nope")], capsys)
    record = next((DEMO / "runs").glob("*.json"))
    assert "run record, not a fit" in _explore_error([str(record)], capsys)


def test_compute_multiplier_of_two_inputs_is_scaling_compares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The variants panel's k(C) and its interval are the numbers `scaling compare` prints for the same pair."""
    from scaling.explore.data import MULTIPLIER_BUDGETS, _compute_multipliers
    from scaling.explore.inputs import load_variants

    fit = copy.deepcopy(_fit())
    fit["approach3"]["alpha"] *= 0.8
    fit["input"]["path"] = str(DEMO)
    other = _write_fit(tmp_path / "steeper" / "fit.json", fit)
    variants = load_variants([DEMO, other])
    (pair,) = _compute_multipliers(variants)
    at = float(variants[0].fit["at_flops"])
    budgets = ",".join(repr(at * m) for m in MULTIPLIER_BUDGETS)
    out = tmp_path / "compare.json"
    assert main(["compare", str(DEMO / "fit.json"), str(other), "--budgets", budgets, "--json", str(out)]) == 0
    capsys.readouterr()
    (expected,) = json.loads(out.read_text())["compute_multiplier"]
    assert len(pair["points"]) == len(expected["points"]) == len(MULTIPLIER_BUDGETS)
    for ours, theirs in zip(pair["points"], expected["points"], strict=True):
        assert ours["k"] == pytest.approx(theirs["value"], rel=1e-12)
        assert ours["ci95"] == pytest.approx(theirs["ci95"], rel=1e-12)
        assert ours["k"] != pytest.approx(1.0, abs=1e-3)  # a steeper alpha really moves the law


# -- the page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/demo_reference and a second, perturbed fit of the same runs (a labelled variant overlay)."""
    tmp = tmp_path_factory.mktemp("explore")
    fit = copy.deepcopy(_fit())
    fit["approach3"]["alpha"] *= 0.8
    # Its own R_D*, R_N* (as `scaling fit --form data-constrained` writes them), so the unique-tokens
    # slider plans with the fit's law for it, as `scaling plan --fit` does.
    a3 = fit["approach3"]
    fit["data_constrained"] = {**{k: a3[k] for k in ("E", "A", "B", "alpha", "beta")}, "R_D": 8.0, "R_N": 4.0}
    fit["input"]["path"] = str(DEMO)  # its runs, wherever the test runs from
    variant = _write_fit(tmp / "steeper" / "fit.json", fit)
    out = tmp / "explorer.html"
    assert main(["explore", str(DEMO), str(variant), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of results/demo_reference alone, as the main job writes it (the README screenshot shows this one)."""
    out = tmp_path_factory.mktemp("explore-demo") / "explorer.html"
    cwd = Path.cwd()
    os.chdir(REPO_ROOT)  # the page names its input as given: results/demo_reference, as in the README
    try:
        assert main(["explore", "results/demo_reference", "-o", str(out)]) == 0
    finally:
        os.chdir(cwd)
    return out


@pytest.mark.slow
def test_page_is_self_contained(page: Path) -> None:
    html = page.read_text()
    size = page.stat().st_size
    assert size < 10e6, f"{size / 1e6:.1f} MB is too big to e-mail"
    # No external script or stylesheet: plotly.js, the data and the page logic are inline (the browser
    # test below checks that no request leaves the file at run time).
    assert re.search(r"<script[^>]*\ssrc\s*=", html) is None
    assert re.search(r"<link[^>]*\shref\s*=", html) is None


@pytest.mark.slow
def test_wandb_artifact_offline(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from scaling.explore.wandb_artifact import ARTIFACT_TYPE, log_explorer

    artifact = log_explorer(page, project="explore-test", group="sweep")
    assert artifact.type == ARTIFACT_TYPE
    assert artifact.manifest.entries["explorer.html"].size == page.stat().st_size
    html_media = list(tmp_path.rglob("media/html/*.html"))
    assert html_media and html_media[0].stat().st_size == page.stat().st_size


@pytest.mark.slow
def test_explore_wandb_offline_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scaling explore ... --wandb` as the main job runs it: no WANDB_MODE, no credentials -> offline, one line."""
    from test_wandb import read_offline_run

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "explorer.html"
    assert main(["explore", str(DEMO), "-o", str(out), "--wandb"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("wandb: explorer page logged offline"), lines
    (run_dir,) = tmp_path.glob("wandb/offline-run-*")
    run = read_offline_run(run_dir)
    # The sweep's project (scaling-train's logging.project) and group (its experiment name).
    assert (run["project"], run["group"], run["job_type"]) == ("scaling", "demo_reference", "explore")
    assert [p.stat().st_size for p in run_dir.rglob("media/html/*.html")] == [out.stat().st_size]


def test_explore_wandb_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scaling.explore.wandb_artifact import log_explorer_of_sweep, sweep_project_and_group

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "explorer.html").write_text("<html></html>")
    assert not log_explorer_of_sweep(tmp_path / "explorer.html", [DEMO])
    assert capsys.readouterr().out == "wandb: off (WANDB_MODE=disabled); the explorer page was not logged\n"
    assert not (tmp_path / "wandb").exists()
    assert sweep_project_and_group([DEMO]) == ("scaling", "demo_reference")  # the reference run's experiment name


# -- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        why = f"{', '.join(missing)} absent (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a headless Chromium: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,3100"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _open(browser: Any, page: Path, fragment: str = "") -> None:
    browser.get("about:blank")  # a new document: a changed fragment alone would not reload the page
    browser.get(page.as_uri() + fragment)
    browser.execute_script("return 1")  # page scripts ran (get() waits for load)


def _drawn(browser: Any, plot_id: str) -> str:
    return browser.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "return JSON.stringify([el.data, el.layout.annotations || null, document.getElementById('plan-table').innerHTML]);",
        plot_id,
    )


@pytest.mark.slow
def test_loads_without_errors_or_requests(browser: Any, page: Path) -> None:
    _open(browser, page)
    severe = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert severe == [], severe
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);"
    )
    leaving = [u for u in urls if not u.startswith(("file:", "data:", "blob:"))]
    assert leaving == [], leaving
    for plot_id in PLOTS:
        assert browser.execute_script("return document.getElementById(arguments[0]).data.length", plot_id) > 0, plot_id
    # Two inputs: the variants panel's compute multiplier table, a header and one row per budget.
    cells = browser.execute_script("return [...document.querySelectorAll('#multipliers tr')].map(r => r.cells.length)")
    assert cells == [5, 5, 5, 5], cells


def _set(browser: Any, control: str, value: str) -> None:
    """Change a control as a user would: the element's value, then the event the page listens to."""
    browser.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "if (el.type === 'checkbox') el.checked = !el.checked; else el.value = arguments[1];"
        "el.dispatchEvent(new Event(el.type === 'range' ? 'input' : 'change'));",
        control,
        value,
    )


CONTROLS = [  # control, new value, the plot it must change
    ("ctl-dim", "D", "plot-dim"),
    ("ctl-dim", "C", "plot-dim"),
    ("ctl-dim", "t", "plot-dim"),
    ("ctl-lawq", "d", "plot-laws"),
    ("ctl-count", "total", "plot-laws"),
    ("ctl-conv", "six_n", "plot-laws"),
    ("ctl-slice", "0", "plot-isoflop"),
    ("ctl-frontier", "r", "plot-frontier"),
    ("ctl-refs", "", "plot-frontier"),
    ("ctl-budget", "20", "plot-planner"),
    ("ctl-inf", "12", "plot-planner"),
    ("ctl-unique", "10", "plot-planner"),
    ("ctl-gpu", "A100", "plot-planner"),
    ("ctl-mfu", "0.2", "plot-planner"),
    ("ctl-price", "5", "plot-planner"),
    ("ctl-resid", "curve", "plot-resid"),
    ("ctl-variant", "1", "plot-planner"),
]


@pytest.mark.slow
def test_each_control_changes_what_is_drawn(browser: Any, page: Path) -> None:
    _open(browser, page)
    for control, value, plot_id in CONTROLS:
        before = _drawn(browser, plot_id)
        _set(browser, control, value)
        assert _drawn(browser, plot_id) != before, f"{control} = {value!r} left {plot_id} unchanged"
    # The view is in the URL fragment: a fresh page opened on it draws the same.
    fragment = browser.execute_script("return location.hash")
    assert "dim=t" in fragment and "gpu=A100" in fragment
    drawn = {p: _drawn(browser, p) for p in PLOTS}
    _open(browser, page, fragment)
    assert {p: _drawn(browser, p) for p in PLOTS} == drawn
    assert browser.get_log("browser") == []


@pytest.mark.slow
def test_planner_equals_scaling_plan(browser: Any, page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k, inf_index = 25, 13  # 10^2.5 x the fit's C*; 10^12 inference tokens (index 0 = none, then 10^6 step 10^0.5)
    _open(browser, page, f"#k={k}&inf={inf_index}")
    plan = browser.execute_script("return window.explorer.plan")
    shown = {
        el.get_attribute("data-key"): float(el.get_attribute("data-value"))
        for el in browser.find_elements("css selector", "#plan-table [data-key]")
    }
    flops = plan["flops"]
    argv = ["plan", "--fit", str(DEMO / "fit.json"), "--flops", repr(flops), "--family", "llama"]
    argv += ["--vocab-size", "512", "--context", "64", "--inference-tokens", "1e12", "--json"]
    assert main(argv) == 0
    want = json.loads(capsys.readouterr().out)["plan"]
    assert flops == pytest.approx(_fit()["at_flops"] * 10**2.5, rel=1e-9)
    for key in ("n", "d", "tokens_per_param", "loss"):
        assert shown[key] == pytest.approx(want["optimum"][key], rel=1e-3), key
    for key in ("n", "d", "loss"):
        assert plan["ci"][key] == pytest.approx(want["ci95"][key], rel=1e-3), key
    assert {k: plan["shape"][k] for k in want["shape"] if k in plan["shape"]} == {
        k: v for k, v in want["shape"].items() if k in plan["shape"]
    }
    assert plan["shape"]["params"] == want["params"]
    assert plan["flops_exact"] == pytest.approx(want["flops_exact"], rel=1e-3)
    assert shown["gpu_hours"] == pytest.approx(want["gpu_hours"]["six_n"], rel=1e-3)
    aware = want["inference"]["aware"]
    assert shown["aware_n"] == pytest.approx(aware["n"], rel=1e-3)
    assert plan["inference"]["aware"]["d"] == pytest.approx(aware["d"], rel=1e-3)
    assert shown["saving"] == pytest.approx(want["inference"]["saving"], rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "unique_index", "command"),
    [  # index i on the slider = 10^(5 + i/4) unique tokens
        (0, 8, ["--law", "muennighoff2023"]),  # a Chinchilla fit: the published law, as `scaling plan` uses
        (0, 14, ["--law", "muennighoff2023"]),
        (1, 8, ["--fit", "VARIANT"]),  # a fit with R_D*, R_N*: its own law, as `scaling plan --fit` uses
    ],
)
def test_unique_tokens_equal_scaling_plan(
    browser: Any, page: Path, capsys: pytest.CaptureFixture[str], variant: int, unique_index: int, command: list[str]
) -> None:
    """The unique-tokens slider: N, D, epochs, loss and penalties equal `scaling plan --unique-tokens U --json`."""
    k = 25
    _open(browser, page, f"#v={variant}&k={k}&uq={unique_index}")
    plan = browser.execute_script("return window.explorer.plan")
    dc = plan["data_constrained"]
    shown = {
        el.get_attribute("data-key"): float(el.get_attribute("data-value"))
        for el in browser.find_elements("css selector", "#plan-table [data-key^=dc_]")
    }
    unique = 10 ** (5 + unique_index / 4)
    assert dc["unique"] == pytest.approx(unique, rel=1e-12)
    fit_json = str(page.parent / "steeper" / "fit.json")
    argv = ["plan", *[fit_json if a == "VARIANT" else a for a in command], "--flops", repr(plan["flops"])]
    assert main([*argv, "--unique-tokens", repr(dc["unique"]), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)["data_constrained_plan"]
    assert want["law"] == ("muennighoff2023" if variant == 0 else "fit:fit.json")
    assert shown["dc_n"] == pytest.approx(want["optimum"]["n"], rel=1e-3)
    assert dc["d"] == pytest.approx(want["optimum"]["d"], rel=1e-3)
    assert shown["dc_epochs"] == pytest.approx(want["optimum"]["epochs"], rel=1e-3)
    assert shown["dc_loss"] == pytest.approx(want["optimum"]["loss"], rel=1e-3)
    assert shown["dc_free_loss"] == pytest.approx(want["unconstrained"]["loss"], rel=1e-3)
    assert dc["unconstrained"]["n"] == pytest.approx(want["unconstrained"]["n"], rel=1e-3)
    assert shown["dc_naive_loss"] == pytest.approx(want["unconstrained_under_limit"]["loss"], rel=1e-3)
    assert shown["dc_loss_penalty"] == pytest.approx(want["loss_penalty"], rel=1e-3, abs=1e-6)
    assert dc["equivalent_flops"] == pytest.approx(want["equivalent_unconstrained_flops"], rel=1e-3)
    assert shown["dc_compute_penalty"] == pytest.approx(want["compute_penalty"], rel=1e-3, abs=1e-6)
    if unique_index == 8:
        assert want["optimum"]["epochs"] > 2  # the limit binds: repeated epochs, a real penalty
    table = browser.find_element("id", "plan-table").text
    assert ("published muennighoff2023 law, not your fit" in table) == (variant == 0)


@pytest.mark.slow
def test_export_and_screenshot(browser: Any, demo_page: Path, tmp_path: Path) -> None:
    _open(browser, demo_page, "#uq=4")  # the default view, with 10^6 unique tokens: the data-constrained plan shows
    url = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.explorer.png('plot-frontier').then(done, e => done(String(e)));"
    )
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    csv = browser.execute_script("return window.explorer.csv('plot-dim')").splitlines()
    assert csv[0] == "trace,x,y" and len(csv) > 15
    shot = tmp_path / "explorer.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    keep = os.environ.get("EXPLORER_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, SCREENSHOT if keep == "1" else Path(keep))
