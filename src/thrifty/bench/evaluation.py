"""The eval set a variant is judged on, with the original model's outputs on it (the reference)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.bench.evalsets import SENTENCES, TEXT_INPUTS, batches, encode_texts
from thrifty.bench.fidelity import measure_fidelity, run_onnx, task_fidelity
from thrifty.bench.tolerance import Tolerance
from thrifty.errors import BenchmarkError


@dataclass
class EvalSet:
    task: str
    batches: list[dict[str, np.ndarray]]
    reference: np.ndarray
    labels: np.ndarray | None = None
    bench_inputs: dict[str, Any] = field(default_factory=lambda: {"kind": "random"})

    def fidelity(self, onnx_path: Path) -> dict[str, float]:
        return task_fidelity(self.task, self.reference, run_onnx(onnx_path, self.batches), self.labels)

    def judge(self, onnx_path: Path, tolerance: Tolerance | None = None) -> dict[str, Any]:
        return measure_fidelity(
            onnx_path, self.task, self.batches, self.reference, labels=self.labels, tolerance=tolerance
        )

    def calibration_feeds(self) -> list[dict[str, np.ndarray]]:
        """One sample per feed (static quantization calibrates on these)."""
        return [
            {k: v[i : i + 1] for k, v in b.items()}
            for b in self.batches
            for i in range(len(b[next(iter(b))]))
        ]

    def timing_feeds(self) -> dict[str, np.ndarray]:
        return {k: v[:1] for k, v in self.batches[0].items()}


def text_eval_set(folder: Path, texts: Sequence[str] = SENTENCES, batch_size: int = 40) -> EvalSet:
    """Sentence-embedding eval set; the reference is the original PyTorch model's output."""
    import torch

    from thrifty.bench.reference import sentence_embedding_module

    if len(texts) < 3:
        raise BenchmarkError(f"{len(texts)} eval sentences", hint="nearest-neighbour agreement needs ≥ 3")
    module = sentence_embedding_module(folder)
    feeds = batches(encode_texts(folder, texts), batch_size)
    with torch.inference_mode():
        reference = np.concatenate(
            [module(*[torch.from_numpy(b[n]) for n in TEXT_INPUTS]).numpy() for b in feeds]
        )
    inputs = {"kind": "text", "tokenizer_dir": str(folder), "texts": list(texts)}
    return EvalSet("embedding", feeds, reference.astype(np.float32), None, inputs)


def array_eval_set(
    original_onnx: Path,
    inputs: dict[str, np.ndarray],
    *,
    task: str = "classification",
    labels: np.ndarray | None = None,
    batch_size: int = 64,
) -> EvalSet:
    """Eval set from arrays; the reference is the original ONNX model's output on them."""
    feeds = batches(inputs, batch_size)
    reference = run_onnx(original_onnx, feeds)
    return EvalSet(task, feeds, reference, labels, {"kind": "random"})
