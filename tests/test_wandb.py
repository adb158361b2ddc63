"""W&B logging in real offline mode: what each run writes to its offline transaction log.

wandb 0.31 writes offline runs with wandb-core; the run's files/ folder holds no
config.yaml or wandb-summary.json until ``wandb sync``, and the Python datastore
reader is gone. So :func:`read_offline_run` reads the ``run-<id>.wandb`` file
itself: a LevelDB-style log (7-byte file header, 32 KiB blocks, records with a
7-byte header: CRC32, little-endian length, chunk type full/first/middle/last),
each record a ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import compose_train, tiny_overrides

from scaling.records import read_record
from scaling.tracking import has_credentials, size_tag, tracker_factory, wandb_mode
from scaling.train.run import run_training

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", "not a W&B transaction log"
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def _set(target: dict[str, Any], item: Any) -> None:
    path = list(item.nested_key) or [item.key]
    node = target
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = json.loads(item.value_json)


def read_offline_run(run_dir: Path, timeout_s: float = 60.0) -> dict[str, Any]:
    """Run, config, history rows, summary, metric definitions and exit code of one offline run.

    ``run.finish()`` returns before wandb-core has flushed the tail of an offline
    log, so this waits (up to ``timeout_s``) for the exit record.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        out = _parse_offline_log(run_dir)
        if out["exit_code"] is not None or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def _parse_offline_log(run_dir: Path) -> dict[str, Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "summary": {}, "history": [], "metrics": {}, "exit_code": None}
    for chunk in _chunks(log.read_bytes()):
        record = pb.Record()
        record.ParseFromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(id=run.run_id, name=run.display_name, group=run.run_group, tags=list(run.tags))
            out["project"], out["job_type"] = run.project, run.job_type
            for item in run.config.update:
                _set(out["config"], item)
        elif kind == "config":
            for item in record.config.update:
                _set(out["config"], item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item)
            out["history"].append({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "summary":
            for item in record.summary.update:
                _set(out["summary"], item)
        elif kind == "metric":
            metric = record.metric
            out["metrics"][metric.name or metric.glob_name] = metric.step_metric
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    out["config"].pop("_wandb", None)
    return out


def offline_runs(wandb_dir: Path) -> list[dict[str, Any]]:
    """Every offline run under ``wandb_dir``, oldest first."""
    dirs = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    return [{**read_offline_run(d), "dir": d} for d in dirs]


@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wb"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(path))
    return path


def _train(results: Path, *extra: str):
    budget = [] if any(e.startswith("train.tokens=") for e in extra) else ["train.tokens=10240"]
    cfg = compose_train(tiny_overrides(results, *budget, "logging.wandb=true", *extra))
    return run_training(cfg, tracker_factory)


@pytest.mark.slow
def test_two_runs_in_one_process_log_two_offline_runs(
    tmp_path: Path, wandb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like Hydra's basic launcher: two jobs, one process, two distinct W&B runs."""
    outcomes = [
        _train(tmp_path, "model.family=llama", "logging.group=wbtest"),
        _train(tmp_path, "model.family=gpt2", "logging.tags=[demo]"),
    ]
    assert [o.status for o in outcomes] == ["finished", "finished"]
    runs = offline_runs(wandb_dir)
    assert len(runs) == 2 and runs[0]["dir"] != runs[1]["dir"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wandb:")]
    assert len(lines) == 2 and all("wandb sync" in line for line in lines)
    for outcome, run, family in zip(outcomes, runs, ("llama", "gpt2"), strict=True):
        record = read_record(outcome.record)
        assert run["id"] == outcome.run_id and run["dir"].name.endswith(outcome.run_id)
        assert str(run["dir"]) in " ".join(lines)
        assert run["name"].startswith(f"{family}-") and run["name"].endswith(outcome.run_id)
        assert run["project"] == "scaling" and run["job_type"] == "train"
        assert family in run["tags"] and size_tag(record["params"]["non_embedding"]) in run["tags"]
        # Config: the resolved Hydra config plus what was derived from it.
        assert run["config"]["model"]["family"] == family and run["config"]["experiment_name"] == record["experiment"]
        assert run["config"]["derived"]["N_with_head"] == record["params"]["with_head"]
        assert run["config"]["derived"]["d_ff"] == record["model"]["d_ff"]
        # Curve: every eval point, with tokens and FLOPs as x-axes.
        evals = [row for row in run["history"] if "val_loss" in row]
        assert [row["tokens"] for row in evals] == [p["tokens"] for p in record["curve"]]
        assert [row["val_loss"] for row in evals] == pytest.approx([p["val_loss"] for p in record["curve"]])
        assert [row["flops_exact"] for row in evals] == pytest.approx([p["flops"]["exact"] for p in record["curve"]])
        assert {"flops_kaplan", "flops_six_n", "train_loss", "lr", "step"} <= set(evals[0])
        assert run["metrics"]["val_loss"] == run["metrics"]["train_loss"] == "tokens"
        assert {"tokens", "flops_exact", "flops_six_n", "flops_kaplan"} <= set(run["metrics"])
        # Summary: N under each count, D, C under each convention, the final loss.
        summary = run["summary"]
        assert summary["status"] == "finished" and summary["diverged"] is False
        assert summary["loss"] == pytest.approx(record["final"]["val_loss"])
        assert summary["D"] == record["tokens"]
        for count in ("non_embedding", "with_head", "total"):
            assert summary[f"N_{count}"] == record["params"][count]
        for conv in ("kaplan", "six_n", "exact"):
            assert summary[f"C_{conv}"] == pytest.approx(record["flops"][conv])
        assert run["exit_code"] == 0
    assert "demo" in runs[1]["tags"] and "demo" not in runs[0]["tags"]
    # logging.group names the W&B group; it defaults to the experiment.
    assert runs[0]["group"] == "wbtest" and runs[1]["group"] == "default" == runs[1]["config"]["experiment_name"]


@pytest.mark.slow
def test_without_credentials_logs_offline_and_marks_divergence(
    tmp_path: Path, wandb_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    outcome = _train(tmp_path, "optim.lr=1e30", "optim.grad_clip=0", "schedule.warmup_tokens=0")
    assert outcome.status == "diverged"
    (run,) = offline_runs(wandb_dir)
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wandb:")]
    assert line.startswith("wandb: no W&B credentials") and line.endswith(f"wandb sync {run['dir']}")
    record = read_record(outcome.record)
    summary = run["summary"]
    assert summary["status"] == "diverged" and summary["diverged"] is True
    assert "non-finite" in summary["reason"] and summary["D"] == record["tokens"]
    assert run["exit_code"] == 1


@pytest.mark.slow
def test_interrupted_run_resumes_its_wandb_run_with_the_whole_curve(tmp_path: Path, wandb_dir: Path) -> None:
    """Same W&B id after a resume; the replay makes the last offline run complete, branches included."""
    wsd = ["schedule=wsd", "schedule.branches=[0.5]", "train.tokens=12800"]  # 25 steps, branch at ~10
    stopped = _train(tmp_path, *wsd, "train.interrupt_at_step=18")
    assert stopped.status == "interrupted"
    (first,) = offline_runs(wandb_dir)
    assert first["summary"]["status"] == "interrupted" and first["exit_code"] != 0
    assert len(first["summary"]["wsd_branches"]) == 1
    resumed = _train(tmp_path, *wsd)
    assert resumed.status == "finished" and resumed.run_id == stopped.run_id
    runs = offline_runs(wandb_dir)
    assert len(runs) == 2 and runs[1]["id"] == runs[0]["id"] == resumed.run_id
    last, record = runs[1], read_record(resumed.record)
    assert [row["step"] for row in last["history"] if "val_loss" in row] == [p["step"] for p in record["curve"]]
    assert last["summary"]["status"] == "finished" and last["exit_code"] == 0
    # The cooldown branch: its own (N, D) point, logged inside the stable run.
    ((branch_id, branch),) = last["summary"]["wsd_branches"].items()
    branch_record = read_record(tmp_path / "default" / "runs" / f"{branch_id}.json")
    assert branch["branch_of"] == resumed.run_id and branch["D"] == branch_record["tokens"] < record["tokens"]
    assert branch["loss"] == pytest.approx(branch_record["final"]["val_loss"])
    (end,) = [row for row in last["history"] if "wsd/val_loss" in row]
    assert end["wsd/tokens"] == branch_record["tokens"]
    assert last["metrics"]["wsd/*"] == "wsd/tokens"


def test_wandb_is_off_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert wandb_mode({"wandb": False}, {}) is None
    assert wandb_mode({"wandb": True}, {"WANDB_MODE": "disabled", "WANDB_API_KEY": "k"}) is None
    assert wandb_mode({"wandb": True}, {"WANDB_MODE": "offline", "WANDB_API_KEY": "k"}) == "offline"
    assert wandb_mode({"wandb": True}, {"WANDB_MODE": "dryrun"}) == "offline"
    assert wandb_mode({"wandb": True}, {"WANDB_API_KEY": "k"}) == "online"
    assert wandb_mode({"wandb": True}, {"NETRC": str(tmp_path / "none")}) == "offline"
    cfg = compose_train(tiny_overrides(tmp_path))  # the tiny overrides set logging.wandb=false
    assert tracker_factory(cfg, "x", None) is None
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = compose_train(tiny_overrides(tmp_path, "logging.wandb=true"))
    assert tracker_factory(cfg, "x", None) is None


def test_credentials_come_from_the_environment_or_netrc(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    assert has_credentials({"NETRC": str(netrc)})
    assert has_credentials({"WANDB_API_KEY": "abc"})
    assert not has_credentials({"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.example.com"})
    netrc.write_text("machine wandb.example.com login user password abc123\n")
    assert has_credentials({"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.example.com"})
    assert not has_credentials({"NETRC": str(tmp_path / "absent")})
    netrc.write_text("machine api.wandb.ai login user password\n")  # malformed: no key
    assert not has_credentials({"NETRC": str(netrc)})


def test_size_tag() -> None:
    assert size_tag(123_456) == "N=1.2e5"
    assert size_tag(1_000_000) == "N=1e6"
    assert size_tag(43_168) == "N=4.3e4"
