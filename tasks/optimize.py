"""Prefect tasks for the optimize stage: one task per technique, each calling one library function.

Registered-model techniques go through ``thrifty.optimize.pipeline.make_variant`` (idempotent:
the same version and technique give the same variant). ``prune_model`` and ``distill_model`` take a
PyTorch module and data and return the ONNX path, like their library functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from thrifty import runtime
from thrifty.optimize import distill as _distill
from thrifty.optimize import pipeline
from thrifty.optimize import prune as _prune
from thrifty.optimize.config import DistillConfig, PruneConfig, Tolerance, for_cpu, for_gpu
from thrifty.settings import get_settings


class VariantRef(BaseModel):
    """What a technique task hands to the next one (small and serializable)."""

    variant_id: int = Field(..., description="registry id of the variant")
    name: str = Field(..., description="variant name, e.g. int8-dynamic")
    technique: str = Field(..., description="technique that made it")
    parent_variant_id: int | None = Field(None, description="the variant it was made from")


def _make(
    model_version_id: int,
    technique: str,
    parent: VariantRef | None,
    target: str,
    tolerance: dict[str, float] | None,
) -> VariantRef:
    registry, store = runtime.registry(), runtime.store()
    version = registry.get_model_version_by_id(model_version_id)
    variant = pipeline.make_variant(
        version,
        technique,
        registry=registry,
        store=store,
        work_dir=pipeline.work_dir_for(version, get_settings().home),
        parent=registry.get_variant(parent.variant_id) if parent else None,
        preset=for_gpu() if target == "gpu" else for_cpu(),
        tolerance=Tolerance(**(tolerance or {})),
    )
    return VariantRef(
        variant_id=variant.id,
        name=variant.name,
        technique=variant.technique,
        parent_variant_id=variant.parent_variant_id,
    )


@task(name="export-onnx", cache_policy=NO_CACHE)
def export_onnx(model_version_id: int, target: str = "cpu") -> VariantRef:
    """ONNX export of the model version (an ONNX original is registered as is)."""
    return _make(model_version_id, "export", None, target, None)


@task(name="optimize-graph", cache_policy=NO_CACHE)
def optimize_graph(model_version_id: int, parent: VariantRef, target: str = "cpu") -> VariantRef:
    """Offline graph optimization (Optimum's ORTOptimizer for transformers)."""
    return _make(model_version_id, "graph", parent, target, None)


@task(name="quantize-model", cache_policy=NO_CACHE)
def quantize_model(
    model_version_id: int,
    technique: str,
    parent: VariantRef,
    target: str = "cpu",
    tolerance: dict[str, float] | None = None,
) -> VariantRef:
    """int8: ``dynamic_int8``, ``blockwise_int8``, ``static_int8`` or the accuracy-aware ``search``."""
    return _make(model_version_id, technique, parent, target, tolerance)


@task(name="convert-fp16", cache_policy=NO_CACHE)
def convert_fp16(model_version_id: int, parent: VariantRef, target: str = "cpu") -> VariantRef:
    """fp16 weights and compute (on CPU only the size halves; the config records that)."""
    return _make(model_version_id, "fp16", parent, target, None)


@task(name="prune-model", cache_policy=NO_CACHE)
def prune_model(
    module: Any,
    example_input: Any,
    out_dir: str,
    config: PruneConfig | None = None,
    train_data: tuple[Any, Any] | None = None,
) -> str:
    """Structured pruning (+ brief fine-tune), exported to ONNX; returns the file path."""
    return str(_prune.prune_model(module, example_input, Path(out_dir), config, train_data=train_data))


@task(name="distill-model", cache_policy=NO_CACHE)
def distill_model(
    teacher: Any,
    student: Any,
    inputs: Any,
    out_dir: str,
    labels: Any = None,
    config: DistillConfig | None = None,
) -> str:
    """Knowledge distillation into ``student``, exported to ONNX; returns the file path."""
    return str(_distill.distill_model(teacher, student, inputs, Path(out_dir), config, labels=labels))
