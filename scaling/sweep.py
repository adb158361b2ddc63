"""Sweep-level behaviour of ``scaling-train -m``: validate the whole grid first, then report progress.

A Hydra callback (registered in ``scaling/configs/train.yaml``):

* before the first job, every job's config is composed and resolved (shape,
  budget, batch), so an impossible target N, a budget below one batch or an
  empty grid stops the sweep with one line *before any training starts*;
* with ``train.dry_run=true`` it then prints every resolved run (shape, N, D,
  C, learning rate, batch, warmup: :func:`dry_run_table`) and stops, training
  nothing: ``scaling-train -m +experiment=demo train.dry_run=true``. The runs
  are resolved by the same :func:`scaling.train.spec.resolve_spec` as training,
  so the table is what the sweep would train;
* at each job it prints ``[sweep] run k/n`` with the elapsed time and an ETA
  from the mean duration of the runs that actually trained (skipped runs are
  near-instant and would make the ETA lie).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scaling.errors import USER_ERROR_EXIT, ScalingError

if TYPE_CHECKING:
    from scaling.train.spec import RunSpec


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """The override list of every job of this multirun, as Hydra's basic sweeper expands it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params")
    preset = [f"{key}={value}" for key, value in params.items()] if params else []
    arguments = preset + list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [list(job) for batch in batches for job in batch]


def job_vocab(cfg: dict[str, Any]) -> tuple[int, str]:
    """The vocab a job will see, without loading a corpus, and where that number comes from.

    model.vocab_size when set, else the local BPE's size, else GPT-2's as a stand-in
    for a Hugging Face tokenizer (its true size is known only once it is loaded).
    """
    data, model = cfg["data"], cfg["model"]
    if model["vocab_size"]:
        return int(model["vocab_size"]), "model.vocab_size"
    if data["kind"] == "pysource" and data["tokenizer"] == "bpe":
        return int(data["vocab_size"]), "data.vocab_size of the local BPE"
    return 50257, "GPT-2's, a stand-in until the tokenizer is loaded"


@dataclass(frozen=True)
class ResolvedJob:
    """One job of a sweep as training would run it: its overrides, merged config and resolved run."""

    overrides: list[str]
    config: dict[str, Any]
    spec: RunSpec
    vocab_source: str


def resolve_job(cfg: dict[str, Any], overrides: list[str]) -> ResolvedJob:
    """Resolve one composed job config exactly as ``run_training`` will (WSD budgets merged first)."""
    from scaling.config import check_numbers
    from scaling.train.spec import merge_wsd_budgets, resolve_spec

    check_numbers(cfg)
    cfg = merge_wsd_budgets(cfg)
    vocab, source = job_vocab(cfg)
    return ResolvedJob(list(overrides), cfg, resolve_spec(cfg, vocab), source)


def resolve_jobs(config: DictConfig, jobs: list[list[str]]) -> list[ResolvedJob]:
    """Resolve every job's run (no training, no corpus); raise the first impossible one, naming it."""
    from hydra.core.global_hydra import GlobalHydra

    if not jobs:
        raise ScalingError("empty grid: the sweep expands to no runs")
    loader = GlobalHydra.instance().config_loader()
    resolved = []
    for index, overrides in enumerate(jobs):
        job_cfg = loader.load_sweep_config(config, list(overrides))
        with _readonly_off(job_cfg):
            del job_cfg["hydra"]
        try:
            cfg = OmegaConf.to_container(job_cfg, resolve=True)
            resolved.append(resolve_job(cfg, overrides))  # type: ignore[arg-type]
        except ScalingError as err:
            raise ScalingError(f"run {index} ({' '.join(overrides)}): {err}") from None
    return resolved


def _si(value: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def dry_run_table(jobs: list[ResolvedJob]) -> str:
    """One line per resolved run: what it varies, its run id, shape, N, D, C, lr, batch and warmup.

    N is every parameter count and C every FLOP convention (``scaling.accounting``):
    the fit picks one of each later, and the table shows what each would read.
    """
    from scaling.train.runid import run_id_for

    varied = _varied_overrides([job.overrides for job in jobs])
    lines = [
        f"[dry run] {len(jobs)} run{'s' if len(jobs) != 1 else ''}, none trained; vocab: {jobs[0].vocab_source}"
        if jobs
        else "[dry run] 0 runs"
    ]
    for index, job in enumerate(jobs):
        spec, counts = job.spec, job.spec.params
        flops = spec.flops_per_token * spec.tokens
        shape = spec.shape
        lines.append(
            f"{index:>3} {' '.join(o for o in job.overrides if o in varied) or '-'}"
            f"  run_id={run_id_for(job.config)}"
            f"  {shape.family} L={shape.n_layers} d={shape.d_model} heads={shape.n_heads} ctx={shape.context} V={shape.vocab_size}"
            f"  N_non_embedding={_si(counts.non_embedding)} N_with_head={_si(counts.with_head)} N_total={_si(counts.total)}"
            f"  D={_si(spec.tokens)} D/N_with_head={spec.tokens / counts.with_head:.3g}"
            f"  C_kaplan={flops.kaplan:.4g} C_six_n={flops.six_n:.4g} C_exact={flops.exact:.4g}"
            f"  lr={spec.lr:.3g} batch={spec.batch_size}x{shape.context}={_si(spec.tokens_per_step)}"
            f"  warmup={_si(spec.schedule.warmup_steps * spec.tokens_per_step)} ({spec.schedule.warmup_steps} steps of {spec.steps})"
            f"  {spec.schedule.name}"
            + (f" branches={[h.fraction for h in spec.horizons[:-1]]}" if len(spec.horizons) > 1 else "")
        )
    return "\n".join(lines)


def _varied_overrides(jobs: list[list[str]]) -> set[str]:
    """The overrides that differ between jobs (the sweep's axes); a single run has none."""
    if len(jobs) <= 1:
        return set()
    common = set.intersection(*(set(job) for job in jobs))
    return {o for job in jobs for o in job} - common


class _readonly_off:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def __enter__(self) -> None:
        OmegaConf.set_readonly(self.cfg, False)
        OmegaConf.set_struct(self.cfg, False)

    def __exit__(self, *exc: object) -> None:
        return None


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SweepProgress(Callback):
    """Validate the grid up front and print ``run k/n`` with an ETA as the sweep runs."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.started = time.time()
        self.job_started = 0.0
        self.trained: list[float] = []
        self.done = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            jobs = sweep_jobs(config)
            resolved = resolve_jobs(config, jobs)
        except ScalingError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)
        if config.train.dry_run:
            print(dry_run_table(resolved), flush=True)
            sys.exit(0)  # before the launcher starts: no job runs, no sweep folder is made
        self.total = len(jobs)
        self.started = time.time()
        print(f"[sweep] {self.total} runs", file=sys.stderr, flush=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        try:
            num = int(HydraConfig.get().job.num)
        except Exception:  # a single run (not -m) has no job number: nothing to report
            return
        self.job_started = time.time()
        of = f"/{self.total}" if self.total else ""
        line = f"[sweep] run {num + 1}{of} · elapsed {_fmt(time.time() - self.started)}"
        if self.total and self.trained:
            remaining = self.total - self.done
            line += f" · ETA {_fmt(remaining * sum(self.trained) / len(self.trained))}"
        print(line, file=sys.stderr, flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.done += 1
        took = time.time() - self.job_started
        status = getattr(job_return, "_return_value", None)
        if status != "skipped":
            self.trained.append(took)
