"""The target descriptors are the one list: a target registered here, and nowhere else, shows up in
the CLI's choices, the block lookup, the planner's provider filter, the price schema and refresh,
the capacity model's family rule and the rebalance drain budget. Routing is by (cloud, kind), and
``require`` refuses a spec of the wrong kind with one message."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from typer.testing import CliRunner

from thrifty.errors import CapacityError, ConfigError, UnsupportedFeatureError
from thrifty.providers.base import DeploymentStatus, DeploySpec, Feature, PriceModel, require
from thrifty.targets import (
    TargetDescriptor,
    TargetKind,
    clouds,
    offer_kind,
    registered,
    target,
    target_for_block,
    target_names,
    targets_for,
)

FETCHED: list[str] = []


class DummyProvider:
    """A target that deploys nothing; enough to be found and asked."""

    name: ClassVar[str] = "dummy"
    unsupported: ClassVar[Mapping[Feature, str]] = {}

    def __init__(self, **_: Any) -> None:
        self.deployed: list[DeploySpec] = []

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: Any, dry_run: bool) -> DummyProvider:
        return cls()

    def dry_run_document(self, spec: DeploySpec) -> Any:
        return {"dummy": spec.instance_type}

    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        require(self, spec)
        self.deployed.append(spec)
        return DeploymentStatus(spec.name, self.name, "running", spec.replicas, spec.replicas)


def fetch_dummy_prices(settings: Any) -> pd.DataFrame:
    FETCHED.append("dummycloud")
    return pd.DataFrame()


DUMMY = TargetDescriptor(
    name="dummy",
    kind=TargetKind.VM,
    clouds=("dummycloud",),
    provider=f"{__name__}:DummyProvider",
    block_slug="thrifty-dummy-target",
    interruption_notice_s=77,
    family=lambda instance_type: instance_type[:3],
    price_fetcher=f"{__name__}:fetch_dummy_prices",
)


@pytest.fixture
def dummy() -> Iterator[TargetDescriptor]:
    with registered(DUMMY) as descriptor:
        yield descriptor


def spec(price_model: PriceModel = PriceModel.ON_DEMAND, instance_type: str = "dum.large") -> DeploySpec:
    return DeploySpec(
        name="m",
        model_name="m",
        variant_id=1,
        artifact_sha256="ab" * 32,
        region="dummy-1",
        instance_type=instance_type,
        price_model=price_model,
    )


def test_a_registered_target_reaches_every_layer(dummy: TargetDescriptor, thrifty_home: Path) -> None:
    from thrifty.catalog.refresh import default_fetchers, parse_providers
    from thrifty.cli import app
    from thrifty.planner.capacity import _family
    from thrifty.planner.types import Slo
    from thrifty.policies.rebalance import DeploymentView, decide
    from thrifty.settings import get_settings

    # the CLI: `thrifty targets` lists it and `thrifty deploy --target dummy --dry-run` builds it
    listed = CliRunner().invoke(app, ["targets", "--json"])
    assert listed.exit_code == 0 and "dummy" in {t["name"] for t in json.loads(listed.stdout)}
    assert "dummy" in target_names(include_local=False)
    # the block lookup (what the flows load), by name and by block reference
    assert targets_for("dummycloud", TargetKind.VM) == [dummy]
    assert dummy.default_block == "thrifty-dummy-target/default"
    assert target_for_block("thrifty-dummy-target/prod") is dummy
    # the planner's provider filter and the price refresh
    assert "dummycloud" in clouds() and Slo(latency_ms_p95=50, providers=("dummycloud",))
    with pytest.raises(ConfigError, match="dummycloud"):
        Slo(latency_ms_p95=50, providers=("mars",))
    assert parse_providers("dummycloud") == ("dummycloud",)
    default_fetchers(get_settings())["dummycloud"]()
    assert FETCHED[-1] == "dummycloud"
    # the capacity model's family rule and the rebalance drain budget
    families = _family(pd.DataFrame({"provider": ["dummycloud"], "instance_type": ["dumxyz.9"]}))
    assert list(families) == ["dum"]
    view = DeploymentView("m", "dummy", "dummy-1", (PriceModel.SPOT,), ())
    assert [a.drain_budget_s for a in decide(view, now=datetime.now(UTC))] == [77]


def test_the_dummy_target_is_gone_after_the_test() -> None:
    assert "dummy" not in target_names() and "dummycloud" not in clouds()
    with pytest.raises(ConfigError, match="use one of: local, aws"):
        target("dummy")


def test_cli_deploy_dry_run_builds_the_registered_target(dummy: TargetDescriptor) -> None:
    from thrifty.providers.commands import build_provider, dry_run_document

    provider = build_provider("dummy", {}, dry_run=True)
    assert isinstance(provider, DummyProvider)
    assert json.loads(dry_run_document(provider, spec())) == {"dummy": "dum.large"}


@pytest.mark.parametrize(
    ("price_model", "kind"),
    [("on_demand", TargetKind.VM), ("spot", TargetKind.VM), ("serverless", TargetKind.SERVERLESS)],
)
def test_offers_route_by_cloud_and_kind(price_model: str, kind: TargetKind) -> None:
    assert offer_kind(price_model) is kind
    # a serverless AWS offer goes to Lambda, an instance offer to EC2
    expected = ["aws"] if kind is TargetKind.VM else ["aws-lambda"]
    assert [d.name for d in targets_for("aws", kind)] == expected


def test_require_refuses_a_spec_of_the_wrong_kind_with_one_message(dummy: TargetDescriptor) -> None:
    provider = DummyProvider()
    with pytest.raises(
        UnsupportedFeatureError, match=r"target 'dummy' \(vm\) cannot run .*serverless target"
    ):
        provider.deploy(spec(PriceModel.SERVERLESS, "lambda-2048mb"))
    assert provider.deployed == []


def test_deploying_a_plan_falls_through_an_unsupported_kind(dummy: TargetDescriptor) -> None:
    from thrifty.providers.specs import deploy_first_available

    provider = DummyProvider()
    candidates = [spec(PriceModel.SERVERLESS, "lambda-2048mb"), spec(PriceModel.SPOT, "dum.large")]
    deployed, status, skipped = deploy_first_available(candidates, lambda _s: provider)
    assert deployed.instance_type == "dum.large" and status.state == "running"
    assert len(skipped) == 1 and "needs a serverless target" in skipped[0]
    with pytest.raises(CapacityError, match="1 tried"):
        deploy_first_available(candidates[:1], lambda _s: provider)


def test_local_target_serves_one_on_demand_replica_of_any_candidate() -> None:
    from thrifty.providers.specs import for_target

    cloud = spec(PriceModel.SPOT).with_changes(replicas=7, on_demand_floor=2)
    local = for_target(cloud, target("local"))
    assert (local.region, local.instance_type, local.price_model, local.replicas) == (
        "local",
        "local",
        PriceModel.ON_DEMAND,
        1,
    )
    assert for_target(cloud, target("aws")) == cloud


def test_deploy_spec_round_trips_through_json_and_ignores_registry_extras() -> None:
    from thrifty.providers.base import spec_from_dict, spec_to_dict

    original = spec(PriceModel.SPOT).with_changes(serving={"threads": 2}, plan_id=3)
    stored = spec_to_dict(original) | {"runtime": {"model_path": "/x.onnx"}}
    assert json.loads(json.dumps(stored))["price_model"] == "spot"
    assert spec_from_dict(stored) == original


def test_a_descriptor_must_say_where_its_configuration_lives() -> None:
    with pytest.raises(ValueError, match="needs a block_slug"):
        TargetDescriptor(name="x", kind=TargetKind.VM, clouds=("aws",), provider="m:C")
    twin = TargetDescriptor(**{**vars(DUMMY), "interruption_notice_s": 1})
    with pytest.raises(ConfigError, match="registered twice"), registered(DUMMY), registered(twin):
        pytest.fail("a second, different descriptor under the same name was accepted")
