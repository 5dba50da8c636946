"""Tiny ONNX graphs of any input dtype, rank and dynamic dims, built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DTYPES = ("float32", "float16", "int64", "int32", "bool")
VOCAB = 50


def make_graph_model(
    path: Path, dtype: str, dims: list[int | str | None], *, embedding: bool = False, matmul: bool = False
) -> Path:
    """Input ``x`` of ``dtype`` and ``dims`` (int fixed, str named dynamic, None unnamed dynamic).

    Integer inputs with ``embedding`` index a [VOCAB, 4] table (Gather); everything else is cast to
    float and, with ``matmul`` and a fixed last dim, multiplied by a [last, 3] weight, else scaled.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    shape = [d if d is not None else "" for d in dims]
    x = helper.make_tensor_value_info("x", elem, [d if d != "" else None for d in shape])
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    out_dims: list[int | str | None] = list(dims)
    if embedding and dtype.startswith("int"):
        inits.append(numpy_helper.from_array(rng.standard_normal((VOCAB, 4)).astype(np.float32), "table"))
        nodes.append(helper.make_node("Gather", ["table", "x"], ["y"]))
        out_dims = [*dims, 4]
    else:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        if matmul and isinstance(dims[-1], int):
            inits.append(numpy_helper.from_array(rng.standard_normal((dims[-1], 3)).astype(np.float32), "w"))
            nodes.append(helper.make_node("MatMul", ["xf", "w"], ["y"]))
            out_dims = [*dims[:-1], 3]
        else:
            inits.append(numpy_helper.from_array(np.array(1.5, np.float32), "scale"))
            nodes.append(helper.make_node("Mul", ["xf", "scale"], ["y"]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path
