"""PyTorch formats, loaded without unrestricted pickle.

TorchScript and torch.export archives are loaded by their own loaders; a state dict only through
``torch.load(weights_only=True)``. A whole pickled ``nn.Module`` (``torch.save(model)``) or any
other pickle is refused: unpickling it can run arbitrary code.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thrifty.errors import CorruptModelError, UnsafeModelError
from thrifty.ingest.types import ModelInfo

PICKLE_HINT = (
    "send the weights as a state dict (torch.save(model.state_dict(), path)), safetensors, "
    "TorchScript (torch.jit.save), a torch.export archive (.pt2) or ONNX instead"
)


def zip_kind(path: Path) -> str:
    """torchscript | torch_export | skops | torch_zip, from the archive's member names."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorruptModelError(
            f"{path} is a damaged zip archive ({exc})", hint="the file may be truncated; save it again"
        ) from exc
    if bad is not None:
        raise CorruptModelError(f"{path} has a corrupt member {bad!r}", hint="save the model again")
    if "schema.json" in names:
        return "skops"
    tails = {name.split("/", 1)[-1] for name in names}
    if "archive_format" in tails or "serialized_exported_program.json" in tails:
        return "torch_export"
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return "torchscript"
    return "torch_zip"


def inspect_torchscript(path: Path) -> ModelInfo:
    import torch

    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated for new code, yet users still hold such files: accept them
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        raise CorruptModelError(f"{path} is not a loadable TorchScript archive: {exc}") from exc
    args = [a for a in module.forward.schema.arguments if a.name != "self"]
    return ModelInfo(
        format="torchscript",
        parameter_count=sum(int(p.numel()) for p in module.parameters()),
        signature={
            "inputs": [{"name": a.name, "dtype": str(a.type), "shape": []} for a in args],
            "outputs": [],
        },
    )


def inspect_torch_export(path: Path) -> ModelInfo:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # the loader raises many types for a damaged archive
        raise CorruptModelError(f"{path} is not a loadable torch.export archive: {exc}") from exc
    inputs = []
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            inputs.append(
                {
                    "name": node.name,
                    "dtype": str(getattr(val, "dtype", "?")).removeprefix("torch."),
                    "shape": [int(d) if str(d).isdigit() else str(d) for d in getattr(val, "shape", [])],
                }
            )
    params = sum(int(t.numel()) for t in program.state_dict.values())
    return ModelInfo(
        format="torch_export", parameter_count=params, signature={"inputs": inputs, "outputs": []}
    )


def inspect_state_dict(path: Path) -> ModelInfo:
    import torch

    try:
        with warnings.catch_warnings():
            # the restricted unpickler warns about protocols > 2; it still refuses unsafe globals
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as exc:
        raise UnsafeModelError(
            f"{path} holds a pickle with Python objects beyond tensors "
            "(e.g. a whole nn.Module saved with torch.save(model)); unpickling it could run any code",
            hint=_pickle_hint(path),
        ) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CorruptModelError(
            f"{path} is not a readable PyTorch file: {exc}", hint="save it again"
        ) from exc
    tensors = _flatten_tensors(state)
    if not tensors:
        raise UnsafeModelError(
            f"{path} loaded, but holds no tensors (found {type(state).__name__})", hint=PICKLE_HINT
        )
    return ModelInfo(
        format="state_dict",
        parameter_count=sum(int(t.numel()) for t in tensors.values()),
        details={
            "tensors": len(tensors),
            "note": "a state dict has no architecture: export TorchScript, .pt2 or ONNX to optimize it",
        },
    )


def _pickle_hint(path: Path) -> str:
    """The fix for a refused pickle: skops / native formats when it holds a classic model."""
    from thrifty.ingest.inspect_classic import SKLEARN_HINT

    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if any(marker in head for marker in (b"sklearn", b"xgboost", b"lightgbm")):
        return SKLEARN_HINT
    return PICKLE_HINT


def _is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _flatten_tensors(obj: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix or "tensor": obj}
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten_tensors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}
