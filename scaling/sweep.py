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
* it builds the embedded corpus's token cache once, in the head process, so packed
  workers do not each train the same tokenizer;
* at each job it prints ``[sweep] run k/n`` with the elapsed time and an ETA from
  the exact FLOPs trained so far against those left (skipped runs leave the total:
  they cost nothing). Jobs record their end in a file in the sweep folder, so the
  ETA holds when the packed or SLURM launcher runs jobs in other processes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scaling.errors import USER_ERROR_EXIT, ScalingError
from scaling.progress import format_seconds
from scaling.train.dry_run import ResolvedJob, dry_run_table, resolve_job

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


def resolve_jobs(config: DictConfig, jobs: list[list[str]]) -> list[ResolvedJob]:
    """Resolve every job's run (no training, no corpus); raise the first impossible one, naming it."""
    from hydra.core.global_hydra import GlobalHydra

    if not jobs:
        raise ScalingError("empty grid: the sweep expands to no runs")
    loader = GlobalHydra.instance().config_loader()
    resolved, configs = [], []
    for index, overrides in enumerate(jobs):
        job_cfg = loader.load_sweep_config(config, list(overrides))
        with _readonly_off(job_cfg):
            del job_cfg["hydra"]
        try:
            cfg = OmegaConf.to_container(job_cfg, resolve=True)
            configs.append(cfg)
            resolved.append(resolve_job(cfg, overrides))  # type: ignore[arg-type]
        except ScalingError as err:
            raise ScalingError(f"run {index} ({' '.join(overrides)}): {err}") from None
    check_shared_budgets(configs)  # type: ignore[arg-type]
    return resolved


def check_shared_budgets(configs: list[dict[str, Any]]) -> None:
    """With WSD isoFLOP branches, ``grid.budgets`` x ``grid.offsets`` must be exactly the swept points.

    Each run branches at every budget of ``grid.budgets`` it serves, so a budget listed there but not
    swept would train records nobody asked for, and a swept one missing there would have no branch.
    """
    for key, sweep_key in (("budgets", "train.flops"), ("offsets", "grid.offset")):
        listed = {tuple(float(v) for v in c["grid"][key]) for c in configs if c["grid"].get(key)}
        if not listed:
            continue
        section, field = sweep_key.split(".")
        swept = sorted({float(c[section][field]) for c in configs})
        for values in listed:
            if sorted(set(values)) != swept:
                raise ScalingError(f"grid.{key}={list(values)} must list exactly the swept {sweep_key} values {swept}")


class _readonly_off:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def __enter__(self) -> None:
        OmegaConf.set_readonly(self.cfg, False)
        OmegaConf.set_struct(self.cfg, False)

    def __exit__(self, *exc: object) -> None:
        return None


def job_tokens(spec: RunSpec) -> float:
    """Tokens a job trains: its main run plus the cooldown of each WSD branch (branches share the stable phase)."""
    branch_steps = sum(spec.schedule.cooldown_frac * h.steps for h in spec.horizons[:-1])  # the last is the main run
    return (spec.steps + branch_steps) * spec.tokens_per_step


def job_work(spec: RunSpec) -> float:
    """A job's training work in exact FLOPs (:func:`job_tokens` x exact FLOPs per token).

    The sweep's ETA weighs jobs by this, not by count: a 600k-parameter run costs many times
    a 15k one, and a stable WSD run pays extra only for its branches' cooldowns.
    """
    return job_tokens(spec) * spec.flops_per_token.exact


def sweep_work(jobs: list[ResolvedJob]) -> list[float]:
    """Each job's work; a job that shares its run with an earlier job (WSD branches) adds none."""
    from scaling.runid import run_id_for

    seen: set[str] = set()
    work = []
    for job in jobs:
        run_id = run_id_for(job.config)
        work.append(0.0 if run_id in seen else job_work(job.spec))
        seen.add(run_id)
    return work


#: Written in the sweep folder by the head process and appended to by every job (any process,
#: any node sharing the folder): the packed and SLURM launchers run jobs in other processes, so
#: the ETA cannot live in one process's memory.
PROGRESS_FILE = ".sweep_progress.jsonl"


def warm_corpora(jobs: list[ResolvedJob]) -> None:
    """Build each distinct embedded-corpus token cache once, in the head process, before jobs start.

    Otherwise packed workers would each train the same tokenizer at once. Hugging Face corpora are
    left to ``scaling prepare`` (they can be far larger than what a head process should tokenize).
    """
    from scaling.data.corpus import load_corpus

    seen: set[str] = set()
    for job in jobs:
        data, cache = job.config["data"], job.config["paths"]["cache"]
        key = json.dumps([data, cache], sort_keys=True, default=str)
        if data["kind"] == "pysource" and key not in seen:
            seen.add(key)
            load_corpus(data, cache)


class SweepProgress(Callback):
    """Validate the grid up front, prepare the corpus once, and print ``run k/n`` with an ETA as the sweep runs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            resolved = resolve_jobs(config, sweep_jobs(config))
            if config.train.dry_run:
                print(dry_run_table(resolved), flush=True)
                sys.exit(0)  # before the launcher starts: no job runs, no sweep folder is made
            warm_corpora(resolved)
        except ScalingError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)
        work = sweep_work(resolved)
        folder = Path(str(config.hydra.sweep.dir))
        folder.mkdir(parents=True, exist_ok=True)
        plan = {"kind": "plan", "started": time.time(), "runs": len(work), "work": work}
        (folder / PROGRESS_FILE).write_text(json.dumps(plan) + "\n")
        print(f"[sweep] {len(work)} runs, {sum(work):.3g} FLOPs to train", file=sys.stderr, flush=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job = _this_job()
        if job is not None:
            print(sweep_line(*job), file=sys.stderr, flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        job = _this_job()
        if job is None:
            return
        progress_file, num = job
        status = getattr(job_return, "_return_value", None)
        line = json.dumps({"kind": "done", "num": num, "skipped": status == "skipped"}) + "\n"
        # Progress is a courtesy: never fail a run over it. One short O_APPEND write, so lines from
        # concurrent jobs do not interleave.
        with contextlib.suppress(OSError), open(progress_file, "a") as fh:
            fh.write(line)


def _this_job() -> tuple[Path, int] | None:
    """(the sweep's progress file, this job's number), or None for a single run (not -m), which has neither."""
    from hydra.core.hydra_config import HydraConfig

    try:
        hydra_cfg = HydraConfig.get()
        return Path(hydra_cfg.sweep.dir) / PROGRESS_FILE, int(hydra_cfg.job.num)
    except Exception:
        return None


def sweep_line(progress_file: Path, num: int) -> str:
    """``[sweep] run k/n · elapsed · ETA`` from the shared progress file (no ETA until a run has trained).

    ETA = elapsed × (work left) / (work done), in exact FLOPs; skipped runs leave the total, since
    they cost nothing, and runs still training count as not done.
    """
    try:
        entries = [json.loads(line) for line in progress_file.read_text().splitlines() if line.strip()]
        plan = next(e for e in entries if e["kind"] == "plan")
    except (OSError, ValueError, StopIteration):
        return f"[sweep] run {num + 1}"
    work = plan["work"]
    elapsed = time.time() - plan["started"]
    done = [e for e in entries if e["kind"] == "done" and 0 <= e["num"] < len(work)]
    trained = sum(work[e["num"]] for e in done if not e["skipped"])
    left = sum(work) - sum(work[e["num"]] for e in done)
    line = f"[sweep] run {num + 1}/{plan['runs']} · elapsed {format_seconds(elapsed)}"
    if trained > 0:
        line += f" · ETA {format_seconds(elapsed * left / trained)}"
    return line
