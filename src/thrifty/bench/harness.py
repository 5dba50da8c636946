"""The benchmark harness: each model is timed in a fresh child process.

Per (batch size, thread count, sequence length) case: warm-up, then latency p50/p95/p99 and
throughput; per model: load time (session creation), peak resident memory, file size, the
hardware it ran on (CPU, plus the accelerator: ``cpu`` or the GPU's name when the CUDA execution
provider ran it; see ``bench.accelerator``), and how busy the machine was meanwhile (``load``, see
bench/load.py). A result taken on a busy machine is measured once more and the quieter run kept; if
both were busy, ``load.noisy`` says so and why.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.bench import load
from thrifty.bench.accelerator import DEVICES, describe_accelerator
from thrifty.bench.hardware import describe_cpu
from thrifty.errors import BenchmarkError


@dataclass
class BenchSpec:
    """What to measure. ``seq_lens`` ``None`` means natural lengths (text inputs only)."""

    batch_sizes: tuple[int, ...] = (1, 8)
    threads: tuple[int, ...] = (1,)
    seq_lens: tuple[int | None, ...] = (128,)
    warmup: int = 3
    runs: int = 30
    max_seconds_per_case: float = 10.0
    timeout_s: float = 600.0
    inputs: dict[str, Any] = field(default_factory=lambda: {"kind": "random"})
    #: "auto": CUDA when onnxruntime offers it, else CPU; "cpu"; "cuda" (fails without a GPU)
    device: str = "auto"
    remeasure_noisy: bool = True
    load_limits: load.LoadLimits = field(default_factory=load.LoadLimits)

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise BenchmarkError(f"batch_sizes={self.batch_sizes}", hint="give batch sizes ≥ 1")
        if not self.threads or min(self.threads) < 1:
            raise BenchmarkError(f"threads={self.threads}", hint="give thread counts ≥ 1")
        if self.runs < 1:
            raise BenchmarkError(f"runs={self.runs}", hint="time at least one run")
        if self.device not in DEVICES:
            raise BenchmarkError(f"device={self.device!r}", hint=f"use one of {', '.join(DEVICES)}")

    def cases(self) -> list[dict[str, Any]]:
        return [
            {"batch_size": b, "threads": t, "seq_len": s}
            for t in self.threads
            for b in self.batch_sizes
            for s in self.seq_lens
        ]


def _model_size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    extra = path.with_name(path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


log = logging.getLogger(__name__)


def run_benchmark(model_path: Path, spec: BenchSpec, *, runtime: str = "onnxruntime") -> dict[str, Any]:
    """Time ``model_path`` in a fresh process; returns cases, load_ms, peak memory, size, hardware, load."""
    if not model_path.exists():
        raise BenchmarkError(f"model {model_path} does not exist", hint="materialize the variant first")
    job = {
        "runtime": runtime,
        "model_path": str(model_path),
        "cases": spec.cases(),
        "inputs": spec.inputs,
        "warmup": spec.warmup,
        "runs": spec.runs,
        "max_seconds_per_case": spec.max_seconds_per_case,
        "device": spec.device,
    }
    result = _watched_run(model_path, job, spec)
    if result["load"]["noisy"] and spec.remeasure_noisy:
        log.warning(
            "benchmark of %s ran on a busy machine (%s); measuring it once more",
            model_path,
            "; ".join(result["load"]["reasons"]),
        )
        result = _quieter(result, _watched_run(model_path, job, spec))
        if result["load"]["noisy"]:
            log.warning("benchmark of %s is noisy: %s", model_path, "; ".join(result["load"]["reasons"]))
    result["file_size_bytes"] = _model_size_bytes(model_path)
    result["hardware"] = describe_cpu() | describe_accelerator(str(result.pop("execution_provider", "")))
    result["runtime"] = runtime
    return result


def _watched_run(model_path: Path, job: dict[str, Any], spec: BenchSpec) -> dict[str, Any]:
    """One child run with the machine's load over its window (see bench/load.py)."""
    before, cpu_before = load.snapshot(), _children_cpu_s()
    result = _run_child(model_path, job, spec)
    worker_cpu_s = _children_cpu_s() - cpu_before
    record = load.measure(before, load.snapshot(), worker_cpu_s=worker_cpu_s, exclude={os.getpid()})
    result["load"] = load.judge(record, max(spec.threads), spec.load_limits)
    return result


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _quieter(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Of two runs of the same job, the one on the quieter machine; both attempts are recorded."""
    attempts = [
        {
            "contention": r["load"].get("contention"),
            "noisy": r["load"]["noisy"],
            "latency_ms_p50": r["cases"][0]["latency_ms_p50"] if r["cases"] else None,
        }
        for r in (first, second)
    ]
    kept = min((first, second), key=lambda r: float(r["load"].get("contention") or 0.0))
    kept["load"] = {**kept["load"], "remeasured": True, "attempts": attempts}
    return kept


def _run_child(model_path: Path, job: dict[str, Any], spec: BenchSpec) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(max(spec.threads))}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "thrifty.bench._worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=spec.timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(
            f"benchmark of {model_path} ran over {spec.timeout_s:.0f} s", hint="lower runs or batch sizes"
        ) from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-5:]
        raise BenchmarkError(f"benchmark of {model_path} failed: {' | '.join(tail)}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
