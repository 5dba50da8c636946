"""Validate an ONNX model (onnx.checker, external data kept inside its folder) and describe it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thrifty.errors import CorruptModelError
from thrifty.ingest.safety import check_relative_reference
from thrifty.ingest.types import ModelInfo


def inspect_onnx(path: Path) -> ModelInfo:
    """``path`` is an .onnx file, possibly with external data files beside it."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise CorruptModelError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})",
            hint="the file may be truncated; export it again or check the copy",
        ) from exc
    if not model.graph.node or model.ir_version == 0:
        raise CorruptModelError(
            f"{path} parsed as ONNX but has no graph",
            hint="the file may be truncated or not an ONNX model; export it again",
        )
    _check_external_data(model, path.parent)
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise CorruptModelError(
            f"{path} fails onnx.checker: {str(exc).splitlines()[0]}",
            hint="fix the exporter settings (opset, shapes) and export again",
        ) from exc
    return ModelInfo(
        format="onnx",
        parameter_count=_parameter_count(model),
        opset=_default_opset(model),
        signature={
            "inputs": [_value_info(v) for v in _real_inputs(model)],
            "outputs": [_value_info(v) for v in model.graph.output],
        },
        details={
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            **({"vocab_sizes": vocab} if (vocab := vocab_sizes(model)) else {}),
        },
    )


def _tensors(model: Any) -> Iterator[Any]:
    def from_graph(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from from_graph(attr.g)
                for sub in attr.graphs:
                    yield from from_graph(sub)

    yield from from_graph(model.graph)


def _check_external_data(model: Any, folder: Path) -> None:
    import onnx

    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        check_relative_reference(folder, location, f"ONNX tensor {tensor.name!r}")


def _parameter_count(model: Any) -> int:
    total = 0
    for init in model.graph.initializer:
        count = 1
        for dim in init.dims:
            count *= dim
        total += count
    return total


def _default_opset(model: Any) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _real_inputs(model: Any) -> list[Any]:
    initializers = {init.name for init in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def _value_info(value: Any) -> dict[str, Any]:
    import onnx

    tensor = value.type.tensor_type
    shape: list[int | str] = []
    for dim in tensor.shape.dim:
        shape.append(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?"))
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
    return {"name": value.name, "dtype": dtype, "shape": shape}


#: ops a token id passes through unchanged on its way to the embedding lookup
_PASS_THROUGH = {"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand"}
INTEGER_TYPES = {6, 7, 12, 13}  # onnx.TensorProto INT32, INT64, UINT32, UINT64


def vocab_sizes(model: Any) -> dict[str, int]:
    """Integer inputs that index an embedding table → the table's row count (the vocabulary).

    Follows each integer input through shape-only ops to a ``Gather`` whose data is an
    initializer; the first dim of that initializer bounds the valid ids.
    """
    tables = {init.name: int(init.dims[0]) for init in model.graph.initializer if init.dims}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: dict[str, int] = {}
    for value in _real_inputs(model):
        if value.type.tensor_type.elem_type in INTEGER_TYPES:
            rows = _embedding_rows(value.name, consumers, tables)
            if rows:
                found[value.name] = min(rows)
    return found


def _embedding_rows(name: str, consumers: dict[str, list[Any]], tables: dict[str, int]) -> list[int]:
    rows: list[int] = []
    frontier, seen = [name], {name}
    for _ in range(6):  # a few shape-only hops at most
        following: list[str] = []
        for tensor in frontier:
            for node in consumers.get(tensor, []):
                if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == tensor:
                    if node.input[0] in tables:
                        rows.append(tables[node.input[0]])
                elif node.op_type in _PASS_THROUGH and node.input[0] == tensor:
                    following += [o for o in node.output if o not in seen]
        seen.update(following)
        frontier = following
    return rows
