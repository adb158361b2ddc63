"""``scaling collect``: run records (and W&B runs) -> one table for ``scaling fit``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_train, tiny_overrides
from test_wandb import offline_runs

from scaling.cli import main
from scaling.records import COLUMNS, CURVE_COLUMNS, load_records, record_to_row
from scaling.tracking import tracker_factory, wandb_run_to_rows
from scaling.train.run import run_training

# 4e9 FLOPs are 25 steps of 512 tokens for the tiny model; the branch spends half (its own budget tag).
WSD = ["schedule=wsd", "schedule.branches=[0.5]", "train.flops=4e9"]
DIVERGE = ["optim.lr=1e30", "optim.grad_clip=0", "schedule.warmup_tokens=0", "train.tokens=12800"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One WSD run with a cooldown branch (two records) and one diverged run, logged to W&B offline."""
    root = tmp_path_factory.mktemp("collect")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(root / "wb"))
        for extra in (WSD, DIVERGE):
            cfg = compose_train(tiny_overrides(root / "results", "logging.wandb=true", *extra))
            run_training(cfg, tracker_factory)
    return root


def _collect(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["collect", *args])
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_collect_writes_one_row_per_record(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = trained / "results" / "default"
    code, out, err = _collect(capsys, str(exp))
    assert code == 0, err
    assert "collected 3 runs (1 diverged, 2 finished; 1 WSD branches)" in out
    table = pd.read_parquet(exp / "runs.parquet")
    assert list(table.columns) == list(COLUMNS)
    records = {r["run_id"]: r for r in load_records(exp, status=None)}
    assert sorted(table["run_id"]) == sorted(records) and len(records) == 3
    for row in table.to_dict("records"):
        record = records[row["run_id"]]
        assert row["status"] == record["status"] and row["D"] == record["tokens"]
        for count in ("non_embedding", "with_head", "total"):
            assert row[f"N_{count}"] == record["params"][count]
        for conv in ("kaplan", "six_n", "exact"):
            assert row[f"C_{conv}"] == pytest.approx(record["flops"][conv])
        if record["status"] == "finished":
            assert row["loss"] == pytest.approx(record["final"]["val_loss"])
        assert row["corpus_fingerprint"] == record["corpus"]["fingerprint"]
        assert row["family"] == "llama" and row["d_model"] == 32 and row["context"] == 64
    branch = table[table["branch_of"].notna()].iloc[0]
    main_run = table[table["run_id"] == branch["branch_of"]].iloc[0]
    assert branch["schedule"] == "wsd" and branch["D"] < main_run["D"]
    # The isoFLOP tag: each horizon its own budget C; a budget given in tokens has none.
    assert (main_run["budget"], branch["budget"]) == (4e9, 2e9)
    assert main_run["budget_convention"] == branch["budget_convention"] == "exact"
    assert pd.isna(main_run["grid_offset"])  # no isoFLOP grid here
    assert pd.isna(table[table["status"] == "diverged"].iloc[0]["budget"])
    assert pd.isna(table[table["status"] == "diverged"].iloc[0]["loss"])
    # CSV holds the same table; the curve is long format; no temp files are left.
    csv = pd.read_csv(exp / "runs.csv")
    assert list(csv.columns) == list(COLUMNS) and list(csv["run_id"]) == list(table["run_id"])
    assert list(csv["C_exact"]) == pytest.approx(list(table["C_exact"]))
    curves = pd.read_parquet(exp / "curves.parquet")
    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert len(curves) == sum(len(r["curve"]) for r in records.values())
    assert sorted(p.name for p in exp.iterdir() if p.is_file()) == ["curves.parquet", "runs.csv", "runs.parquet"]


@pytest.mark.slow
def test_collect_out_dir(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _collect(capsys, str(trained / "results"), "--out", str(tmp_path / "table"))
    assert code == 0, err
    assert len(pd.read_parquet(tmp_path / "table" / "runs.parquet")) == 3


@pytest.mark.slow
def test_corrupt_record_is_one_error_line(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(trained / "results" / "default" / "runs", exp / "runs")
    bad = next((exp / "runs").glob("*.json"))
    bad.write_text(bad.read_text()[:200])  # a truncated record
    code, out, err = _collect(capsys, str(exp))
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith(f"error: corrupt run record {bad}: invalid JSON")
    assert not (exp / "runs.parquet").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/empty"], "no run records under"),
        (["{tmp}/missing"], "no such results path"),
        ([], "give a results folder"),
        (["--wandb", "ent/proj"], "--wandb needs --group"),
        (["--wandb", "proj", "--group", "g"], "--wandb wants ENTITY/PROJECT"),
        (["{tmp}", "--wandb", "ent/proj", "--group", "g"], "not both"),
    ],
)
def test_user_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = _collect(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_wandb_without_credentials_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    code, _, err = _collect(capsys, "--wandb", "ent/proj", "--group", "default")
    assert code == 2 and err.startswith("error: no W&B credentials") and err.count("\n") == 1


@pytest.mark.slow
def test_wandb_rows_match_record_rows(trained: Path) -> None:
    """What the public API returns for a run (config, summary, scan_history) gives the records' rows.

    The offline run is read back from its transaction log: the same config,
    summary and history rows that ``wandb sync`` uploads and ``wandb.Api`` returns.
    """
    exp = trained / "results" / "default"
    records = {r["run_id"]: r for r in load_records(exp, status=None)}
    runs = {run["id"]: run for run in offline_runs(trained / "wb")}
    main_id = next(r["branch_of"] for r in records.values() if r.get("branch_of"))
    run = runs[main_id]
    rows, curve = wandb_run_to_rows(run["id"], run["config"], run["summary"], run["history"])
    assert [r["run_id"] for r in rows] == [main_id, *(k for k, r in records.items() if r.get("branch_of"))]
    for row in rows:
        expected = record_to_row(records[row["run_id"]])
        for column in COLUMNS:
            if isinstance(expected[column], float):
                assert row[column] == pytest.approx(expected[column]), column
            else:
                assert row[column] == expected[column], column
    assert [r["budget"] for r in rows] == [4e9, 2e9]  # the tag travels through the W&B summary
    record_curve = records[main_id]["curve"]
    assert [p["tokens"] for p in curve] == [p["tokens"] for p in record_curve]
    assert [p["val_loss"] for p in curve] == pytest.approx([p["val_loss"] for p in record_curve])
    assert set(curve[0]) == set(CURVE_COLUMNS)
    # The diverged run is logged as failed (exit code 1), so `--wandb` (state=finished) skips it.
    (diverged,) = [r for r in records.values() if r["status"] == "diverged"]
    assert runs[diverged["run_id"]]["exit_code"] == 1


def test_wandb_rows_from_api_shaped_data() -> None:
    """A run as the public API returns it (unwrapped config, summary_metrics dict, history with _step)."""
    config = {
        "experiment": "e",
        "seed": 3,
        "derived": {"family": "gpt2", "d_model": 64, "N_non_embedding": 100, "N_with_head": 150, "N_total": 180},
    }
    summary = {
        "_step": 5,
        "_wandb": {"runtime": 9},
        "status": "finished",
        "run_id": "abc",
        "D": 1000,
        "C_exact": 1.5e6,
        "loss": 3.25,
        "val_loss": 3.25,
        "wsd_branches": {"def": {"run_id": "def", "branch_of": "abc", "D": 500, "loss": 3.5, "status": "finished"}},
    }
    history = [
        {"_step": 0, "tokens": 100, "step": 1, "val_loss": 5.0, "train_loss": 5.1, "lr": 0.01, "flops_exact": 1.5e5},
        {"_step": 1, "wsd/tokens": 500, "wsd/val_loss": 3.5},
        {"_step": 2, "tokens": 1000, "step": 10, "val_loss": 3.25, "train_loss": 3.3, "lr": 0.0, "flops_exact": 1.5e6},
    ]
    rows, curve = wandb_run_to_rows("abc", config, summary, iter(history))
    assert [r["run_id"] for r in rows] == ["abc", "def"]
    assert rows[0]["N_with_head"] == 150 and rows[0]["loss"] == 3.25 and rows[0]["seed"] == 3
    assert rows[1]["D"] == 500 and rows[1]["branch_of"] == "abc" and rows[1]["family"] == "gpt2"
    assert [p["tokens"] for p in curve] == [100, 1000] and curve[1]["flops_exact"] == 1.5e6
    assert os.path.commonprefix([list(rows[0]), list(COLUMNS)]) == list(COLUMNS)
