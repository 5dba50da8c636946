"""Accuracy-aware int8: when plain int8 fails the tolerance, find the fastest int8 that passes.

Candidates, all measured on the task metric of the eval set (never only on tensors):

1. plain dynamic int8 (the base config);
2. block-wise weight-only int8 (MatMulNBits, int8 compute per block) at block sizes 128, 64, 32 —
   one scale per block instead of per tensor keeps far more precision at nearly int8 speed;
3. dynamic int8 with the most sensitive layers kept in fp32: each group of weight layers is left in
   fp32 alone and the eval set's fidelity measured; groups whose exclusion helps most are kept in
   fp32 one by one until the variant passes.

Every passing candidate is timed (median latency, same process, same inputs) and the fastest wins.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.bench.fidelity import judge
from thrifty.errors import OptimizeError
from thrifty.optimize._io import save_config
from thrifty.optimize.config import BlockwiseQuantConfig, DynamicQuantConfig, Tolerance
from thrifty.optimize.quantize import quantize_blockwise_int8, quantize_dynamic_int8, weight_matmuls

Evaluate = Callable[[Path], dict[str, float]]


@dataclass
class SearchResult:
    path: Path | None
    chosen: str | None
    fidelity: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.path is not None


@dataclass
class SearchSpace:
    block_sizes: tuple[int, ...] = (128, 64, 32)
    group_count: int = 12
    layer_search: bool = True


def score(fidelity: dict[str, float]) -> float:
    """One number per candidate (higher is closer to the original) to rank sensitivities."""
    keys = ("cosine_mean", "nn_agreement", "top1_agreement", "accuracy")
    return float(sum(fidelity.get(k, 0.0) for k in keys) - fidelity.get("mean_abs_error", 0.0))


def layer_groups(onnx_path: Path, group_count: int) -> list[list[str]]:
    """Weight MatMul/Gemm nodes in graph order, split into ``group_count`` contiguous groups."""
    nodes = weight_matmuls(onnx_path)
    if not nodes:
        raise OptimizeError(f"{onnx_path} has no weight MatMul/Gemm to keep in fp32", hint="skip 'search'")
    count = max(1, min(group_count, len(nodes)))
    size = -(-len(nodes) // count)
    return [nodes[i : i + size] for i in range(0, len(nodes), size)]


def median_latencies_ms(paths: list[Path], feeds: dict[str, np.ndarray], rounds: int = 15) -> list[float]:
    """Median latency of each ONNX file on ``feeds``, timed round-robin so load drifts hit all alike.

    In-process and short: for ranking candidates only (the harness measures the chosen one).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
    feeds_per = [{k: v for k, v in feeds.items() if k in {i.name for i in s.get_inputs()}} for s in sessions]
    for session, feed in zip(sessions, feeds_per, strict=True):
        for _ in range(3):
            session.run(None, feed)
    timings: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for index, (session, feed) in enumerate(zip(sessions, feeds_per, strict=True)):
            start = time.perf_counter()
            session.run(None, feed)
            timings[index].append((time.perf_counter() - start) * 1000.0)
    return [float(np.median(t)) for t in timings]


class _Search:
    def __init__(self, fp32: Path, out_dir: Path, evaluate: Evaluate, tolerance: Tolerance) -> None:
        self.fp32, self.out_dir, self.evaluate, self.tolerance = fp32, out_dir, evaluate, tolerance
        self.work = out_dir / "search-trials"
        self.work.mkdir(parents=True, exist_ok=True)
        self.trials: list[dict[str, Any]] = []
        self.passing: list[tuple[str, Path, dict[str, float], Any]] = []

    def _next_dir(self) -> Path:
        return self.work / f"trial-{len(self.trials)}"

    def record(self, name: str, path: Path, config: Any, *, probe: bool = False) -> dict[str, float]:
        fid = self.evaluate(path)
        passed = judge(fid, self.tolerance)[0]
        self.trials.append({"candidate": name, "passed": passed, "probe": probe, **fid})
        if passed and not probe:
            self.passing.append((name, path, fid, config))
        return fid

    def dynamic(
        self, base: DynamicQuantConfig, exclude: list[str], name: str, *, probe: bool = False
    ) -> dict[str, float]:
        cfg = dataclasses.replace(base, nodes_to_exclude=tuple(exclude))
        return self.record(name, quantize_dynamic_int8(self.fp32, self._next_dir(), cfg), cfg, probe=probe)

    def blockwise(self, block_size: int) -> None:
        cfg = BlockwiseQuantConfig(bits=8, block_size=block_size)
        self.record(
            f"blockwise-int8-b{block_size}", quantize_blockwise_int8(self.fp32, self._next_dir(), cfg), cfg
        )

    def keep_sensitive(self, base: DynamicQuantConfig, group_count: int) -> None:
        groups = layer_groups(self.fp32, group_count)
        scored = [(score(self.dynamic(base, g, f"probe-{i}", probe=True)), g) for i, g in enumerate(groups)]
        kept: list[str] = []
        for _, group in sorted(scored, key=lambda pair: -pair[0]):
            kept += group
            self.dynamic(base, kept, f"dynamic-int8-fp32x{len(kept)}")
            if self.passing and self.passing[-1][0].startswith("dynamic-int8-fp32x"):
                return


def search_int8(
    fp32_path: Path,
    out_dir: Path,
    evaluate: Evaluate,
    timing_feeds: dict[str, np.ndarray],
    tolerance: Tolerance | None = None,
    base: DynamicQuantConfig | None = None,
    space: SearchSpace | None = None,
) -> SearchResult:
    """The fastest int8 candidate within ``tolerance`` (``path`` None when none passes)."""
    tolerance, base, space = tolerance or Tolerance(), base or DynamicQuantConfig(), space or SearchSpace()
    search = _Search(fp32_path, out_dir, evaluate, tolerance)
    search.dynamic(base, [], "dynamic-int8")
    if not search.passing:
        for block in space.block_sizes:
            search.blockwise(block)
        if space.layer_search:
            search.keep_sensitive(base, space.group_count)
    if not search.passing:
        shutil.rmtree(search.work, ignore_errors=True)
        return SearchResult(None, None, search.trials[-1] if search.trials else {}, search.trials)
    latencies = median_latencies_ms([p for _, p, _, _ in search.passing], timing_feeds)
    timed = [(ms, n, p, f, c) for ms, (n, p, f, c) in zip(latencies, search.passing, strict=True)]
    for latency, name, *_ in timed:
        next(t for t in search.trials if t["candidate"] == name)["latency_ms_p50"] = latency
    _, name, path, fid, config = min(timed, key=lambda item: item[0])
    return _finish(search, name, path, fid, config)


def _finish(search: _Search, name: str, path: Path, fid: dict[str, float], config: Any) -> SearchResult:
    target = search.out_dir / "model.onnx"
    shutil.move(str(path), target)
    shutil.rmtree(search.work, ignore_errors=True)
    save_config(target, "search", config, chosen=name, fidelity=fid, trials=search.trials)
    return SearchResult(target, name, fid, search.trials)
