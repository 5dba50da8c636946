"""A registry as a user has it after a run: MiniLM-like variants with benchmarks, a plan, local
deployments with a request log. Built through the registry's own methods (no mocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

#: names as long as the real ones, so a table that cuts names shows it
VARIANTS = (
    ("onnx-fp32", "export", 91_000_000, 16.8, "accepted", None, {"cosine_mean": 1.0, "nn_agreement": 1.0}),
    ("int8-static-qdq", "static_int8", 58_600_000, 8.9, "rejected", "outside tolerance: cosine_mean 0.9410 < 0.99",
     {"cosine_mean": 0.941, "nn_agreement": 0.725}),
    ("int8-search-blockwise", "search", 23_400_000, 13.3, "accepted", None, {"cosine_mean": 0.999, "nn_agreement": 0.95}),
)  # fmt: skip


@pytest.fixture
def seeded(thrifty_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Ids of the seeded rows; the gateway port points at a free port (no gateway answers)."""
    from thrifty import runtime
    from thrifty.registry.models import BenchmarkResult

    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
    runtime.get_settings.cache_clear()
    registry = runtime.registry()
    art = registry.upsert_artifact("a" * 64, 91_000_000, "file:///m")
    version, _ = registry.add_model_version(
        "minilm", sha256="a" * 64, artifact=art, format="onnx", size_bytes=91_000_000, source_path="/m"
    )
    ids = {}
    for i, (name, technique, size, p50, status, reason, fidelity) in enumerate(VARIANTS):
        blob = registry.upsert_artifact(f"{i}" * 64, size, f"file:///{name}", kind="variant")
        variant, _ = registry.add_variant(
            version.id, name, technique=technique, artifact=blob, status=status,
            rejection_reason=reason, fidelity=fidelity,
        )  # fmt: skip
        ids[name] = variant.id
        registry.add_benchmark_results(
            [BenchmarkResult(variant_id=variant.id, batch_size=1, threads=1, seq_len=128, latency_ms_p50=p50,
                             latency_ms_p95=p50 * 1.2, latency_ms_p99=p50 * 1.5, throughput_rps=1000 / p50,
                             load_ms=300.0, peak_memory_mib=400.0)]
        )  # fmt: skip
    return {"version_id": version.id, "variants": ids}


@pytest.fixture
def deployed(seeded: dict[str, Any]) -> dict[str, Any]:
    """Two local deployments (one running with 20 logged requests, one hibernated) and a plan."""
    from thrifty import runtime
    from thrifty.planner.service import plan_model
    from thrifty.planner.types import Slo, Traffic
    from thrifty.settings import get_settings

    registry = runtime.registry()
    planned = plan_model(
        registry, get_settings(), "minilm", Slo(latency_ms_p95=50.0, spot_ok=True), Traffic(rps=20.0),
        recorded=True,
    )  # fmt: skip
    registry.upsert_deployment(
        "minilm-int8-search-blockwise", provider="local", region="local", state="running", replicas=1,
        plan_id=planned.plan_id, endpoint_url="http://127.0.0.1:8470/v2/models/minilm-int8-search-blockwise",
        variant_id=seeded["variants"]["int8-search-blockwise"],
    )  # fmt: skip
    registry.upsert_deployment("minilm-onnx-fp32", provider="local", state="hibernated", replicas=0)
    now = datetime.now(UTC)
    registry.log_requests(
        {"model_name": "minilm-int8-search-blockwise", "at": now - timedelta(seconds=i), "latency_ms": float(i + 1)}
        for i in range(20)
    )  # fmt: skip
    registry.add_event("minilm-int8-search-blockwise", "live", reason="smoke test passed")
    return seeded | {"plan_id": planned.plan_id, "usd_per_month": planned.decision.chosen["usd_per_month"]}
