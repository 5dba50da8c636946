"""A small fleet in a real registry on a simulated clock: what the rollup, ledger and monitor tests share.

``minilm-prod`` was planned on an on-demand aws m5.large (the plan saw $0.096/h), deployed with two
replicas at ``T0``, scaled to one at ``T0 + 30 min``; the price history says $0.096/h until
``T0 + 45 min`` and $0.12/h after. Its model version has a 40 MB original (moved to the warm tier) and
a 10 MB int8 variant (hot).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
NAME = "minilm-prod"
PRICE_BEFORE, PRICE_AFTER = 0.096, 0.12
PRICE_CHANGE = T0 + timedelta(minutes=45)
SCALE_IN = T0 + timedelta(minutes=30)
ORIGINAL_BYTES, INT8_BYTES = 40_000_000, 10_000_000


def quote(at: datetime, usd_per_hour: float, price_model: str = "on_demand") -> dict[str, Any]:
    return {
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": "m5.large",
        "price_model": price_model,
        "usd_per_hour": usd_per_hour,
        "observed_at": at,
        "source": "test",
        "vcpus": 2.0,
        "memory_gib": 8.0,
    }


def chosen(price_model: str = "on_demand", usd_per_hour: float = PRICE_BEFORE) -> dict[str, Any]:
    return {
        "variant": "int8",
        "provider": "aws",
        "region": "us-east-1",
        "zone": "",
        "instance_type": "m5.large",
        "price_model": price_model,
        "usd_per_hour": usd_per_hour,
        "usd_per_month": usd_per_hour * 730,
        "usd_per_million_requests": 1.5,
        "memory_gib": 8.0,
    }


def make_fleet(registry: Any, price_model: str = "on_demand") -> None:
    """Register the model, its variants, the plan, the deployment and its history."""
    original = registry.upsert_artifact("a" * 64, ORIGINAL_BYTES, "file:///a")
    int8 = registry.upsert_artifact("b" * 64, INT8_BYTES, "file:///b")
    version, _ = registry.add_model_version(
        "minilm",
        sha256="a" * 64,
        artifact=original,
        format="onnx",
        size_bytes=ORIGINAL_BYTES,
        source_path="/m",
    )
    variant, _ = registry.add_variant(version.id, "int8", technique="int8", artifact=int8, status="accepted")
    registry.set_artifact_tier("a" * 64, "warm")
    baseline = chosen() | {
        "instance_type": "m5.xlarge",
        "usd_per_month": 140.16,
        "usd_per_million_requests": 5.4,
    }
    plan = registry.add_plan(
        model_version_id=version.id,
        chosen=chosen(price_model),
        record={"chosen": chosen(price_model), "baseline": baseline, "model": "minilm"},
        usd_per_month=chosen(price_model)["usd_per_month"],
        usd_per_million_requests=1.5,
    )
    registry.upsert_deployment(
        NAME,
        provider="local",
        region="local",
        variant_id=variant.id,
        plan_id=plan.id,
        state="running",
        replicas=1,
        spec={"replicas": 2, "price_model": price_model},
        created_at=T0,
        updated_at=T0,
    )
    registry.add_event(NAME, "deploy", "2 replica(s) of artifact bbbbbbbbbbbb", at=T0)
    registry.add_event(NAME, "scale", "2 → 1 replica(s)", at=SCALE_IN)
    registry.append_price_quotes(
        [quote(T0 - timedelta(days=1), PRICE_BEFORE), quote(PRICE_CHANGE, PRICE_AFTER)]
    )


def requests(
    at: datetime, latencies_ms: list[float], *, status: int = 200, cold: bool = False
) -> list[dict[str, Any]]:
    """Request-log rows, one per latency, spread over the second after ``at``."""
    return [
        {
            "model_name": NAME,
            "at": at + timedelta(seconds=i / max(len(latencies_ms), 1)),
            "latency_ms": ms,
            "cold": cold,
            "status_code": status,
        }
        for i, ms in enumerate(latencies_ms)
    ]
