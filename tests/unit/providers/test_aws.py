"""AWS provider against moto's real HTTP server (no replayed responses here).

Faults moto cannot produce (no spot capacity, a refused IAM action, a quota hit) are raised by a
botocore hook with the exact error AWS sends, before the request would leave the client.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.unit.providers.replay import CapacityFault
from thrifty.errors import CapacityError, CredentialsError, NotFoundError, QuotaExceededError
from thrifty.providers.aws import AwsProvider
from thrifty.providers.base import PriceModel, Provider, provider_class
from thrifty.providers.boot import script_of


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


def _live(aws: AwsProvider, name: str) -> list[Any]:
    return [r for r in aws.replicas(name) if r.state in ("pending", "running") and not r.retired]


def _raw_instances(aws: AwsProvider) -> list[dict[str, Any]]:
    reservations = aws.ec2.describe_instances()["Reservations"]
    return [i for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def test_registered_by_name_and_satisfies_the_protocol(aws: AwsProvider) -> None:
    assert provider_class("aws") is AwsProvider
    assert isinstance(aws, Provider)


def test_deploy_on_spot_launches_tagged_instances_from_a_launch_template(
    aws: AwsProvider, make_spec: Any
) -> None:
    status = aws.deploy(make_spec())
    assert (status.state, status.replicas_desired, status.replicas_ready) == ("running", 2, 2)
    instances = _raw_instances(aws)
    assert len(instances) == 2
    assert {i["InstanceLifecycle"] for i in instances} == {"spot"}
    assert {i["InstanceType"] for i in instances} == {"c7g.large"}
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["thrifty:managed"] == "true"
        assert tags["thrifty:deployment"] == "minilm"
    templates = aws.ec2.describe_launch_templates()["LaunchTemplates"]
    assert [t["LaunchTemplateName"] for t in templates] == ["thrifty-minilm"]
    assert status.endpoint_url is not None and status.endpoint_url.endswith(":8080")


def test_deploy_twice_leaves_one_deployment(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec())
    first = {i["InstanceId"] for i in _raw_instances(aws)}
    aws.deploy(make_spec())
    assert {i["InstanceId"] for i in _raw_instances(aws)} == first
    assert len(aws.ec2.describe_launch_templates()["LaunchTemplates"]) == 1


def test_on_demand_floor_keeps_the_first_slots_on_demand(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec(replicas=3, on_demand_floor=1))
    markets = sorted(r.market.value for r in _live(aws, "minilm"))
    assert markets == ["on_demand", "spot", "spot"]


def test_scale_hibernate_wake_delete(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec())
    assert aws.scale("minilm", 3).replicas_ready == 3
    assert aws.scale("minilm", 1).replicas_ready == 1
    hibernated = aws.hibernate("minilm")
    assert (hibernated.state, hibernated.replicas_ready) == ("hibernated", 0)
    woken = aws.wake("minilm")
    assert (woken.state, woken.replicas_ready) == ("running", 1)
    aws.delete("minilm")
    aws.delete("minilm")  # already gone: still fine
    assert aws.status("minilm").state == "deleted"
    assert _raw_instances(aws) == []
    assert aws.list_managed() == []


def test_scale_of_an_unknown_deployment_names_it(aws: AwsProvider) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        aws.scale("ghost", 2)


def test_user_data_runs_the_runtime_image_with_no_secret(
    aws: AwsProvider, make_spec: Any, s3_artifact: tuple[str, str]
) -> None:
    token_sha = hashlib.sha256(b"the-deployment-token").hexdigest()
    spec = make_spec(replicas=1).with_changes(serving={"token_sha256": token_sha})
    aws.deploy(spec)
    data = aws.ec2.describe_launch_template_versions(LaunchTemplateName="thrifty-minilm")
    user_data = base64.b64decode(data["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
    assert user_data.startswith("#cloud-config")
    script = script_of(user_data)
    run = next(line for line in script.splitlines() if line.startswith("$RT run") and "-watch" not in line)
    argv = shlex.split(run)
    env = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-e")
    assert argv[-1] == aws.target.boot.image, "the image runs by digest"
    assert env["THRIFTY_ARTIFACT_STORE_URL"] == s3_artifact[0]
    assert env["THRIFTY_ARTIFACT_SHA256"] == s3_artifact[1]
    assert env["THRIFTY_API_TOKEN_SHA256"] == token_sha
    assert "the-deployment-token" not in user_data and "SECRET" not in user_data.upper()
    assert "pip install" not in user_data, "nothing is installed from a package index at boot"
    assert any(line.endswith("--cloud aws") for line in script.splitlines()), "spot: the watcher runs"


def test_a_target_without_a_runtime_image_is_refused_before_launch(aws_target: Any, make_spec: Any) -> None:
    from dataclasses import replace

    from thrifty.errors import ConfigError

    bare = AwsProvider(replace(aws_target, boot=replace(aws_target.boot, image="")))
    with pytest.raises(ConfigError, match="thrifty image build --push"):
        bare.deploy(make_spec(replicas=1))
    assert _raw_instances(bare) == []


def test_spot_without_capacity_falls_back_to_on_demand_tagged(aws: AwsProvider, make_spec: Any) -> None:
    fault = CapacityFault(aws.ec2)
    status = aws.deploy(make_spec())
    assert fault.refused == 2
    assert status.state == "running"
    live = _live(aws, "minilm")
    assert {(r.market, r.fallback) for r in live} == {(PriceModel.ON_DEMAND, True)}
    assert sorted(status.details["fallbacks"]) == sorted(r.id for r in live)


def test_spot_without_capacity_and_no_fallback_is_a_capacity_error(aws_target: Any, make_spec: Any) -> None:
    from dataclasses import replace

    aws = AwsProvider(replace(aws_target, spot_fallback_on_demand=False))
    CapacityFault(aws.ec2)
    with pytest.raises(CapacityError, match="InsufficientInstanceCapacity") as info:
        aws.deploy(make_spec())
    assert info.value.hint and "next candidate" in info.value.hint
    assert aws.list_managed() == [], "the failed deploy left resources behind"


def _fail_nth_run(aws: AwsProvider, n: int, code: str) -> None:
    calls = {"count": 0}

    def hook(params: dict[str, Any], **_: Any) -> None:
        calls["count"] += 1
        if calls["count"] >= n:
            raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "RunInstances")  # type: ignore[arg-type]

    aws.ec2.meta.events.register("before-parameter-build.ec2.RunInstances", hook)


def test_a_deploy_failing_half_way_deletes_what_it_created(aws: AwsProvider, make_spec: Any) -> None:
    _fail_nth_run(aws, 3, "VcpuLimitExceeded")
    with pytest.raises(QuotaExceededError, match="VcpuLimitExceeded") as info:
        aws.deploy(make_spec(replicas=3))
    assert info.value.hint and "quota" in info.value.hint
    assert _raw_instances(aws) == []
    assert aws.ec2.describe_launch_templates()["LaunchTemplates"] == []


def test_unauthorized_operation_names_the_missing_iam_action(aws: AwsProvider, make_spec: Any) -> None:
    _fail_nth_run(aws, 1, "UnauthorizedOperation")
    with pytest.raises(CredentialsError) as info:
        aws.deploy(make_spec())
    assert info.value.hint == "grant the IAM action ec2:RunInstances to thrifty's role or user"


def test_list_managed_finds_instances_templates_and_security_groups(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec("a", replicas=1))
    aws.deploy(make_spec("b", replicas=2))
    found = aws.list_managed()
    assert sorted((r.deployment_name, r.kind) for r in found) == [
        ("a", "instance"),
        ("a", "launch-template"),
        ("a", "security-group"),
        ("b", "instance"),
        ("b", "instance"),
        ("b", "launch-template"),
        ("b", "security-group"),
    ]
    assert all(r.created_at is not None and r.created_at.tzinfo is not None for r in found)


def test_unmanaged_instances_are_never_listed(aws: AwsProvider, make_spec: Any, moto: str) -> None:
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    image = aws.launch_template_data(make_spec(), "ami-x", "sg-x")["ImageId"]
    assert image == "ami-x"
    ec2.run_instances(ImageId=aws._image_id(), MinCount=1, MaxCount=1)
    assert aws.list_managed() == []


def test_instances_terminated_behind_thrifty_s_back_are_replaced_by_reconcile(
    aws: AwsProvider, make_spec: Any
) -> None:
    aws.deploy(make_spec())
    victim = _live(aws, "minilm")[0]
    aws.ec2.terminate_instances(InstanceIds=[victim.id])
    assert aws.status("minilm").state == "degraded"
    launched = aws.reconcile("minilm")
    assert [r.slot for r in launched] == [victim.slot]
    assert aws.status("minilm").replicas_ready == 2


def test_a_changed_spec_rolls_the_instances_onto_the_new_template_version(
    aws: AwsProvider, make_spec: Any
) -> None:
    aws.deploy(make_spec())
    old = {r.id for r in _live(aws, "minilm")}
    status = aws.deploy(make_spec(instance_type="m7g.large"))
    live = _live(aws, "minilm")
    assert status.replicas_ready == 2 and len(live) == 2
    assert not old & {r.id for r in live}, "every instance of the old version is replaced"
    assert {i["InstanceType"] for i in _raw_instances(aws) if i["InstanceId"] in {r.id for r in live}} == {
        "m7g.large"
    }
    assert aws._default_version(status.details["launch_template_id"]) == 2
    aws.deploy(make_spec(instance_type="m7g.large"))
    assert {r.id for r in _live(aws, "minilm")} == {r.id for r in live}, "same spec again: nothing moves"


def test_switching_the_price_model_moves_replicas_to_the_new_market(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec())
    aws.deploy(make_spec(price_model=PriceModel.ON_DEMAND))
    assert {r.market for r in _live(aws, "minilm")} == {PriceModel.ON_DEMAND}
    assert len(_live(aws, "minilm")) == 2


def test_tls_key_and_token_reach_the_vm_through_secrets_manager_never_user_data(
    aws: AwsProvider, make_spec: Any, tmp_path: Any
) -> None:
    import base64
    import json

    from pydantic import SecretStr

    from thrifty import tls, tokens

    token_sha256 = tokens.issue(tmp_path, "minilm")
    token = tokens.token_for(tmp_path, "minilm")
    cert = tls.issue(tmp_path, "minilm")
    serving = {"token_sha256": token_sha256, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem}
    spec = make_spec(serving=serving, secret_bundle=SecretStr(tls.secret_bundle(cert, token_sha256)))
    status = aws.deploy(spec)
    assert status.endpoint_url is not None and status.endpoint_url.startswith("https://")
    template = aws.ec2.describe_launch_template_versions(LaunchTemplateName="thrifty-minilm")
    user_data = base64.b64decode(
        template["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]
    ).decode()
    key_body = cert.key_pem.splitlines()[1]
    assert token not in user_data and key_body not in user_data and token_sha256 not in user_data
    assert "THRIFTY_SECRET=aws-secretsmanager:thrifty-minilm" in user_data
    secrets = aws.session.client(
        "secretsmanager", region_name="us-east-1", endpoint_url=aws.target.endpoint_url
    )
    stored = json.loads(secrets.get_secret_value(SecretId="thrifty-minilm")["SecretString"])
    assert stored == {
        "tls_cert_pem": cert.cert_pem,
        "tls_key_pem": cert.key_pem,
        "token_sha256": token_sha256,
    }
    assert "secret_bundle" not in spec.model_dump() and key_body not in repr(spec)
    aws.delete("minilm")
    assert secrets.list_secrets()["SecretList"] == []


def test_gc_finds_and_deletes_a_secret_whose_deployment_is_gone(
    aws: AwsProvider, make_spec: Any, tmp_path: Any
) -> None:
    from pydantic import SecretStr

    from thrifty import tls
    from thrifty.providers.gc import sweep

    cert = tls.issue(tmp_path, "minilm")
    serving = {"token_sha256": "ab" * 32, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem}
    bundle = SecretStr(tls.secret_bundle(cert, "ab" * 32))
    aws.deploy(make_spec(replicas=1, serving=serving, secret_bundle=bundle))
    secrets = aws._secrets()
    secrets.create_secret(Name="not-thrifty", SecretString="{}")  # someone else's: never listed
    found = [(r.kind, r.id, r.deployment_name) for r in aws.list_managed() if r.kind == "secret"]
    assert found == [("secret", "thrifty-minilm", "minilm")]
    assert not [
        o for o in sweep([aws], [("aws", "minilm")], grace_s=0, dry_run=True) if o.resource.kind == "secret"
    ]
    listed = sweep([aws], [], grace_s=0, dry_run=True)
    assert ("secret", "thrifty-minilm") in {(o.resource.kind, o.resource.id) for o in listed}
    assert len(secrets.list_secrets()["SecretList"]) == 2, "a dry run deletes nothing"
    sweep([aws], [], grace_s=0)
    assert [s["Name"] for s in secrets.list_secrets()["SecretList"]] == ["not-thrifty"]
    assert sweep([aws], [], grace_s=0, dry_run=True) == []
