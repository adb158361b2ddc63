"""Run one training config end to end: skip, resume, train, record.

This is the task behind ``scaling-train`` (single run and every job of a
multirun). It is written so that running it twice is always safe: a finished
run is skipped, an interrupted one resumes from its checkpoint, and the run
record on disk is always complete (atomic writes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.damage import set_aside, warn
from scaling.errors import ScalingError
from scaling.records import read_record, run_paths, write_record
from scaling.runid import run_id_for


@dataclass
class RunOutcome:
    run_id: str
    status: str  # finished | diverged | interrupted | skipped
    record: Path
    message: str
    exit_code: int = 0


def existing_status(path: Path) -> str | None:
    """Status of an existing record; None when there is none, or it is corrupt.

    A corrupt record (truncated, flipped bytes, a half-synced copy) means the run is not
    finished: it is renamed aside (kept, never overwritten) with one warning line, and
    the run trains again, so a sweep repairs itself instead of stopping.
    """
    if not path.exists():
        return None
    try:
        return str(read_record(path)["status"])
    except ScalingError as err:
        kept = set_aside(path)
        warn(f"{err}; kept as {kept.name}; the run is not finished and trains again")
        return None


def claim_run(ckpt_dir: Path) -> Any:
    """An exclusive, non-blocking lock on a run, held until this process exits.

    Two sweeps that share a results folder may reach the same run at once; the
    second one skips it instead of training it twice. Only rank 0 of a
    multi-process run takes the lock. Returns the open lock file, or None if busy.
    """
    import fcntl

    if int(os.environ.get("RANK", "0")) != 0:
        return True
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    handle = open(ckpt_dir.parent / f"{ckpt_dir.name}.lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _accelerator(cfg: dict[str, Any]) -> Any:
    import torch
    from accelerate import Accelerator

    device = str(cfg["train"]["device"])
    if device not in ("auto", "cpu", "cuda"):
        raise ScalingError(f"train.device must be auto, cpu or cuda, got {device!r}")
    use_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ScalingError("train.device=cuda but no CUDA device is visible")
    precision = str(cfg["train"]["precision"])
    mixed = "bf16" if (precision == "auto" and not use_cpu) else ("no" if precision in ("auto", "fp32") else precision)
    if not use_cpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Accelerator(cpu=use_cpu, mixed_precision=mixed)


def run_training(cfg: dict[str, Any], tracker_factory: Any = None) -> RunOutcome:
    """Train (or skip, or resume) the run that ``cfg`` describes."""
    from scaling.train.spec import merge_wsd_budgets
    from scaling.variants import apply_variant

    cfg = merge_wsd_budgets(apply_variant(cfg))  # the variant first: the run id hashes what it changes
    run_id = run_id_for(cfg)
    rec_path, ckpt_dir = run_paths(cfg, run_id)
    lock = claim_run(ckpt_dir)
    if lock is None:
        return RunOutcome(run_id, "skipped", rec_path, f"run {run_id} is being trained by another process (skipped)")
    try:
        return _train_claimed(cfg, run_id, rec_path, ckpt_dir, tracker_factory)
    finally:
        if hasattr(lock, "close"):
            lock.close()


def _train_claimed(
    cfg: dict[str, Any], run_id: str, rec_path: Path, ckpt_dir: Path, tracker_factory: Any
) -> RunOutcome:
    status = existing_status(rec_path)
    if status in ("finished", "diverged"):
        return RunOutcome(run_id, "skipped", rec_path, f"run {run_id} already {status}: {rec_path} (skipped)")

    from scaling.data.corpus import load_corpus

    corpus = load_corpus(cfg["data"], cfg["paths"]["cache"])
    accelerator = _accelerator(cfg)
    world = accelerator.num_processes
    from scaling.train.speed import cpu_threads

    cpu_threads(cfg["train"]["threads"], accelerator.device.type)  # one thread on a CPU unless told

    from scaling.train.spec import resolve_spec

    spec = resolve_spec(cfg, corpus.vocab_size, world, {"training": len(corpus.train), "validation": len(corpus.val)})
    if spec.tokens > len(corpus.train) and not corpus.allow_repeat:
        raise ScalingError(
            f"the budget ({spec.tokens} tokens) exceeds the prepared training data ({len(corpus.train)} tokens); "
            "set data.allow_repeat=true to train on repeated data (recorded as epochs)"
        )

    from scaling.models import build_model
    from scaling.train.loop import Diverged, Interrupted, Trainer
    from scaling.train.record_builder import build_record

    model = build_model(spec.shape, seed=int(cfg["seed"]), eos_token_id=corpus.eos_token_id)
    main = accelerator.is_main_process
    tracker = tracker_factory(cfg, run_id, spec) if (tracker_factory and main) else None

    import torch

    # The CPU threads the run trained on (None on a GPU): packed runs get cores/k each.
    threads = torch.get_num_threads() if accelerator.device.type == "cpu" else None

    def throughput() -> dict[str, Any]:
        tps = trainer.tokens_per_s()
        return {"tokens_per_s": tps, "flops_per_s": tps * spec.flops_per_token.exact, "cpu_threads": threads}

    def record(status: str, curve: list, steps: int, **extra: Any) -> dict[str, Any]:
        return build_record(
            run_id=extra.pop("run_id", run_id),
            status=status,
            cfg=cfg,
            spec=spec,
            corpus=corpus,
            curve=curve,
            steps=steps,
            throughput=throughput(),
            device=str(accelerator.device),
            world_size=world,
            **extra,
        )

    def on_eval(point: dict[str, Any]) -> None:
        if main:
            write_record(rec_path, record("running", trainer.state.curve, trainer.state.step))
            if tracker:
                tracker.log_eval(point)

    def on_branch(result: Any) -> None:
        if not main:
            return
        branch_id = run_id_for(cfg, {"wsd_branch": result.horizon.fraction})
        path, _ = run_paths(cfg, branch_id)
        branch_record = record(
            "finished",
            result.curve,
            result.horizon.steps,
            run_id=branch_id,
            final=result.final,
            branch_of=run_id,
            fraction=result.horizon.fraction,
        )
        write_record(path, branch_record)
        if tracker:
            tracker.log_branch(branch_record)

    progress = bool(cfg["logging"]["progress"])
    trainer = Trainer(spec, corpus, model, accelerator, cfg, ckpt_dir, on_eval, on_branch, progress)
    resumed = trainer.try_resume()
    resumed_at = trainer.state.step
    if resumed and main:
        print(f"resuming {run_id} from step {resumed_at} of {spec.steps} (checkpoint {resumed})", flush=True)
    try:
        results = trainer.run()
    except Interrupted as stop:
        if main:
            write_record(rec_path, record("running", trainer.state.curve, trainer.state.step))
        if tracker:
            tracker.finish(None, exit_code=1)
        trainer.stop.forward()  # checkpoint and record are saved: under submitit, requeue the job (exits)
        signum = {"SIGINT": 2, "SIGTERM": 15, "SIGUSR2": 12}.get(str(stop), 15)
        return RunOutcome(
            run_id,
            "interrupted",
            rec_path,
            f"run {run_id} interrupted by {stop} at step {trainer.state.step}/{spec.steps}; "
            "checkpoint saved, run the same command again to resume",
            exit_code=128 + signum,
        )
    except Diverged as err:
        if main:
            write_record(rec_path, record("diverged", trainer.state.curve, trainer.state.step, reason=str(err)))
        if tracker:
            tracker.finish(None, exit_code=1)
        return RunOutcome(run_id, "diverged", rec_path, f"run {run_id} diverged: {err}", exit_code=1)
    except BaseException:
        if tracker:  # an unexpected failure (e.g. out of memory) still closes the W&B run
            tracker.finish(None, exit_code=1)
        raise
    final = results[-1]
    trainer.save()  # the final model, loadable with from_pretrained
    full = record("finished", final.curve, spec.steps, final=final.final)
    full["training"]["resumed_from_step"] = resumed_at if resumed else None
    full["training"]["resumes"] = trainer.state.resumes
    if main:
        write_record(rec_path, full)
        if tracker:
            tracker.finish(full)
    loss = final.final["val_loss"]
    return RunOutcome(
        run_id,
        "finished",
        rec_path,
        f"run {run_id} finished: val_loss {loss:.4f} nats/token after {spec.tokens:,} tokens "
        f"(N_with_head {spec.params.with_head:,}, C_exact {spec.flops_per_token.exact * spec.tokens:.3e}) -> {rec_path}",
    )
