"""Requests lost during a migration, measured through the front door (issue 13).

A deployment moves between two targets (AWS us-east-1 → the ``west`` target block, us-west-2, both
on moto's server) by a rebalance ``migrate`` action, while a separate process sends steady
traffic through the front door. Each instance's replica is a real inference server on loopback;
the old one stops when its instance is deleted. Every request must be answered (0 lost), the
front door must move to the new replica well inside the drain, and the old one must get nothing
after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench._migration import Drill
from tests.unit.serving.conftest import build_mlp
from thrifty.policies.rebalance import Offer
from thrifty.providers.base import PriceModel

WEST = Offer("aws", "us-west-2", "c7g.large", PriceModel.ON_DEMAND, 0.05)


@pytest.mark.slow
def test_a_migration_under_steady_traffic_loses_no_request_and_switches_inside_the_drain(
    thrifty_home: Path, tmp_path: Path, providers: dict[str, Any], make_spec: Any
) -> None:
    from thrifty import runtime

    registry = runtime.registry()
    drill = Drill(
        registry, providers, thrifty_home, build_mlp(tmp_path / "mlp.onnx"),
        rps=25.0, drain_s=4.0, reconcile_interval_s=0.5, before_s=3.0, after_s=2.0,
    )  # fmt: skip
    spec = make_spec(price_model=PriceModel.ON_DEMAND, replicas=1, variant_id=0)
    result = drill.run(spec, WEST)

    assert result["outcome"].status == "done" and result["outcome"].revision == 2
    assert result["requests"] > 100 and result["lost"] == 0, result["statuses"]
    assert result["old_answered"] > 0 and result["new_answered"] > 0  # traffic really moved
    # the front door re-reads the registry every 0.5 s: it moved long before the old VM was deleted
    assert result["switch_s"] is not None and result["switch_s"] < drill.drain_s
    assert result["old_last_s"] < drill.drain_s
    row = registry.get_deployment(drill.name)
    assert (row.provider, row.region) == ("aws", "us-west-2")
    assert not [r for r in providers["aws"].replicas(drill.name) if r.live]  # the old one deleted
    assert [r.live for r in providers["thrifty-aws-target/west"].replicas(f"{drill.name}-r2")] == [True]


def test_the_front_door_follows_a_deployment_that_migrated_to_another_cloud(thrifty_home: Path) -> None:
    """A wake or a scale after a cross-cloud move must go to the new cloud's provider."""
    import asyncio

    from thrifty import runtime
    from thrifty.serving.gateway import Gateway, GatewayConfig
    from thrifty.serving.remote import RemoteTargets

    registry = runtime.registry()
    registry.upsert_deployment(
        "mover", provider="aws", region="us-east-1", state="running", replicas=1,
        endpoint_url="http://198.51.100.7:8080", resources={"endpoints": ["http://198.51.100.7:8080"]},
    )  # fmt: skip
    gateway = Gateway(GatewayConfig(warm_pool_size=0), registry, remote=RemoteTargets(provider_for=dict))

    async def moved() -> tuple[str, list[str]]:
        await gateway.reconcile()
        registry.upsert_deployment(
            "mover", provider="gcp", region="us-central1",
            endpoint_url="http://198.51.100.9:8080", resources={"endpoints": ["http://198.51.100.9:8080"]},
        )  # fmt: skip
        await gateway.reconcile()
        state = gateway.models["mover"]
        return state.provider, [r.url for r in state.replicas]

    assert asyncio.run(moved()) == ("gcp", ["http://198.51.100.9:8080"])
