"""The registry's repository, on SQLite and on the real PostgreSQL server `make test` starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect

from thrifty.errors import NotFoundError
from thrifty.registry import BenchmarkResult, Registry

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _version(registry: Registry, name: str = "m", sha: str = "a" * 64) -> Any:
    artifact = registry.upsert_artifact(sha, 10, f"/store/{sha}")
    return registry.add_model_version(
        name, sha256=sha, artifact=artifact, format="onnx", size_bytes=10, source_path="/x.onnx"
    )


def test_migrations_create_every_table(registry: Registry) -> None:
    tables = set(inspect(registry.engine).get_table_names())
    expected = {
        "models", "model_versions", "artifacts", "variants", "benchmark_results",
        "price_quotes", "plans", "deployments", "deployment_events", "request_log", "alembic_version",
    }  # fmt: skip
    assert expected <= tables


def test_reopening_a_migrated_database_keeps_data(database_url: str) -> None:
    first = Registry.from_url(database_url)
    _version(first)
    first.engine.dispose()
    from thrifty.registry.db import forget_upgrades

    forget_upgrades()  # force the migration step to run again on the same database
    second = Registry.from_url(database_url)
    assert [m.name for m in second.list_models()] == ["m"]
    second.engine.dispose()


def test_same_bytes_same_version_new_bytes_next_version(registry: Registry) -> None:
    v1, created1 = _version(registry, sha="a" * 64)
    again, created_again = _version(registry, sha="a" * 64)
    v2, created2 = _version(registry, sha="b" * 64)
    assert (v1.version, created1) == (1, True)
    assert (again.id, created_again) == (v1.id, False)
    assert (v2.version, created2) == (2, True)
    assert registry.get_model_version("m").version == 2
    assert registry.get_model_version("m", 1).sha256 == "a" * 64
    assert [v.version for v in registry.get_model("m").versions] == [1, 2]


def test_unknown_model_error_lists_known_names(registry: Registry) -> None:
    _version(registry, name="minilm")
    with pytest.raises(NotFoundError) as err:
        registry.get_model("bert")
    assert "bert" in str(err.value) and "minilm" in str(err.value)


def test_timestamps_come_back_timezone_aware(registry: Registry) -> None:
    version, _ = _version(registry)
    assert version.created_at.tzinfo is not None
    assert registry.get_model_version("m").created_at.utcoffset() == timedelta(0)


def test_variants_are_idempotent_by_name_and_benchmarks_attach(registry: Registry) -> None:
    version, _ = _version(registry)
    artifact = registry.upsert_artifact("c" * 64, 5, "/store/c")
    variant, created = registry.add_variant(version.id, "int8", technique="quantize", artifact=artifact)
    same, created_again = registry.add_variant(version.id, "int8", technique="quantize", artifact=artifact)
    assert created and not created_again and same.id == variant.id
    registry.update_variant(variant.id, status="rejected", rejection_reason="cosine 0.96 < 0.99")
    assert registry.get_variant(variant.id).status == "rejected"
    row = BenchmarkResult(
        variant_id=variant.id, batch_size=1, threads=1, latency_ms_p50=1.0, latency_ms_p95=2.0,
        latency_ms_p99=3.0, throughput_rps=500.0, hardware={"vcpus": 2},
    )  # fmt: skip
    registry.add_benchmark_results([row])
    assert [r.throughput_rps for r in registry.list_benchmark_results([variant.id])] == [500.0]


def _quote(usd: float, at: datetime, region: str = "us-east-1") -> dict[str, Any]:
    return {
        "provider": "aws", "region": region, "instance_type": "m5.large", "price_model": "on_demand",
        "usd_per_hour": usd, "observed_at": at, "source": "test",
    }  # fmt: skip


def test_price_history_is_appended_and_read_as_of_a_time(registry: Registry) -> None:
    registry.append_price_quotes([_quote(0.096, T0), _quote(0.090, T0 + timedelta(days=2))])
    registry.append_price_quotes([_quote(0.2, T0, region="eu-west-1")])
    assert registry.count_price_quotes() == 3
    newest = {q.region: q.usd_per_hour for q in registry.latest_price_quotes()}
    assert newest == {"us-east-1": 0.090, "eu-west-1": 0.2}
    as_of_day1 = {q.region: q.usd_per_hour for q in registry.latest_price_quotes(T0 + timedelta(days=1))}
    assert as_of_day1 == {"us-east-1": 0.096, "eu-west-1": 0.2}
    history = registry.price_history("aws", "us-east-1", "m5.large", "on_demand")
    assert [q.usd_per_hour for q in history] == [0.096, 0.090]


def test_deployment_upsert_never_makes_a_second_row(registry: Registry) -> None:
    first, created = registry.upsert_deployment("minilm", provider="local", state="pending")
    second, created_again = registry.upsert_deployment("minilm", provider="local", state="live", replicas=1)
    assert created and not created_again and first.id == second.id
    assert [(d.name, d.state, d.replicas) for d in registry.list_deployments()] == [("minilm", "live", 1)]
    registry.add_event("minilm", "deployed", reason="plan 1", usd_saved_per_month=12.5)
    assert [(e.kind, e.usd_saved_per_month) for e in registry.list_events("minilm")] == [("deployed", 12.5)]
    assert registry.delete_deployment("minilm") is True
    assert registry.find_deployment("minilm") is None
    assert registry.delete_deployment("minilm") is False


def test_plans_and_request_log_round_trip(registry: Registry) -> None:
    plan = registry.add_plan(slo={"p95_ms": 50}, record={"candidates": [1, 2]}, usd_per_month=10.0)
    assert registry.get_plan(plan.id).record == {"candidates": [1, 2]}
    registry.log_requests(
        [
            {"model_name": "m", "at": T0 + timedelta(seconds=i), "latency_ms": 3.0, "cold": i == 0}
            for i in range(3)
        ]
    )
    rows = registry.requests_since("m", T0 + timedelta(seconds=1))
    assert [r.cold for r in rows] == [False, False]


def test_request_times_since_match_the_rows_oldest_first_and_utc(registry: Registry) -> None:
    at = [T0 + timedelta(seconds=s) for s in (5, 1, 3, 0)]
    registry.log_requests([{"model_name": "m", "at": t, "latency_ms": 2.0} for t in at])
    registry.log_requests([{"model_name": "other", "at": T0 + timedelta(seconds=2), "latency_ms": 2.0}])
    times = registry.request_times_since("m", T0 + timedelta(seconds=1))
    assert times == [r.at for r in registry.requests_since("m", T0 + timedelta(seconds=1))]
    assert times == sorted(t for t in at if t >= T0 + timedelta(seconds=1))
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)


def test_naive_datetimes_are_refused(registry: Registry) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        registry.append_price_quotes([_quote(1.0, datetime(2026, 1, 1))])
    assert registry.count_price_quotes() == 0
