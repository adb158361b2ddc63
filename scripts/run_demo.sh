#!/usr/bin/env bash
# The main job: the CPU-sized isoFLOP demo sweep on the embedded Python-source corpus,
# then every fit (Kaplan, Chinchilla Approaches 1-3 with bootstrap CIs) and the figures.
# Extra arguments go to scaling-train (e.g. logging.wandb=false).
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/demo
start=$(date +%s)
scaling-train -m +experiment=demo "$@"
scaling fit "$out" --bootstrap 1000 --json "$out/fit.json" --plots "$out/figures" | tee "$out/fit.txt"
end=$(date +%s)
{
  echo "command: bash scripts/run_demo.sh $*"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "wall_seconds: $((end - start))"
  echo "git_commit: $(git rev-parse HEAD 2>/dev/null || echo none)"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p')"
  python3 -c "import platform, torch, transformers; print(f'versions: python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}')"
} > "$out/COMMAND.txt"
echo "demo finished in $((end - start)) s; results in $out/"
