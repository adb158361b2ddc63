#!/usr/bin/env bash
# The GPU checks of the throughput work, in one script; everything it measures goes under results/gpu/.
#
#   bash scripts/gpu_check.sh fetch            # here, once (pip + internet): the wheels the GPU image lacks -> .whl/
#   bash scripts/gpu_check.sh STAGE...         # on the GPU machine, from the repository root
#
# Stages (each one fits a 10-minute device call; `setup` is cheap, start every call with it):
#   setup        install .whl/*.whl into /tmp/site and this checkout (editable, no deps); results/gpu/env.txt
#   syncs        synchronising CUDA calls in 5 warm training steps (sync debug mode) -> results/gpu/syncs.txt
#   bench        scripts/bench_train.py on the GPU ladder (~1M, 10M, 50M, 124M): tokens/s, exact FLOP/s,
#                MFU against the table peak and the measured bf16 matmul peak -> results/gpu/bench_train.txt
#   packed       k = 4 and 8 (PACKED_KS) concurrent training processes of <= 5M-parameter models against the same runs
#                one at a time -> results/gpu/packed.txt
#   packed_mps   the same under CUDA MPS (kernels of different processes run concurrently) -> packed_mps.txt
#   sweep_seq    a real 6-run `scaling-train -m` isoFLOP sweep (1e14 and 3e14 FLOPs, 0.5M-3M parameters) on the extended Python-source corpus
#                (data.extra_roots=[site-packages]), one run at a time -> results/gpu/sweep_seq/
#   sweep_packed the same 6 runs with hydra/launcher=packed (K runs at once) -> results/gpu/sweep_packed/
#   all          every stage above in order (longer than one device call: use it on a machine of your own)
#
# With the device tool (carry [".whl"]), one call each (about 5-9 minutes each; packed_mps is optional):
#   bash scripts/gpu_check.sh setup syncs bench
#   bash scripts/gpu_check.sh setup packed
#   bash scripts/gpu_check.sh setup sweep_seq
#   bash scripts/gpu_check.sh setup sweep_packed
#   bash scripts/gpu_check.sh setup packed_mps
# When $OUT is set (device machine), results/gpu (no checkpoints) is packed into $OUT/results_gpu.tgz on exit,
# also after a failure; unpack it at the repository root: tar xzf .../results_gpu.tgz
#
# Environment knobs: K (runs at once in sweep_packed, default 4), PACKED_KS (the k of the packed stages,
# default "4 8"), MAX_BYTES (corpus cap, default 3e8 bytes),
# FLOPS and CONTEXT (the sweep's budgets and context), EXTRA (more overrides for both sweeps). A CPU smoke
# test of the sweep stages, here:
#   RES=/tmp/gpu_check FLOPS=3e10,1e11 CONTEXT=64 MAX_BYTES=2000000 EXTRA="train.device=cpu data.vocab_size=512" \
#   bash scripts/gpu_check.sh sweep_seq sweep_packed
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
RES=${RES:-results/gpu}
K=${K:-4}
PACKED_KS=${PACKED_KS:-4 8}
MAX_BYTES=${MAX_BYTES:-300000000}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true WANDB_MODE=disabled HF_HUB_OFFLINE=1
export SCALING_CACHE=${SCALING_CACHE:-/tmp/scaling-cache}
WHEELS="hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0"

log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$RES/gpu_check.log" >&2; }

collect_out() {
    if [ -n "${OUT:-}" ] && [ -d "$RES" ]; then
        tar czf "$OUT/results_gpu.tgz" --exclude='ckpt' --exclude='*.pt' --exclude='*.safetensors' "$RES" &&
            echo "[gpu_check] results packed into \$OUT/results_gpu.tgz" >&2
    fi
}

fetch() {
    # Pure-Python wheels (they install on the GPU image's Python 3.12 as well as here).
    mkdir -p .whl
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl $WHEELS || return 1
    # antlr4-python3-runtime 4.9.3 (omegaconf's parser runtime) is published as a source archive only.
    python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3 || return 1
    ls -l .whl
}

setup() {
    mkdir -p "$RES"
    if ! python3 -c "import hydra, omegaconf, hydra_plugins.hydra_joblib_launcher" 2>/dev/null; then
        ls .whl/*.whl >/dev/null 2>&1 || { log "no wheels in .whl/: run 'bash scripts/gpu_check.sh fetch' first"; return 1; }
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    # This checkout, as users install it (editable, no dependencies), into the image's Python (a disposable machine).
    if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>>"$RES/gpu_check.log"; then
        log "editable install failed; using PYTHONPATH and python3 -m scaling.train.app instead"
    fi
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    if ! command -v scaling-train >/dev/null; then
        scaling-train() { python3 -m scaling.train.app "$@"; }
        scaling() { python3 -m scaling.cli "$@"; }
    fi
    {
        echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1
        python3 -c "
import torch, transformers, accelerate, hydra, scaling.train.speed as s
print('python', __import__('sys').version.split()[0], '| torch', torch.__version__, '| transformers', transformers.__version__,
      '| accelerate', accelerate.__version__, '| hydra', hydra.__version__)
print('cuda', torch.version.cuda, '| device', torch.cuda.get_device_name(0), '| table peak', s.table_peak(torch.cuda.get_device_name(0)))
print('fused AdamW on cuda:', s.fused_adamw_supported('cuda'), '| SMs', torch.cuda.get_device_properties(0).multi_processor_count)
"
        nproc
    } >"$RES/env.txt" 2>&1
    cat "$RES/env.txt" >&2
    python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || return 1
}

syncs() {
    # "No host synchronisation in the hot loop": count the synchronising CUDA calls of 5 warm steps.
    log "syncs: CUDA sync debug mode over 5 training steps, compiled and eager"
    python3 - <<'PY' 2>&1 | tee "$RES/syncs.txt"
import sys
import warnings

import torch

sys.path.insert(0, "scripts")
from bench_train import Setup, gpu_ladder

for compile_setting in ("auto", "false"):
    setup = Setup(gpu_ladder()[0], "cuda", compile_setting)
    for i in range(3):
        setup.our_step(i)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        for i in range(3, 8):
            setup.our_step(i)
        torch.cuda.set_sync_debug_mode("default")
    attn = setup.trainer.raw_model.config._attn_implementation
    print(f"train.compile={compile_setting} attention={attn}: {len(caught)} synchronising calls in 5 steps")
    for w in caught[:5]:
        print("   ", str(w.message).splitlines()[0][:200])
    setup.close()
PY
}

bench() {
    log "bench: GPU ladder"
    python3 scripts/bench_train.py --device cuda --json "$RES/bench_train.json" >"$RES/bench_train.txt" 2>>"$RES/gpu_check.log" || return 1
    cat "$RES/bench_train.txt"
}

packed() {
    local name=${1:-packed}
    local ks=()
    for k in $PACKED_KS; do ks+=(--packed "$k"); done
    log "$name: k = $PACKED_KS runs at once against one at a time"
    python3 scripts/bench_train.py --device cuda --ladder none "${ks[@]}" --packed-seconds 10 \
        --json "$RES/$name.json" >"$RES/$name.txt" 2>>"$RES/gpu_check.log" || return 1
    cat "$RES/$name.txt"
}

packed_mps() {
    # MPS lets kernels of several processes share the GPU at once instead of time-slicing it.
    if ! command -v nvidia-cuda-mps-control >/dev/null; then
        log "packed_mps: nvidia-cuda-mps-control is not installed; skipped"
        return 0
    fi
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if ! nvidia-cuda-mps-control -d; then
        log "packed_mps: the MPS daemon did not start; skipped"
        return 0
    fi
    packed packed_mps
    local rc=$?
    echo quit | nvidia-cuda-mps-control
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    return $rc
}

# A 6-run isoFLOP sweep (2 budgets x 3 sizes around the 20 tokens/param prior) of small models.
SWEEP=(+experiment=isoflop "model.context=${CONTEXT:-256}" "train.flops=${FLOPS:-1e14,3e14}" "grid.offset=-1,0,1"
    "data.extra_roots=[site-packages]" "data.max_bytes=$MAX_BYTES" logging.wandb=false logging.progress=false)
read -r -a EXTRA_OVERRIDES <<<"${EXTRA:-}"
SWEEP+=("${EXTRA_OVERRIDES[@]}")

sweep() {
    local name=$1
    shift
    log "$name: scaling-train -m ${SWEEP[*]} $*"
    local t0=$SECONDS
    scaling-train -m "${SWEEP[@]}" "paths.results=$RES/$name" "hydra.sweep.dir=$RES/$name/multirun" "$@" \
        >"$RES/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc, wall $((SECONDS - t0)) s, $(ls "$RES/$name"/*/runs/*.json 2>/dev/null | wc -l) records" |
        tee -a "$RES/sweep_times.txt"
    tail -n 8 "$RES/$name.log"
    for exp in "$RES/$name"/*/; do
        [ -d "$exp/runs" ] && scaling collect "$exp" >>"$RES/$name.log" 2>&1
    done
    return $rc
}

corpus() {
    # Tokenize the corpus once, outside the timed sweeps (they then read the same cache).
    log "corpus: stdlib + site-packages, first $MAX_BYTES bytes"
    local overrides=()
    for o in "${SWEEP[@]}"; do
        case $o in train.flops=* | grid.offset=*) ;; *) overrides+=("$o") ;; esac
    done
    python3 - "${overrides[@]}" <<'PY' 2>&1 | tee "$RES/corpus.txt"
import sys
import time

sys.path.insert(0, "scripts")
from bench_train import compose

from scaling.data.corpus import load_corpus

cfg = compose(sys.argv[1:])
t = time.time()
c = load_corpus(cfg["data"], None)
print(f"corpus {c.name}: {len(c.train):,} train tokens, {len(c.val):,} val tokens, vocab {c.vocab_size}, "
      f"{time.time() - t:.0f} s to read and tokenize", flush=True)
PY
}

sweep_seq() {
    corpus && sweep sweep_seq
}

sweep_packed() {
    corpus && sweep sweep_packed hydra/launcher=packed "hydra.launcher.n_jobs=$K"
}

trap collect_out EXIT
[ $# -eq 0 ] && set -- all
if [ "$1" = fetch ]; then
    fetch
    exit $?
fi
mkdir -p "$RES"
status=0
for stage in "$@"; do
    if [ "$stage" = all ]; then
        stages=(setup syncs bench packed packed_mps sweep_seq sweep_packed)
    else
        stages=("$stage")
    fi
    for s in "${stages[@]}"; do
        case $s in
        setup | syncs | bench | packed | packed_mps | sweep_seq | sweep_packed) ;;
        *)
            echo "unknown stage $s (fetch setup syncs bench packed packed_mps sweep_seq sweep_packed all)" >&2
            exit 2
            ;;
        esac
        t0=$SECONDS
        if "$s"; then
            log "$s done in $((SECONDS - t0)) s"
        else
            log "$s FAILED after $((SECONDS - t0)) s"
            status=1
            [ "$s" = setup ] && exit 1
        fi
    done
done
exit $status
