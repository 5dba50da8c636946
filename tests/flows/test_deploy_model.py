"""The deploy-model flow end to end on a tiny ONNX classifier (seconds, not minutes).

A real run: ingest → export/graph variants → benchmark + fidelity → plan on the reference prices →
deploy on the local provider (a real gateway daemon and replica process) → smoke test over HTTP →
live. The plan ranks the clouds; with no target block saved the chosen variant is served here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from tests.conftest import free_port

IN_FEATURES = 32
CLASSES = 10
#: the smallest run that still tries a quantizer: fp32 export, graph-optimized, dynamic int8
TECHNIQUES = ["export", "graph", "dynamic_int8", "fp16"]  # fp16: every listed technique is built


def build_classifier(path: Path, seed: int = 0) -> Path:
    """A two-layer MLP classifier (Gemm → Relu → Gemm) with a dynamic batch dimension."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    hidden = 64
    weights = {
        "w1": rng.standard_normal((IN_FEATURES, hidden)).astype(np.float32) / 4,
        "b1": rng.standard_normal(hidden).astype(np.float32),
        "w2": rng.standard_normal((hidden, CLASSES)).astype(np.float32) / 4,
        "b2": rng.standard_normal(CLASSES).astype(np.float32),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["hr"]),
            helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"]),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN_FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def original_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def infer(endpoint_url: str, x: np.ndarray) -> np.ndarray:
    """One Open Inference Protocol v2 request, as any OIP client sends it."""
    import httpx

    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    response = httpx.post(f"{endpoint_url}/infer", json=body, timeout=30.0)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["name"] == "logits"
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return build_classifier(tmp_path / "tiny.onnx")


@pytest.fixture
def deploy_home(thrifty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh THRIFTY_HOME with the gateway on a free port; the gateway daemon is stopped after."""
    from thrifty import runtime
    from thrifty.serving.daemon import stop_daemon
    from thrifty.settings import get_settings

    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
    monkeypatch.delenv("THRIFTY_API_TOKENS", raising=False)
    runtime.reset()
    try:
        yield thrifty_home
    finally:
        stop_daemon(get_settings())


def run_flow(model: Path, **overrides: Any) -> tuple[Any, UUID]:
    """Run deploy-model in this process; returns (final state, flow run id)."""
    from flows.deploy_model import DeployModelParams, deploy_model

    params = DeployModelParams(
        model=str(model), name="tiny", p95_ms=1000.0, rps=5.0, techniques=TECHNIQUES, bench_runs=5
    )
    params = params.model_copy(update=overrides)
    state = deploy_model(params, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return state, flow_run_id


def task_states(flow_run_id: UUID) -> dict[str, list[str]]:
    """Task name → the names of its runs' final states (e.g. Completed, Cached)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    states: dict[str, list[str]] = {}
    for run in runs:
        states.setdefault(_task_name(run.name), []).append(run.state.name if run.state else "?")
    return states


def _task_name(run_name: str) -> str:
    return run_name.rsplit("-", 1)[0]  # "run-benchmark-218" → "run-benchmark"


def artifacts_of(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in found if a.key}


def assert_curl_works(curl: str, endpoint_url: str) -> None:
    """The summary's ready-to-paste curl: the URL and body it sends, sent with httpx."""
    import httpx

    url = curl.split(" -X POST ", 1)[1].split(" ", 1)[0]
    body = json.loads(curl.split(" -d '", 1)[1].removesuffix("'"))
    assert url == f"{endpoint_url}/infer"
    assert [(i["name"], i["shape"], i["datatype"]) for i in body["inputs"]] == [
        ("x", [1, IN_FEATURES], "FP32")
    ]
    response = httpx.post(url, json=body, timeout=30.0)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1, CLASSES]


def live_processes(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        alive.append(pid)
    return alive


@pytest.mark.slow
def test_deploys_serves_and_reruns_from_cache(tiny_model: Path, deploy_home: Path) -> None:
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider

    state, run_id = run_flow(tiny_model)
    assert state.is_completed(), state.message
    summary = state.result()
    registry = runtime.registry()

    # (a) one live deployment, answering a real OIP request like the original model
    row = registry.get_deployment("tiny")
    assert (row.state, row.provider) == ("running", "local")
    assert summary["endpoint_url"] == row.endpoint_url
    x = np.random.default_rng(7).standard_normal((4, IN_FEATURES)).astype(np.float32)
    # the plan may choose the fp16 variant (accepted, as small): fp16 precision, not bit-exactness
    np.testing.assert_allclose(
        infer(row.endpoint_url, x), original_logits(tiny_model, x), rtol=1e-2, atol=1e-2
    )
    assert summary["smoke_test"]["ok"] and summary["smoke_test"]["value"] >= 0.99

    # the artifacts a person reads in the UI, and the baseline in the summary
    artifacts = artifacts_of(run_id)
    assert {"tiny-summary", "tiny-variants", "tiny-offers", "tiny-endpoint"} <= set(artifacts)
    markdown = str(artifacts["tiny-summary"].data)
    assert "naive baseline (fp32, on-demand m5.xlarge us-east-1)" in markdown
    assert "cheaper than the naive baseline" in markdown
    assert artifacts["tiny-endpoint"].data == f"[tiny endpoint]({row.endpoint_url})"
    assert summary["baseline"]["instance_type"] == "m5.xlarge"
    assert_curl_works(summary["curl"], row.endpoint_url)

    # (d) no credentials: the plan chose a cloud, the variant is served locally, and both are said
    assert summary["chosen"]["provider"] in {"aws", "gcp", "azure"}
    assert summary["target"]["provider"] == "local"
    assert f"the plan chose {summary['chosen']['provider']}" in summary["target"]["reason"]
    assert "serving the chosen variant on this machine" in markdown

    # (b) the same inputs again: same variants, cached measurements, still one deployment
    variant_ids = sorted(v.id for v in registry.list_variants(registry.get_model_version("tiny").id))
    assert len(variant_ids) == len(TECHNIQUES)  # the int8 quantizer and the fp16 converter made one each
    bench_rows = len(registry.list_benchmark_results(variant_ids))
    state2, run_id2 = run_flow(tiny_model)
    assert state2.is_completed(), state2.message
    assert sorted(v.id for v in registry.list_variants(registry.get_model_version("tiny").id)) == variant_ids
    assert len(registry.list_benchmark_results(variant_ids)) == bench_rows
    states = task_states(run_id2)
    assert states["run-benchmark"] == ["Cached"] * len(variant_ids)
    assert states["measure-fidelity"] == ["Cached"] * len(variant_ids)
    assert [d.name for d in registry.list_deployments()] == ["tiny"]
    replicas = [r for r in LocalProvider(start_gateway=False).list_managed() if r.kind == "replica"]
    assert len(replicas) == 1
    np.testing.assert_allclose(
        infer(row.endpoint_url, x), original_logits(tiny_model, x), rtol=1e-2, atol=1e-2
    )


@pytest.mark.slow
def test_failed_smoke_test_rolls_the_deployment_back(
    tiny_model: Path, deploy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import thrifty.verify
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider

    real = thrifty.verify.reference_outputs

    def wrong_reference(model_path: Path, tokenizer_path: Path | None) -> tuple[Any, Any]:
        feeds, outputs = real(model_path, tokenizer_path)
        return feeds, {k: -v for k, v in outputs.items()}  # the served answer now points the other way

    monkeypatch.setattr(thrifty.verify, "reference_outputs", wrong_reference)
    seen: list[int] = []
    real_deploy = LocalProvider.deploy

    def recording_deploy(self: LocalProvider, spec: Any) -> Any:
        status = real_deploy(self, spec)
        seen.extend(int(r.id) for r in status.resources)
        return status

    monkeypatch.setattr(LocalProvider, "deploy", recording_deploy)
    state, run_id = run_flow(tiny_model)

    assert state.is_failed()
    with pytest.raises(Exception, match=r"smoke test of 'tiny' failed: cosine_min -1\.0000 < 0\.99"):
        state.result()
    assert seen, "the deploy step started a replica before the smoke test"
    registry = runtime.registry()
    assert registry.find_deployment("tiny") is None
    assert [r for r in LocalProvider(start_gateway=False).list_managed() if r.kind == "replica"] == []
    assert live_processes(seen) == []
    assert "mark-live" not in task_states(run_id)


@pytest.mark.slow
def test_named_cloud_without_its_block_is_a_clear_error(tiny_model: Path, deploy_home: Path) -> None:
    from thrifty import runtime
    from thrifty.errors import ConfigError

    state, _ = run_flow(tiny_model, target="aws")

    assert state.is_failed()
    with pytest.raises(ConfigError, match=r"needs the Prefect block 'thrifty-aws-target/default'") as info:
        state.result()
    assert "target=local" in (info.value.hint or "")
    assert runtime.registry().find_deployment("tiny") is None
