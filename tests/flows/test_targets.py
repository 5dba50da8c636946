"""Choosing and using targets through the Prefect tasks: routing by (cloud, kind) with saved blocks,
falling through a candidate the target cannot run (a serverless offer on the EC2 target, on moto's
HTTP server), and the local target acting without any block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prefect.logging import disable_run_logger


@pytest.fixture
def aws_block(moto_server: str) -> Iterator[str]:
    from blocks.credentials import AwsCredentials
    from blocks.targets import AwsDeployTarget

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    credentials = AwsCredentials(
        aws_access_key_id="testing", aws_secret_access_key="testing", endpoint_url=moto_server
    )
    AwsDeployTarget(
        credentials=credentials,
        region="us-east-1",
        image="127.0.0.1:5000/thrifty-runtime@sha256:" + "0" * 64,
        allowed_cidrs=["198.51.100.0/24"],
    ).save("default", overwrite=True)
    yield "thrifty-aws-target/default"
    AwsDeployTarget.delete("default")  # other flow tests expect target=auto to find no block


def candidate(price_model: str, instance_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": instance_type,
        "price_model": price_model,
        "variant": "int8",
        "machines": 1.0,
        **extra,
    }


def test_auto_routes_by_cloud_and_kind(aws_block: str) -> None:
    from tasks.providers import choose_target

    with disable_run_logger():
        vm = choose_target.fn(candidate("spot", "c7g.large"), "auto")
        lam = choose_target.fn(candidate("serverless", "lambda-2048mb"), "auto")
        local = choose_target.fn(candidate("spot", "c7g.large"), "local")
    assert (vm.provider, vm.block) == ("aws", aws_block)
    # the EC2 block is saved, but it does not run serverless offers, and no Lambda block is saved
    assert (lam.provider, lam.block) == ("local", None)
    assert "aws (serverless)" in lam.reason and "thrifty-aws-lambda-target/default" in lam.reason
    assert (local.provider, local.block, local.reason) == ("local", None, "target=local")


def test_a_named_target_without_its_block_is_refused_with_the_fix() -> None:
    from tasks.providers import choose_target
    from thrifty.errors import ConfigError

    with disable_run_logger(), pytest.raises(ConfigError, match="thrifty-gcp-target/default"):
        choose_target.fn(candidate("spot", "n2-standard-2"), "gcp")


def test_a_plan_whose_first_offer_is_serverless_deploys_its_next_candidate(
    aws_block: str, thrifty_home: Path
) -> None:
    from tasks.providers import build_provider, choice_for_block, deploy_to_target
    from thrifty import runtime
    from thrifty.providers.specs import candidates_for, spec_from_candidate

    registry = runtime.registry()
    sha = "ef" * 32
    artifact = registry.upsert_artifact(sha, 123, f"s3://thrifty-artifacts/{sha}")
    version, _ = registry.add_model_version(
        "minilm", sha256=sha, artifact=artifact, format="onnx", size_bytes=123, source_path="/m.onnx"
    )
    variant, _ = registry.add_variant(version.id, "int8", technique="int8_dynamic", artifact=artifact)
    record = {
        "chosen": candidate("serverless", "lambda-2048mb"),
        "candidates": [candidate("serverless", "lambda-2048mb"), candidate("spot", "c7g.large")],
    }
    choice = choice_for_block(aws_block)
    specs = [
        spec_from_candidate(
            c, name="minilm", model_name="minilm", variant_id=variant.id, artifact_sha256=sha, plan_id=None
        )
        for c in candidates_for(record, choice.descriptor)
    ]
    with disable_run_logger():
        deployed = deploy_to_target.fn(choice, specs)
    assert deployed.spec.instance_type == "c7g.large" and deployed.state == "running"
    assert len(deployed.skipped) == 1 and "needs a serverless target" in deployed.skipped[0]
    assert [r.state for r in build_provider(choice).replicas("minilm")] == ["running"]
    assert registry.get_deployment("minilm").spec["instance_type"] == "c7g.large"
    build_provider(choice).delete("minilm")


def test_the_local_target_hibernates_without_a_block(thrifty_home: Path) -> None:
    from tasks.hibernation import apply_hibernation
    from tasks.providers import choice_for
    from thrifty import runtime

    registry = runtime.registry()
    spec = {"replicas": 1, "runtime": {"model_path": str(thrifty_home / "m.onnx")}}
    registry.upsert_deployment("m", provider="local", state="running", replicas=1, spec=spec)
    choice = choice_for("local")
    assert choice.block is None
    with disable_run_logger():
        first = apply_hibernation.fn(choice, "m", "hibernate")
        second = apply_hibernation.fn(choice, "m", "hibernate")  # idempotent: no second event
    assert first == second == {"name": "m", "state": "hibernated", "replicas_ready": 0, "replicas_desired": 0}
    assert [e.kind for e in registry.list_events("m")] == ["hibernate"]


def test_the_run_form_shows_every_default_and_offers_choices() -> None:
    """What the Prefect UI renders from deploy-model's parameters (its JSON schema)."""
    from flows.deploy_model import ALL_TECHNIQUES, DeployModelParams
    from thrifty.targets import clouds, target_names

    schema = DeployModelParams.model_json_schema()
    props = schema["properties"]
    assert props["providers"]["default"] == clouds() == ["aws", "gcp", "azure"]
    assert props["providers"]["items"]["enum"] == clouds()
    assert "fp16" in props["techniques"]["items"]["enum"] and props["techniques"]["default"]
    assert set(props["techniques"]["default"]) <= set(ALL_TECHNIQUES)
    assert props["target"]["enum"] == ["auto", *target_names()]
    assert props["verify"]["enum"] == ["inference", "state"]
    assert "UI" not in schema.get("description", "")
