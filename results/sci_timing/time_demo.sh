#!/usr/bin/env bash
# From-scratch timing of the main job (issue 12 design) = scripts/run_demo.sh's steps with another experiment name,
# an empty results folder and (if SCALING_CACHE is set to an empty dir) an empty tokenizer/corpus cache.
set -euo pipefail
cd /work/wt/science
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline
name=$1
out=results/$name
rm -rf "$out"
t0=$(date +%s)
scaling-train -m +experiment=demo hydra/launcher=packed hydra.launcher.n_jobs="$(nproc)" logging.wandb=false experiment_name="$name" paths.results=/work/wt/science/results
t1=$(date +%s)
above=$(python3 - "$out" <<'PY'
import math, sys
from scaling.fit.points import load_points
c = sorted(load_points(sys.argv[1]).c)
top = [x for x in c if x > c[-1] / 1.05]
print(f"{math.sqrt(top[0] * max(x for x in c if x < top[0])):.6g}")
PY
)
scaling fit "$out" --bootstrap 1000 --holdout-above "$above" --json "$out/fit.json" --plots "$out/figures" > "$out/fit.txt"
t2=$(date +%s)
cstar=$(python3 -c "import json; print(json.load(open('$out/fit.json'))['at_flops'])")
scaling plan --fit "$out/fit.json" --flops "$cstar" --family llama --vocab-size 512 --context 64 > "$out/plan.txt"
t3=$(date +%s)
echo "sweep_s $((t1 - t0)) fit_s $((t2 - t1)) plan_s $((t3 - t2)) total_s $((t3 - t0)) load_end $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/TIMING.txt"
