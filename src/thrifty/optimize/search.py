"""Accuracy-aware int8: when plain int8 fails the tolerance, find the fastest int8 that passes.

The eval set is split in two (``split_eval_set``): the search calibrates and chooses on the
*search* split only; the chosen variant is then judged on the *held-out* split, which no step of
the search has seen, so its verdict says whether the choice holds on new inputs.

Candidates, in order, each measured on the task metric of the search split (never only on tensors):

1. plain dynamic int8 (the base config);
2. smooth int8 (``quantize_smooth_int8``): the outlier tokens in fp32 and SmoothQuant channel
   scales, then dynamic int8 — nearly the speed of plain int8, several times less error;
3. per-node sensitivity: each weight MatMul is quantized alone (the rest fp32) and its error
   measured; the most sensitive MatMuls are then kept in fp32 one by one, most harmful first,
   until the variant passes (at most ``max_fp32_nodes``);
4. only when none of those passes: block-wise weight-only int8 (MatMulNBits) at each block size.

Every passing candidate is timed (median latency, same process, same inputs) and the fastest wins.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.bench.evaluation import EvalSet
from thrifty.bench.fidelity import judge
from thrifty.errors import OptimizeError
from thrifty.optimize._io import save_config
from thrifty.optimize.config import (
    BlockwiseQuantConfig,
    DynamicQuantConfig,
    SmoothQuantConfig,
    Tolerance,
    config_to_json,
)
from thrifty.optimize.quantize import (
    quantize_blockwise_int8,
    quantize_dynamic_int8,
    quantize_smooth_int8,
    smooth_targets,
)

#: techniques fitted on eval data (calibrated or chosen on it): the guardrail judges them on the
#: held-out split, which they never saw
FITTED_ON_SEARCH_SPLIT = ("smooth_int8", "search")


@dataclass
class SearchSpace:
    """What the search tries, and how the eval set is split (``holdout_fraction`` held out)."""

    block_sizes: tuple[int, ...] = (128, 64, 32)
    smooth: bool = True
    node_search: bool = True
    max_fp32_nodes: int = 8
    holdout_fraction: float = 0.5
    split_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.2 <= self.holdout_fraction <= 0.8:
            raise OptimizeError(
                f"holdout_fraction={self.holdout_fraction}",
                hint="hold out between 0.2 and 0.8 of the eval set (0.5 by default)",
            )
        if self.max_fp32_nodes < 1:
            raise OptimizeError(f"max_fp32_nodes={self.max_fp32_nodes}", hint="allow at least 1")
        for size in self.block_sizes:
            BlockwiseQuantConfig(block_size=size)  # the same check the quantizer applies


@dataclass(frozen=True)
class EvalSplit:
    """Two disjoint parts of one eval set: rows are positions in the original set."""

    search: EvalSet
    holdout: EvalSet
    search_rows: tuple[int, ...]
    holdout_rows: tuple[int, ...]


@dataclass
class SearchResult:
    path: Path | None
    chosen: str | None
    fidelity: dict[str, float]  # on the search split
    trials: list[dict[str, Any]] = field(default_factory=list)
    holdout_fidelity: dict[str, float] = field(default_factory=dict)
    holdout_passed: bool | None = None

    @property
    def passed(self) -> bool:
        return self.path is not None


def _rows(evals: EvalSet) -> int:
    return len(evals.reference)


def subset_eval_set(evals: EvalSet, rows: list[int]) -> EvalSet:
    """The eval set restricted to ``rows`` (positions across its batches), batches kept apart."""
    batches, start = [], 0
    for batch in evals.batches:
        size = len(next(iter(batch.values())))
        local = [r - start for r in rows if start <= r < start + size]
        if local:
            batches.append({name: value[local] for name, value in batch.items()})
        start += size
    inputs = dict(evals.bench_inputs)
    if isinstance(inputs.get("texts"), list) and len(inputs["texts"]) == _rows(evals):
        inputs["texts"] = [inputs["texts"][r] for r in rows]
    labels = None if evals.labels is None else evals.labels[rows]
    return dataclasses.replace(
        evals, batches=batches, reference=evals.reference[rows], labels=labels, bench_inputs=inputs
    )


def split_eval_set(evals: EvalSet, holdout_fraction: float = 0.5, seed: int = 0) -> EvalSplit:
    """Split the eval set's rows at random (seeded, so every caller gets the same split)."""
    total = _rows(evals)
    held = round(total * holdout_fraction)
    if min(held, total - held) < 3:
        raise OptimizeError(
            f"an eval set of {total} rows cannot be split into a search part and a held-out part",
            hint="give at least 6 eval samples (3 per part; nearest-neighbour agreement needs 3)",
        )
    order = np.random.default_rng(seed).permutation(total)
    holdout, search = sorted(int(r) for r in order[:held]), sorted(int(r) for r in order[held:])
    return EvalSplit(
        subset_eval_set(evals, search), subset_eval_set(evals, holdout), tuple(search), tuple(holdout)
    )


def guardrail_eval_set(evals: EvalSet, technique: str, space: SearchSpace | None = None) -> EvalSet:
    """The rows the guardrail judges a variant on: the held-out split for techniques fitted on the
    search split (``FITTED_ON_SEARCH_SPLIT``), the whole eval set for the others."""
    if technique not in FITTED_ON_SEARCH_SPLIT:
        return evals
    space = space or SearchSpace()
    return split_eval_set(evals, space.holdout_fraction, space.split_seed).holdout


def score(fidelity: dict[str, float]) -> float:
    """One number per candidate (higher is closer to the original) to rank sensitivities.

    Continuous metrics only: agreement counts move in steps of one sample and tie often."""
    if "cosine_mean" in fidelity:
        return fidelity["cosine_mean"]
    keys = ("top1_agreement", "accuracy")
    return float(sum(fidelity.get(k, 0.0) for k in keys) - fidelity.get("mean_abs_error", 0.0))


def median_latencies_ms(paths: list[Path], feeds: dict[str, np.ndarray], rounds: int = 15) -> list[float]:
    """Median latency of each ONNX file on ``feeds``, timed round-robin so load drifts hit all alike.

    In-process, one thread and short: for ranking candidates only (the harness measures the chosen one).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
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
    def __init__(self, fp32: Path, out_dir: Path, split: EvalSplit, tolerance: Tolerance) -> None:
        self.fp32, self.out_dir, self.split, self.tolerance = fp32, out_dir, split, tolerance
        self.work = out_dir / "search-trials"
        self.work.mkdir(parents=True, exist_ok=True)
        self.trials: list[dict[str, Any]] = []
        self.passing: list[tuple[str, Path, dict[str, float], Any]] = []
        self.calibration = split.search.calibration_feeds()

    def _next_dir(self) -> Path:
        return self.work / f"trial-{len(self.trials)}"

    def record(self, name: str, path: Path, config: Any, *, probe: bool = False) -> dict[str, float]:
        fid = self.split.search.fidelity(path)
        passed = judge(fid, self.tolerance)[0]
        self.trials.append({"candidate": name, "passed": passed, "probe": probe, **fid})
        if passed and not probe:
            self.passing.append((name, path, fid, config))
        elif probe:
            shutil.rmtree(path.parent, ignore_errors=True)
        return fid

    def dynamic(self, base: DynamicQuantConfig) -> None:
        self.record("dynamic-int8", quantize_dynamic_int8(self.fp32, self._next_dir(), base), base)

    def smooth(self, cfg: SmoothQuantConfig, name: str, *, probe: bool = False) -> dict[str, float]:
        path = quantize_smooth_int8(self.fp32, self._next_dir(), self.calibration, cfg)
        return self.record(name, path, cfg, probe=probe)

    def blockwise(self, block_size: int) -> None:
        cfg = BlockwiseQuantConfig(bits=8, block_size=block_size)
        self.record(
            f"blockwise-int8-b{block_size}", quantize_blockwise_int8(self.fp32, self._next_dir(), cfg), cfg
        )

    def sensitivities(self, base: SmoothQuantConfig) -> list[tuple[float, str]]:
        """(error when quantized alone, node name) per weight MatMul, most harmful first.

        The probes keep the embeddings fp32, so each one measures its node and nothing else."""
        import onnx

        model = onnx.load(str(self.fp32), load_external_data=False)
        nodes = [n.name for group in smooth_targets(model, base.nodes_to_exclude).values() for n in group]
        errors = []
        for node in nodes:
            others = tuple(n for n in nodes if n != node) + base.nodes_to_exclude
            probe = dataclasses.replace(base, nodes_to_exclude=others, quantize_embeddings=False)
            fid = self.smooth(probe, f"probe-{node}", probe=True)
            errors.append((1.0 - score(fid), node))
        return sorted(errors, reverse=True)

    def keep_sensitive(self, base: SmoothQuantConfig, max_fp32_nodes: int) -> None:
        """Keep the most sensitive MatMuls in fp32, one more at a time, until the variant passes."""
        ranked = self.sensitivities(base)
        for count in range(1, min(max_fp32_nodes, len(ranked) - 1) + 1):
            kept = tuple(node for _, node in ranked[:count]) + base.nodes_to_exclude
            self.smooth(dataclasses.replace(base, nodes_to_exclude=kept), f"smooth-int8-fp32x{count}")
            if self.passing:
                return


def search_int8(
    fp32_path: Path,
    out_dir: Path,
    evals: EvalSet | EvalSplit,
    timing_feeds: dict[str, np.ndarray] | None = None,
    tolerance: Tolerance | None = None,
    base: DynamicQuantConfig | None = None,
    space: SearchSpace | None = None,
    smooth: SmoothQuantConfig | None = None,
) -> SearchResult:
    """The fastest int8 candidate within ``tolerance`` on the search split (``path`` None when none
    passes), with its fidelity on the held-out split."""
    tolerance, base, space = tolerance or Tolerance(), base or DynamicQuantConfig(), space or SearchSpace()
    split = (
        evals
        if isinstance(evals, EvalSplit)
        else split_eval_set(evals, space.holdout_fraction, space.split_seed)
    )
    search = _Search(fp32_path, out_dir, split, tolerance)
    _run_candidates(search, base, space, smooth or SmoothQuantConfig())
    if not search.passing:
        shutil.rmtree(search.work, ignore_errors=True)
        return SearchResult(None, None, search.trials[-1] if search.trials else {}, search.trials)
    feeds = timing_feeds if timing_feeds is not None else split.search.timing_feeds()
    latencies = median_latencies_ms([p for _, p, _, _ in search.passing], feeds)
    timed = [(ms, n, p, f, c) for ms, (n, p, f, c) in zip(latencies, search.passing, strict=True)]
    for latency, name, *_ in timed:
        next(t for t in search.trials if t["candidate"] == name)["latency_ms_p50"] = latency
    _, name, path, fid, config = min(timed, key=lambda item: item[0])
    return _finish(search, space, name, path, fid, config)


def _run_candidates(
    search: _Search, base: DynamicQuantConfig, space: SearchSpace, smooth: SmoothQuantConfig
) -> None:
    search.dynamic(base)
    if search.passing:
        return
    if space.smooth:
        search.smooth(smooth, "smooth-int8")
        if not search.passing and space.node_search:
            search.keep_sensitive(smooth, space.max_fp32_nodes)
    if not search.passing:
        for block in space.block_sizes:
            search.blockwise(block)


def _finish(
    search: _Search, space: SearchSpace, name: str, path: Path, fid: dict[str, float], config: Any
) -> SearchResult:
    target = search.out_dir / "model.onnx"
    shutil.move(str(path), target)
    shutil.rmtree(search.work, ignore_errors=True)
    holdout = search.split.holdout.fidelity(target)
    holdout_passed = judge(holdout, search.tolerance)[0]
    save_config(
        target,
        "search",
        config,
        chosen=name,
        fidelity=fid,
        holdout_fidelity=holdout,
        holdout_passed=holdout_passed,
        space=config_to_json(space),
        split={
            "search_rows": list(search.split.search_rows),
            "holdout_rows": list(search.split.holdout_rows),
        },
        trials=search.trials,
    )
    return SearchResult(target, name, fid, search.trials, holdout, holdout_passed)
