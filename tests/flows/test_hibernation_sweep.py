"""The hibernation-sweep flow on the real local provider (registry state and events) with a
synthetic request log. The gateway daemon is not started: the in-test target block builds
``LocalProvider(start_gateway=False)``, so hibernate/wake change the registry and the events the
gateway would act on, without model processes (the serving tests cover those)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block

from blocks.hibernation import HibernationOverride, HibernationPolicy
from flows.hibernation_sweep import HibernationSweepParams, hibernation_sweep
from thrifty.policies.sweep import policy_state


class NoGatewayLocalTarget(Block):
    """Test target: the real local provider, gateway left stopped."""

    _block_type_slug = "test-local-no-gateway"

    def build_provider(self) -> Any:
        from thrifty.providers.local import LocalProvider

        return LocalProvider(start_gateway=False)


@pytest.fixture
def registry(thrifty_home: Path) -> Iterator[Any]:
    from thrifty import runtime

    yield runtime.registry()


def hourly(last_ago_min: float, hours: int = 48) -> list[datetime]:
    newest = datetime.now(UTC) - timedelta(minutes=last_ago_min)
    return [newest - timedelta(hours=h) for h in range(hours)]


def deploy(registry: Any, name: str, state: str, requests: list[datetime]) -> None:
    registry.upsert_deployment(
        name,
        provider="local",
        region="local",
        state=state,
        replicas=1 if state == "running" else 0,
        spec={"name": name, "replicas": 1},
    )
    registry.log_requests(
        {"model_name": name, "at": at, "latency_ms": 5.0, "cold": False, "status_code": 200}
        for at in requests
    )


@pytest.fixture
def targets() -> dict[str, str]:
    NoGatewayLocalTarget().save("sweep", overwrite=True)
    HibernationPolicy(min_warm_min=0.0, overrides={"pinned": HibernationOverride(mode="always-warm")}).save(
        "sweep-test", overwrite=True
    )
    return {"local": "test-local-no-gateway/sweep"}


def test_sweep_hibernates_prewarms_and_records_why(registry: Any, targets: dict[str, str]) -> None:
    deploy(registry, "due-soon", "hibernated", hourly(57))  # the hourly request is due in ~3 min
    deploy(registry, "idle", "running", hourly(20))  # 40 min until the next one
    deploy(
        registry, "busy", "running", [datetime.now(UTC) - timedelta(seconds=s) for s in range(0, 3600, 30)]
    )
    deploy(registry, "pinned", "hibernated", [])

    params = HibernationSweepParams(policy_block="sweep-test", targets=targets)
    result = hibernation_sweep(params)

    assert {k: v["do"] for k, v in result.items()} == {
        "due-soon": "wake",
        "idle": "hibernate",
        "busy": "none",
        "pinned": "wake",
    }
    assert result["due-soon"]["action"] == "pre-warm"
    assert result["due-soon"]["policy"] == "thrifty-cost-aware"
    assert result["idle"]["next_prewarm_at"] is not None  # hibernated until just before the next one
    states = {d.name: d.state for d in registry.list_deployments()}
    assert states == {"due-soon": "running", "idle": "hibernated", "busy": "running", "pinned": "running"}
    kinds = [e.kind for e in registry.list_events("idle")]
    assert kinds == ["hibernate", "policy-decision"]  # the provider's own event, then the decision
    decision = registry.list_events("due-soon")[-1]
    assert decision.kind == "policy-decision" and decision.reason.startswith("pre-warm: idle 57 min")
    assert decision.details["warm_until"] is not None
    state = policy_state(registry.list_events("idle"))  # what `thrifty status` shows
    assert state is not None and state["do"] == "hibernate" and state["next_prewarm_at"] is not None


def test_second_sweep_changes_nothing_and_repeats_no_event(registry: Any, targets: dict[str, str]) -> None:
    deploy(registry, "idle", "running", hourly(20))
    params = HibernationSweepParams(policy_block="sweep-test", targets=targets)
    hibernation_sweep(params)
    again = hibernation_sweep(params)
    assert again["idle"]["do"] == "none" and "stays hibernated" in again["idle"]["reason"]
    assert again["idle"]["recorded"] is True  # "stays hibernated" differs from "hibernate"
    events = len(registry.list_events("idle"))
    third = hibernation_sweep(params)
    assert third["idle"]["recorded"] is False  # the same decision again: no new event
    assert len(registry.list_events("idle")) == events
    assert registry.get_deployment("idle").state == "hibernated"


def test_defaults_hold_a_fresh_deployment_and_dry_run_only_records(
    registry: Any, targets: dict[str, str]
) -> None:
    deploy(registry, "idle", "running", hourly(30))
    # no saved block of that name: built-in defaults, which keep a just-changed deployment 10 min
    held = hibernation_sweep(HibernationSweepParams(policy_block="no-such-block", targets=targets))
    assert held["idle"]["do"] == "none" and held["idle"]["reason"].startswith("held warm")
    dry = hibernation_sweep(HibernationSweepParams(policy_block="sweep-test", targets=targets, dry_run=True))
    assert dry["idle"]["do"] == "hibernate" and "result" not in dry["idle"]
    assert registry.get_deployment("idle").state == "running"  # dry run: decided and recorded only
    assert [e.kind for e in registry.list_events("idle")] == ["policy-decision", "policy-decision"]
