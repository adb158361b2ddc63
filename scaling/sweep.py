"""Sweep-level behaviour of ``scaling-train -m``: validate the whole grid first, then report progress.

A Hydra callback (registered in ``scaling/configs/train.yaml``):

* before the first job, every job's config is composed and resolved (shape,
  budget, batch), so an impossible target N, a budget below one batch or an
  empty grid stops the sweep with one line *before any training starts*;
* with ``train.dry_run=true`` it then prints every resolved run (shape, N, D,
  C, learning rate, batch, warmup: :func:`scaling.train.dry_run.dry_run_table`) and stops, training
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
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scaling.errors import USER_ERROR_EXIT, ScalingError
from scaling.train.dry_run import ResolvedJob, dry_run_table, resolve_job


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
