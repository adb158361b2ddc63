"""Damaged state on disk: each row of the README's "What happens when…" table, made for real.

Every test damages real files (truncates, deletes, flips bytes, fills a disk) left by real
runs of ``scaling-train`` / ``scaling prepare`` and checks what the user sees (one line, the
exit status, no traceback) and what is kept. The full disk is a size-limited tmpfs mounted
for the test (needs root, as in CI and the dev container; skipped with the reason otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY_DATA, compose_train, tiny_overrides

from scaling.errors import ScalingError
from scaling.records import read_record, write_record
from scaling.runid import run_id_for

TOKENS = "train.tokens=20000"  # 39 steps of 8 x 64 tokens


def _train(tmp: Path, *extra: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """A real ``scaling-train`` process (its own cwd, so Hydra's outputs/ land in the test folder)."""
    overrides = tiny_overrides(tmp, TOKENS, *extra)
    if "data=hf" in extra:  # the tiny slice of the embedded corpus does not apply
        overrides = [o for o in overrides if o not in TINY_DATA]
    args = [sys.executable, "-m", "scaling.train.app", *overrides]
    run_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=run_env, timeout=300, cwd=cwd or tmp)


def _ids(tmp: Path, *extra: str) -> tuple[str, Path, Path]:
    """(run id, record path, checkpoint folder) of the tiny run with ``extra``."""
    run_id = run_id_for(compose_train(tiny_overrides(tmp, TOKENS, *extra)))
    return run_id, tmp / "default" / "runs" / f"{run_id}.json", tmp / "default" / "ckpt" / run_id


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _flip_bytes(path: Path, at: float = 0.5, count: int = 16) -> None:
    """Invert ``count`` bytes in the middle of a file: same size, different content."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The record of the tiny run trained without interruption (what every repaired run must match)."""
    tmp = tmp_path_factory.mktemp("straight")
    done = _train(tmp)
    assert done.returncode == 0, done.stderr
    return read_record(_ids(tmp)[1])


# -- 1. checkpoints ------------------------------------------------------------------------------------------

DAMAGES = {
    "truncated trainer state": lambda ckpt: _truncate(ckpt / "trainer_state.pt"),
    "flipped bytes in the weights": lambda ckpt: _flip_bytes(ckpt / "model" / "model.safetensors"),
    "deleted trainer state": lambda ckpt: (ckpt / "trainer_state.pt").unlink(),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path: Path, straight: dict, damage: str) -> None:
    """Checkpoints at steps 4 and 8, stopped at 10: current (10) damaged, so the run resumes from previous (8)."""
    run_id, record, ckpt = _ids(tmp_path)
    stopped = _train(tmp_path, "checkpoint.every_steps=4", "train.interrupt_at_step=10")
    assert stopped.returncode == 128 + 15, stopped.stderr
    DAMAGES[damage](ckpt / "current")
    before = sorted(p.relative_to(ckpt / "current").as_posix() for p in (ckpt / "current").rglob("*"))

    done = _train(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    [warning] = _lines(done.stderr, "warning:")
    assert warning.startswith(f"warning: checkpoint {ckpt / 'current'} is damaged: ")
    assert warning.endswith(f"resuming from the older complete checkpoint {ckpt / 'previous'}")
    assert f"resuming {run_id} from step 8 of 39 (checkpoint {ckpt / 'previous'})" in done.stdout
    # The damaged checkpoint is kept, as it was, under a name nothing reads.
    [kept] = ckpt.glob("current.damaged-*")
    assert kept.name in warning
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*")) == before
    # Resuming from step 8 reaches exactly the uninterrupted result.
    result = read_record(record)
    assert result["training"]["resumed_from_step"] == 8 and result["training"]["resumes"] == 1
    assert result["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], rel=1e-6, abs=1e-6)


@pytest.mark.slow
def test_a_damaged_only_checkpoint_restarts_the_run_from_step_0(tmp_path: Path, straight: dict) -> None:
    """The issue's case: killed after one checkpoint, trainer_state.pt truncated. No traceback: a restart."""
    run_id, record, ckpt = _ids(tmp_path)
    stopped = _train(tmp_path, "checkpoint.every_steps=1000", "train.interrupt_at_step=10")
    assert stopped.returncode == 128 + 15, stopped.stderr
    assert not (ckpt / "previous").exists()
    _truncate(ckpt / "current" / "trainer_state.pt", keep=0.3)

    done = _train(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "resuming" not in done.stdout
    [warning] = _lines(done.stderr, "warning:")
    assert warning.startswith(f"warning: checkpoint {ckpt / 'current'} is damaged: ")
    assert f"{ckpt / 'current' / 'trainer_state.pt'} has " in warning
    assert warning.endswith("no complete older checkpoint exists, so the run restarts from step 0")
    assert len(list(ckpt.glob("current.damaged-*"))) == 1
    result = read_record(record)
    assert result["training"]["resumed_from_step"] is None and result["training"]["resumes"] == 0
    assert result["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], rel=1e-6, abs=1e-6)


# -- 2. resume is visible ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_resumed_run_says_so_and_its_record_counts_the_resumes(tmp_path: Path, straight: dict) -> None:
    run_id, record, ckpt = _ids(tmp_path)
    assert _train(tmp_path, "train.interrupt_at_step=10").returncode == 128 + 15
    second = _train(tmp_path, "train.interrupt_at_step=20")
    assert second.returncode == 128 + 15, second.stderr
    assert f"resuming {run_id} from step 10 of 39 (checkpoint {ckpt / 'current'})" in second.stdout
    done = _train(tmp_path)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("resuming")]
    assert line == f"resuming {run_id} from step 20 of 39 (checkpoint {ckpt / 'current'})"
    result = read_record(record)
    assert result["training"]["resumes"] == 2 and result["training"]["resumed_from_step"] == 20
    assert result["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], rel=1e-6, abs=1e-6)


# -- 3. prepared token shards --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A corpus prepared by the real ``scaling prepare`` from local text, and the scaling-train data overrides."""
    from test_hf_prepare import DOCS as docs

    from scaling.data.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("prepared")
    (root / "docs.txt").write_text("\n".join(docs) + "\n")
    train_bpe(docs, 320, root / "tok")
    out = root / "corpus"
    cmd = [sys.executable, "-m", "scaling.cli", "prepare", "--path", "text", "--data-files", str(root / "docs.txt")]
    cmd += ["--tokenizer", str(root / "tok"), "--shard-tokens", "4096", "--val-fraction", "0.1", "--num-proc", "1"]
    cmd += ["--hf-cache-dir", str(root / "hf_cache"), "--name", "words", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr
    data = ["data=hf", "data.path=text", f"data.data_files=[{root / 'docs.txt'}]", f"data.tokenizer={root / 'tok'}"]
    data += ["data.val_fraction=0.1", "data.shard_tokens=4096", f"data.prepared_dir={out}", "data.allow_repeat=true"]
    data += [f"data.hf_cache_dir={root / 'hf_cache'}", "data.num_proc=1"]
    return out, data


def _copy(folder: Path, tmp: Path) -> Path:
    copy = tmp / folder.name
    shutil.copytree(folder, copy)
    return copy


def _data_at(data: list[str], folder: Path) -> list[str]:
    return [d if not d.startswith("data.prepared_dir=") else f"data.prepared_dir={folder}" for d in data]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_truncated_or_missing_shard_is_one_line_with_the_command_that_reprepares_it(
    tmp_path: Path, prepared: tuple[Path, list[str]], damage: str
) -> None:
    corpus = _copy(prepared[0], tmp_path)
    data = _data_at(prepared[1], corpus)
    shard = corpus / json.loads((corpus / "manifest.json").read_text())["splits"]["train"]["shards"][1]["file"]
    _truncate(shard) if damage == "truncated" else shard.unlink()

    stopped = _train(tmp_path, *data)
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr
    [line] = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: shard {shard} ") and " re-prepare it: mv " in line
    assert not (tmp_path / "default" / "runs").exists()  # nothing trained on the damaged corpus

    # The command in the line, run as printed, prepares the same corpus again, and training then works.
    command = line.split(" re-prepare it: ", 1)[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    redo = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert redo.returncode == 0, redo.stderr
    assert (tmp_path / f"{corpus.name}.damaged").is_dir()  # the damaged copy is kept
    fresh = json.loads((corpus / "manifest.json").read_text())
    assert fresh["fingerprint"] == json.loads((prepared[0] / "manifest.json").read_text())["fingerprint"]
    done = _train(tmp_path, *data)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_prepare_verify_finds_flipped_bytes_that_the_size_check_cannot(
    tmp_path: Path, prepared: tuple[Path, list[str]]
) -> None:
    corpus = _copy(prepared[0], tmp_path)
    verify = [sys.executable, "-m", "scaling.cli", "prepare", "--verify", "--out", str(corpus)]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"verified {corpus}: ") and "every sha256 matches" in ok.stdout
    shard = corpus / json.loads((corpus / "manifest.json").read_text())["splits"]["val"]["shards"][0]["file"]
    _flip_bytes(shard)
    bad = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith(f"error: shard {shard} does not match its sha256 in the manifest")
    assert f"scaling prepare --name words --path text --data-files {prepared[0].parent / 'docs.txt'}" in line


# -- 4. the embedded corpus's tokenizer and token cache --------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_tokenizer_or_token_cache_is_rebuilt_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scaling.data.corpus import load_corpus

    data = compose_train(tiny_overrides(tmp_path))["data"]
    cache = tmp_path / "cache"
    first = load_corpus(data, cache)
    tokens = (first.train.shards[0].tobytes(), first.val.shards[0].tobytes())
    assert _warnings(capsys.readouterr().err) == []
    [tok_dir] = (cache / "tokenizers").iterdir()
    [tok_cache] = (cache / "tokens").iterdir()
    damages = [
        ("cached tokenizer", tok_dir, lambda: _truncate(tok_dir / "tokenizer.json")),
        ("cached tokenizer", tok_dir, lambda: _flip_bytes(tok_dir / "tokenizer.json", at=0.9, count=4)),
        ("cached tokenizer", tok_dir, lambda: (tok_dir / "tokenizer.json").unlink()),
        ("token cache", tok_cache, lambda: _truncate(tok_cache / "train.bin")),
        ("token cache", tok_cache, lambda: _flip_bytes(tok_cache / "val.bin")),
        ("token cache", tok_cache, lambda: (tok_cache / "val.bin").unlink()),
        ("token cache", tok_cache, lambda: (tok_cache / "meta.json").write_text('{"fingerprint": "ab')),
    ]
    for what, folder, damage in damages:
        damage()
        again = load_corpus(data, cache)
        err = _warnings(capsys.readouterr().err)
        assert len(err) == 1 and err[0].startswith(f"warning: {what} {folder} is damaged ("), err
        assert err[0].endswith("): rebuilding it")
        assert (again.train.shards[0].tobytes(), again.val.shards[0].tobytes()) == tokens  # rebuilt, same tokens
    load_corpus(data, cache)
    assert _warnings(capsys.readouterr().err) == []  # the rebuilt cache is trusted again


def _warnings(stderr: str) -> list[str]:
    """stderr less the rebuild's own progress lines (a slow machine may take a few seconds to tokenize)."""
    from scaling.progress import is_progress_line

    return [line for line in stderr.strip().splitlines() if not is_progress_line(line)]


# -- 5. run records --------------------------------------------------------------------------------------------


def test_the_fit_refuses_a_corrupt_record_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scaling.cli import main

    path = tmp_path / "exp" / "runs" / "r1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": "r1", "status": "finished", "curve": []}) * 4)
    _truncate(path, keep=0.6)
    with pytest.raises(SystemExit) as info:
        main(["fit", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith(f"error: corrupt run record {path}: invalid JSON")


@pytest.mark.slow
def test_a_sweep_sets_a_corrupt_record_aside_and_retrains_that_run(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "scaling.train.app", "-m", *tiny_overrides(tmp_path, "train.tokens=8192", "seed=0,1")]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    bad = _ids(tmp_path, "train.tokens=8192", "seed=1")[1]
    good = _ids(tmp_path, "train.tokens=8192", "seed=0")[1]
    expected = read_record(bad)
    _flip_bytes(bad, at=0.0, count=1)  # the opening brace: no longer JSON
    damaged = bad.read_bytes()
    good_mtime = good.stat().st_mtime_ns

    again = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    [warning] = _lines(again.stderr, "warning:")
    assert warning.startswith(f"warning: corrupt run record {bad}: not UTF-8 text")
    assert warning.endswith("the run is not finished and trains again")
    assert again.stdout.count("(skipped)") == 1 and good.stat().st_mtime_ns == good_mtime
    [kept] = bad.parent.glob(f"{bad.name}.damaged-*")
    assert kept.read_bytes() == damaged  # kept as it was, and never read as a record
    assert read_record(bad)["final"]["val_loss"] == pytest.approx(expected["final"]["val_loss"], rel=1e-6)


# -- 6. a full disk --------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 6 MiB file system (tmpfs): writes beyond it fail with ENOSPC, as on a full disk or quota."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Fill the file system to the last byte; return the filler file (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                continue
    return filler


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_record_write_on_a_full_disk_keeps_the_previous_record(small_disk: Path) -> None:
    from test_records import _record

    path = small_disk / "exp" / "runs" / "r.json"
    write_record(path, _record("r"))
    before = path.read_bytes()
    _fill(small_disk)
    with pytest.raises(ScalingError) as err:
        write_record(path, {**_record("r"), "curve": [{"pad": "x" * 100_000}]})
    assert str(err.value) == (
        f"disk full writing {path}: the previous version is kept; free some space and run the same command again"
    )
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left


@pytest.mark.slow
def test_training_on_a_full_disk_stops_with_one_line_and_resumes_once_freed(
    tmp_path: Path, small_disk: Path, straight: dict
) -> None:
    """Results and checkpoints on a small real file system: filled after a checkpoint at step 10."""
    results = small_disk / "results"
    run_id, record, ckpt = _ids(results)
    stopped = _train(results, "train.interrupt_at_step=10", cwd=tmp_path)
    assert stopped.returncode == 128 + 15, stopped.stderr
    kept_ckpt, kept_record = _snapshot(ckpt), record.read_bytes()
    filler = _fill(small_disk)

    full = _train(results, cwd=tmp_path)
    assert full.returncode == 2 and "Traceback" not in full.stderr
    [line] = [line for line in full.stderr.splitlines() if line.strip()]
    assert re.match(rf"error: disk full writing ({re.escape(str(record))}|{re.escape(str(ckpt))}/\.tmp): ", line), line
    assert _snapshot(ckpt) == kept_ckpt and record.read_bytes() == kept_record  # the last good state, untouched
    assert not (ckpt / ".tmp").exists()

    filler.unlink()
    done = _train(results, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run_id} from step 10 of 39" in done.stdout
    assert read_record(record)["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], rel=1e-6, abs=1e-6)


@pytest.mark.slow
def test_a_checkpoint_write_on_a_full_disk_keeps_the_last_checkpoint(small_disk: Path) -> None:
    """Straight at the checkpoint writer: the model fits once on the disk, not twice."""
    from scaling.models import build_model
    from scaling.train.checkpoint import find_checkpoint, save_checkpoint
    from scaling.train.spec import resolve_spec

    cfg = compose_train(tiny_overrides(small_disk, TOKENS, "model.d_model=128"))
    model = build_model(resolve_spec(cfg, 512).shape, seed=0, eos_token_id=0)
    folder = small_disk / "ckpt"
    save_checkpoint(folder, model, {"step": 4, "optimizer": {}})
    kept = _snapshot(folder)
    _fill(small_disk)
    with pytest.raises(ScalingError, match=rf"^disk full writing {re.escape(str(folder))}/\.tmp: the last checkpoint"):
        save_checkpoint(folder, model, {"step": 8, "optimizer": {}})
    assert _snapshot(folder) == kept and not (folder / ".tmp").exists()
    found = find_checkpoint(folder)
    assert found.path == folder / "current" and found.state["step"] == 4 and not found.damaged


# -- 7. W&B offline folders ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_wandb_offline_folder_never_stops_training(tmp_path: Path, straight: dict) -> None:
    """The first attempt logs offline; then its wandb/ folder is replaced by a file. The resumed run finishes."""
    wandb_dir = tmp_path / "wb"
    on = ["logging.wandb=true", f"logging.dir={wandb_dir}"]
    env = {"WANDB_MODE": "offline"}
    run_id, record, _ = _ids(tmp_path, *on)
    stopped = _train(tmp_path, *on, "train.interrupt_at_step=10", env=env)
    assert stopped.returncode == 128 + 15, stopped.stderr
    [offline] = (wandb_dir / "wandb").glob(f"offline-run-*-{run_id}")
    _truncate(next(offline.glob("*.wandb")))
    shutil.rmtree(wandb_dir / "wandb")
    (wandb_dir / "wandb").write_text("not a folder")

    done = _train(tmp_path, *on, env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    [warning] = _lines(done.stderr, "wandb: warning:")
    assert warning.startswith(f"wandb: warning: W&B logging off for run {run_id}: ")
    result = read_record(record)
    assert result["status"] == "finished" and result["training"]["resumes"] == 1
    assert result["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], rel=1e-6, abs=1e-6)


@pytest.mark.slow
def test_a_wandb_run_that_breaks_mid_run_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real offline W&B run that ended under the tracker (W&B then refuses every call): one warning, no raise."""
    from scaling.tracking import tracker_factory
    from scaling.train.spec import resolve_spec

    cfg = compose_train(tiny_overrides(tmp_path, TOKENS, "logging.wandb=true", f"logging.dir={tmp_path / 'wb'}"))
    tracker = tracker_factory(cfg, "broken", resolve_spec(cfg, 512))
    assert tracker is not None
    tracker.run.finish()
    capsys.readouterr()
    for step in (1, 2, 3):
        tracker.log_eval({"step": step, "tokens": step * 512, "flops": {}, "train_loss": 5.0, "val_loss": 5.0})
    tracker.finish(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "wandb: warning: W&B logging off for run broken: logging an eval point failed: "
    ), err
