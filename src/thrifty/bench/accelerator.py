"""Which accelerator a benchmark ran on, and which ONNX Runtime execution providers to ask for.

The harness runs on CUDA when onnxruntime offers ``CUDAExecutionProvider`` (device ``auto``), and
records what the session really used: ``{"accelerator": "cpu" | "Tesla T4", "accelerator_name":
"" | "T4", "execution_provider": ...}``. ``accelerator_name`` is canonical
(``catalog.accelerators``), so the planner matches it against price rows of any cloud.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from thrifty.catalog.accelerators import canonical_accelerator
from thrifty.errors import BenchmarkError

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: recorded when a CUDA run cannot name its GPU: matches no price row, so it is never placed on a
#: CPU machine (as "" would be) nor on a GPU it may not be
UNKNOWN_GPU = "UNKNOWN-GPU"


def execution_providers(device: str, available: list[str]) -> list[str]:
    """The providers to ask a session for: CUDA first when wanted and offered, CPU as fallback."""
    if device not in DEVICES:
        raise BenchmarkError(f"device={device!r}", hint=f"use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise BenchmarkError(
            f"device 'cuda' asked for, but onnxruntime here offers only {', '.join(available) or 'nothing'}",
            hint="run on a machine with an NVIDIA GPU and onnxruntime-gpu installed, or use device 'auto'/'cpu'",
        )
    return [CPU]


def cuda_device_name() -> str:
    """The name nvidia-smi gives the first visible GPU ("" when nvidia-smi is missing or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ""
    try:
        done = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    index = int(visible) if visible.isdigit() else 0
    return names[index] if index < len(names) else (names[0] if names else "")


def describe_accelerator(execution_provider: str) -> dict[str, Any]:
    """What the benchmark ran on, from the execution provider its session actually used."""
    if execution_provider != CUDA:
        return {"accelerator": "cpu", "accelerator_name": "", "execution_provider": execution_provider}
    raw = cuda_device_name()
    name = canonical_accelerator(raw) if raw else UNKNOWN_GPU
    return {"accelerator": raw or "CUDA GPU (nvidia-smi gave no name)", "accelerator_name": name,
            "execution_provider": CUDA}  # fmt: skip


def cuda_missing_reason() -> str | None:
    """None when onnxruntime can run on an NVIDIA GPU here, else why not (for skips and errors)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA not in available:
        return f"no NVIDIA GPU: onnxruntime here offers {', '.join(available)} (needs onnxruntime-gpu + CUDA)"
    if not cuda_device_name():
        return "no NVIDIA GPU: onnxruntime-gpu is installed but nvidia-smi finds no GPU"
    return None
