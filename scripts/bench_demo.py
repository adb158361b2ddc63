"""Time the whole main job from scratch against its 10-minute budget, as a new user first runs it.

    python scripts/bench_demo.py                       # empty results folder and empty token cache
    python scripts/bench_demo.py --out results/demo_reference   # also (re)makes the committed reference run

It runs ``bash scripts/run_demo.sh`` with ``DEMO_OUT`` pointing at a fresh folder and ``SCALING_CACHE``
at an empty one (so the tokenizer and the token cache are built, as on a fresh machine), stamps every
line the job prints with the time it arrived, and prints a table of the phases: token cache, sweep,
fit (with the bootstrap and the held-out check), plan and explorer, comparison with the reference.
Wall-clock seconds on this machine, so the table names the machine and its load. Commit its output
under results/bench/demo.txt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 600.0  # issue 12: the main job, from scratch, in at most 10 minutes on the 2-core machine

#: (phase, the first line of the job's output that starts it); each phase ends where the next starts.
MARKERS = (
    ("token cache (tokenizer + corpus)", "[prepare]"),
    ("sweep (training)", "[sweep] "),
    ("fit (1000 bootstraps, held-out check, figures)", "== 2/5"),
    ("plan", "== 3/5"),
    ("explorer page (+ W&B artifact)", "== 4/5"),
    ("comparison with the reference", "== 5/5"),
)


def run_job(out: Path, cache: Path, extra: list[str]) -> tuple[list[tuple[float, str]], float, int]:
    """Run the main job; return its (seconds since start, line) pairs, its wall time and exit code."""
    shown = os.path.relpath(out, REPO) if out.is_relative_to(REPO) else str(out)  # as a user would type it
    env = {**os.environ, "DEMO_OUT": shown, "SCALING_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "scripts/run_demo.sh", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.monotonic() - start, line.rstrip("\n")))
        sys.stdout.write(line)
    code = proc.wait()
    return lines, time.monotonic() - start, code


def phase_table(lines: list[tuple[float, str]], wall: float) -> list[tuple[str, float]]:
    """Seconds per phase, from the first line that starts each phase to the next phase's start."""
    starts: list[tuple[str, float]] = []
    for name, marker in MARKERS:
        at = next((t for t, line in lines if line.startswith(marker)), None)
        if at is not None:
            starts.append((name, at))
    starts.sort(key=lambda item: item[1])
    if starts:
        starts[0] = (starts[0][0], 0.0)  # the job's start-up belongs to its first phase
    ends = [t for _, t in starts[1:]] + [wall]
    return [(name, end - begin) for (name, begin), end in zip(starts, ends, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="results folder of the run (default: a new temporary folder)")
    parser.add_argument("--cache", help="token cache folder (default: a new empty one, as on a fresh machine)")
    parser.add_argument("extra", nargs="*", help="arguments passed on to scaling-train")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    out = Path(args.out).resolve() if args.out else tmp / "demo"
    if out.exists():
        shutil.rmtree(out)  # from scratch: no finished record may be skipped
    cache = Path(args.cache) if args.cache else tmp / "cache"
    lines, wall, code = run_job(out, cache, args.extra)
    if code != 0:
        print(f"error: the main job exited with {code}", file=sys.stderr)
        return 2
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    print()
    print(f"Main job from scratch (empty results folder, empty token cache), {os.cpu_count()} cores, no GPU")
    print(f"load average at the end: {' '.join(load)}")
    print(f"{'phase':50s} {'seconds':>8s} {'of 600 s':>9s}")
    for name, seconds in phase_table(lines, wall):
        print(f"{name:50s} {seconds:8.1f} {100 * seconds / BUDGET_S:8.1f}%")
    print(
        f"{'total':50s} {wall:8.1f} {100 * wall / BUDGET_S:8.1f}%  ({'within' if wall <= BUDGET_S else 'OVER'} budget)"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
