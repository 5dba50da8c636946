"""The benchmark child process: ``python -m thrifty.bench._worker`` reads a JSON job on stdin.

It loads one model (timing the session creation), warms up, times each case, and prints one JSON
object on stdout. Running it in a fresh process keeps one variant's memory out of another's numbers.

Peak memory is this process's own high-water mark, ``VmHWM`` in /proc/self/status: Linux keeps
``ru_maxrss`` across fork + exec, so it reported the parent's peak (a 2 GB flow run) for every variant.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], object]


def _text_feeds(job: dict[str, Any], batch_size: int, seq_len: int | None) -> dict[str, np.ndarray]:
    from thrifty.bench.evalsets import SENTENCES, encode_texts

    texts = list(job["inputs"].get("texts") or SENTENCES)
    chosen = [texts[i % len(texts)] for i in range(batch_size)]
    return encode_texts(Path(job["inputs"]["tokenizer_dir"]), chosen, pad_to=seq_len)


def _random_feeds(
    specs: list[tuple[str, str, list[Any]]], batch_size: int, seq_len: int | None, inputs: dict[str, Any]
) -> dict[str, np.ndarray]:
    from thrifty.bench.evalsets import synthetic_feeds

    return synthetic_feeds(specs, batch_size, seq_len, inputs.get("vocab_sizes"), pad=False)


Made = tuple[Runner, list[tuple[str, str, list[Any]]], str]  # runner, input specs, execution provider


def _onnx_runner(path: str, threads: int, device: str = "auto") -> Made:
    import onnxruntime as ort

    from thrifty.bench.accelerator import execution_providers

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    providers = execution_providers(device, ort.get_available_providers())
    session = ort.InferenceSession(path, options, providers=providers)
    used = session.get_providers()[0]  # CUDA may fall back to CPU (no device): record what ran
    specs = [(i.name, i.type, list(i.shape)) for i in session.get_inputs()]
    names = {s[0] for s in specs}
    return (lambda feeds: session.run(None, {k: v for k, v in feeds.items() if k in names})), specs, used


def _torch_runner(path: str, threads: int, device: str = "auto") -> Made:
    import torch

    from thrifty.bench.reference import TEXT_INPUTS, sentence_embedding_module

    torch.set_num_threads(threads)
    module = sentence_embedding_module(Path(path))

    def run(feeds: dict[str, np.ndarray]) -> object:
        with torch.inference_mode():
            return module(*[torch.from_numpy(feeds[n]) for n in TEXT_INPUTS])

    return run, [(n, "tensor(int64)", ["batch", "sequence"]) for n in TEXT_INPUTS], "CPUExecutionProvider"


def _time_case(run: Runner, feeds: dict[str, np.ndarray], job: dict[str, Any]) -> list[float]:
    for _ in range(int(job.get("warmup", 3))):
        run(feeds)
    timings: list[float] = []
    deadline = time.perf_counter() + float(job.get("max_seconds_per_case", 20.0))
    while len(timings) < int(job.get("runs", 50)):
        start = time.perf_counter()
        run(feeds)
        timings.append((time.perf_counter() - start) * 1000.0)
        if time.perf_counter() > deadline and len(timings) >= 5:
            break
    return timings


def _case_result(case: dict[str, Any], timings: list[float]) -> dict[str, Any]:
    arr = np.asarray(timings)
    return {
        **case,
        "latency_ms_p50": float(np.percentile(arr, 50)),
        "latency_ms_p95": float(np.percentile(arr, 95)),
        "latency_ms_p99": float(np.percentile(arr, 99)),
        "throughput_rps": float(case["batch_size"] * 1000.0 / arr.mean()),
        "runs": len(timings),
    }


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    make = _torch_runner if job.get("runtime") == "torch-sentence-embedding" else _onnx_runner
    results, load_ms, used = [], None, ""
    for threads in sorted({int(c["threads"]) for c in job["cases"]}):
        start = time.perf_counter()
        run, specs, used = make(job["model_path"], threads, str(job.get("device", "auto")))
        load_ms = load_ms if load_ms is not None else (time.perf_counter() - start) * 1000.0
        for case in [c for c in job["cases"] if int(c["threads"]) == threads]:
            batch, seq = int(case["batch_size"]), case.get("seq_len")
            if job["inputs"].get("kind") == "text":
                feeds = _text_feeds(job, batch, seq)
            else:
                feeds = _random_feeds(specs, batch, seq, job["inputs"])
            results.append(_case_result(case, _time_case(run, feeds, job)))
    return {
        "cases": results,
        "load_ms": load_ms,
        "peak_memory_mib": peak_memory_mib(),
        "execution_provider": used,
    }


def peak_memory_mib(status: Path = Path("/proc/self/status")) -> float:
    """This process's peak resident memory since exec (``VmHWM``), in MiB."""
    with contextlib.suppress(OSError):  # no procfs (macOS): fall back below
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    # no procfs (macOS): ru_maxrss, in bytes there (kB on Linux)
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform == "darwin" else 1.0)
    return kib / 1024.0


def main() -> None:
    job = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(run_job(job)) + "\n")


if __name__ == "__main__":
    main()
