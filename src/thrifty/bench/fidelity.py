"""Fidelity of a variant to the original, at the level of the task.

- embeddings: cosine to the original's vector AND nearest-neighbour agreement (does each query's
  nearest neighbour among the eval set stay the same?) — cosine alone hides changed neighbours;
- classifiers: top-1 agreement with the original, and accuracy when labels are given;
- regressors: max / mean absolute error (bounded by ``Tolerance.max_abs_error``, else by
  ``DEFAULT_RELATIVE_ERROR`` of the reference's largest magnitude);
- models whose output is labels (integers, booleans: scikit-learn, XGBoost and LightGBM
  classifiers converted to ONNX): prediction agreement.

Outputs of any rank are compared row by row (one row per input sample).

``judge`` turns the numbers into accepted / rejected with the number that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.bench.tolerance import Tolerance
from thrifty.errors import BenchmarkError

TASKS = ("embedding", "classification", "regression", "label")
#: a regressor's max abs error may be this fraction of the reference's largest |value|
DEFAULT_RELATIVE_ERROR = 1e-3


def infer_task(name: str, dtype: str, shape: Sequence[Any]) -> str:
    """The fidelity task that fits an output, from its name, numpy dtype name and shape."""
    if not dtype.startswith(("float", "bfloat")):
        return "label"
    lowered = name.lower()
    if "embedding" in lowered or "hidden_state" in lowered or len(shape) >= 3:
        return "embedding"
    if len(shape) <= 1 or shape[-1] == 1:
        return "regression"
    return "classification"


def _rows(x: np.ndarray) -> np.ndarray:
    """One row per sample, whatever the output's rank."""
    return x.reshape(len(x), -1) if x.ndim != 2 else x


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12))


def nearest_neighbours(embeddings: np.ndarray) -> np.ndarray:
    """Index of each row's most similar other row (cosine)."""
    unit = _unit(embeddings.astype(np.float64))
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.asarray(sims.argmax(axis=1))


def embedding_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Cosine (mean, min) to the reference vectors and nearest-neighbour agreement."""
    _same_shape(reference, candidate)
    reference, candidate = _rows(reference), _rows(candidate)
    cosines = (_unit(reference.astype(np.float64)) * _unit(candidate.astype(np.float64))).sum(axis=1)
    agree = nearest_neighbours(reference) == nearest_neighbours(candidate)
    return {
        "cosine_mean": float(cosines.mean()),
        "cosine_min": float(cosines.min()),
        "nn_agreement": float(agree.mean()),
        "eval_size": float(len(reference)),
    }


def classification_fidelity(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, float]:
    """Top-1 agreement with the reference; accuracy of both when labels are given."""
    _same_shape(reference, candidate)
    ref_top1, cand_top1 = _rows(reference).argmax(axis=1), _rows(candidate).argmax(axis=1)
    result = {"top1_agreement": float((ref_top1 == cand_top1).mean()), "eval_size": float(len(reference))}
    if labels is not None:
        result["accuracy"] = float((cand_top1 == labels).mean())
        result["reference_accuracy"] = float((ref_top1 == labels).mean())
    return result


def regression_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Max and mean absolute error, and the reference's largest magnitude (the error's scale)."""
    reference, candidate = _rows(reference), _rows(candidate)
    _same_shape(reference, candidate)
    error = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    return {
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
        "reference_abs_max": float(np.abs(reference).max()),
        "eval_size": float(len(reference)),
    }


def label_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Prediction agreement: the share of samples whose predicted labels are all the same."""
    reference, candidate = _rows(reference), _rows(candidate)
    _same_shape(reference, candidate)
    agree = (reference == candidate).all(axis=1)
    return {"prediction_agreement": float(agree.mean()), "eval_size": float(len(reference))}


def task_fidelity(
    task: str, reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, float]:
    if task == "embedding":
        return embedding_fidelity(reference, candidate)
    if task == "classification":
        return classification_fidelity(reference, candidate, labels)
    if task == "regression":
        return regression_fidelity(reference, candidate)
    if task == "label":
        return label_fidelity(reference, candidate)
    raise BenchmarkError(f"unknown task {task!r}", hint=f"use one of {', '.join(TASKS)}")


def _same_shape(reference: np.ndarray, candidate: np.ndarray) -> None:
    if _rows(reference).shape != _rows(candidate).shape:
        raise BenchmarkError(
            f"variant output shape {candidate.shape} differs from the original's {reference.shape}",
            hint="the variant must keep the original's inputs and outputs",
        )


def _checks(fidelity: dict[str, float], tol: Tolerance) -> list[tuple[str, float, float, bool]]:
    """(metric, value, bound, passed) for each bound that applies to these numbers."""
    checks: list[tuple[str, float, float, bool]] = []
    if "cosine_mean" in fidelity:
        checks.append(("cosine_mean", fidelity["cosine_mean"], tol.min_cosine, True))
    for name in ("nn_agreement", "top1_agreement", "prediction_agreement"):
        if name in fidelity and "accuracy" not in fidelity:
            checks.append((name, fidelity[name], tol.min_agreement, True))
    if "accuracy" in fidelity:
        bound = fidelity["reference_accuracy"] - tol.max_accuracy_drop
        checks.append(("accuracy", fidelity["accuracy"], bound, True))
    if "max_abs_error" in fidelity:
        scale = max(fidelity.get("reference_abs_max", 1.0), 1e-3)
        limit = tol.max_abs_error if tol.max_abs_error is not None else DEFAULT_RELATIVE_ERROR * scale
        checks.append(("max_abs_error", fidelity["max_abs_error"], limit, False))
    return checks


def judge(fidelity: dict[str, float], tolerance: Tolerance | None = None) -> tuple[bool, str | None]:
    """(accepted, reason). The reason names every number that failed and its bound."""
    tol = tolerance or Tolerance()
    failed = []
    for name, value, bound, higher_is_better in _checks(fidelity, tol):
        ok = bool(value >= bound if higher_is_better else value <= bound)  # NaN fails
        if not ok:
            sign = "<" if higher_is_better else ">"
            failed.append(f"{name} {value:.4f} {sign} {bound:.4f}")
    if failed:
        return False, "outside tolerance: " + "; ".join(failed)
    return True, None


def run_onnx(onnx_path: Path, batches: Sequence[dict[str, np.ndarray]], *, threads: int = 0) -> np.ndarray:
    """The first output of an ONNX model over ``batches``, concatenated (labels keep their dtype)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        outputs = [
            np.asarray(session.run(None, {k: v for k, v in b.items() if k in names})[0]) for b in batches
        ]
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidArgument / RuntimeException
        raise BenchmarkError(
            f"ONNX Runtime could not run {onnx_path} on the eval set: {str(exc).splitlines()[0][:300]}",
            hint="the variant or its eval inputs do not fit the model's inputs; drop that technique "
            "or give inputs the model accepts",
        ) from exc
    if any(o.ndim == 0 for o in outputs):
        raise BenchmarkError(
            f"{onnx_path} returns a scalar: fidelity is compared per sample",
            hint="export the model with a batch axis on its first output",
        )
    joined = np.concatenate(outputs)
    return joined if joined.dtype.kind in "biu" else joined.astype(np.float32)


def measure_fidelity(
    onnx_path: Path,
    task: str,
    batches: Sequence[dict[str, np.ndarray]],
    reference: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    tolerance: Tolerance | None = None,
) -> dict[str, Any]:
    """Fidelity numbers plus the verdict for the ONNX file at ``onnx_path``."""
    numbers = task_fidelity(task, reference, run_onnx(onnx_path, batches), labels)
    accepted, reason = judge(numbers, tolerance)
    return {"task": task, **numbers, "accepted": accepted, "rejection_reason": reason}
