"""List a run as training would resolve it, without training: ``train.dry_run=true``.

One line per run (shape, N, D, C, learning rate, batch, warmup) from the same
:func:`scaling.train.spec.resolve_spec` that training uses, so the table is what
would be trained. ``scaling-train train.dry_run=true`` lists one run (train/app.py);
a sweep (``scaling-train -m ... train.dry_run=true``) lists every job
(scaling/sweep.py). It lives in train/ beside the resolver, so the entry point
and the sweep callback both import it downwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scaling.runid import run_id_for
from scaling.train.spec import RunSpec, job_vocab, merge_wsd_budgets, resolve_spec
from scaling.variants import apply_variant


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

    check_numbers(cfg)
    cfg = merge_wsd_budgets(apply_variant(cfg))
    vocab, source = job_vocab(cfg)
    return ResolvedJob(list(overrides), cfg, resolve_spec(cfg, vocab), source)


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
