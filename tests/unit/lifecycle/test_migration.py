"""Safe migration inside a rebalance pass: a cheaper plan elsewhere moves the deployment as a new
revision (moto AWS → replayed GCP); a cloud without a saved target block and a plan that chose
serverless are recorded as events, and the pass goes on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.lifecycle.test_clouds import StateCheck, _live_ids
from thrifty.lifecycle import Lifecycle, ServedAs
from thrifty.policies.rebalance import RebalancePolicy
from thrifty.providers.base import PriceModel, record_deployment
from thrifty.providers.rebalance import Executor, rebalance_deployment

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
NAME = "minilm"

AWS_OFFER = {"provider": "aws", "region": "us-east-1", "instance_type": "c7g.large",
             "price_model": "on_demand", "usd_per_hour": 0.10, "on_demand_usd_per_hour": 0.10}  # fmt: skip
GCP_OFFER = {"provider": "gcp", "region": "us-central1", "instance_type": "e2-standard-2",
             "price_model": "on_demand", "usd_per_hour": 0.03}  # fmt: skip
SERVERLESS_OFFER = {"provider": "aws", "region": "us-east-1", "instance_type": "lambda-2048",
                    "price_model": "serverless", "usd_per_hour": None}  # fmt: skip


def _deploy_on_aws(registry: Any, aws: Any, make_spec: Any) -> None:
    version_id = registry.get_variant(1).model_version_id
    plan = registry.add_plan(model_version_id=version_id, chosen=AWS_OFFER, record={"chosen": AWS_OFFER})
    spec = make_spec(price_model=PriceModel.ON_DEMAND, replicas=1, variant_id=1, plan_id=plan.id)
    status = aws.deploy(spec)
    record_deployment(registry, status, spec, {"target": "aws"})


def _newer_plan(registry: Any, chosen: dict[str, Any]) -> None:
    version_id = registry.get_variant(1).model_version_id
    registry.add_plan(model_version_id=version_id, chosen=chosen, record={"chosen": chosen})


def _pass(registry: Any, providers: dict[str, Any], targets: dict[str, str]) -> list[Any]:
    row = registry.get_deployment(NAME)
    lifecycle = Lifecycle(registry, providers.__getitem__, StateCheck(providers))
    executor = Executor(
        provider=ServedAs(providers[row.resources["target"]], NAME, row.spec["name"]),  # type: ignore[arg-type]
        health_check=lambda replica: replica.state == "running",
        migrate=lambda action: lifecycle.migrate(action, targets),
    )
    policy = RebalancePolicy(min_saving_usd_per_month=1.0)
    return rebalance_deployment(executor, registry, NAME, region=row.region, policy=policy, now=NOW)


@pytest.mark.replayed
def test_a_cheaper_plan_on_gcp_moves_the_deployment_as_a_new_revision(
    registry: Any, providers: dict[str, Any], make_spec: Any
) -> None:
    aws, gcp = providers["aws"], providers["gcp"]
    _deploy_on_aws(registry, aws, make_spec)
    _newer_plan(registry, GCP_OFFER)
    outcomes = _pass(registry, {"aws": aws, "gcp": gcp}, {"gcp": "gcp"})
    assert [(o.action.kind, o.status) for o in outcomes] == [("migrate", "done")]
    assert _live_ids(aws, NAME) == set() and gcp.status("minilm-r2").replicas_ready == 1
    row = registry.get_deployment(NAME)
    assert (row.provider, row.region) == ("gcp", "us-central1")
    event = next(e for e in registry.list_events(NAME) if e.kind == "rebalance.migrate")
    assert event.details["done"] and event.details["from"] == ["aws", "us-east-1"]
    # the next pass sees the move (dwell): nothing more to do
    assert _pass(registry, {"aws": aws, "gcp": gcp}, {"gcp": "gcp"}) == []


def test_a_cloud_without_a_target_block_is_recorded_and_changes_nothing(
    registry: Any, providers: dict[str, Any], make_spec: Any
) -> None:
    aws = providers["aws"]
    _deploy_on_aws(registry, aws, make_spec)
    before = _live_ids(aws, NAME)
    _newer_plan(registry, GCP_OFFER)
    outcomes = _pass(registry, {"aws": aws}, targets={})
    assert [(o.action.kind, o.status) for o in outcomes] == [("migrate", "failed")]
    assert "no saved target block for gcp" in outcomes[0].detail
    assert _live_ids(aws, NAME) == before and registry.list_revisions(NAME) == []
    assert [e.details["status"] for e in registry.list_events(NAME)] == ["failed"]


def test_a_newer_plan_that_chose_serverless_is_recorded_not_migrated(
    registry: Any, providers: dict[str, Any], make_spec: Any
) -> None:
    aws = providers["aws"]
    _deploy_on_aws(registry, aws, make_spec)
    before = _live_ids(aws, NAME)
    _newer_plan(registry, SERVERLESS_OFFER | {"region": "us-west-2"})
    assert _pass(registry, {"aws": aws}, targets={"aws": "aws"}) == []
    assert _pass(registry, {"aws": aws}, targets={"aws": "aws"}) == []  # recorded once
    events = registry.list_events(NAME)
    assert [(e.kind, e.details["status"]) for e in events] == [("rebalance.migrate", "skipped")]
    assert "chose serverless" in events[0].reason and _live_ids(aws, NAME) == before
