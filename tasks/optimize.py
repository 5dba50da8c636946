"""Prefect tasks for the optimize stage: one task per technique, each calling one library function.

Every technique goes through ``thrifty.optimize.pipeline.make_variant`` (idempotent: the same
version and technique give the same variant). ``prune_model`` and ``distill_model`` also take what
the user supplies: the module's code (``file.py:factory``) and a data file (``.npz``).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from thrifty import runtime
from thrifty.optimize import pipeline
from thrifty.optimize.config import Tolerance, for_cpu, for_gpu
from thrifty.optimize.user_inputs import UserInputs
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
    user: UserInputs | None = None,
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
        user=user,
    )
    return VariantRef(
        variant_id=variant.id,
        name=variant.name,
        technique=variant.technique,
        parent_variant_id=variant.parent_variant_id,
    )


@task(name="export-onnx", cache_policy=NO_CACHE)
def export_onnx(
    model_version_id: int, target: str = "cpu", module: str | None = None, data: str | None = None
) -> VariantRef:
    """ONNX export of the model version (an ONNX original is registered as is); a state dict
    needs the module's code (``module``) and a data file for its example input."""
    return _make(model_version_id, "export", None, target, None, UserInputs(module, data))


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
    model_version_id: int, parent: VariantRef, module: str | None, data: str | None, target: str = "cpu"
) -> VariantRef:
    """Structured pruning of the user's module (+ a short fine-tune on the data's labels)."""
    return _make(model_version_id, "prune", parent, target, None, UserInputs(module, data))


@task(name="distill-model", cache_policy=NO_CACHE)
def distill_model(
    model_version_id: int, parent: VariantRef, module: str | None, data: str | None, target: str = "cpu"
) -> VariantRef:
    """Knowledge distillation of the user's module into a pruned copy of it, on the data."""
    return _make(model_version_id, "distill", parent, target, None, UserInputs(module, data))
