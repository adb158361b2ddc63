"""Loading fit inputs: run records at any depth, plain CSVs, `scaling collect` tables, Epoch's CSV."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scaling.collect import collect_records, write_tables
from scaling.errors import ScalingError
from scaling.fit.approach2 import group_budgets
from scaling.fit.points import best_per_group, group_by_log, load_points, require_fittable
from scaling.records import write_record


def record(run_id: str, n: float, d: float, loss: float, status: str = "finished", **extra: Any) -> dict[str, Any]:
    fpt = {"kaplan": 6 * 0.8 * n, "six_n": 6 * n, "exact": 6.6 * n}
    tokens = [0.0, d / 2, d]
    curve = [
        {"step": i, "tokens": t, "flops": {k: v * t for k, v in fpt.items()}, "val_loss": loss + 0.5 * (2 - i)}
        for i, t in enumerate(tokens)
    ]
    curve[0]["val_loss"] = 10.0  # the step-0 evaluation: no tokens yet, dropped by the loader
    return {
        "run_id": run_id,
        "status": status,
        "experiment": "exp",
        "config": extra.pop("config", {}),
        "model": {},
        "params": {"non_embedding": 0.8 * n, "with_head": n, "total": 1.1 * n},
        "tokens": d,
        "flops": {k: v * d for k, v in fpt.items()},
        "flops_per_token": fpt,
        "curve": curve,
        "final": {"val_loss": loss, "train_loss": None},
        **extra,
    }


def test_records_at_any_depth(tmp_path: Path) -> None:
    write_record(tmp_path / "a" / "runs" / "r1.json", record("r1", 1e6, 1e8, 4.0, config={"grid": {"budget": 6e14}}))
    write_record(tmp_path / "deep" / "er" / "b" / "runs" / "r2.json", record("r2", 2e6, 2e8, 3.5))
    write_record(tmp_path / "a" / "runs" / "r3.json", record("r3", 3e6, 1e8, 9.0, status="diverged"))
    write_record(tmp_path / "a" / "runs" / "r4.json", record("r4", 3e6, 1e8, 9.0, status="running"))
    (tmp_path / "a" / "notes.json").write_text("{}")  # not under runs/: ignored
    pts = load_points(tmp_path, params="non_embedding", flops="kaplan")
    assert sorted(pts.run_id) == ["r1", "r2"]
    assert pts.skipped == {"diverged": 1, "running": 1}
    i = list(pts.run_id).index("r1")
    assert pts.n[i] == pytest.approx(0.8e6) and pts.d[i] == 1e8 and pts.loss[i] == 4.0
    assert pts.c[i] == pytest.approx(6 * 0.8e6 * 1e8)
    assert pts.budget[i] == 6e14 and math.isnan(pts.budget[1 - i])
    cv = pts.curves[i]
    assert cv is not None and len(cv) == 2  # step 0 dropped
    assert list(cv.loss) == [4.5, 4.0]
    assert pts.has_curves and pts.n_from == "params.non_embedding" and pts.c_from == "flops.kaplan"


def test_csv_with_run_curves(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b"],
            "N": [1e6, 1e6, 1e6, 2e6, 2e6],
            "D": [1e8, 3e8, 2e8, 1e8, 2e8],
            "loss": [4.0, 3.6, 3.8, 3.9, 3.5],
        }
    ).to_csv(path, index=False)
    pts = load_points(path)
    assert list(pts.run_id) == ["a", "b"]
    assert list(pts.d) == [3e8, 2e8] and list(pts.loss) == [3.6, 3.5]  # final = largest D
    assert pts.c[0] == pytest.approx(6 * 1e6 * 3e8)
    assert list(pts.curves[0].tokens) == [1e8, 2e8, 3e8]
    assert any("C = 6 N D" in n for n in pts.notes)


def test_plain_csv_rows_are_runs(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("N,D,C,loss\n1e6,1e8,7e14,4.0\n2e6,1e8,1.4e15,3.8\n")
    pts = load_points(path)
    assert len(pts) == 2 and list(pts.c) == [7e14, 1.4e15] and not pts.has_curves


def test_epoch_layout_and_drop_highest(tmp_path: Path) -> None:
    path = tmp_path / "epoch.csv"
    path.write_text("x,y,Model Size,Training FLOP,loss\n0,0,1e8,6e18,3.0\n0,0,2e8,6e18,2.9\n0,0,4e8,6e18,5.0\n")
    pts = load_points(path)
    assert pts.kind == "epoch" and pts.d[0] == pytest.approx(1e10)
    dropped = load_points(path, drop_highest_loss=1)
    assert len(dropped) == 2 and dropped.loss.max() == 3.0
    assert any("dropped the 1 highest-loss" in n for n in dropped.notes)
    with pytest.raises(ScalingError, match="would drop all"):
        load_points(path, drop_highest_loss=3)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_collect_table(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "experiment": ["e"] * 3,
            "status": ["finished", "finished", "diverged"],
            "family": ["gpt2"] * 3,
            "N_non_embedding": [0.8e6, 1.6e6, 3.2e6],
            "N_with_head": [1e6, 2e6, 4e6],
            "N_total": [1.1e6, 2.2e6, 4.4e6],
            "D": [1e8, 2e8, 3e8],
            "C_kaplan": [1.0, 2.0, 3.0],
            "C_six_n": [6e14, 2.4e15, 7.2e15],
            "C_exact": [7e14, 2.6e15, float("nan")],
            "loss": [4.0, 3.5, float("nan")],
            "train_loss": [4.1, 3.6, float("nan")],
        }
    )
    path = tmp_path / f"table{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    pts = load_points(path, params="total", flops="six_n")
    assert pts.kind == "collect" and list(pts.n) == [1.1e6, 2.2e6] and list(pts.c) == [6e14, 2.4e15]
    assert pts.skipped == {"diverged": 1}


def test_resample_moves_whole_runs(tmp_path: Path) -> None:
    for i in range(5):
        write_record(tmp_path / "runs" / f"r{i}.json", record(f"r{i}", 1e6 * (i + 1), 1e8, 4.0 - 0.1 * i))
    pts = load_points(tmp_path)
    boot = pts.resample(np.random.default_rng(0))
    for rid, n, cv in zip(boot.run_id, boot.n, boot.curves, strict=True):
        assert cv is not None and cv.run_id == rid and cv.n == n


def test_grouping_helpers() -> None:
    labels = group_by_log(np.array([1e19, 1.02e19, 3e19, 2.97e19, 1e20]), 0.05)
    assert len(set(labels)) == 3 and labels[0] == labels[1] and labels[2] == labels[3]
    x, y = best_per_group(np.array([1e6, 1e6, 2e6, 4e6]), np.array([4.0, 3.5, 3.2, 3.3]))
    assert list(x) == [1e6, 2e6] and list(y) == [3.5, 3.2]  # 4e6 does not improve: data-limited


def _tag(c: float, convention: str = "exact", offset: int = 0, fraction: float = 1.0) -> dict[str, Any]:
    return {
        "flops": c,
        "flops_convention": convention,
        "tokens": None,
        "tokens_per_param": None,
        "grid_kind": "isoflop",
        "grid_offset": offset,
        "fraction": fraction,
    }


def _isoflop_records(root: Path, budgets: tuple[float, ...] = (1e15, 1e16), **tag: Any) -> None:
    """Three sizes per budget whose realised C scatters by +-8%: too much for grouping by C within 5%."""
    for c in budgets:
        for i, (scale, spread) in enumerate(((0.5, 0.92), (1.0, 1.0), (2.0, 1.08))):
            n = scale * (c / 120) ** 0.5
            d = spread * c / (6.6 * n)
            write_record(
                root / "runs" / f"c{c:.0e}-{i}.json", record(f"c{c:.0e}-{i}", n, d, 3.0, budget=_tag(c, **tag))
            )


def test_fits_group_budgets_by_the_record_tag(tmp_path: Path) -> None:
    _isoflop_records(tmp_path)
    pts = load_points(tmp_path)
    assert sorted(set(pts.budget)) == [1e15, 1e16] and pts.budget_from == "run record budget.flops"
    labels, values, how = group_budgets(pts)
    assert how == "budget tag (run record budget.flops)" and len(values) == 2
    by_tag = {b: set(labels[pts.budget == b]) for b in (1e15, 1e16)}
    assert all(len(group) == 1 for group in by_tag.values()) and by_tag[1e15] != by_tag[1e16]
    # Without the tag the same C values fall into more than two groups: the tag is what holds them together.
    assert len(set(group_by_log(pts.c, 0.05))) > 2
    # The tag survives `scaling collect`: its table groups the same way.
    runs, curves, _ = collect_records(tmp_path)
    (table, *_) = write_tables(runs, curves, tmp_path / "table")
    from_table = load_points(table)
    assert from_table.budget_from == "column budget"
    assert dict(zip(from_table.run_id, from_table.budget, strict=True)) == dict(
        zip(pts.run_id, pts.budget, strict=True)
    )


def test_fits_fall_back_to_grouping_by_c(tmp_path: Path) -> None:
    """Older records (no tag) beside tagged ones, or tags under two conventions: group by C, and say why."""
    _isoflop_records(tmp_path / "a", budgets=(1e15,))
    write_record(tmp_path / "b" / "runs" / "old.json", record("old", 1e6, 1e8, 4.0))
    pts = load_points(tmp_path)
    assert any("budget tag on 3 of 4 runs only" in n for n in pts.notes)
    assert group_budgets(pts)[2] == "C equal within 5%"
    _isoflop_records(tmp_path / "c", budgets=(1e16,), convention="six_n")
    (tmp_path / "b" / "runs" / "old.json").unlink()
    pts = load_points(tmp_path)
    assert any("budget tags under 2 FLOP conventions (exact, six_n)" in n for n in pts.notes)
    assert np.isnan(pts.budget).all() and group_budgets(pts)[2] == "C equal within 5%"


def test_collect_table_with_empty_budget_cells(tmp_path: Path) -> None:
    """A collected table leaves the tag empty for untagged runs: they load, and the fit groups by C."""
    path = tmp_path / "runs.csv"
    path.write_text(
        "run_id,status,N_non_embedding,N_with_head,N_total,D,C_kaplan,C_six_n,C_exact,budget,budget_convention,loss\n"
        "a,finished,1e6,1.5e6,2e6,1e8,1e15,1e15,1e15,1e15,exact,4.0\n"
        "b,finished,1e6,1.5e6,2e6,2e8,2e15,2e15,2e15,,,3.9\n"
    )
    pts = load_points(path)
    assert pts.budget[0] == 1e15 and math.isnan(pts.budget[1])
    assert group_budgets(pts)[2] == "C equal within 5%"
    path.write_text(path.read_text().replace("1e15,exact", "-1,exact"))
    with pytest.raises(ScalingError, match="line 2: column 'budget' must be positive"):
        load_points(path)


# ----------------------------------------------------------------------------- bad input


def test_nonexistent_path() -> None:
    with pytest.raises(ScalingError, match="no such file"):
        load_points("/nonexistent/results")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ScalingError, match="no run records"):
        load_points(tmp_path)


def test_only_unfinished_runs(tmp_path: Path) -> None:
    write_record(tmp_path / "runs" / "r.json", record("r", 1e6, 1e8, 4.0, status="diverged"))
    with pytest.raises(ScalingError, match="no finished runs.*1 diverged"):
        load_points(tmp_path)


def test_corrupt_record_names_file(tmp_path: Path) -> None:
    write_record(tmp_path / "runs" / "good.json", record("good", 1e6, 1e8, 4.0))
    bad = tmp_path / "runs" / "bad.json"
    bad.write_text('{"run_id": "bad", ')
    with pytest.raises(ScalingError, match="bad.json"):
        load_points(tmp_path)


def test_nan_loss_in_record_names_file(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r.json"
    write_record(path, record("r", 1e6, 1e8, 4.0))
    data = json.loads(path.read_text())
    data["final"]["val_loss"] = None  # how NaN is stored
    path.write_text(json.dumps(data))
    with pytest.raises(ScalingError, match=r"r\.json: final.val_loss is missing or NaN"):
        load_points(tmp_path)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("N,D,loss\n1e6,1e8,nan\n", "line 2: column 'loss' must be positive"),
        ("N,D,loss\n1e6,1e8,4\n-1e6,1e8,4\n", "line 3: column 'N' must be positive"),
        ("N,D,loss\n1e6,0,4\n", "column 'D' must be positive"),
        ("N,D,loss\n1e6,abc,4\n", "column 'D' must be positive"),
        ("N,loss\n1e6,4\n", "missing column.*D"),
        ("N,D,loss\n", "no data rows"),
        ("", "cannot read"),
    ],
)
def test_bad_csv(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ScalingError, match=match):
        load_points(path)


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hi")
    with pytest.raises(ScalingError, match="cannot read"):
        load_points(path)


def test_too_few_points_and_one_size(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("N,D,loss\n1e6,1e8,4\n2e6,1e8,3.8\n")
    with pytest.raises(ScalingError, match="5 parameters but the input holds only 2"):
        require_fittable(load_points(path), 5, "Approach 3")
    path.write_text("N,D,loss\n" + "".join(f"1e6,{d},4\n" for d in (1e8, 2e8, 3e8, 4e8, 5e8, 6e8)))
    with pytest.raises(ScalingError, match="all 6 points are at one N"):
        require_fittable(load_points(path), 5, "Approach 3")
    path.write_text("N,D,loss\n" + "".join(f"{n},1e8,4\n" for n in (1e6, 2e6, 3e6, 4e6, 5e6)))
    with pytest.raises(ScalingError, match="all 5 points are at one D"):
        require_fittable(load_points(path), 5, "Approach 3")


def test_collect_table_with_curves(tmp_path: Path) -> None:
    """`scaling collect` writes curves.parquet beside runs.parquet; the loader picks the --flops column."""
    pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "status": ["finished", "finished"],
            "N_non_embedding": [0.8e6, 1.6e6],
            "N_with_head": [1e6, 2e6],
            "N_total": [1.1e6, 2.2e6],
            "D": [2e8, 2e8],
            "C_kaplan": [1e15, 2e15],
            "C_six_n": [1.2e15, 2.4e15],
            "C_exact": [1.3e15, 2.6e15],
            "loss": [3.9, 3.7],
        }
    ).to_parquet(tmp_path / "runs.parquet")
    pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b"],
            "step": [0, 1, 2, 1, 2],
            "tokens": [0.0, 1e8, 2e8, 1e8, 2e8],
            "flops_kaplan": [0.0, 5e14, 1e15, 1e15, 2e15],
            "flops_six_n": [0.0, 6e14, 1.2e15, 1.2e15, 2.4e15],
            "flops_exact": [0.0, 6.5e14, 1.3e15, 1.3e15, 2.6e15],
            "val_loss": [10.0, 4.2, 3.9, float("nan"), 3.7],
        }
    ).to_parquet(tmp_path / "curves.parquet")
    pts = load_points(tmp_path / "runs.parquet", flops="kaplan")
    a, b = pts.curves
    assert a is not None and list(a.tokens) == [1e8, 2e8] and list(a.flops) == [5e14, 1e15]
    assert b is not None and list(b.loss) == [3.7]  # the NaN point is not a measurement
    assert any("curves.parquet" in n for n in pts.notes)


def test_bootstrap_draws_a_training_run_with_all_its_branch_records(tmp_path: Path) -> None:
    """WSD branch records share their run's trajectory: a replicate holds all of a run's records or none."""
    write_record(tmp_path / "runs" / "main.json", record("main", 1e6, 4e8, 3.5))
    for frac in (1, 2):
        rec = record(f"main-b{frac}", 1e6, 1e8 * frac, 3.9 - 0.1 * frac, branch_of="main")
        write_record(tmp_path / "runs" / f"main-b{frac}.json", rec)
    for i in range(4):
        write_record(tmp_path / "runs" / f"r{i}.json", record(f"r{i}", 2e6 * (i + 1), 1e8, 4.0 - 0.1 * i))
    pts = load_points(tmp_path)
    by_run = dict(zip(pts.run_id, pts.groups, strict=True))
    assert by_run["main-b1"] == by_run["main-b2"] == by_run["main"] == "main" and by_run["r0"] == "r0"
    rng = np.random.default_rng(0)
    seen_main = 0
    for _ in range(200):
        ids = list(pts.resample(rng).run_id)
        counts = {rid: ids.count(rid) for rid in ("main", "main-b1", "main-b2")}
        assert len(set(counts.values())) == 1, counts  # drawn together, as often as each other
        seen_main += counts["main"] > 0
        assert len(set(ids) - set(by_run)) == 0
    assert 0 < seen_main < 200


def test_resample_of_ungrouped_runs_is_unchanged(tmp_path: Path) -> None:
    """Each run its own group (CSVs, runs without branches): the draws are those of drawing runs."""
    for i in range(5):
        write_record(tmp_path / "runs" / f"r{i}.json", record(f"r{i}", 1e6 * (i + 1), 1e8, 4.0 - 0.1 * i))
    pts = load_points(tmp_path)
    assert list(pts.groups) == list(pts.run_id)
    drawn = pts.resample(np.random.default_rng(7)).run_id
    assert list(drawn) == list(pts.run_id[np.random.default_rng(7).integers(0, 5, size=5)])


def scheduled_record(run_id: str, lr_logged: float | None = None, **extra: Any) -> dict[str, Any]:
    """A WSD record of 100 steps that logs the learning rate of the update ending at each eval step."""
    from scaling.train.schedule import Schedule

    sched = Schedule("wsd", 0.01, 10, 100, 0.0, 0.2)
    rec = record(run_id, 1e6, 100 * 64.0, 3.0, **extra)
    rec["steps"] = 100
    rec["training"] = {"schedule": "wsd", "lr": 0.01, "warmup_steps": 10, "tokens_per_step": 64, "total_steps": 100}
    rec["config"] = {"schedule": {"name": "wsd", "min_lr_ratio": 0.0, "cooldown_frac": 0.2}}
    rec["curve"] = [
        {
            "step": s,
            "tokens": 64.0 * s,
            "flops": {k: 1.0 * s for k in ("kaplan", "six_n", "exact")},
            "val_loss": 4 - s / 100,
        }
        for s in (0, 20, 50, 90, 100)
    ]
    for p in rec["curve"]:
        p["lr"] = sched.lr_at(p["step"] - 1) if p["step"] else None
    if lr_logged is not None:
        rec["curve"][-1]["lr"] = lr_logged
    return rec


def test_schedule_rebuilt_from_a_record_only_where_its_logged_learning_rates_agree(tmp_path: Path) -> None:
    write_record(tmp_path / "runs" / "ok.json", scheduled_record("ok"))
    write_record(tmp_path / "runs" / "odd.json", scheduled_record("odd", lr_logged=0.005))
    write_record(tmp_path / "runs" / "old.json", record("old", 2e6, 1e8, 3.5))
    pts = load_points(tmp_path)
    curves = {cv.run_id: cv for cv in pts.curves if cv is not None}
    ok = curves["ok"]
    assert ok.schedule is not None and ok.tokens_per_step == 64
    assert ok.schedule.total_steps == 100 and ok.schedule.lr_at(99) == 0.0
    assert curves["odd"].schedule is None and curves["old"].schedule is None


def test_collect_table_groups_branch_rows_by_their_run(tmp_path: Path) -> None:
    # The columns a `scaling collect` table needs for N = with_head and C = exact, and its branch_of.
    ids, n, d = ["m", "m-b", "x"], [1e6, 1e6, 2e6], [1e8, 5e7, 1e8]
    frame = pd.DataFrame(
        {"run_id": ids, "N_with_head": n, "D": d, "C_exact": [6.6 * a * b for a, b in zip(n, d, strict=True)]}
    )
    frame["loss"], frame["branch_of"] = [3.5, 3.7, 3.4], [None, "m", None]
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    pts = load_points(path)
    assert list(pts.groups) == ["m", "m", "x"]
