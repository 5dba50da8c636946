"""Flow ``optimize-model`` end to end on a real (small) trained model: an MLP fitted here on
scikit-learn's digits, written as ONNX, ingested, optimized, benchmarked and judged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey


def _latest_artifact(key: str) -> Any:
    with get_client(sync_client=True) as client:  # closed here: no sockets left for the GC
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1
        )
    assert found, f"no artifact {key!r}"
    return found[0]


def _digits_mlp_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=1000, tol=1e-3, random_state=0)
    mlp.fit(data.data / 16.0, data.target)
    inits = [
        numpy_helper.from_array(np.asarray(w, np.float32), name)
        for w, name in zip([*mlp.coefs_, *mlp.intercepts_], ["W1", "W2", "B1", "B2"], strict=True)
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "B1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
        helper.make_node("Add", ["h3", "B2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "digits-mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.slow
def test_optimize_model_flow_makes_benchmarks_and_judges_variants(thrifty_home: Path, tmp_path: Path) -> None:
    from flows.optimize import OptimizeParams, optimize_model
    from thrifty import runtime
    from thrifty.ingest import ingest_model

    model = _digits_mlp_onnx(tmp_path / "digits-mlp.onnx")
    ingest_model(model, "digits-mlp", registry=runtime.registry(), store=runtime.store())
    params = OptimizeParams(
        model="digits-mlp",
        techniques=["export", "graph", "dynamic_int8", "static_int8", "fp16", "search"],
        batch_sizes=[1, 8],
        seq_lens=[None],
        runs=5,
    )
    rows = optimize_model(params)
    names = {r["variant"] for r in rows}
    assert names == {"onnx-fp32", "onnx-graph", "int8-dynamic", "int8-static-qdq", "fp16", "int8-search"}
    assert all(r["status"] in {"accepted", "rejected"} for r in rows)
    assert all(r["latency_ms_p50"] and r["load_ms"] for r in rows)
    assert all("top1_agreement" in r["fidelity"] for r in rows)
    assert sum(r["status"] == "accepted" for r in rows) >= 3

    registry = runtime.registry()
    version = registry.get_model_version("digits-mlp")
    results = registry.list_benchmark_results([r["id"] for r in rows])
    assert {(r.batch_size, r.threads) for r in results} == {(1, 1), (8, 1)}

    table = json.loads(str(_latest_artifact("optimize-digits-mlp").data))
    assert {row["variant"] for row in table} == names
    assert {"size MB", "p50 ms", "p95 ms", "req/s", "load ms", "fidelity", "accepted?"} <= set(table[0])

    # a second run reuses every variant (same names, same ids) instead of making new ones
    again = optimize_model(
        params.model_copy(
            update={"techniques": ["export", "graph", "dynamic_int8"], "parallel_benchmarks": True}
        )
    )
    assert {r["id"] for r in again} == {r["id"] for r in rows}
    assert len(registry.list_variants(version.id)) == 6
