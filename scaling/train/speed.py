"""Throughput helpers: device peaks, a measured matmul peak, MFU, and the fast paths of the step.

Model FLOPs utilisation (MFU) is the exact training FLOPs per second of a run
(:func:`scaling.accounting.flops_per_token`, ``exact``) divided by a peak rate
of the device (Chowdhery et al. 2022, App. B, "PaLM"). Two peaks are kept
because they answer different questions:

* the datasheet peak (:data:`PEAK_TFLOPS`, dense, no structured sparsity) says
  how far the run is from what the vendor sells;
* the measured peak (:func:`measured_matmul_peak`, one large matrix product in
  the same process) says how far it is from what this card, at its clocks and
  power limit today, actually delivers on the best case of the same dtype.

The step itself stays a plain ``transformers`` model trained in eager mode (or
under ``torch.compile`` on CUDA); what this module adds is chosen because it
changes no maths beyond float rounding:

* :func:`adamw_kwargs`: the fused AdamW kernel where the device has one (CUDA
  and, since torch 2.4, the CPU): one kernel for all parameters instead of a
  Python loop over tensors, which dominates the optimizer step of small models;
* :func:`use_causal_sdpa`: attention through PyTorch's SDPA with
  ``is_causal=True`` and no mask tensor. ``transformers`` otherwise inspects
  the position ids of every forward for packed sequences; in eager mode that
  check reads a value back from the GPU (a host synchronisation per forward),
  and under ``torch.compile`` it cannot run, so a full ``(B, 1, T, T)`` mask is
  built and SDPA cannot use its flash kernel. Training windows here are plain
  causal windows (no padding, no packing metadata), for which the mask is
  exactly the causal one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import torch

CAUSAL_SDPA = "sdpa_causal"

# Dense (no sparsity) tensor-core peaks in TFLOP/s from the vendors' datasheets and
# architecture whitepapers; bf16/fp16 with fp32 accumulation. Ordered: the first
# pattern that matches torch.cuda.get_device_name() wins, so specific names come first
# ("GH200" before "H200", "H100 NVL"/"PCIe" before plain "H100", the SXM part).
PEAK_TFLOPS: list[tuple[str, str, dict[str, float]]] = [
    # (label, regex on the device name, {dtype: TFLOP/s})
    ("GH200", r"GH200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H200 NVL", r"H200.*NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H200 SXM", r"H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 NVL", r"H100.*NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100 PCIe", r"H100.*PCIe", {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    ("H100 SXM", r"H100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("B200", r"\bB200\b", {"bf16": 2250.0, "fp16": 2250.0}),
    ("A100", r"A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", r"\bL40S\b", {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6}),
    ("L40", r"\bL40\b", {"bf16": 181.05, "fp16": 181.05, "tf32": 90.5, "fp32": 90.5}),
    ("L4", r"\bL4\b", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10", r"\bA10\b", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("RTX A6000", r"RTX A6000", {"bf16": 154.8, "fp16": 154.8, "tf32": 77.4, "fp32": 38.7}),
    ("RTX 4090", r"RTX 4090", {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    ("RTX 3090", r"RTX 3090(?! Ti)", {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6}),
    ("V100 SXM", r"V100.*SXM", {"fp16": 125.0, "fp32": 15.7}),
    ("V100 PCIe", r"V100", {"fp16": 112.0, "fp32": 14.0}),
    ("T4", r"\bT4\b", {"fp16": 65.0, "fp32": 8.1}),
    ("MI300X", r"MI300X", {"bf16": 1307.4, "fp16": 1307.4, "tf32": 653.7, "fp32": 163.4}),
]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "tf32": torch.float32}


@dataclass(frozen=True)
class DevicePeak:
    """The datasheet peak of a known device, or ``tflops=None`` when the table has no entry."""

    device_name: str
    label: str | None
    dtype: str
    tflops: float | None

    @property
    def flops(self) -> float | None:
        return None if self.tflops is None else self.tflops * 1e12


def table_peak(device_name: str, dtype: str = "bf16") -> DevicePeak:
    """Look ``device_name`` (as ``torch.cuda.get_device_name`` spells it) up in :data:`PEAK_TFLOPS`."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    for label, pattern, peaks in PEAK_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return DevicePeak(device_name, label, dtype, peaks.get(dtype))
    return DevicePeak(device_name, None, dtype, None)


def device_name(device: torch.device) -> str:
    """A readable name: the GPU's marketing name, or the CPU model with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def mfu(flops_per_s: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the peak (None when the peak is unknown)."""
    if peak_flops is None or peak_flops <= 0:
        return None
    return flops_per_s / peak_flops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured_matmul_peak(
    device: torch.device, dtype: torch.dtype | str = torch.bfloat16, size: int | None = None, repeats: int = 10
) -> float:
    """FLOP/s of one ``size``³ matrix product, median of ``repeats`` after warm-up.

    Random normal operands (all-zero operands run faster on recent GPUs and would flatter
    the peak). Defaults: 8192 on CUDA (large enough to reach the tensor-core plateau),
    1024 on the CPU (a few tens of milliseconds per product at a single thread).
    """
    if isinstance(dtype, str):
        dtype = _DTYPES[dtype]
    n = size or (8192 if device.type == "cuda" else 1024)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    times: list[float] = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 2.0 * n**3 / times[len(times) // 2]


# -- fast paths of the training step ---------------------------------------------------------


def fused_adamw_supported(device_type: str) -> bool:
    """Whether this torch has a fused AdamW kernel for ``device_type`` (CUDA; the CPU since torch 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # very old torch: fused on CUDA only
        return device_type == "cuda"
    return device_type in _get_fused_kernels_supported_devices()


def adamw_kwargs(device_type: str, setting: Any = "auto") -> dict[str, bool]:
    """The ``fused``/``foreach`` arguments of ``torch.optim.AdamW`` for ``optim.fused``.

    ``auto``: the fused kernel wherever torch has one, else the multi-tensor (foreach)
    path; ``true`` insists on the fused kernel; ``false`` keeps torch's own default.
    The per-tensor loop that torch picks by default on the CPU costs about 40 µs per
    parameter tensor per step: for a 2-layer model that is most of the optimizer step.
    """
    if setting in ("auto", None):
        if fused_adamw_supported(device_type):
            return {"fused": True}
        return {"foreach": True} if device_type == "cuda" else {}
    return {"fused": True} if bool(setting) else {}


def use_causal_sdpa(model: Any) -> bool:
    """Switch a ``transformers`` model from ``sdpa`` to mask-free causal SDPA; return whether it switched.

    Registers :data:`CAUSAL_SDPA`, the same attention function as ``sdpa`` under another
    name. ``transformers`` builds no mask for an attention implementation that has no mask
    builder registered, and its SDPA function then passes ``is_causal=True`` (see the module
    docstring for why that matters). The name is not saved with the checkpoint (the saved
    config names no attention implementation), so ``from_pretrained`` loads as usual.
    Models not on ``sdpa`` (eager, flash_attention_2) are left alone.
    """
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(model, "set_attn_implementation"):
        return False
    try:
        from transformers import AttentionInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
    except ImportError:
        return False
    if CAUSAL_SDPA not in AttentionInterface._global_mapping:
        AttentionInterface.register(CAUSAL_SDPA, sdpa_attention_forward)
    model.set_attn_implementation(CAUSAL_SDPA)
    return True


def plain_torch_step(accelerator: Any) -> bool:
    """Whether accelerate's backward, clipping and optimizer step reduce to plain torch calls.

    True for a single process or DDP without a loss scaler (fp32 or bf16): accelerate then
    only forwards to ``loss.backward()``, ``torch.nn.utils.clip_grad_norm_`` and
    ``optimizer.step()``. With fp16 (a scaler), FSDP, DeepSpeed, XLA or Megatron, its own
    paths are needed and kept.
    """
    from accelerate.utils import DistributedType

    plain_types = (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU)
    return getattr(accelerator, "scaler", None) is None and accelerator.distributed_type in plain_types


def cpu_threads(setting: Any = "auto", device_type: str = "cpu") -> int | None:
    """Set torch's intra-op CPU threads for a run on the CPU (``train.threads``); return the count set.

    ``auto`` is one thread, unless ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set (by the
    user, or by the packed launcher, which gives each of its k workers cores/k threads).
    Why one: the ops of small models are too small to gain much from intra-op threads, and
    a multi-threaded step waits at every parallel region for its slowest thread, so any
    other busy process on the machine stalls it (measured on the 2-core demo machine: the
    demo sweep took about 3x as long with torch's default 2 threads as with 1, with
    identical losses; README, "Throughput"). Several single-thread runs side by side (hydra/launcher=packed) use the
    cores instead. ``torch`` (or null) keeps torch's default; an integer sets that count.
    Runs on a GPU are left alone.
    """
    import os

    from scaling.errors import ScalingError

    if device_type != "cpu" or setting in (None, "torch"):
        return None
    if setting == "auto":
        if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
            return None
        count = 1
    else:
        try:
            count = int(setting)
        except (TypeError, ValueError):
            raise ScalingError(f"train.threads must be auto, torch or a positive integer, got {setting!r}") from None
        if count < 1:
            raise ScalingError(f"train.threads must be auto, torch or a positive integer, got {setting!r}")
    torch.set_num_threads(count)
    return count
