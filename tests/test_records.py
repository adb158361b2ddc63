"""Run records: atomic writes, validation, clear errors for corrupt files, the isoFLOP budget tag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_train, tiny_overrides
from test_sweep import _multirun

from scaling.errors import ScalingError
from scaling.fit.approach2 import group_budgets
from scaling.fit.points import load_points
from scaling.records import (
    BUDGET_KEYS,
    atomic_write_json,
    load_records,
    read_record,
    record_to_row,
    write_record,
)
from scaling.train.run import run_training


def _record(run_id: str = "abc", status: str = "finished") -> dict:
    return {
        "run_id": run_id,
        "status": status,
        "config": {},
        "model": {},
        "params": {"non_embedding": 1, "with_head": 2, "total": 3},
        "tokens": 10,
        "flops": {"kaplan": 1.0, "six_n": 2.0, "exact": 3.0},
        "curve": [],
        "final": {"val_loss": float("nan"), "train_loss": 1.0},
    }


def test_roundtrip_and_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "abc.json"
    write_record(path, _record())
    back = read_record(path)
    assert back["run_id"] == "abc" and back["final"]["val_loss"] is None
    json.loads(path.read_text())  # standard JSON, no NaN literal


def test_a_failed_write_leaves_the_old_record_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_writer_killed_mid_write_never_leaves_a_partial_record(tmp_path: Path) -> None:
    """SIGKILL a process in a tight rewrite loop; the record always parses."""
    path = tmp_path / "r.json"
    atomic_write_json(path, {"i": -1, "pad": "x" * 100_000})
    code = (
        "import sys; from scaling.records import atomic_write_json\n"
        f"for i in range(10**9): atomic_write_json({str(path)!r}, {{'i': i, 'pad': 'x' * 100_000}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    for _ in range(50):
        data = json.loads(path.read_text())
        assert len(data["pad"]) == 100_000
    proc.kill()
    proc.wait()
    assert len(json.loads(path.read_text())["pad"]) == 100_000
    leftovers = [p for p in tmp_path.iterdir() if p.name != "r.json"]
    for p in leftovers:  # a temp file may survive a SIGKILL, but never under the record's name
        assert p.name.startswith(".r.json.") and p.suffix == ".tmp"
    assert not os.path.exists(str(path) + ".tmp")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"run_id": "x", "status": "fin', "invalid JSON"),
        ("[1, 2]", "top level is not a JSON object"),
        ('{"run_id": "x"}', "missing key(s)"),
    ],
)
def test_corrupt_records_are_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "exp" / "runs" / "bad.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ScalingError, match="corrupt run record") as err:
        read_record(path)
    assert message in str(err.value) and str(path) in str(err.value)
    with pytest.raises(ScalingError):
        load_records(tmp_path)


def test_load_records_searches_any_depth_and_filters_status(tmp_path: Path) -> None:
    write_record(tmp_path / "a" / "runs" / "1.json", _record("1"))
    write_record(tmp_path / "b" / "c" / "runs" / "2.json", _record("2", "diverged"))
    assert [r["run_id"] for r in load_records(tmp_path)] == ["1"]
    assert len(load_records(tmp_path, status=None)) == 2
    with pytest.raises(ScalingError, match="no such results path"):
        load_records(tmp_path / "missing")


def test_a_record_without_the_budget_tag_still_loads(tmp_path: Path) -> None:
    """Records written before the tag existed: same schema version, empty budget columns."""
    path = tmp_path / "runs" / "old.json"
    write_record(path, _record("old"))
    back = read_record(path)
    assert back["schema_version"] == 1 and "budget" not in back
    row = record_to_row(back)
    assert row["budget"] is None and row["budget_convention"] is None and row["grid_offset"] is None


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ([1e11], "'budget' is not an object"),
        ({"flops": -1.0, "flops_convention": "exact"}, "budget.flops must be a positive number"),
        ({"flops": 1e11, "flops_convention": "chinchilla"}, "budget.flops_convention must be one of"),
    ],
)
def test_a_malformed_budget_tag_is_one_clear_error(tmp_path: Path, budget: object, message: str) -> None:
    path = tmp_path / "runs" / "bad.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**_record("bad"), "final": {}, "budget": budget}))
    with pytest.raises(ScalingError, match="corrupt run record") as err:
        read_record(path)
    assert message in str(err.value)


@pytest.mark.slow
def test_every_record_of_an_isoflop_sweep_carries_its_budget_tag(tmp_path: Path) -> None:
    """A real `scaling-train -m` isoFLOP sweep with WSD branches: each record names its own budget, and
    the fit groups budgets by those tags (not by C within 5%), a branch joining the budget it spent."""
    out = _multirun(
        tmp_path,
        "grid.kind=isoflop",
        "train.flops=1e10,2e10",
        "train.flops_convention=exact",
        "grid.offset=1,2",
        "schedule=wsd",
        "schedule.branches=[0.5]",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    records = load_records(tmp_path)
    assert len(records) == 8  # 2 budgets x 2 sizes, each with one cooldown branch
    mains = {r["run_id"]: r for r in records if not r.get("branch_of")}
    assert len(mains) == 4
    for record in records:
        tag = record["budget"]
        assert tuple(tag) == BUDGET_KEYS
        assert tag["flops_convention"] == "exact" and tag["grid_kind"] == "isoflop"
        assert tag["tokens"] is None and tag["tokens_per_param"] is None
        main = mains[record.get("branch_of") or record["run_id"]]
        assert tag["grid_offset"] == main["config"]["grid"]["offset"] in (1, 2)
        assert tag["fraction"] == (0.5 if record.get("branch_of") else 1.0)
        assert tag["flops"] == tag["fraction"] * main["config"]["train"]["flops"]
        # The tag is the budget asked for; the FLOPs spent are within a few batches of it.
        assert record["flops"]["exact"] == pytest.approx(tag["flops"], rel=0.05)
    assert {r["budget"]["flops"] for r in records} == {5e9, 1e10, 2e10}
    points = load_points(tmp_path)
    labels, values, how = group_budgets(points)
    assert how == "budget tag (run record budget.flops)" and len(values) == 3
    for label, budget in zip(labels, points.budget, strict=True):
        assert values[label] == pytest.approx(budget, rel=0.05)


@pytest.mark.slow
def test_chinchilla_wsd_branches_tag_their_own_tokens_per_param(tmp_path: Path) -> None:
    """The `chinchilla` preset's WSD merge trains the largest budget; each branch record keeps its own."""
    base = ["schedule=wsd", "schedule.warmup_tokens=2048", "grid.tokens_per_param=[0.1,0.2]", "train.tokens=null"]
    run_training(compose_train(tiny_overrides(tmp_path, "train.tokens_per_param=0.1", *base)))
    records = sorted(load_records(tmp_path), key=lambda r: r["budget"]["fraction"])
    assert [r["budget"]["tokens_per_param"] for r in records] == [0.1, 0.2]
    assert [r["budget"]["fraction"] for r in records] == [0.5, 1.0]
    for record in records:
        tag = record["budget"]
        assert tag["flops"] is None and tag["flops_convention"] is None and tag["tokens"] is None
        assert tag["grid_kind"] == "none" and tag["grid_offset"] is None
        assert record_to_row(record)["budget"] is None  # not an isoFLOP budget: fits group these by C
