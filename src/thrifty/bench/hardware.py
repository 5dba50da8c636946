"""What machine a benchmark ran on: CPU model, flags, vCPUs (the planner reads this JSON)."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
#: the flags that decide which int8 kernels ONNX Runtime can use
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp")


def _cpuinfo_field(text: str, *names: str) -> str:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return ""


@lru_cache(maxsize=1)
def describe_cpu(cpuinfo: str | None = None) -> dict[str, Any]:
    """``{"cpu_model", "cpu_flags", "vcpus", "machine", "isa"}`` of this machine."""
    text = cpuinfo if cpuinfo is not None else (CPUINFO.read_text() if CPUINFO.exists() else "")
    flags = sorted(set(_cpuinfo_field(text, "flags", "Features").split()))
    model = _cpuinfo_field(text, "model name", "Model", "Hardware") or platform.processor() or "unknown"
    machine = platform.machine()
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in flags if f in ISA_FLAGS],
        "vcpus": os.cpu_count() or 1,
        "machine": machine,
        "isa": isa_from_flags(flags, machine),
    }


def isa_from_flags(flags: list[str] | set[str], machine: str = "x86_64") -> str:
    """The best int8 instruction set the flags allow: avx512_vnni, avx512, avx2 or arm64."""
    found = set(flags)
    if machine in {"aarch64", "arm64"} or "asimd" in found:
        return "arm64"
    if "avx512_vnni" in found:
        return "avx512_vnni"
    if "avx512f" in found and "avx512bw" in found:
        return "avx512"
    if "avx2" in found:
        return "avx2"
    return "generic"
