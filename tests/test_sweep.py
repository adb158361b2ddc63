"""Sweeps: Hydra multirun end to end, skipping/resuming by run_id, grid validation, WSD branches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import compose_train, tiny_overrides

from scaling.records import load_records, read_record
from scaling.runid import run_id_for
from scaling.train.run import run_training
from scaling.train.spec import resolve_spec


def _multirun(results: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "scaling.train.app", "-m", *tiny_overrides(results, *extra)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, cwd=results)


@pytest.mark.slow
def test_sweep_runs_skips_and_extends_by_run_id(tmp_path: Path) -> None:
    first = _multirun(tmp_path, "train.tokens=8192", "seed=0,1")
    assert first.returncode == 0, first.stderr
    assert "[sweep] 2 runs" in first.stderr and "[sweep] run 2/2" in first.stderr
    records = {r["run_id"]: r for r in load_records(tmp_path)}
    assert len(records) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "default" / "runs").glob("*.json")}

    again = _multirun(tmp_path, "train.tokens=8192", "seed=0,1")
    assert again.returncode == 0 and again.stdout.count("(skipped)") == 2
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    extended = _multirun(tmp_path, "train.tokens=8192", "seed=0,1,2")
    assert extended.returncode == 0 and extended.stdout.count("(skipped)") == 2
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert len(load_records(tmp_path)) == 3


@pytest.mark.slow
def test_impossible_grid_point_fails_before_any_training(tmp_path: Path) -> None:
    out = _multirun(tmp_path, "train.tokens=8192", "model.target_params=1e5,10")
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run 1 (") and "target 10" in last, out.stderr
    assert not (tmp_path / "default" / "runs").exists()


@pytest.mark.slow
def test_dry_run_lists_the_runs_training_would_resolve_and_trains_none(tmp_path: Path) -> None:
    out = _multirun(tmp_path, "train.tokens=8192,16384", "train.dry_run=true")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("[dry run] 2 runs, none trained")
    for tokens, line in zip((8192, 16384), lines[1:], strict=True):
        run_id = run_id_for(compose_train(tiny_overrides(tmp_path, f"train.tokens={tokens}")))
        assert f"train.tokens={tokens} " in line and f"run_id={run_id}" in line and f"D={tokens / 1e3:.4g}k" in line
    assert not (tmp_path / "default").exists() and not (tmp_path / "multirun").exists()


@pytest.mark.slow
def test_budget_below_one_batch_fails_before_any_training(tmp_path: Path) -> None:
    out = _multirun(tmp_path, "train.tokens=8192,100")
    assert out.returncode == 2 and "smaller than one batch" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "default" / "runs").exists()


@pytest.mark.parametrize("convention", ["kaplan", "six_n", "exact"])
def test_isoflop_point_spends_the_budget(tmp_path: Path, convention: str) -> None:
    budget = 3e11
    cfg = compose_train(
        tiny_overrides(
            tmp_path,
            "grid.kind=isoflop",
            f"train.flops={budget}",
            f"train.flops_convention={convention}",
            "grid.offset=1",
        )
    )
    spec = resolve_spec(cfg, 512)
    spent = getattr(spec.flops_per_token, convention) * spec.tokens
    one_batch = getattr(spec.flops_per_token, convention) * spec.tokens_per_step
    assert abs(spent - budget) <= one_batch / 2
    smaller = resolve_spec(
        compose_train(
            tiny_overrides(
                tmp_path,
                "grid.kind=isoflop",
                f"train.flops={budget}",
                f"train.flops_convention={convention}",
                "grid.offset=0",
            )
        ),
        512,
    )
    assert smaller.params.with_head < spec.params.with_head


@pytest.mark.slow
def test_wsd_branch_equals_a_dedicated_wsd_run(tmp_path: Path) -> None:
    common = ["schedule=wsd", "schedule.warmup_tokens=2048", "schedule.cooldown_frac=0.25"]
    branched = run_training(
        compose_train(tiny_overrides(tmp_path / "a", "train.tokens=32768", "schedule.branches=[0.5]", *common))
    )
    assert branched.status == "finished"
    records = load_records(tmp_path / "a")
    assert len(records) == 2
    branch = next(r for r in records if r.get("branch_of"))
    assert branch["branch_of"] == branched.run_id and branch["tokens"] * 2 == read_record(branched.record)["tokens"]
    dedicated = run_training(compose_train(tiny_overrides(tmp_path / "b", "train.tokens=16384", *common)))
    alone = read_record(dedicated.record)
    assert alone["tokens"] == branch["tokens"]
    assert branch["final"]["val_loss"] == pytest.approx(alone["final"]["val_loss"], rel=1e-5)
    # The stable run itself is unaffected by the branch it took.
    plain = run_training(compose_train(tiny_overrides(tmp_path / "c", "train.tokens=32768", *common)))
    assert read_record(plain.record)["final"]["val_loss"] == pytest.approx(
        read_record(branched.record)["final"]["val_loss"], rel=1e-5
    )


@pytest.mark.slow
def test_wsd_budgets_of_one_size_share_one_run(tmp_path: Path) -> None:
    base = ["schedule=wsd", "schedule.warmup_tokens=2048", "grid.tokens_per_param=[0.1,0.2]"]
    first = run_training(
        compose_train(tiny_overrides(tmp_path, "train.tokens=null", "train.tokens_per_param=0.1", *base))
    )
    second = run_training(
        compose_train(tiny_overrides(tmp_path, "train.tokens=null", "train.tokens_per_param=0.2", *base))
    )
    assert first.status == "finished" and second.status == "skipped" and first.run_id == second.run_id
    assert len(load_records(tmp_path)) == 2


@pytest.mark.slow
def test_packed_launcher_trains_runs_side_by_side_and_skips_them_after(tmp_path: Path) -> None:
    """hydra/launcher=packed: k worker processes, cores/k threads each, ordinary records, idempotent."""
    packed = ("train.tokens=8192", "seed=0,1", "hydra/launcher=packed", "hydra.launcher.n_jobs=2")
    first = _multirun(tmp_path, *packed)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in first.stdout + first.stderr  # the joblib launcher, not the basic one
    records = load_records(tmp_path)
    assert len(records) == 2 and {r["status"] for r in records} == {"finished"}
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert [r["throughput"]["cpu_threads"] for r in records] == [threads, threads]
    again = _multirun(tmp_path, *packed)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("(skipped)") == 2


def test_sweep_eta_weighs_runs_by_flops_and_drops_skipped_ones(tmp_path: Path) -> None:
    from scaling.sweep import PROGRESS_FILE, sweep_line

    progress = tmp_path / PROGRESS_FILE
    started = time.time() - 100.0
    plan = {"kind": "plan", "started": started, "runs": 4, "work": [1.0, 3.0, 2.0, 4.0]}
    progress.write_text(json.dumps(plan) + "\n")
    assert sweep_line(progress, 0).startswith("[sweep] run 1/4 · elapsed 0:01:40") and "ETA" not in sweep_line(
        progress, 0
    )
    with open(progress, "a") as fh:  # run 0 trained (1 unit), run 3 was already finished (skipped)
        fh.write(json.dumps({"kind": "done", "num": 0, "skipped": False}) + "\n")
        fh.write(json.dumps({"kind": "done", "num": 3, "skipped": True}) + "\n")
    # 100 s for 1 unit of work, 5 units left (runs 1 and 2): ETA 500 s.
    assert sweep_line(progress, 2).endswith("· ETA 0:08:20")
    assert sweep_line(tmp_path / "missing", 2) == "[sweep] run 3"


def test_isoflop_wsd_budgets_of_one_size_share_one_run() -> None:
    """grid.budgets x grid.offsets with schedule=wsd: every (C, offset) that lands on one shape maps
    to that shape's run at its largest C, with a cooldown branch at each smaller C (issue 12)."""
    from scaling.train.spec import merge_wsd_budgets

    budgets, offsets = [1e11, 2e11, 4e11], [-1, 0, 1]
    merged = []
    for flops in budgets:
        for offset in offsets:
            cfg = compose_train(
                [
                    "data.vocab_size=512",
                    "model.context=64",
                    "schedule=wsd",
                    "grid.kind=isoflop",
                    "grid.n_layers=2",
                    "grid.ratio=1.4142135623730951",
                    f"grid.budgets={budgets}",
                    f"grid.offsets={offsets}",
                    f"train.flops={flops}",
                    f"grid.offset={offset}",
                ]
            )
            merged.append((flops, merge_wsd_budgets(cfg)))
    runs = {(m["train"]["flops"], m["grid"]["offset"], tuple(m["schedule"]["branches"])) for _, m in merged}
    # 5 sizes on the shared ladder; each size's run covers every budget it serves, as branches.
    assert len(runs) == 5
    for flops, m in merged:
        largest = m["train"]["flops"]
        assert flops == largest or any(abs(flops / largest - f) < 1e-9 for f in m["schedule"]["branches"])
