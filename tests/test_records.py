"""Run records: atomic writes, validation, clear errors for corrupt files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.errors import ScalingError
from scaling.records import atomic_write_json, load_records, read_record, write_record


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
