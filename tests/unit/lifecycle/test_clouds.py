"""Blue-green updates, rollback, delete and migration on AWS (moto's real server) and on the
replayed GCP double: the new revision is started beside the live one under ``NAME-rN``, checked,
traffic moves in the registry, and only then is the old revision deleted.

No VM runs here, so the check is the one the deploy-model flow uses with ``verify="state"``: the
staged revision's own provider reports every desired replica running, at the endpoint handed to
the check. A check that fails is injected to prove the live revision is left untouched.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field
from typing import Any

import pytest

from thrifty.errors import ServingError
from thrifty.lifecycle import Lifecycle, record_first_revision
from thrifty.providers.aws import AwsProvider
from thrifty.providers.base import DeploymentStatus, DeploySpec, PriceModel, record_deployment
from thrifty.providers.boot import script_of
from thrifty.registry import Registry

NAME = "minilm"


@dataclass
class StateCheck:
    """``Verify`` by the staged revision's provider state; ``fail`` names revisions that must fail."""

    providers: dict[str, Any]
    fail: set[str] = field(default_factory=set)
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, spec: DeploySpec, reported: DeploymentStatus) -> str:
        endpoint_url = reported.endpoint_url or ""
        self.seen.append((spec.name, spec.served_name, endpoint_url))
        provider = next(p for p in self.providers.values() if _owns(p, spec.name))
        status = provider.status(spec.name)
        if spec.name in self.fail or status.replicas_ready < spec.replicas or status.state != "running":
            raise ServingError(f"smoke test of {spec.name} failed: {status.state}, answered 500")
        if endpoint_url not in status.details.get("endpoints", [endpoint_url]):
            raise ServingError(f"{endpoint_url} is not an endpoint of {spec.name}")
        return f"{status.replicas_ready} replica(s) running"


def _owns(provider: Any, name: str) -> bool:
    return bool(provider.status(name).replicas_ready)


def _first_deploy(registry: Registry, aws: AwsProvider, spec: DeploySpec) -> None:
    status = aws.deploy(spec)
    record_deployment(registry, status, spec, {"target": "aws", **status.details})
    record_first_revision(registry, spec, "aws", "aws", state="live")


def _live_ids(provider: Any, name: str) -> set[str]:
    return {r.id for r in provider.replicas(name) if r.live}


def _lifecycle(registry: Registry, providers: dict[str, Any], check: StateCheck) -> Lifecycle:
    return Lifecycle(registry, providers.__getitem__, check)


def test_update_starts_beside_verifies_switches_then_deletes_the_old_on_aws(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    aws = providers["aws"]
    spec = make_spec(price_model=PriceModel.ON_DEMAND, variant_id=1)
    _first_deploy(registry, aws, spec)
    old_ids = _live_ids(aws, NAME)
    check = StateCheck({"aws": aws})
    outcome = _lifecycle(registry, providers, check).update(NAME, spec.with_changes(variant_id=2), "aws")
    assert (outcome.status, outcome.previous, outcome.revision) == ("done", 1, 2)
    assert check.seen[0][:2] == ("minilm-r2", NAME)  # staged beside, answering as the deployment
    assert _live_ids(aws, NAME) == set()  # the old revision drained and deleted
    new_ids = _live_ids(aws, "minilm-r2")
    assert len(new_ids) == 2 and not new_ids & old_ids
    row = registry.get_deployment(NAME)
    assert row.variant_id == 2 and row.spec["name"] == "minilm-r2"
    assert row.endpoint_url in aws.status("minilm-r2").details["endpoints"]
    assert [(r.number, r.state) for r in registry.list_revisions(NAME)] == [(1, "retired"), (2, "live")]
    assert _boot_env(aws, "thrifty-minilm-r2")["THRIFTY_MODEL_NAME"] == NAME  # URLs keep the name


def _boot_env(aws: AwsProvider, template: str) -> dict[str, str]:
    """The ``-e`` variables of the container the launch template's user data runs."""
    data = aws.ec2.describe_launch_template_versions(LaunchTemplateName=template, Versions=["$Default"])
    user_data = base64.b64decode(data["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"])
    script = script_of(user_data.decode())
    run = next(line for line in script.splitlines() if line.startswith("$RT run") and "-watch" not in line)
    argv = shlex.split(run)
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-e")


def test_a_failed_update_leaves_the_live_revision_untouched_on_aws(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    aws = providers["aws"]
    spec = make_spec(price_model=PriceModel.ON_DEMAND, variant_id=1)
    _first_deploy(registry, aws, spec)
    before = _live_ids(aws, NAME)
    row_before = registry.get_deployment(NAME)
    check = StateCheck({"aws": aws}, fail={"minilm-r2"})
    with pytest.raises(ServingError, match="answered 500"):
        _lifecycle(registry, providers, check).update(NAME, spec.with_changes(variant_id=2), "aws")
    assert _live_ids(aws, NAME) == before  # nothing of the live revision was deleted
    assert _live_ids(aws, "minilm-r2") == set()  # what the failed revision started is gone
    assert aws._find_template("minilm-r2") is None
    row = registry.get_deployment(NAME)
    assert (row.variant_id, row.endpoint_url) == (row_before.variant_id, row_before.endpoint_url)
    assert [(r.number, r.state) for r in registry.list_revisions(NAME)] == [(1, "live"), (2, "failed")]


def test_cross_region_move_rollback_and_delete_on_moto(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    east, west = providers["aws"], providers["thrifty-aws-target/west"]
    spec = make_spec(price_model=PriceModel.ON_DEMAND, replicas=1, variant_id=1)
    _first_deploy(registry, east, spec)
    lifecycle = _lifecycle(registry, providers, StateCheck({"east": east, "west": west}))
    moved = lifecycle.update(
        NAME, spec.with_changes(region="us-west-2"), "thrifty-aws-target/west", verb="migrate"
    )
    assert moved.status == "done" and moved.revision == 2
    assert _live_ids(east, NAME) == set() and len(_live_ids(west, "minilm-r2")) == 1
    assert registry.get_deployment(NAME).region == "us-west-2"
    back = lifecycle.rollback(NAME)
    assert (back.verb, back.revision, back.previous) == ("rollback", 3, 2)
    assert len(_live_ids(east, "minilm-r3")) == 1 and _live_ids(west, "minilm-r2") == set()
    assert registry.get_deployment(NAME).region == "us-east-1"
    assert [r.state for r in registry.list_revisions(NAME)] == ["retired", "retired", "live"]
    lifecycle.delete(NAME)
    assert _live_ids(east, "minilm-r3") == set() and registry.get_deployment(NAME).state == "deleted"
    assert [r.state for r in registry.list_revisions(NAME)] == ["deleted"] * 3


@pytest.mark.replayed
def test_cross_cloud_move_from_aws_to_replayed_gcp(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    aws, gcp, gce = providers["aws"], providers["gcp"], providers["fake"]
    spec = make_spec(price_model=PriceModel.ON_DEMAND, variant_id=1)
    _first_deploy(registry, aws, spec)
    lifecycle = _lifecycle(registry, providers, StateCheck({"aws": aws, "gcp": gcp}))
    target_spec = spec.with_changes(region="us-central1", instance_type="e2-standard-2")
    outcome = lifecycle.update(NAME, target_spec, "gcp", verb="migrate")
    assert outcome.status == "done"
    assert sorted(gce.instances["us-central1-a"]) == ["thrifty-minilm-r2-0", "thrifty-minilm-r2-1"]
    assert _live_ids(aws, NAME) == set()
    row = registry.get_deployment(NAME)
    assert (row.provider, row.region, row.resources["target"]) == ("gcp", "us-central1", "gcp")
    assert gcp.status("minilm-r2").state == "running"


@pytest.mark.replayed
def test_a_gcp_update_replaces_every_vm_not_only_missing_slots_replayed(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    gcp, gce = providers["gcp"], providers["fake"]
    spec = make_spec(
        region="us-central1", instance_type="e2-standard-2", price_model=PriceModel.ON_DEMAND, variant_id=1
    )
    status = gcp.deploy(spec)
    record_deployment(registry, status, spec, {"target": "gcp"})
    lifecycle = _lifecycle(registry, providers, StateCheck({"gcp": gcp}))
    lifecycle.update(NAME, spec.with_changes(variant_id=3, instance_type="e2-standard-4"), "gcp")
    zone = gce.instances["us-central1-a"]
    assert sorted(zone) == ["thrifty-minilm-r2-0", "thrifty-minilm-r2-1"]
    assert {i["machineType"].rsplit("/", 1)[1] for i in zone.values()} == {"e2-standard-4"}
    # the deployment made before revisions existed was adopted as r1, then retired
    assert [(r.number, r.state) for r in registry.list_revisions(NAME)] == [(1, "retired"), (2, "live")]
