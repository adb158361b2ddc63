"""``scaling explore``: the page is built from results/demo_reference and driven in a real headless Chromium.

The browser tests use Debian's ``chromium`` and ``chromium-driver`` through Selenium 4 (no browser
download). Outside CI they skip when either is absent; in CI (``CI`` set) they fail instead.
Set ``EXPLORER_SCREENSHOT=PATH`` to keep the screenshot (the README image is made that way).
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


# -- the page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/demo_reference and a second, perturbed fit of the same runs (a labelled variant overlay)."""
    tmp = tmp_path_factory.mktemp("explore")
    fit = copy.deepcopy(_fit())
    fit["approach3"]["alpha"] *= 0.8
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


def test_page_is_self_contained(page: Path) -> None:
    html = page.read_text()
    size = page.stat().st_size
    assert size < 10e6, f"{size / 1e6:.1f} MB is too big to e-mail"
    # No external script or stylesheet: plotly.js, the data and the page logic are inline (the browser
    # test below checks that no request leaves the file at run time).
    assert re.search(r"<script[^>]*\ssrc\s*=", html) is None
    assert re.search(r"<link[^>]*\shref\s*=", html) is None


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
    ("ctl-gpu", "A100", "plot-planner"),
    ("ctl-mfu", "0.2", "plot-planner"),
    ("ctl-price", "5", "plot-planner"),
    ("ctl-resid", "curve", "plot-resid"),
    ("ctl-variant", "1", "plot-planner"),
]


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


def test_export_and_screenshot(browser: Any, demo_page: Path, tmp_path: Path) -> None:
    _open(browser, demo_page)
    url = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.explorer.png('plot-frontier').then(done, e => done(String(e)));"
    )
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    csv = browser.execute_script("return window.explorer.csv('plot-dim')").splitlines()
    assert csv[0] == "trace,x,y" and len(csv) > 15
    shot = tmp_path / "explorer.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    if os.environ.get("EXPLORER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["EXPLORER_SCREENSHOT"])
