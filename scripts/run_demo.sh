#!/usr/bin/env bash
# The main job: the CPU-sized isoFLOP sweep on the embedded Python-source corpus, trained from
# scratch, then every fit (Kaplan, Chinchilla Approaches 1-3 with bootstrap CIs, the held-out check
# on the largest budget, learning curves), the plan, the figures and the explorer page, and last a
# comparison of this run's law with the committed reference run.
#
#   bash scripts/run_demo.sh                      # -> results/demo/ (not tracked by git)
#   DEMO_OUT=/tmp/demo bash scripts/run_demo.sh   # anywhere else
#   bash scripts/run_demo.sh logging.wandb=false  # extra arguments go to scaling-train
#
# results/demo_reference/ holds the committed reference run (made by this script with
# DEMO_OUT=results/demo_reference, see its COMMAND.txt); this script never writes there unless told to.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-results/demo}
reference=results/demo_reference
root=$(dirname "$out")
name=$(basename "$out")
mkdir -p "$out"
start=$(date +%s)

phase() { echo "== $1" >&2; }

# 1. Sweep. Packed: one single-thread run per core (hydra/launcher=packed), 1.6x faster on 2 cores than
# one run at a time on all of them (README, "Throughput"). The head process first builds the token cache.
phase "1/5 sweep: the token cache (once), then 25 (N, D) points from 9 training runs"
scaling-train -m +experiment=demo hydra/launcher=packed hydra.launcher.n_jobs="$(nproc)" \
  paths.results="$root" experiment_name="$name" "$@"
swept=$(date +%s)

# 2. Fit every law with 1000 bootstrap resamples, and check the law on the largest budget, held out.
phase "2/5 fit: every law, 1000 bootstrap resamples, the held-out check on the largest budget, the forms ranked by held-out error"
scaling fit "$out" --bootstrap 1000 --holdout-largest-budget --rank-forms --json "$out/fit.json" --plots "$out/figures" \
  | tee "$out/fit.txt"
# The main job's own check of its law: one line per goal, PASS or FAIL, with the numbers.
python3 scripts/check_demo.py "$out/fit.json" | tee "$out/check.txt"
fitted=$(date +%s)

# 3. The compute-optimal recommendation at 10x the largest budget, from the fitted law and its bootstrap.
phase "3/5 plan at 10x the largest budget"
cstar=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['at_flops'])" "$out/fit.json")
scaling plan --fit "$out/fit.json" --flops "$cstar" --family llama --vocab-size 512 --context 64 | tee "$out/plan.txt"

# 4. One self-contained interactive page over the runs and fits; with W&B on (the default, offline without
# credentials) it is also logged as an HTML artifact of the sweep.
phase "4/5 explorer page"
wandb_flag=--wandb
for arg in "$@"; do
  case "$arg" in logging.wandb=false | logging.wandb=False) wandb_flag= ;; esac
done
scaling explore "$out" -o "$out/explorer.html" $wandb_flag
explored=$(date +%s)

# 5. How this run's law compares with the committed reference run.
if [[ -f "$reference/fit.json" && "$(realpath "$out")" != "$(realpath "$reference")" ]]; then
  phase "5/5 this run's law against the committed reference run"
  scaling compare "$reference/fit.json" "$out/fit.json" --labels "reference,this run" | tee "$out/compare_reference.txt"
fi
end=$(date +%s)
{
  echo "command: DEMO_OUT=$out bash scripts/run_demo.sh $*"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "wall_seconds: $((end - start))"
  echo "phase_seconds: sweep (incl. token cache) $((swept - start)), fit $((fitted - swept)), plan and explorer $((explored - fitted)), compare $((end - explored))"
  echo "git_commit: $(git rev-parse HEAD 2>/dev/null || echo none)"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 -c "import platform, torch, transformers; print(f'versions: python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}')"
} > "$out/COMMAND.txt"
echo "main job finished in $((end - start)) s; results in $out/ (open $out/explorer.html)"
