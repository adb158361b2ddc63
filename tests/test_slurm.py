"""Sweeps on a real SLURM cluster through hydra-submitit-launcher, and preemption.

The cluster is the single-node one of ``slurm/local-cluster.sh`` (real slurmctld,
slurmd and munged; CI starts it in ``.ci/run``). Tests marked ``slurm`` fail in CI
when it is absent and skip elsewhere. The runs are seconds-long CPU runs; jobs use
the ``local_slurm`` preset (the ``slurm`` preset sized for this cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import compose_train, tiny_overrides

from scaling.records import iter_record_paths, load_records, read_record
from scaling.train.run import run_training

pytestmark = pytest.mark.slow  # every test here uses SLURM or runs scaling-train

PARTITION = "debug"  # the partition slurm/local-cluster.sh creates
READY_STATES = ("idle", "mixed", "allocated", "completing")


def _cluster_problem() -> str | None:
    """Why jobs cannot run on a local cluster now, or None."""
    missing = [c for c in ("sinfo", "sbatch", "squeue", "scontrol", "scancel") if shutil.which(c) is None]
    if missing:
        return f"SLURM commands missing: {', '.join(missing)}"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
    if "UP" not in ping.stdout:
        first = ((ping.stdout + ping.stderr).strip().splitlines() or ["no answer"])[0]
        return f"slurmctld does not answer ({first})"
    states = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True, timeout=60)
    if not any(s.strip().startswith(READY_STATES) for s in states.stdout.splitlines()):
        return f"no node of partition {PARTITION} takes jobs ({states.stdout.strip() or states.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem:
        message = f"{problem}; start the local cluster with `sudo bash slurm/local-cluster.sh`"
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a SLURM cluster: {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def warm_cache() -> None:
    """Tokenize the tiny corpus once here, so that jobs do not all train the BPE at once."""
    from scaling.data.corpus import load_corpus

    load_corpus(compose_train(tiny_overrides(Path("/unused"), "train.tokens=1"))["data"])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _sweep_command(results: Path, sweep_dir: Path, *extra: str, launcher: str = "local_slurm") -> list[str]:
    """`scaling-train -m` with the SLURM launcher (the head process of the sweep)."""
    return [
        sys.executable,
        "-m",
        "scaling.train.app",
        "-m",
        f"hydra/launcher={launcher}",
        *tiny_overrides(results, *extra),
        f"hydra.sweep.dir={sweep_dir}",
    ]


def _jobs(sweep_dir: Path) -> list[str]:
    """SLURM job ids the sweep submitted (submitit keeps a folder per job)."""
    folder = sweep_dir / ".submitit"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _show_jobs(job_id: str) -> list[dict[str, str]]:
    """`scontrol show job` as dicts, one per job (or array task); finished jobs stay for MinJobAge."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60)
    return [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in out.stdout.splitlines()
        if line.strip()
    ]


def _ended(job_id: str, timeout: float = 120) -> list[dict[str, str]]:
    """The jobs of ``job_id`` once SLURM has closed them all.

    The head process returns as soon as each job has written its result, which is a
    moment before SLURM itself moves the job out of RUNNING/COMPLETING.
    """
    deadline = time.time() + timeout
    while True:
        jobs = _show_jobs(job_id)
        if (jobs and all(j["JobState"] not in ("PENDING", "RUNNING", "COMPLETING") for j in jobs)) or (
            time.time() > deadline
        ):
            return jobs
        time.sleep(0.5)


@pytest.mark.slurm
def test_sweep_runs_as_a_slurm_job_array(tmp_path: Path, slurm_cluster: None, warm_cache: None) -> None:
    results, sweep_dir = tmp_path / "results", tmp_path / "multirun"
    seen: set[str] = set()
    stop = threading.Event()

    def watch_queue() -> None:
        while not stop.is_set():
            out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=60)
            seen.update(line.strip() for line in out.stdout.splitlines() if line.strip())
            stop.wait(0.5)

    watcher = threading.Thread(target=watch_queue, daemon=True)
    watcher.start()
    try:
        done = subprocess.run(
            _sweep_command(results, sweep_dir, "train.tokens=10000", "seed=0,1,2"),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stderr[-4000:]

    records = load_records(results, status=None)
    assert len(records) == 3 and {r["status"] for r in records} == {"finished"}
    assert sorted(r["config"]["seed"] for r in records) == [0, 1, 2]
    assert len({r["run_id"] for r in records}) == 3

    # One job array of three tasks, which SLURM itself ran.
    jobs = [j for j in _jobs(sweep_dir) if "_" in j]  # <array>_<task>; <array> alone holds the sbatch script
    array_ids = {j.split("_")[0] for j in jobs}
    assert len(jobs) == 3 and len(array_ids) == 1, _jobs(sweep_dir)
    (array_id,) = array_ids
    assert seen & {f"{array_id}_{i}" for i in range(3)}, f"squeue never showed array {array_id}: {sorted(seen)}"
    tasks = _ended(array_id)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1", "2"]
    assert {t["ArrayJobId"] for t in tasks} == {array_id}
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}
    assert {t["Partition"] for t in tasks} == {PARTITION}
    assert {t["JobName"] for t in tasks} == {"scaling-default"}  # the preset's name: scaling-<experiment_name>


@pytest.mark.slurm
def test_preempted_job_requeues_and_resumes_to_the_same_loss(
    tmp_path: Path, slurm_cluster: None, warm_cache: None
) -> None:
    """SIGUSR2 (what SLURM sends before a time limit or, with submitit, a preemption) mid-run."""
    results, sweep_dir = tmp_path / "results", tmp_path / "multirun"
    budget = "train.tokens=100000"  # 195 steps: seconds of training, long enough to interrupt
    head = subprocess.Popen(
        _sweep_command(results, sweep_dir, budget),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job_id = ""
    try:
        deadline = time.time() + 600
        partial: dict = {}
        while time.time() < deadline and head.poll() is None:
            paths = list(iter_record_paths(results)) if results.exists() else []
            if paths:
                partial = json.loads(paths[0].read_text())
                if partial["curve"]:
                    break
            time.sleep(0.2)
        assert head.poll() is None, head.communicate()
        assert partial.get("status") == "running"
        (job_id,) = _jobs(sweep_dir)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=60)
        out, err = head.communicate(timeout=900)
    finally:
        if head.poll() is None:  # the test failed midway: leave no head or job behind
            head.send_signal(signal.SIGINT)
            head.communicate(timeout=60)
            if job_id:
                subprocess.run(["scancel", job_id], timeout=60)
    assert head.returncode == 0, err[-4000:]

    # SLURM requeued the job once, and the second attempt completed it.
    (job,) = _ended(job_id)
    assert job["Restarts"] == "1" and job["JobState"] == "COMPLETED", job
    log = "".join(p.read_text() for p in sorted((sweep_dir / ".submitit" / job_id).glob("*_log.*")))
    assert "SIGUSR2: checkpoint saved; passing the signal on to SignalHandler.checkpoint_and_try_requeue" in log
    assert f"Requeued job {job_id}" in log
    assert "Job completed successfully" in log

    # One record, finished, resumed from the checkpoint the signal wrote.
    (path,) = iter_record_paths(results)
    record = read_record(path)
    assert record["status"] == "finished"
    resumed = record["training"]["resumed_from_step"]
    assert 0 < partial["steps"] <= resumed < record["steps"], (partial["steps"], resumed, record["steps"])

    # The same run uninterrupted, in this process: same run id, same curve, same final loss.
    straight = run_training(compose_train(tiny_overrides(tmp_path / "straight", budget)))
    assert straight.run_id == record["run_id"]
    reference = read_record(straight.record)
    assert [p["step"] for p in record["curve"]] == [p["step"] for p in reference["curve"]]
    for got, want in zip(record["curve"], reference["curve"], strict=True):
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-6, abs=1e-6)
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-6, abs=1e-6)
    assert record["final"]["val_loss"] == pytest.approx(reference["final"]["val_loss"], rel=1e-6, abs=1e-6)
    assert record["tokens"] == reference["tokens"]


def test_slurm_launcher_without_sbatch_fails_in_one_line(tmp_path: Path) -> None:
    """No SLURM on the PATH: one error line, exit 2, nothing submitted or written."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    sweep_dir, results = tmp_path / "multirun", tmp_path / "results"
    done = subprocess.run(
        _sweep_command(
            results, sweep_dir, "train.tokens=10000", "seed=0,1,2", "hydra.launcher.partition=gpu", launcher="slurm"
        ),
        cwd=tmp_path,
        env={**_env(), "PATH": str(empty_bin)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sbatch" in errors[0] and "nothing was submitted" in errors[0], done.stderr
    assert not sweep_dir.exists() and not results.exists()


@pytest.mark.slurm
def test_unknown_partition_fails_in_one_line(tmp_path: Path, slurm_cluster: None) -> None:
    sweep_dir, results = tmp_path / "multirun", tmp_path / "results"
    done = subprocess.run(
        _sweep_command(
            results, sweep_dir, "train.tokens=10000", "seed=0,1", "hydra.launcher.partition=nosuchpartition"
        ),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no partition nosuchpartition" in errors[0], done.stderr
    assert not sweep_dir.exists() and not results.exists()
