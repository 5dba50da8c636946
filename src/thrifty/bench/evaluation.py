"""The eval set a variant is judged on, with the original model's outputs on it (the reference)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.bench.evalsets import (
    NUMPY_TO_ORT,
    ORT_DTYPES,
    SENTENCES,
    TEXT_INPUTS,
    InputSpec,
    batches,
    encode_texts,
    synthetic_feeds,
)
from thrifty.bench.fidelity import infer_task, measure_fidelity, run_onnx, task_fidelity
from thrifty.bench.tolerance import Tolerance
from thrifty.errors import BenchmarkError


@dataclass
class EvalSet:
    task: str
    batches: list[dict[str, np.ndarray]]
    reference: np.ndarray
    labels: np.ndarray | None = None
    bench_inputs: dict[str, Any] = field(default_factory=lambda: {"kind": "random"})
    #: the model's batch axis is fixed (> 1): feeds cannot be cut into single samples
    fixed_batch: bool = False

    def fidelity(self, onnx_path: Path) -> dict[str, float]:
        return task_fidelity(self.task, self.reference, run_onnx(onnx_path, self.batches), self.labels)

    def judge(self, onnx_path: Path, tolerance: Tolerance | None = None) -> dict[str, Any]:
        return measure_fidelity(
            onnx_path, self.task, self.batches, self.reference, labels=self.labels, tolerance=tolerance
        )

    def calibration_feeds(self) -> list[dict[str, np.ndarray]]:
        """One sample per feed (static quantization calibrates on these)."""
        if self.fixed_batch:
            return list(self.batches)
        return [
            {k: v[i : i + 1] for k, v in b.items()}
            for b in self.batches
            for i in range(len(b[next(iter(b))]))
        ]

    def timing_feeds(self) -> dict[str, np.ndarray]:
        if self.fixed_batch:
            return dict(self.batches[0])
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


def onnx_input_specs(onnx_path: Path) -> list[InputSpec]:
    """(name, onnxruntime type, shape) of each input, checked to be something thrifty can feed."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types
        raise BenchmarkError(
            f"ONNX Runtime cannot load {onnx_path}: {str(exc).splitlines()[0][:300]}",
            hint="check the model with onnx.checker and export it again",
        ) from exc
    specs = [(i.name, i.type, list(i.shape)) for i in session.get_inputs()]
    for name, ort_type, shape in specs:
        if ort_type not in ORT_DTYPES:
            raise BenchmarkError(
                f"input {name!r} of {onnx_path} is {ort_type}; thrifty generates numeric and bool tensors only",
                hint="export the model with tensor inputs (float, int, bool)",
            )
        if not shape:
            raise BenchmarkError(
                f"input {name!r} of {onnx_path} is a scalar; thrifty batches inputs along their first axis",
                hint="export the model with a batch axis on every input",
            )
    return specs


def onnx_output_task(onnx_path: Path) -> str:
    """The fidelity task that fits the model's first output."""
    import onnx

    model = onnx.load_model(str(onnx_path), load_external_data=False)
    first = model.graph.output[0]
    tensor = first.type.tensor_type
    if not first.type.HasField("tensor_type"):
        raise BenchmarkError(
            f"the first output of {onnx_path} ({first.name!r}) is not a tensor",
            hint="export classifiers without ZipMap (zipmap=False) so outputs are tensors",
        )
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
    return infer_task(first.name, dtype, shape)


def synthetic_eval_set(
    onnx_path: Path,
    vocab_sizes: dict[str, int] | None = None,
    *,
    samples: int = 128,
    batch_size: int = 32,
    seq_len: int = 32,
) -> EvalSet:
    """Valid generated inputs (token ids below the vocabulary, masks, floats, bools); the
    reference is the original ONNX model's output on them."""
    specs = onnx_input_specs(onnx_path)
    first = synthetic_feeds(specs, batch_size, seq_len, vocab_sizes, seed=0)
    rows = max(1, len(next(iter(first.values()))))
    count = max(1, min(64, -(-samples // rows)))
    feeds = [first] + [
        synthetic_feeds(specs, batch_size, seq_len, vocab_sizes, seed=i) for i in range(1, count)
    ]
    inputs = {"kind": "synthetic", "vocab_sizes": dict(vocab_sizes or {})}
    fixed = any(isinstance(shape[0], int) and shape[0] > 1 for _, _, shape in specs)
    return EvalSet(onnx_output_task(onnx_path), feeds, run_onnx(onnx_path, feeds), None, inputs, fixed)


def onnx_text_eval_set(onnx_path: Path, tokenizer_dir: Path, texts: Sequence[str] = SENTENCES) -> EvalSet:
    """The built-in sentences through the attached tokenizer; the reference is the original ONNX."""
    feeds = batches(encode_texts(tokenizer_dir, texts), 40)
    inputs = {"kind": "text", "tokenizer_dir": str(tokenizer_dir), "texts": list(texts)}
    return EvalSet(onnx_output_task(onnx_path), feeds, run_onnx(onnx_path, feeds), None, inputs)


def signature_specs(signature: dict[str, Any]) -> list[InputSpec]:
    """Input specs from an ingest signature (numpy dtype names)."""
    specs = []
    for item in signature.get("inputs", []):
        ort_type = NUMPY_TO_ORT.get(str(item["dtype"]))
        if ort_type is None:
            raise BenchmarkError(
                f"input {item['name']!r} has dtype {item['dtype']}, which thrifty cannot generate",
                hint="export the model with numeric or bool tensor inputs",
            )
        specs.append((str(item["name"]), ort_type, list(item["shape"])))
    return specs


def reference_eval_set(
    predict: Any, specs: list[InputSpec], task: str, *, samples: int = 256, batch_size: int = 64
) -> EvalSet:
    """Generated inputs; the reference is ``predict(feeds)`` — the original in its own runtime."""
    feeds = [
        synthetic_feeds(specs, batch_size, None, None, seed=i) for i in range(max(1, samples // batch_size))
    ]
    try:
        reference = np.concatenate([np.asarray(predict(f)) for f in feeds])
    except BenchmarkError:
        raise
    except Exception as exc:  # the original's own runtime (torch, sklearn, xgboost) failed
        raise BenchmarkError(
            f"the original model failed on generated inputs: {str(exc).splitlines()[0][:300]}",
            hint="check the model's input signature (thrifty models show NAME)",
        ) from exc
    return EvalSet(task, feeds, reference, None, {"kind": "synthetic"})
