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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scaling.errors import USER_ERROR_EXIT, ScalingError
from scaling.progress import format_seconds

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
    from scaling.train.spec import merge_wsd_budgets, resolve_spec

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


def job_work(spec: RunSpec) -> float:
    """A job's training work in exact FLOPs: its main run plus the cooldown of each WSD branch.

    The sweep's ETA weighs jobs by this, not by count: a 600k-parameter run costs many times
    a 15k one, and a stable WSD run pays extra only for its branches' cooldowns.
    """
    s = spec.schedule
    branch_steps = sum(s.cooldown_frac * h.steps for h in spec.horizons[:-1]) if len(spec.horizons) > 1 else 0.0
    return (spec.steps + branch_steps) * spec.tokens_per_step * spec.flops_per_token.exact


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
        data, cache = job.config["data"], (job.config.get("paths") or {}).get("cache")
        key = json.dumps([data, cache], sort_keys=True, default=str)
        if data["kind"] == "pysource" and key not in seen:
            seen.add(key)
            load_corpus(data, cache)


class SweepProgress(Callback):
    """Validate the grid up front, prepare the corpus once, and print ``run k/n`` with an ETA as the sweep runs."""

    def __init__(self) -> None:
        self.total: int | None = None

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
        try:
            warm_corpora(resolved)
        except ScalingError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)
        work = [job_work(job.spec) for job in resolved]
        folder = Path(str(config.hydra.sweep.dir))
        folder.mkdir(parents=True, exist_ok=True)
        plan = {"kind": "plan", "started": time.time(), "runs": len(jobs), "work": work}
        (folder / PROGRESS_FILE).write_text(json.dumps(plan) + "\n")
        print(f"[sweep] {self.total} runs, {sum(work):.3g} FLOPs to train", file=sys.stderr, flush=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        try:
            hydra_cfg = HydraConfig.get()
            num = int(hydra_cfg.job.num)
        except Exception:  # a single run (not -m) has no job number: nothing to report
            return
        print(sweep_line(Path(hydra_cfg.sweep.dir) / PROGRESS_FILE, num), file=sys.stderr, flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        try:
            hydra_cfg = HydraConfig.get()
            num = int(hydra_cfg.job.num)
        except Exception:
            return
        status = getattr(job_return, "_return_value", None)
        line = json.dumps({"kind": "done", "num": num, "skipped": status == "skipped"}) + "\n"
        # Progress is a courtesy: never fail a run over it. One short O_APPEND write, so lines from
        # concurrent jobs do not interleave.
        with contextlib.suppress(OSError), open(Path(hydra_cfg.sweep.dir) / PROGRESS_FILE, "a") as fh:
            fh.write(line)


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
