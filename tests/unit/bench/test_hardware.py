"""The hardware JSON the planner reads, and the instruction set picked from CPU flags."""

from __future__ import annotations

import pytest

from thrifty.bench.hardware import describe_cpu, isa_from_flags

CPUINFO = """processor\t: 0
model name\t: Example Xeon
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni
"""


@pytest.mark.parametrize(
    ("flags", "machine", "isa"),
    [
        (["sse2"], "x86_64", "generic"),
        (["avx2"], "x86_64", "avx2"),
        (["avx2", "avx512f"], "x86_64", "avx2"),  # avx512f without bw has no int8 kernels
        (["avx2", "avx512f", "avx512bw"], "x86_64", "avx512"),
        (["avx2", "avx512f", "avx512bw", "avx512_vnni"], "x86_64", "avx512_vnni"),
        ([], "aarch64", "arm64"),
    ],
)
def test_isa_from_flags(flags: list[str], machine: str, isa: str) -> None:
    assert isa_from_flags(flags, machine) == isa


def test_describe_cpu_parses_cpuinfo() -> None:
    info = describe_cpu(CPUINFO)
    assert info["cpu_model"] == "Example Xeon"
    assert info["cpu_flags"] == ["avx2", "avx512_vnni", "avx512bw", "avx512f"]
    assert info["vcpus"] >= 1


def test_describe_this_machine_has_the_planner_keys() -> None:
    info = describe_cpu()
    assert {"cpu_model", "cpu_flags", "vcpus"} <= set(info)
