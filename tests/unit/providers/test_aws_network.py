"""Each AWS deployment's own security group, and the plan's region, against moto's HTTP server.

The group lets in only the serving port from the configured source range; it is created with the
deployment and deleted with it (delete, rollback, gc). The plan's region/zone is where instances
start, whatever region the target block names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest

from tests.unit.providers.conftest import ALLOWED_CIDRS
from thrifty.errors import ConfigError, QuotaExceededError
from thrifty.providers.aws import AwsProvider
from thrifty.providers.gc import sweep
from thrifty.providers.specs import spec_from_candidate


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


@pytest.fixture
def no_control_plane_range(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from thrifty.settings import get_settings

    monkeypatch.delenv("THRIFTY_CONTROL_PLANE_CIDRS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _groups(moto: str, region: str = "us-east-1", name: str = "thrifty-minilm") -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name=region)
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
    return list(found["SecurityGroups"])


def _ingress(group: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    return sorted(
        (p["IpProtocol"], p["FromPort"], p["ToPort"], r.get("CidrIp") or r.get("CidrIpv6"))
        for p in group["IpPermissions"]
        for r in [*p.get("IpRanges", []), *p.get("Ipv6Ranges", [])]
    )


def _instances(moto: str, region: str) -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name=region)
    live = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    return [i for r in ec2.describe_instances(Filters=live)["Reservations"] for i in r["Instances"]]


def test_each_deployment_gets_a_group_open_only_on_its_port_to_the_range_and_loses_it_on_delete(
    aws: AwsProvider, make_spec: Any, moto: str
) -> None:
    aws.deploy(make_spec())
    [group] = _groups(moto)
    assert _ingress(group) == [("tcp", 8080, 8080, ALLOWED_CIDRS[0])]
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags["thrifty:managed"] == "true" and tags["thrifty:deployment"] == "minilm"
    for instance in _instances(moto, "us-east-1"):
        assert group["GroupId"] in {g["GroupId"] for g in instance["SecurityGroups"]}
    aws.deploy(make_spec())
    assert len(_groups(moto)) == 1, "a second deploy reuses the group"
    aws.delete("minilm")
    assert _groups(moto) == []


def test_a_changed_source_range_updates_the_one_rule(aws: AwsProvider, make_spec: Any, moto: str) -> None:
    aws.deploy(make_spec())
    aws.deploy(make_spec(serving={"allowed_cidrs": ["203.0.113.7", "2001:db8::/32"]}))
    [group] = _groups(moto)
    assert _ingress(group) == [("tcp", 8080, 8080, "2001:db8::/32"), ("tcp", 8080, 8080, "203.0.113.7/32")]


@pytest.mark.usefixtures("no_control_plane_range")
def test_no_source_range_is_refused_before_anything_is_created(
    aws: AwsProvider, make_spec: Any, moto: str
) -> None:
    closed = AwsProvider(replace(aws.target, boot=replace(aws.target.boot, allowed_cidrs=())))
    with pytest.raises(ConfigError, match="no source range") as info:
        closed.deploy(make_spec())
    assert info.value.hint and "allowed_cidrs" in info.value.hint and "0.0.0.0/0" in info.value.hint
    assert closed.list_managed() == [] and _groups(moto) == []


def test_the_control_plane_range_is_the_default_and_open_only_when_written(
    aws: AwsProvider, make_spec: Any, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thrifty.settings import get_settings

    closed = AwsProvider(replace(aws.target, boot=replace(aws.target.boot, allowed_cidrs=())))
    monkeypatch.setenv("THRIFTY_CONTROL_PLANE_CIDRS", '["192.0.2.10/32"]')
    get_settings.cache_clear()
    try:
        closed.deploy(make_spec(replicas=1))
    finally:
        get_settings.cache_clear()
    assert _ingress(_groups(moto)[0]) == [("tcp", 8080, 8080, "192.0.2.10/32")]
    closed.deploy(make_spec("open", replicas=1, serving={"allowed_cidrs": ["0.0.0.0/0"]}))
    assert _ingress(_groups(moto, name="thrifty-open")[0]) == [("tcp", 8080, 8080, "0.0.0.0/0")]


def test_a_bad_range_is_a_config_error_that_changes_nothing(
    aws: AwsProvider, make_spec: Any, moto: str
) -> None:
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.300/8' is not a CIDR range"):
        aws.deploy(make_spec(serving={"allowed_cidrs": ["10.0.0.300/8"]}))
    assert aws.list_managed() == []


def test_a_failed_deploy_deletes_the_group_it_created(aws: AwsProvider, make_spec: Any, moto: str) -> None:
    from tests.unit.providers.test_aws import _fail_nth_run

    _fail_nth_run(aws, 2, "VcpuLimitExceeded")
    with pytest.raises(QuotaExceededError):
        aws.deploy(make_spec(replicas=2))
    assert _groups(moto) == [] and aws.list_managed() == []


def test_gc_dry_run_finds_a_leftover_group_and_gc_deletes_it(
    aws: AwsProvider, make_spec: Any, moto: str
) -> None:
    aws.deploy(make_spec(replicas=1))
    # what a delete interrupted before the group could go leaves behind
    for replica in aws.replicas("minilm"):
        aws.retire_replica("minilm", replica.id)
    aws.ec2.delete_launch_template(LaunchTemplateName="thrifty-minilm")
    listed = sweep([aws], [], grace_s=0, dry_run=True)
    assert [(o.resource.kind, o.resource.deployment_name) for o in listed] == [("security-group", "minilm")]
    assert listed[0].resource.created_at is not None, "the group's creation time rides in a tag"
    assert len(_groups(moto)) == 1, "a dry run deletes nothing"
    sweep([aws], [], grace_s=0)
    assert _groups(moto) == [] and sweep([aws], [], grace_s=0, dry_run=True) == []


def test_young_groups_wait_for_the_grace_period(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec(replicas=1))
    assert sweep([aws], [], dry_run=True) == []  # default grace: 15 min


def _candidate(region: str, zone: str = "") -> dict[str, Any]:
    return {"provider": "aws", "region": region, "zone": zone, "instance_type": "c7g.large",
            "price_model": "on_demand", "machines": 1.0, "variant": "int8"}  # fmt: skip


def _plan_spec(region: str, sha: str, zone: str = "") -> Any:
    candidate = _candidate(region, zone)
    return spec_from_candidate(candidate, name="minilm", model_name="m", variant_id=7, artifact_sha256=sha)


def test_a_plan_for_another_region_launches_there(aws: AwsProvider, moto: str, artifact_sha: str) -> None:
    assert aws.target.region == "us-east-1"
    status = aws.deploy(_plan_spec("eu-west-1", artifact_sha))
    assert status.state == "running"
    [instance] = _instances(moto, "eu-west-1")
    assert instance["Placement"]["AvailabilityZone"].startswith("eu-west-1")
    assert _instances(moto, "us-east-1") == []
    [group] = _groups(moto, "eu-west-1")
    assert group["GroupId"] in {g["GroupId"] for g in instance["SecurityGroups"]}
    # a fresh provider of the same block finds it through the block's regions, and deletes it there
    fresh = AwsProvider(replace(aws.target, regions=("eu-west-1",)))
    assert fresh.status("minilm").replicas_ready == 1
    assert {r.region for r in fresh.list_managed()} == {"eu-west-1"}
    fresh.delete("minilm")
    assert _instances(moto, "eu-west-1") == [] and _groups(moto, "eu-west-1") == []


def test_a_plan_zone_is_the_instances_placement(aws: AwsProvider, moto: str, artifact_sha: str) -> None:
    aws.deploy(_plan_spec("eu-west-1", artifact_sha, zone="eu-west-1b"))
    [instance] = _instances(moto, "eu-west-1")
    assert instance["Placement"]["AvailabilityZone"] == "eu-west-1b"


def test_a_region_aws_does_not_have_is_a_config_error(aws: AwsProvider, make_spec: Any) -> None:
    with pytest.raises(ConfigError, match="not an AWS region"):
        aws.deploy(make_spec(region="europe-west1-b"))
    assert aws.list_managed() == []
