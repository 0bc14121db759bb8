"""How fast could this device go? Peak FLOP/s, and the model FLOPs utilisation (MFU) of a run.

    MFU = (model FLOPs per token x tokens per second) / peak FLOP/s,

where the model FLOPs per token are what the architecture needs
(:func:`llmcourse.sizing.training_flops_per_token`, about 6 N + 12 L T d), whatever
the implementation spends: recomputation or padding does not count as useful work
(Chowdhery et al. 2022, "PaLM", Appendix B). The peak is the real device's, for the
dtype in use: NVIDIA's data sheet on a GPU (dense, no sparsity), an estimate from the
clock and vector width on a CPU. Book chapter: *Training a GPT on Tiny Shakespeare*.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from llmcourse.sizing import TransformerConfig, training_flops_per_token

if TYPE_CHECKING:  # torch is imported inside the functions that need it: the benchmarks and
    import torch  # experiments that only describe the CPU should not pay for importing it

# NVIDIA data-sheet peaks, dense (the sheets' headline figures assume 2:4 sparsity and are twice these), in
# FLOP/s: (bf16 or fp16 tensor cores, float32). The float32 figure is TF32 tensor cores where the GPU has them
# (Ampere and later; PyTorch uses TF32 for float32 matrix products once allowed), plain FP32 on V100 and T4.
# Longer names first: "H100 PCIe" must match before "H100", "L40S" before "L4".
GPU_PEAKS = {
    "H100 PCIe": (756e12, 378e12),
    "H100": (989.4e12, 494.7e12),  # SXM
    "H200": (989.4e12, 494.7e12),
    "A100": (312e12, 156e12),
    "L40S": (362e12, 181e12),
    "A10": (125e12, 62.5e12),
    "L4": (121e12, 60e12),
    "V100": (125e12, 15.7e12),  # fp16; V100 has no bf16 and no TF32
    "T4": (65e12, 8.1e12),  # fp16
}


def cpu_peak_flops() -> tuple[float, str]:
    """An estimate of the CPU's fp32 peak: threads x clock x FLOPs per cycle per core.

    FLOPs per cycle: 64 with AVX-512 (two 512-bit FMA units, Intel), 32 with AVX2 + FMA
    (two 256-bit FMA units: every AMD Zen and most Intel cores), 16 with AVX, else 8.
    The clock is /proc/cpuinfo's, the nominal one on most VMs; turbo is not counted.
    """
    import torch

    flags, mhz, vendor = set(), 0.0, ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags" and not flags:
                flags = set(value.split())
            elif key == "cpu MHz" and not mhz:
                mhz = float(value)
            elif key == "vendor_id" and not vendor:
                vendor = value.strip()
    if "avx512f" in flags and vendor == "GenuineIntel":
        per_cycle = 64
    elif "avx2" in flags and "fma" in flags:
        per_cycle = 32
    else:
        per_cycle = 16 if "avx" in flags else 8
    ghz = mhz / 1000 if mhz else 2.0
    threads = torch.get_num_threads()
    return threads * ghz * 1e9 * per_cycle, f"CPU estimate: {threads} threads x {ghz:.2f} GHz x {per_cycle} FLOP/cycle"


def peak_flops(device: torch.device, dtype: str) -> tuple[float, str]:
    """The device's peak FLOP/s for ``dtype`` and where the number comes from (NVIDIA data sheet or CPU estimate).

    float32 on an Ampere or Hopper GPU is counted at the TF32 tensor-core peak (half
    the bf16 one), which PyTorch uses for matrix products once TF32 is allowed. An
    unknown GPU gives NaN (and an MFU of NaN), not a guess.
    """
    import torch

    if device.type != "cuda":
        return cpu_peak_flops()
    name = torch.cuda.get_device_name(device)
    for key, (half, single) in GPU_PEAKS.items():
        if key in name:
            if dtype == "float32":
                return single, f"{name}: float32 (TF32 where available) dense peak, data sheet"
            return half, f"{name}: {dtype} dense peak, data sheet"
    return float("nan"), f"{name}: peak unknown (add it to llmcourse.hardware.GPU_PEAKS)"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` reports."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which a container or taskset limits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``: every trainer's default."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def hardware_description(device: torch.device) -> str:
    """CPU model, torch version and threads, and the GPU's name when training on one."""
    import torch

    text = f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def model_flops_utilization(config: TransformerConfig, tokens_per_second: float, peak: float,
                            context: int | None = None) -> float:
    """MFU: training_flops_per_token(config, context) x tokens_per_second / peak."""
    return training_flops_per_token(config, context) * tokens_per_second / peak
