"""The training loop: one model, one or more horizons, exact accounting, durable state.

Design points, each for a reason:

* Data is a pure function of ``(seed, step)`` (:mod:`scaling.data.tokens`), so
  a resumed run, a 2-process run and a 1-process run see the same global batch.
* Every process computes its slice of the global batch; with gradient
  accumulation, gradients are synchronised only on the last micro-batch
  (``no_sync`` on the others), as DDP intends.
* The loss is read on the host only at log and eval points, so the hot loop
  does not synchronise with the GPU.
* A NaN or inf loss stops the run as ``diverged``, and the reason is kept.
* A WSD run takes a short cooldown branch at each budget of
  ``schedule.branches``; a branch starts from a snapshot of the stable phase
  and its result is a run record of its own (Hägele et al. 2024).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling.config import CheckpointConfig, OptimConfig, TrainConfig, from_node
from scaling.data.corpus import TrainingCorpus
from scaling.data.tokens import batch_offsets, eval_offsets, gather_windows
from scaling.errors import ScalingError
from scaling.train.checkpoint import find_checkpoint, save_checkpoint
from scaling.train.schedule import Schedule
from scaling.train.signals import StopRequest
from scaling.train.spec import Horizon, RunSpec


class Diverged(Exception):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """A stop signal arrived; a checkpoint has been written."""


@dataclass
class HorizonResult:
    horizon: Horizon
    curve: list[dict[str, Any]]
    final: dict[str, float]
    status: str = "finished"
    reason: str | None = None


@dataclass
class LoopState:
    step: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    branches_done: list[float] = field(default_factory=list)
    train_time_s: float = 0.0
    trained_tokens: int = 0
    last_train_loss: float = float("nan")
    resumes: int = 0  # how many times this run resumed from a checkpoint


def _device_batch(windows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets on ``device`` from one transfer of the ``context + 1`` windows.

    On CUDA the copy is from pinned memory and non-blocking, so the host queues the step's
    kernels without waiting for the transfer (no host synchronisation in the hot loop).
    """
    t = torch.from_numpy(windows)
    t = t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)
    return t[:, :-1], t[:, 1:]


def _loss(model: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, from the logits and the already shifted targets.

    The ``labels=`` path of ``transformers`` would pad and shift a copy of the labels and
    drop the last position; the windows here already hold ``context + 1`` tokens, so every
    position has its target. The upcast keeps the softmax in fp32 under bf16 autocast.
    """
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


class Trainer:
    """Trains one :class:`RunSpec` on a corpus with an ``accelerate.Accelerator``."""

    def __init__(
        self,
        spec: RunSpec,
        corpus: TrainingCorpus,
        model: Any,
        accelerator: Any,
        cfg: dict[str, Any],
        ckpt_dir: Path,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        on_branch: Callable[[HorizonResult], None] | None = None,
        progress: bool = True,
    ) -> None:
        self.spec, self.corpus, self.acc, self.cfg = spec, corpus, accelerator, cfg
        self.ckpt_dir = ckpt_dir
        self.on_eval = on_eval or (lambda point: None)
        self.on_branch = on_branch or (lambda result: None)
        self.progress = progress
        self.seed = int(cfg["seed"])
        train, optim = from_node(TrainConfig, cfg["train"]), from_node(OptimConfig, cfg["optim"])
        self.log_every = int(train.log_every)
        self.interrupt_at = train.interrupt_at_step
        every = from_node(CheckpointConfig, cfg["checkpoint"]).every_steps
        # Default: about ten checkpoints a run, plus one at every stop signal and at the end.
        self.checkpoint_every = int(every) if every else max(self.log_every, spec.steps // 10)
        self.eval_windows = eval_offsets(len(corpus.val), spec.context, int(float(train.eval_tokens)))
        self.raw_model = model
        self.optimizer = self._make_optimizer(model, optim)
        self.grad_clip = float(optim.grad_clip)
        # Plain causal windows: SDPA with is_causal=True and no mask tensor (no per-forward
        # host sync in eager mode, and the flash kernel under torch.compile); same logits.
        from scaling.train.speed import use_causal_sdpa

        use_causal_sdpa(model)
        compiled = model
        if _want_compile(train.compile, accelerator.device):
            compiled = torch.compile(model)
        self.model, self.optimizer = accelerator.prepare(compiled, self.optimizer)
        self.stop = StopRequest()
        self.state = LoopState()

    # -- setup ---------------------------------------------------------------------------

    def _make_optimizer(self, model: Any, optim: OptimConfig) -> torch.optim.Optimizer:
        """AdamW with weight decay on tensors of two or more dimensions only (Loshchilov & Hutter 2019)."""
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": float(optim.weight_decay)},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        betas = tuple(float(b) for b in optim.betas)
        # One fused kernel for all tensors where torch has one (CUDA, and the CPU since
        # torch 2.4): the default per-tensor loop dominates the step of small models.
        from scaling.train.speed import adamw_kwargs, fused_adamw_supported

        impl = adamw_kwargs(self.acc.device.type, optim.fused)
        if impl.get("fused") and not all(fused_adamw_supported(p.device.type) for p in model.parameters()):
            model.to(self.acc.device)  # torch < 2.4 has no CPU kernel to validate against; prepare() moves it anyway
        return torch.optim.AdamW(groups, lr=self.spec.lr, betas=betas, eps=float(optim.eps), **impl)

    # -- state -----------------------------------------------------------------------------

    def _trainer_state(self) -> dict[str, Any]:
        s = self.state
        return {
            "step": s.step,
            "curve": s.curve,
            "branches_done": s.branches_done,
            "train_time_s": s.train_time_s,
            "trained_tokens": s.trained_tokens,
            "last_train_loss": s.last_train_loss,
            "resumes": s.resumes,
            "optimizer": self.optimizer.state_dict(),
        }

    def save(self) -> None:
        """Checkpoint (main process writes; every process waits for it)."""
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            save_checkpoint(self.ckpt_dir, self.acc.unwrap_model(self.raw_model), self._trainer_state())
        self.acc.wait_for_everyone()

    def try_resume(self) -> Path | None:
        """Load the newest verified checkpoint if there is one; return its path (None: training starts at 0).

        Damaged checkpoints are set aside with one warning line (see :mod:`scaling.train.checkpoint`).
        """
        found = find_checkpoint(self.ckpt_dir)
        self.acc.wait_for_everyone()  # every process has read the folder before the main one renames in it
        if self.acc.is_main_process:
            found.set_damaged_aside()
        self.acc.wait_for_everyone()
        if found.path is None:
            return None
        state, path = found.state, found.path
        missing, unexpected = self.raw_model.load_state_dict(found.weights, strict=False)
        tied = {k for k in missing if self.raw_model.config.tie_word_embeddings and "lm_head" in k}
        if set(missing) - tied or unexpected:
            raise ScalingError(
                f"checkpoint {path} does not match the model (missing {sorted(missing)[:3]}, unexpected "
                f"{sorted(unexpected)[:3]}): move {self.ckpt_dir} aside to train this run from step 0"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.state = LoopState(
            step=state["step"],
            curve=state["curve"],
            branches_done=state["branches_done"],
            train_time_s=state["train_time_s"],
            trained_tokens=state["trained_tokens"],
            last_train_loss=state["last_train_loss"],
            resumes=int(state.get("resumes", 0)) + 1,  # checkpoints written before the count existed: 0
        )
        return path

    # -- pieces ----------------------------------------------------------------------------

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_step(self, step: int, schedule: Schedule) -> torch.Tensor:
        """One optimizer step on the global batch of ``step``; returns the mean loss (a tensor)."""
        spec, acc = self.spec, self.acc
        offsets = batch_offsets(self.seed, step, spec.batch_size, len(self.corpus.train), spec.context)
        per_rank = spec.batch_size // acc.num_processes
        mine = offsets[acc.process_index * per_rank : (acc.process_index + 1) * per_rank]
        self._set_lr(schedule.lr_at(step))
        if not self.model.training:  # evaluate() left it in eval mode; .train() walks every module
            self.model.train()
        # Where accelerate's wrappers would only forward to torch (no loss scaler, plain or DDP
        # processes), call torch directly: its optimizer wrapper probes the file system for an
        # optional package twice per step and inspects signatures, which costs small models ~1 ms.
        from scaling.train.speed import plain_torch_step

        plain = plain_torch_step(acc)
        optimizer = self.optimizer.optimizer if plain and hasattr(self.optimizer, "optimizer") else self.optimizer
        total: torch.Tensor | None = None
        for micro in range(spec.grad_accum):
            chunk = mine[micro * spec.micro_batch_size : (micro + 1) * spec.micro_batch_size]
            x, y = _device_batch(gather_windows(self.corpus.train, chunk, spec.context), acc.device)
            last = micro == spec.grad_accum - 1
            ctx = acc.no_sync(self.model) if not last else _null()
            with ctx, acc.autocast():
                loss = _loss(self.model, x, y)
                if spec.grad_accum > 1:
                    loss = loss / spec.grad_accum
            if plain:
                loss.backward()
            else:
                acc.backward(loss)
            total = loss.detach() if total is None else total + loss.detach()
        if self.grad_clip > 0:
            if plain:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            else:
                acc.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        assert total is not None
        return acc.reduce(total, "mean") if acc.num_processes > 1 else total  # global-batch mean on every rank

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean token loss on the fixed validation windows (split across processes)."""
        acc, ctx = self.acc, self.spec.context
        self.model.eval()
        windows = self.eval_windows[acc.process_index :: acc.num_processes]
        loss_sum = torch.zeros((), device=acc.device, dtype=torch.float64)
        count = torch.zeros((), device=acc.device, dtype=torch.float64)
        for i in range(0, len(windows), self.spec.micro_batch_size):
            x, y = _device_batch(
                gather_windows(self.corpus.val, windows[i : i + self.spec.micro_batch_size], ctx), acc.device
            )
            with acc.autocast():
                logits = self.model(input_ids=x).logits
            loss_sum += F.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"
            ).double()
            count += y.numel()
        loss_sum, count = acc.reduce(loss_sum, "sum"), acc.reduce(count, "sum")
        return float(loss_sum / count)

    def _eval_point(self, step: int, train_loss: float, lr: float) -> dict[str, Any]:
        tokens = step * self.spec.tokens_per_step
        val = self.evaluate()
        point = {
            "step": step,
            "tokens": tokens,
            "flops": (self.spec.flops_per_token * tokens).as_dict(),
            "train_loss": train_loss,
            "val_loss": val,
            "lr": lr,
        }
        if not (math.isfinite(val) and math.isfinite(train_loss)):
            raise Diverged(f"non-finite loss at step {step} (train {train_loss}, val {val})")
        return point

    def _stop_agreed(self) -> bool:
        """All processes agree to stop if any received a signal (checked at log points)."""
        flag = torch.tensor(float(self.stop.requested), device=self.acc.device)
        if self.acc.num_processes > 1:
            flag = self.acc.reduce(flag, "max")
        return bool(flag.item() > 0)

    # -- driver ----------------------------------------------------------------------------

    def run(self) -> list[HorizonResult]:
        """Train to every horizon; return the main run's result last. Raises Interrupted / Diverged."""
        self.stop.install()
        try:
            return self._run()
        finally:
            self.stop.restore()

    def _run(self) -> list[HorizonResult]:
        spec = self.spec
        main = spec.horizons[-1]
        main_schedule = spec.schedule_for(main)
        branches = [h for h in spec.horizons[:-1] if h.fraction not in self.state.branches_done]
        results: list[HorizonResult] = []
        bar = _progress(spec.steps, self.state.step, self.progress and self.acc.is_main_process)
        loss_acc = torch.zeros((), device=self.acc.device)
        n_acc = 0
        tic = time.perf_counter()
        try:
            while self.state.step < spec.steps:
                step = self.state.step
                # A WSD branch starts where its cooldown would start in a dedicated run.
                for h in [h for h in branches if spec.schedule_for(h).cooldown_start == step]:
                    self.state.train_time_s += time.perf_counter() - tic
                    results.append(self._run_branch(h))
                    branches.remove(h)
                    tic = time.perf_counter()
                loss_acc += self.train_step(step, main_schedule)
                n_acc += 1
                self.state.step = step + 1
                self.state.trained_tokens += spec.tokens_per_step
                at_eval = self.state.step in spec.eval_steps
                if at_eval or self.state.step % self.log_every == 0 or self.state.step == spec.steps:
                    train_loss = float(loss_acc.item()) / n_acc  # the only host sync of the hot loop
                    loss_acc.zero_()
                    n_acc = 0
                    self.state.last_train_loss = train_loss
                    if not math.isfinite(train_loss):
                        raise Diverged(f"non-finite training loss {train_loss} at step {self.state.step}")
                    self.state.train_time_s += time.perf_counter() - tic
                    bar.set_postfix(loss=f"{train_loss:.4f}", tok_s=f"{self.tokens_per_s():.3g}")
                    if at_eval:
                        point = self._eval_point(self.state.step, train_loss, main_schedule.lr_at(step))
                        self.state.curve.append(point)
                        self.on_eval(point)
                    self._maybe_interrupt()
                    tic = time.perf_counter()
                bar.update(1)
        finally:
            bar.close()
        self.state.train_time_s += time.perf_counter() - tic
        final = self.state.curve[-1]
        results.append(
            HorizonResult(
                main, list(self.state.curve), {"val_loss": final["val_loss"], "train_loss": final["train_loss"]}
            )
        )
        return results

    def _maybe_interrupt(self) -> None:
        if self.state.step % self.checkpoint_every == 0 and self.state.step < self.spec.steps:
            self.save()
        if self.interrupt_at is not None and self.state.step >= int(self.interrupt_at):
            self.stop.request()
        if self._stop_agreed():
            self.save()
            raise Interrupted(self.stop.name or "SIGTERM")

    def _run_branch(self, horizon: Horizon) -> HorizonResult:
        """Cool down from the current stable-phase state to ``horizon``, then restore the stable state."""
        spec, start = self.spec, self.state.step
        schedule = spec.schedule_for(horizon)
        model_snapshot = copy.deepcopy(self.acc.unwrap_model(self.raw_model).state_dict())
        optim_snapshot = copy.deepcopy(self.optimizer.state_dict())
        stable_state = copy.deepcopy(self.state)
        curve = [p for p in self.state.curve if p["step"] <= start]
        try:
            loss = torch.zeros((), device=self.acc.device)
            n = 0
            branch_evals = log_spaced_tail(start, horizon.steps, 3)
            for step in range(start, horizon.steps):
                loss += self.train_step(step, schedule)
                n += 1
                if step + 1 in branch_evals:
                    train_loss = float(loss.item()) / n
                    loss.zero_()
                    n = 0
                    if not math.isfinite(train_loss):
                        raise Diverged(f"non-finite training loss in the cooldown branch to step {horizon.steps}")
                    curve.append(self._eval_point(step + 1, train_loss, schedule.lr_at(step)))
                if self.stop.requested:
                    break
        finally:
            self.acc.unwrap_model(self.raw_model).load_state_dict(model_snapshot)
            self.optimizer.load_state_dict(optim_snapshot)
            self.state = stable_state
        if self.stop.requested:
            # The branch is abandoned; the checkpoint holds the stable state, so a resume redoes it.
            self.save()
            raise Interrupted(self.stop.name)
        final = curve[-1]
        result = HorizonResult(horizon, curve, {"val_loss": final["val_loss"], "train_loss": final["train_loss"]})
        self.state.branches_done.append(horizon.fraction)
        self.on_branch(result)
        return result

    def tokens_per_s(self) -> float:
        return self.state.trained_tokens / self.state.train_time_s if self.state.train_time_s > 0 else 0.0


def log_spaced_tail(start: int, end: int, count: int) -> set[int]:
    """A few eval steps inside a cooldown branch, always including its end."""
    if end - start <= 1:
        return {end}
    points = np.unique(np.round(np.geomspace(1, end - start, count)).astype(int)) + start
    return {int(p) for p in points} | {end}


def _want_compile(setting: Any, device: torch.device) -> bool:
    if setting in ("auto", None):
        return device.type == "cuda"
    return bool(setting)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar on a terminal; a silent stand-in otherwise."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not (enabled and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
        unit="step",
    )
