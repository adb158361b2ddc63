"""Training throughput of our step against the plain loop people write around the same model class.

For each shape of a ladder, in one process, on the same data and from the same
initial weights, blocks of steps alternate between (ABBA order, medians taken,
because the machines this runs on are shared):

* baseline: ``loss = model(input_ids=x, labels=x).loss; loss.backward();
  opt.step(); opt.zero_grad()`` with ``opt = torch.optim.AdamW(model.parameters())``
  at its defaults; fp32 on the CPU, ``torch.autocast(bfloat16)`` on CUDA (what a
  typical GPU user adds), no ``torch.compile``;
* ours: :meth:`scaling.train.loop.Trainer.train_step` of a real ``Trainer`` built
  as ``scaling-train`` builds it (accelerate, bf16 + TF32 and ``torch.compile`` on
  CUDA, fused AdamW, grad clipping, the schedule's learning rate).

Reported: tokens/s, exact FLOP/s (:func:`scaling.accounting.flops_per_token`),
MFU against the datasheet peak (:data:`scaling.train.speed.PEAK_TFLOPS`, GPUs
only) and against the matmul peak measured at the start of the same process.
On the CPU a second ratio from process CPU time is printed: with one thread it
does not count the time the scheduler gave to other people's processes.

``--whole-machine K`` adds, per shape and in separate processes, each side as it runs by
default on the whole machine: the baseline one run at a time on torch's default threads
against ours one run on one thread and K runs packed (cores/K threads each), plus, on the
demo ladder, the demo sweep's training time at those rates.

``--packed K`` adds the packing measurement: K training processes of small
shapes run at once (each limited to cores/K threads), against the same
processes one at a time. Workers start, warm up (and compile), then all train
for ``--packed-seconds`` from a common start signal; aggregate tokens/s is the
sum of their tokens over that time.

    python scripts/bench_train.py --device cpu --threads 1 --whole-machine 2 > results/bench/train_cpu.txt
    python scripts/bench_train.py --device cuda --packed 4 --packed 8 > results/gpu/bench_train.txt
    python scripts/bench_train.py --quick       # seconds: a tiny ladder, for the tests
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the checkout's package, also when another copy is installed
    sys.path.insert(0, str(REPO))


def demo_points() -> list[tuple[str, int]]:
    """The demo's isoFLOP grid, read from its preset (scaling/configs/experiment/demo.yaml): every budget x offset."""
    import yaml

    from scaling.config import CONFIG_DIR

    preset = yaml.safe_load((CONFIG_DIR / "experiment" / "demo.yaml").read_text())
    params = preset["hydra"]["sweeper"]["params"]
    flops = [f.strip() for f in str(params["train.flops"]).split(",")]
    offsets = [int(o) for o in str(params["grid.offset"]).split(",")]
    return [(f, o) for f in flops for o in offsets]


@dataclass(frozen=True)
class Case:
    """One ladder rung: a name and the ``scaling-train`` overrides that define its shape and batch."""

    name: str
    overrides: tuple[str, ...]


def gpu_ladder() -> list[Case]:
    """About 1M, 10M, 50M and 124M parameters; the last is GPT-2 small (tied embeddings, context 1024)."""

    def gpt2(d: int, layers: int, heads: int, ctx: int, vocab: int, batch: int, tie: bool = False) -> tuple[str, ...]:
        return (
            "model.family=gpt2",
            f"model.d_model={d}",
            f"model.n_layers={layers}",
            f"model.n_heads={heads}",
            f"model.context={ctx}",
            f"model.vocab_size={vocab}",
            f"model.tie_embeddings={str(tie).lower()}",
            f"train.batch_size={batch}",
        )

    return [
        Case("~1M", gpt2(128, 4, 4, 256, 2048, 64)),
        Case("~10M", gpt2(384, 6, 6, 512, 8192, 32)),
        Case("~50M", gpt2(640, 10, 10, 1024, 32768, 16)),
        Case("124M (GPT-2 small)", gpt2(768, 12, 12, 1024, 50257, 16, tie=True)),
    ]


def packed_ladder(device: str) -> list[Case]:
    """The <= 5M-parameter shapes of a small sweep, for the packing measurement."""
    if device == "cpu":
        return [c for c in demo_ladder() if c.name.startswith(("1e11",))][:4] or demo_ladder()[:2]

    def gpt2(d: int, layers: int) -> tuple[str, ...]:
        return (
            "model.family=gpt2",
            f"model.d_model={d}",
            f"model.n_layers={layers}",
            f"model.n_heads={d // 64}",
            "model.context=256",
            "model.vocab_size=2048",
            "train.batch_size=32",
        )

    return [Case("~1M", gpt2(128, 4)), Case("~2M", gpt2(192, 4)), Case("~3M", gpt2(256, 4)), Case("~4M", gpt2(256, 5))]


@dataclass(frozen=True)
class DemoShape:
    """One distinct (shape, batch) of the demo sweep: its ladder case and the tokens the sweep trains it for."""

    case: Case
    d_model: int
    n_layers: int
    tokens: int


def demo_shapes() -> list[DemoShape]:
    """Every distinct training run of the demo sweep, smallest first, as the sweep trains it.

    Jobs are resolved by the sweep's own resolver (WSD jobs of one size merge into one run with
    cooldown branches), so a run shared by several budgets is counted once, with its branches.
    """
    from scaling.errors import ScalingError
    from scaling.runid import run_id_for
    from scaling.sweep import job_tokens
    from scaling.train.dry_run import resolve_job

    seen: dict[str, DemoShape] = {}
    for flops, offset in demo_points():
        overrides = ("+experiment=demo", f"train.flops={flops}", f"grid.offset={offset}")
        try:
            job = resolve_job(compose(overrides), list(overrides))
        except ScalingError:  # the smallest offsets of the smallest budgets may have no shape
            continue
        run_id = run_id_for(job.config)
        if run_id not in seen:
            spec = job.spec
            case = Case(f"{flops}/{offset:+d}", overrides)
            seen[run_id] = DemoShape(case, spec.shape.d_model, spec.shape.n_layers, int(job_tokens(spec)))
    return sorted(seen.values(), key=lambda shape: (shape.d_model * shape.n_layers, shape.case.name))


def demo_ladder() -> list[Case]:
    """The demo sweep's distinct shapes as ladder cases, smallest first."""
    return [shape.case for shape in demo_shapes()]


def quick_ladder() -> list[Case]:
    tiny = ("model.family=llama", "model.context=32", "model.vocab_size=256", "train.batch_size=4")
    return [
        Case("tiny-1", (*tiny, "model.d_model=16", "model.n_layers=1", "model.n_heads=1")),
        Case("tiny-2", (*tiny, "model.d_model=32", "model.n_layers=2", "model.n_heads=2")),
    ]


def compose(overrides: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The resolved ``scaling-train`` config for ``overrides`` (the same configs users train with)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from scaling.config import CONFIG_DIR  # importing it registers the config schema

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def case_overrides(case: Case, device: str, compile_setting: str) -> list[str]:
    """Overrides that pin the case's shape and batch (a demo point's are resolved by its grid first)."""
    from scaling.train.spec import resolve_spec

    overrides = list(case.overrides)
    if "+experiment=demo" in overrides:
        spec = resolve_spec(compose(overrides), 512)
        s = spec.shape
        overrides = [
            f"model.family={s.family}",
            f"model.d_model={s.d_model}",
            f"model.n_layers={s.n_layers}",
            f"model.n_heads={s.n_heads}",
            f"model.d_ff={s.d_ff}",
            f"model.context={s.context}",
            f"model.vocab_size={s.vocab_size}",
            f"train.batch_size={spec.batch_size}",
            f"optim.lr={spec.lr}",
        ]
    return [
        *overrides,
        f"train.device={device}",
        f"train.compile={compile_setting}",
        "train.tokens=1e12",  # a budget only sizes the schedule; the bench times steps
        "logging.wandb=false",
        "logging.progress=false",
    ]


# -- the two loops ---------------------------------------------------------------------------


class Setup:
    """Our Trainer and the baseline loop for one shape, on one synthetic token stream."""

    def __init__(self, case: Case, device: str, compile_setting: str, seed: int = 0) -> None:
        import numpy as np
        import torch

        from scaling.data.corpus import TrainingCorpus
        from scaling.data.tokens import TokenStream
        from scaling.models import build_model
        from scaling.train.loop import Trainer
        from scaling.train.run import _accelerator
        from scaling.train.spec import resolve_spec

        cfg = compose(case_overrides(case, device, compile_setting))
        vocab = int(cfg["model"]["vocab_size"])
        self.spec = resolve_spec(cfg, vocab)
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        dtype = np.uint16 if vocab <= 2**16 else np.uint32
        train = rng.integers(0, vocab, size=4_000_000, dtype=np.int64).astype(dtype)
        val = rng.integers(0, vocab, size=8 * (self.spec.context + 1), dtype=np.int64).astype(dtype)
        self.corpus = TrainingCorpus("synthetic", "-", TokenStream([train]), TokenStream([val]), vocab, 0, {})
        self.accelerator = _accelerator(cfg)
        self.device = self.accelerator.device
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-train-")
        model = build_model(self.spec.shape, seed=seed)
        self.trainer = Trainer(
            self.spec, self.corpus, model, self.accelerator, cfg, Path(self.tmp.name), progress=False
        )
        self.schedule = self.spec.schedule
        self.seed = seed
        self.base_model = build_model(self.spec.shape, seed=seed).to(self.device)
        self.base_opt = torch.optim.AdamW(self.base_model.parameters())
        self.step = 0

    def windows(self, step: int):
        from scaling.data.tokens import batch_offsets, gather_windows

        spec = self.spec
        offsets = batch_offsets(self.seed, step, spec.batch_size, len(self.corpus.train), spec.context)
        return gather_windows(self.corpus.train, offsets, spec.context)

    def baseline_step(self, step: int):
        import torch

        x = torch.from_numpy(self.windows(step)[:, :-1]).to(self.device)
        self.base_model.train()
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = self.base_model(input_ids=x, labels=x).loss
        else:
            loss = self.base_model(input_ids=x, labels=x).loss
        loss.backward()
        self.base_opt.step()
        self.base_opt.zero_grad()
        return loss

    def our_step(self, step: int):
        return self.trainer.train_step(step, self.schedule)

    def close(self) -> None:
        self.tmp.cleanup()


def timed_block(fn, first_step: int, steps: int, device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``steps`` calls; the device is synchronised at the ends only."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    loss = None
    for i in range(steps):
        loss = fn(first_step + i)
    float(loss.detach().float().item())  # the only sync: the end of the block
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_case(case: Case, device: str, args: argparse.Namespace, peaks: dict[str, Any]) -> dict[str, Any]:
    import torch

    from scaling.accounting import flops_per_token
    from scaling.train.speed import mfu

    setup = Setup(case, device, args.compile)
    dev = setup.device
    spec = setup.spec
    tokens_per_step = spec.batch_size * spec.context
    # Warm-up; ours' first step includes torch.compile where it is on (reported apart).
    t0 = time.perf_counter()
    setup.our_step(0).item()
    first_ours = time.perf_counter() - t0
    for i in range(1, args.warmup):
        setup.our_step(i)
    t0 = time.perf_counter()
    setup.baseline_step(0).item()
    first_base = time.perf_counter() - t0
    for i in range(1, args.warmup):
        setup.baseline_step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    # The compile cost: the first step beyond what a warm step costs.
    steady = timed_block(setup.our_step, args.warmup, 2, dev)[0] / 2
    compile_s = max(0.0, first_ours - steady) if setup.trainer.model is not setup.trainer.raw_model else 0.0
    threads = {"base": args.threads_base, "ours": args.threads_ours}
    walls: dict[str, list[float]] = {"base": [], "ours": []}
    cpus: dict[str, list[float]] = {"base": [], "ours": []}
    step = args.warmup + 2
    for r in range(args.repeats):
        order = ("base", "ours") if r % 2 == 0 else ("ours", "base")
        for which in order:
            fn = setup.baseline_step if which == "base" else setup.our_step
            if threads[which]:
                torch.set_num_threads(threads[which])
            wall, cpu = timed_block(fn, step, args.steps, dev)
            walls[which].append(wall)
            cpus[which].append(cpu)
        step += args.steps
    fpt = flops_per_token(spec.shape).exact
    tok = {k: args.steps * tokens_per_step / statistics.median(v) for k, v in walls.items()}
    tok_cpu = {k: args.steps * tokens_per_step / statistics.median(v) for k, v in cpus.items()}
    row = {
        "case": case.name,
        "family": spec.shape.family,
        "d_model": spec.shape.d_model,
        "n_layers": spec.shape.n_layers,
        "n_heads": spec.shape.n_heads,
        "context": spec.context,
        "vocab": spec.shape.vocab_size,
        "params_with_head": spec.params.with_head,
        "params_total": spec.params.total,
        "batch": spec.batch_size,
        "micro_batch": spec.micro_batch_size,
        "exact_flops_per_token": fpt,
        "tokens_per_s": tok,
        "tokens_per_cpu_s": tok_cpu,
        "speedup": tok["ours"] / tok["base"],
        "speedup_cpu_time": tok_cpu["ours"] / tok_cpu["base"],
        "flops_per_s": {k: v * fpt for k, v in tok.items()},
        "mfu_table": {k: mfu(v * fpt, peaks["table"]) for k, v in tok.items()},
        "mfu_measured": {k: mfu(v * fpt, peaks["measured"]) for k, v in tok.items()},
        "first_step_s": {"base": first_base, "ours": first_ours},
        "compile_s": compile_s,
        "compiled": setup.trainer.model is not setup.trainer.raw_model,
        "fused_adamw": bool(setup.trainer.optimizer.defaults.get("fused")),
        "attention": getattr(setup.trainer.raw_model.config, "_attn_implementation", "?"),
    }
    setup.close()
    del setup
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return row


# -- packing -----------------------------------------------------------------------------------


def worker(spec_json: str) -> int:
    """A packed-run worker: warm up, say ready, wait for 'go', train for the given seconds, report."""
    import torch

    job = json.loads(spec_json)
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    setup = Setup(Case(job["name"], tuple(job["overrides"])), job["device"], job["compile"], seed=int(job["seed"]))
    step_fn = setup.baseline_step if job.get("loop") == "base" else setup.our_step
    for i in range(job["warmup"]):
        step_fn(i)
    step_fn(job["warmup"]).item()
    print("ready", flush=True)
    sys.stdin.readline()
    tokens_per_step = setup.spec.batch_size * setup.spec.context
    step, start = job["warmup"] + 1, time.perf_counter()
    deadline = start + float(job["seconds"])
    steps = 0
    while True:
        loss = step_fn(step)
        step += 1
        steps += 1
        if steps % 4 == 0:
            loss.item()  # a sync every few steps keeps the host from queueing far past the deadline
            if time.perf_counter() >= deadline:
                break
    elapsed = time.perf_counter() - start
    print(json.dumps({"name": job["name"], "tokens": steps * tokens_per_step, "seconds": elapsed}), flush=True)
    setup.close()
    return 0


def run_workers(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start all workers, wait until each is warm, release them together, collect their reports."""
    procs = []
    for job in jobs:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if job.get("threads"):
            env.update(OMP_NUM_THREADS=str(job["threads"]), MKL_NUM_THREADS=str(job["threads"]))
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(job)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    for p in procs:
        line = p.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "ready":
            for q in procs:
                q.kill()
            raise RuntimeError(f"a packed worker failed before it was ready (exit {p.wait()})")
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a packed worker exited with {p.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def worker_job(
    case: Case, device: str, args: argparse.Namespace, loop: str, threads: int | None, seed: int
) -> dict[str, Any]:
    """What one timing worker process trains: a case, with ``loop`` = ours or base, on ``threads`` (None: torch's)."""
    return {
        "name": case.name,
        "overrides": list(case.overrides),
        "device": device,
        "compile": args.compile,
        "threads": threads,
        "seed": seed,
        "warmup": args.warmup,
        "seconds": args.packed_seconds,
        "loop": loop,
    }


def measure_packing(device: str, ks: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Aggregate tokens/s of k concurrent runs against the same runs one at a time."""
    cases = quick_ladder() if args.quick else packed_ladder(device)
    cores = os.cpu_count() or 1

    def job(case: Case, threads: int | None, seed: int) -> dict[str, Any]:
        return worker_job(case, device, args, "ours", threads, seed)

    solo: dict[str, dict[str, float]] = {}
    solo_threads = [None, 1] if device == "cpu" and cores > 1 else [None]
    for threads in solo_threads:
        label = "default threads" if threads is None else f"{threads} thread"
        for case in cases:
            (r,) = run_workers([job(case, threads, 0)])
            solo.setdefault(label, {})[case.name] = r["tokens"] / r["seconds"]
    packed = {}
    for k in ks:
        threads = max(1, cores // k)
        results = run_workers([job(cases[i % len(cases)], threads, i) for i in range(k)])
        packed[k] = {
            "threads_per_run": threads,
            "aggregate": sum(r["tokens"] / r["seconds"] for r in results),
            "per_run": [(r["name"], r["tokens"] / r["seconds"]) for r in results],
            "runs": [r["name"] for r in results],
        }
    return {"cases": [c.name for c in cases], "solo": solo, "packed": packed}


def measure_whole_machine(cases: list[Case], device: str, k: int, args: argparse.Namespace) -> dict[str, Any]:
    """Per shape, each side as it runs by default on the whole machine (CPU), in separate processes.

    * baseline: the plain loop one run at a time, on torch's default threads (all cores);
    * ours, one at a time: one run on one thread (``train.threads=auto``);
    * ours, packed: k runs of the shape at once (``hydra/launcher=packed``), cores/k threads each.

    The three are taken back to back for each shape, so a change of load on the machine
    hits all of them. Aggregate tokens/s of the packed runs is the sum over the k runs.
    """
    cores = os.cpu_count() or 1
    rows = []
    for case in cases:
        base = run_workers([worker_job(case, device, args, "base", None, 0)])
        solo = run_workers([worker_job(case, device, args, "ours", 1, 0)])
        packed = run_workers([worker_job(case, device, args, "ours", max(1, cores // k), i) for i in range(k)])
        rate = {
            "base_default_threads": sum(r["tokens"] / r["seconds"] for r in base),
            "ours_one_thread": sum(r["tokens"] / r["seconds"] for r in solo),
            "ours_packed": sum(r["tokens"] / r["seconds"] for r in packed),
        }
        rows.append({"case": case.name, "k": k, "threads_per_run": max(1, cores // k), "tokens_per_s": rate})
        print(
            f"[bench] whole machine {case.name}: {rate['ours_packed'] / rate['base_default_threads']:.2f}x",
            file=sys.stderr,
        )
    return {"k": k, "cores": cores, "rows": rows}


def demo_sweep_tokens() -> dict[str, int]:
    """Training tokens per ladder case summed over the demo grid's runs (cases named as in :func:`demo_ladder`)."""
    return {shape.case.name: shape.tokens for shape in demo_shapes()}


# -- output -------------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def print_report(
    header: dict[str, Any],
    rows: list[dict[str, Any]],
    packing: dict[str, Any] | None,
    machine: dict[str, Any] | None = None,
    sweep_tokens: dict[str, int] | None = None,
) -> None:
    for key, value in header.items():
        print(f"# {key}: {value}")
    print()
    if rows:
        print_ladder(header, rows)
    if packing:
        print_packing(packing)
    if machine:
        print_whole_machine(machine, rows, sweep_tokens or {})


def print_whole_machine(machine: dict[str, Any], rows: list[dict[str, Any]], sweep_tokens: dict[str, int]) -> None:
    k, cores = machine["k"], machine["cores"]
    print()
    print(f"# whole machine ({cores} cores), each side as it runs by default, separate processes, per shape:")
    print("#   baseline = the plain loop, one run at a time, torch's default threads")
    print("#   ours 1 = one run on one thread (train.threads=auto)")
    print(f"#   ours packed = {k} runs at once (hydra/launcher=packed), {max(1, cores // k)} thread(s) each; aggregate")
    by_case = {r["case"]: r for r in rows}
    cols = ["shape", "base tok/s", "ours 1 tok/s", "ours packed tok/s", "packed / base", "sweep tokens"]
    lines = [cols]
    times = {"base_default_threads": 0.0, "ours_one_thread": 0.0, "ours_packed": 0.0}
    for r in machine["rows"]:
        rate = r["tokens_per_s"]
        tokens = sweep_tokens.get(r["case"], 0)
        for key in times:
            times[key] += tokens / rate[key]
        shape = by_case.get(r["case"])
        label = r["case"] if shape is None else f"{r['case']} d{shape['d_model']} L{shape['n_layers']}"
        lines.append(
            [
                label,
                fmt_rate(rate["base_default_threads"]),
                fmt_rate(rate["ours_one_thread"]),
                fmt_rate(rate["ours_packed"]),
                f"{rate['ours_packed'] / rate['base_default_threads']:.2f}x",
                f"{tokens:,}" if tokens else "-",
            ]
        )
    _print_table(lines)
    ratios = sorted(
        r["tokens_per_s"]["ours_packed"] / r["tokens_per_s"]["base_default_threads"] for r in machine["rows"]
    )
    print(
        f"packed / base over shapes: median {statistics.median(ratios):.2f}x, min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x"
    )
    if sweep_tokens and all(times.values()):
        print(
            "demo sweep, training time at these rates (its tokens per shape / tokens/s): "
            f"baseline {times['base_default_threads']:.1f} s, ours one at a time {times['ours_one_thread']:.1f} s, "
            f"ours packed {times['ours_packed']:.1f} s = {times['base_default_threads'] / times['ours_packed']:.2f}x faster"
        )


def _print_table(lines: list[list[str]]) -> None:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                str(c).ljust(w) if j == 0 else str(c).rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_ladder(header: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    cols = [
        "shape",
        "N_with_head",
        "batch x ctx",
        "base tok/s",
        "ours tok/s",
        "speedup",
    ]
    cpu = header["device_type"] == "cpu"
    if cpu:
        cols += ["speedup (CPU time)"]
    cols += ["ours FLOP/s", "MFU table", "MFU measured", "base MFU meas.", "compile s"]
    lines = [cols]
    for r in rows:
        shape = f"{r['case']} {r['family']} d{r['d_model']} L{r['n_layers']} h{r['n_heads']} V{r['vocab']}"
        line = [
            shape,
            f"{r['params_with_head']:,}",
            f"{r['batch']}x{r['context']}",
            fmt_rate(r["tokens_per_s"]["base"]),
            fmt_rate(r["tokens_per_s"]["ours"]),
            f"{r['speedup']:.2f}x",
        ]
        if cpu:
            line += [f"{r['speedup_cpu_time']:.2f}x"]
        line += [
            fmt_rate(r["flops_per_s"]["ours"]),
            fmt_pct(r["mfu_table"]["ours"]),
            fmt_pct(r["mfu_measured"]["ours"]),
            fmt_pct(r["mfu_measured"]["base"]),
            f"{r['compile_s']:.1f}" if r["compiled"] else "-",
        ]
        lines.append(line)
    _print_table(lines)
    ratios = sorted(r["speedup"] for r in rows)
    print(f"speedup over shapes: median {statistics.median(ratios):.2f}x, min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x")


def print_packing(packing: dict[str, Any]) -> None:
    cases = packing["cases"]
    print()
    print(f"# packing: runs of {', '.join(cases)}; run i of k trains shape i mod {len(cases)}")
    print("# sequential = the same runs one at a time (mean of their tokens/s); packed = sum over the k runs at once")
    means = {label: statistics.mean(rates.values()) for label, rates in packing["solo"].items()}
    for label, rates in packing["solo"].items():
        parts = ", ".join(f"{n} {fmt_rate(v)}" for n, v in rates.items())
        print(f"sequential, {label}: {fmt_rate(means[label])} tok/s  [{parts}]")
    for k, p in packing["packed"].items():
        ratios = ", ".join(f"{p['aggregate'] / m:.2f}x sequential ({label})" for label, m in means.items())
        parts = ", ".join(f"{n} {fmt_rate(v)}" for n, v in p["per_run"])
        print(
            f"packed k={k}, {p['threads_per_run']} threads/run: {fmt_rate(p['aggregate'])} tok/s = {ratios}  [{parts}]"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--ladder", choices=("auto", "demo", "gpu", "quick", "none"), default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny ladder, few steps (the tests' smoke run)")
    parser.add_argument("--only", default=None, help="comma-separated case names of the ladder to run")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per loop (ABBA order)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--threads-base", type=int, default=None, help="CPU threads in the baseline's blocks")
    parser.add_argument("--threads-ours", type=int, default=None, help="CPU threads in our blocks")
    parser.add_argument("--compile", default="auto", help="train.compile for ours: auto (CUDA only), true, false")
    parser.add_argument("--packed", type=int, action="append", default=[], help="add a packing run of K processes")
    parser.add_argument("--packed-seconds", type=float, default=20.0)
    parser.add_argument(
        "--whole-machine",
        type=int,
        default=None,
        metavar="K",
        help="per shape, separate processes: the baseline on torch's default threads vs ours one at a time and K packed",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    import torch

    from scaling.train.speed import device_name, measured_matmul_peak, table_peak

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    ladder = "quick" if args.quick else args.ladder
    if ladder == "auto":
        ladder = "gpu" if device == "cuda" else "demo"
    cases = {"quick": quick_ladder, "demo": demo_ladder, "gpu": gpu_ladder, "none": list}[ladder]()
    if args.only:
        wanted = args.only.split(",")
        cases = [c for c in cases if c.name in wanted]
        if len(cases) != len(wanted):
            print(f"error: --only {args.only}: unknown case name", file=sys.stderr)
            return 2
    if args.steps is None:
        args.steps = 2 if args.quick else (20 if device == "cuda" else 8)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    if args.quick:
        args.warmup = min(args.warmup, 1)
        args.packed_seconds = min(args.packed_seconds, 2.0)

    dev = torch.device(device)
    precision = "bf16" if device == "cuda" else "fp32"
    name = device_name(dev)
    table = table_peak(name, precision) if device == "cuda" else None
    measured = measured_matmul_peak(dev, precision, size=256 if args.quick else None)
    peaks = {"table": table.flops if table else None, "measured": measured}
    import transformers

    header = {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/bench_train.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": name,
        "device_type": device,
        "torch threads": f"baseline {args.threads_base or torch.get_num_threads()}, "
        f"ours {args.threads_ours or torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores at the start",
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
        "precision": f"ours {precision}{' (accelerate bf16 autocast, TF32)' if device == 'cuda' else ''}; "
        f"baseline {'bf16 autocast' if device == 'cuda' else 'fp32'}",
        "peak (table)": (
            f"{table.label} {table.tflops} TFLOP/s {precision} dense" if table and table.tflops else "none"
        )
        if device == "cuda"
        else "none (CPUs have no table entry)",
        "peak (measured)": f"{measured / 1e12:.3f} TFLOP/s ({precision} matmul, same process)",
        "timing": f"{args.repeats} blocks x {args.steps} steps per loop, ABBA order, median; warm-up {args.warmup} steps",
        "flops": "exact (scaling.accounting: every matmul incl. attention T^2 and LM head, x3 for fwd+bwd)",
    }
    rows = []
    for case in cases:
        rows.append(measure_case(case, device, args, peaks))
        print(f"[bench] {case.name}: {rows[-1]['speedup']:.2f}x", file=sys.stderr, flush=True)
    packing = measure_packing(device, sorted(set(args.packed)), args) if args.packed else None
    machine = measure_whole_machine(cases, device, args.whole_machine, args) if args.whole_machine else None
    sweep_tokens = demo_sweep_tokens() if machine and ladder == "demo" else None
    header["load average at the end"] = f"{os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)"
    print_report(header, rows, packing, machine, sweep_tokens)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"header": header, "rows": rows, "packing": packing, "whole_machine": machine}
        args.json.write_text(json.dumps({**payload, "sweep_tokens": sweep_tokens}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
