"""Sweep-level behaviour of ``scaling-train -m``: validate the whole grid first, then report progress.

A Hydra callback (registered in ``configs/train.yaml``):

* before the first job, every job's config is composed and resolved (shape,
  budget, batch), so an impossible target N, a budget below one batch or an
  empty grid stops the sweep with one line *before any training starts*;
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


def _vocab_for_validation(cfg: dict[str, Any]) -> int:
    """The vocab a job will see: the local BPE's size, or model.vocab_size, or GPT-2's as a stand-in."""
    data, model = cfg.get("data", {}), cfg.get("model", {})
    if model.get("vocab_size"):
        return int(model["vocab_size"])
    if data.get("kind", "pysource") == "pysource" and data.get("tokenizer", "bpe") == "bpe":
        return int(data.get("vocab_size", 2048))
    return 50257


def validate_jobs(config: DictConfig, jobs: list[list[str]]) -> None:
    """Resolve every job's run (no training, no corpus) and raise the first impossible one."""
    from hydra.core.global_hydra import GlobalHydra

    from scaling.train.spec import merge_wsd_budgets, resolve_spec

    if not jobs:
        raise ScalingError("empty grid: the sweep expands to no runs")
    loader = GlobalHydra.instance().config_loader()
    for index, overrides in enumerate(jobs):
        job_cfg = loader.load_sweep_config(config, list(overrides))
        with _readonly_off(job_cfg):
            del job_cfg["hydra"]
        try:
            cfg = OmegaConf.to_container(job_cfg, resolve=True)
            cfg = merge_wsd_budgets(cfg)  # type: ignore[arg-type]
            resolve_spec(cfg, _vocab_for_validation(cfg))
        except ScalingError as err:
            raise ScalingError(f"run {index} ({' '.join(overrides)}): {err}") from None


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
            validate_jobs(config, jobs)
        except ScalingError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)
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
