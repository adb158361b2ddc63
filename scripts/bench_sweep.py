"""Benchmark the demo sweep: wall time and hardware utilisation, measured in one run.

Utilisation = total exact training FLOPs of every run / (sweep wall time x the
machine's dense matmul FLOP/s), the matmul rate measured in the same process
before and after the sweep (fp32 on CPU, bf16 on CUDA). It says how much of what
the machine can do the whole sweep (data, eval, checkpoints, process overhead
included) turns into model FLOPs.

Usage: python scripts/bench_sweep.py [--out results/bench/sweep.txt] [scaling-train overrides...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def measure_matmul_flops(device: str, seconds: float = 3.0) -> float:
    """Dense matmul FLOP/s: 2·n³ per product, median of repeated timings."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = 4096 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    rates = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 5:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        rates.append(2 * n**3 / (time.perf_counter() - t))
    rates.sort()
    return rates[len(rates) // 2]


def warm_cache(experiment: str) -> None:
    """Build the experiment's tokenizer and token cache (shared by every run) ahead of timing."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scaling.config import CONFIG_DIR  # importing it registers the config schema
    from scaling.data.corpus import load_corpus

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"+experiment={experiment}"])
    load_corpus(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args, overrides = parser.parse_known_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak_before = measure_matmul_flops(device)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "scaling.train.app",
            "-m",
            f"+experiment={args.experiment}",
            f"paths.results={tmp}",
            "logging.wandb=false",
            "logging.progress=false",
            *overrides,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        warm_cache(args.experiment)  # the sweep's wall time is then training, not tokenization
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        records = [json.loads(p.read_text()) for p in Path(tmp).rglob("runs/*.json")]
    peak_after = measure_matmul_flops(device)
    peak = max(peak_before, peak_after)
    finished = [r for r in records if r["status"] == "finished"]
    total_exact = sum(r["flops"]["exact"] for r in finished)
    train_tps = [r["throughput"]["tokens_per_s"] for r in finished if not r.get("branch_of")]
    lines = [
        f"# python scripts/bench_sweep.py {' '.join(sys.argv[1:])}",
        f"# machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, device {device}; "
        f"torch {torch.__version__}",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| runs (records) | {len(finished)} |",
        f"| sweep wall time | {wall:.1f} s |",
        f"| total exact training FLOPs | {total_exact:.4g} |",
        f"| achieved model FLOP/s over the wall time | {total_exact / wall:.4g} |",
        f"| measured dense matmul FLOP/s (before / after) | {peak_before:.4g} / {peak_after:.4g} |",
        f"| utilisation = FLOPs / (wall x matmul peak) | {total_exact / (wall * peak):.2%} |",
        f"| median in-loop tokens/s per run | {sorted(train_tps)[len(train_tps) // 2]:.4g} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
