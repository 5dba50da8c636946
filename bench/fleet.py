"""A fleet in a registry, fast: deployments with real plan records, events and a request log.

``bench/api.py`` seeds 1,000 deployments and 1M request-log rows with it; the dashboard's browser
tests seed a handful. Plans are real decision records (the planner on the reference price table for
an fp32 original and an int8 variant), so a plan page explains a real decision. Rows go in with one
executemany per table (SQLAlchemy Core), not one ORM object each.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from thrifty.registry import Registry
from thrifty.registry.models import Deployment, DeploymentEvent, Plan

PROVIDERS = ("local", "aws", "gcp", "azure")
#: spread of the traffic rates the plans are made for (req/s); each gives one real decision record
RATES_RPS = (2.0, 20.0, 200.0)


def _perf() -> Any:
    from thrifty.planner.types import VariantPerf, perf_frame

    common = {"batch_size": 1, "threads": 2, "status": "accepted", "peak_memory_mib": 300.0}
    return perf_frame(
        [
            VariantPerf(
                "fp32",
                latency_ms_p50=18.0,
                latency_ms_p95=22.0,
                throughput_rps=50.0,
                technique="export",
                fidelity_score=1.0,
                is_baseline=True,
                **common,
            ),
            VariantPerf(
                "int8",
                latency_ms_p50=8.0,
                latency_ms_p95=10.0,
                throughput_rps=120.0,
                technique="dynamic_int8",
                fidelity_score=0.995,
                **common,
            ),
        ]
    )


def plan_records(model: str) -> list[dict[str, Any]]:
    """Real decision records, one per traffic rate in ``RATES_RPS``."""
    from thrifty.catalog.reference import reference_table
    from thrifty.planner.decision import plan
    from thrifty.planner.types import Slo, Traffic

    table, perf = reference_table(), _perf()
    return [
        plan(
            perf, table, Slo(latency_ms_p95=50.0), Traffic(rps=rps), model=model, catalog_origin="reference"
        ).to_dict()
        for rps in RATES_RPS
    ]


def seed_model(registry: Registry, name: str) -> tuple[int, list[int]]:
    """A model version with two variants (fp32, int8); returns (version id, variant ids)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    artifact = registry.upsert_artifact(digest, 90_000_000, f"file:///fleet/{digest}")
    version, _ = registry.add_model_version(
        name,
        sha256=digest,
        artifact=artifact,
        format="onnx",
        size_bytes=90_000_000,
        source_path=f"/fleet/{name}.onnx",
        signature={"inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]},
    )
    ids = []
    for variant_name, technique in (("fp32", "export"), ("int8", "dynamic_int8")):
        blob = hashlib.sha256(f"{name}/{variant_name}".encode()).hexdigest()
        variant, _ = registry.add_variant(
            version.id,
            variant_name,
            technique=technique,
            status="accepted",
            artifact=registry.upsert_artifact(blob, 23_000_000, f"file:///fleet/{blob}"),
            fidelity={"cosine_mean": 1.0 if variant_name == "fp32" else 0.995},
        )
        ids.append(variant.id)
    return version.id, ids


def seed_fleet(
    registry: Registry, deployments: int, requests: int, *, now: datetime | None = None, seed: int = 0
) -> list[str]:
    """``deployments`` running deployments with plans and events, and ``requests`` log rows over 24 h."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    version_id, variant_ids = seed_model(registry, "fleet-model")
    records = plan_records("fleet-model")
    names = [f"fleet-{i:04d}" for i in range(deployments)]
    with registry.session() as s:
        s.execute(
            insert(Plan), [_plan_row(records[i % len(records)], version_id, now) for i in range(deployments)]
        )
        plan_ids = list(s.scalars(select(Plan.id).order_by(Plan.id.desc()).limit(deployments)))[::-1]
        s.execute(
            insert(Deployment),
            [_deployment_row(n, i, plan_ids[i], variant_ids[1], now) for i, n in enumerate(names)],
        )
        ids = dict(s.execute(select(Deployment.name, Deployment.id).where(Deployment.name.in_(names))).all())
        s.execute(insert(DeploymentEvent), [e for n in names for e in _events(ids[n], n, rng, now)])
    _log_requests(registry, names, requests, rng, now)
    return names


def _plan_row(record: dict[str, Any], version_id: int, now: datetime) -> dict[str, Any]:
    chosen = record["chosen"]
    return {
        "model_version_id": version_id,
        "slo": record["slo"],
        "chosen": chosen,
        "record": record,
        "usd_per_month": chosen["usd_per_month"],
        "usd_per_million_requests": chosen.get("usd_per_million_requests"),
        "created_at": now - timedelta(days=3),
    } | Plan.summary_columns(record)


def _deployment_row(name: str, i: int, plan_id: int, variant_id: int, now: datetime) -> dict[str, Any]:
    port = 9000 + i
    return {
        "name": name,
        "provider": PROVIDERS[i % len(PROVIDERS)],
        "region": "us-east-1",
        "variant_id": variant_id,
        "plan_id": plan_id,
        "state": "running",
        "replicas": 1 + i % 3,
        "endpoint_url": f"http://127.0.0.1:{port}/v2/models/{name}",
        "spec": {},
        "resources": {"replicas": [{"pid": 10_000 + i, "port": port}]},
        "created_at": now - timedelta(days=3),
        "updated_at": now - timedelta(days=1),
    }


def _events(deployment_id: int, name: str, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    def event(kind: str, reason: str, hours: float, saved: float | None = None) -> dict[str, Any]:
        at = now - timedelta(hours=hours)
        return {
            "deployment_id": deployment_id,
            "at": at,
            "kind": kind,
            "reason": reason,
            "usd_saved_per_month": saved,
            "details": {},
        }

    out = [event("deployed", f"{name} deployed", 72), event("live", "inference smoke test passed", 71.9)]
    if rng.random() < 0.1:
        out.append(
            event(
                "cheaper-plan",
                "gcp e2-standard-2 us-central1 (spot) is cheaper",
                5,
                round(rng.uniform(5, 80), 2),
            )
        )
    if rng.random() < 0.05:
        out.append(event("rebalance.replace", "spot replica interrupted → replaced: on-demand", 2))
    return out


def _log_requests(
    registry: Registry, names: list[str], total: int, rng: random.Random, now: datetime
) -> None:
    """``total`` rows spread over the last 24 h, one executemany per 100,000 rows; 1 % are errors."""
    batch: list[dict[str, Any]] = []
    for i in range(total):
        # a tenth of each deployment's requests in the last 5 min (by its own row count, not i: with
        # i % 10, a deployment whose index is a multiple of 10 got every request in those 5 min)
        age_s = rng.random() * 86_400 if (i // len(names)) % 10 else rng.random() * 300
        batch.append(
            {
                "model_name": names[i % len(names)],
                "at": now - timedelta(seconds=age_s),
                "latency_ms": rng.lognormvariate(2.5, 0.4),
                "cold": False,
                "status_code": 500 if i % 100 == 0 else 200,
            }
        )
        if len(batch) == 100_000:
            registry.log_requests_bulk(batch)
            batch = []
    registry.log_requests_bulk(batch)
