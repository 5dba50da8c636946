"""The spot-rebalance flow end to end on moto's HTTP server, with blocks saved to the Prefect test API.

A deployment is made through the ``deploy-to-target`` task, then: the spot interruption is
simulated (the instance is terminated, the flow runs with the event's parameters) and replaced;
an instance of a deployment the registry no longer knows is swept. No response is replayed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests


@pytest.fixture
def moto(moto_server: str) -> str:
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    return moto_server


@pytest.fixture
def aws_target_ref(moto: str) -> Iterator[str]:
    """The default AWS target block, pointing at moto; deleted afterwards (other flow tests run
    ``deploy-model --target auto``, which would otherwise find it)."""
    from blocks.credentials import AwsCredentials
    from blocks.targets import AwsDeployTarget

    credentials = AwsCredentials(
        aws_access_key_id="testing", aws_secret_access_key="flow-test-secret", endpoint_url=moto
    )
    AwsDeployTarget(
        credentials=credentials,
        region="us-east-1",
        image="127.0.0.1:5000/thrifty-runtime@sha256:" + "0" * 64,
        allowed_cidrs=["198.51.100.0/24"],
    ).save("default", overwrite=True)
    yield "thrifty-aws-target/default"
    AwsDeployTarget.delete("default")


@pytest.fixture
def variant(thrifty_home: Path) -> Iterator[tuple[int, str]]:
    from thrifty import runtime

    registry = runtime.registry()
    sha = "cd" * 32
    artifact = registry.upsert_artifact(sha, 123, f"s3://thrifty-artifacts/{sha}")
    version, _ = registry.add_model_version(
        "minilm", sha256=sha, artifact=artifact, format="onnx", size_bytes=123, source_path="/m.onnx"
    )
    variant, _ = registry.add_variant(version.id, "int8", technique="int8_dynamic", artifact=artifact)
    yield variant.id, sha


def _spec(variant: tuple[int, str], name: str = "minilm") -> list[Any]:
    from thrifty.providers.base import DeploySpec, PriceModel

    spec = DeploySpec(
        name=name,
        model_name="minilm",
        variant_id=variant[0],
        artifact_sha256=variant[1],
        region="us-east-1",
        instance_type="c7g.large",
        price_model=PriceModel.SPOT,
        replicas=2,
    )
    return [spec]


def _aws(ref: str) -> Any:
    from tasks.providers import choice_for_block

    return choice_for_block(ref)


@pytest.mark.slow
def test_interruption_event_replaces_the_instance_and_records_the_action(
    aws_target_ref: str, variant: tuple[int, str]
) -> None:
    from flows.spot_rebalance import SpotRebalanceParams, spot_rebalance
    from tasks.providers import build_provider, deploy_to_target
    from thrifty import runtime

    deployed = deploy_to_target.fn(_aws(aws_target_ref), _spec(variant))
    assert (deployed.state, deployed.replicas_ready) == ("running", 2)
    aws = build_provider(aws_target_ref)
    victim = next(r for r in aws.replicas("minilm") if r.live)
    aws.ec2.terminate_instances(InstanceIds=[victim.id])  # the spot reclaim

    # what the prefect.yaml trigger passes (no targets: the saved default blocks are found)
    params = SpotRebalanceParams(deployment="minilm", instance_ids=[victim.id], health_check="state")
    result = spot_rebalance(params)

    assert [(a["kind"], a["status"]) for a in result["actions"]["minilm"]] == [("replace", "done")]
    live = [r for r in aws.replicas("minilm") if r.live]
    assert len(live) == 2 and victim.id not in {r.id for r in live}
    registry = runtime.registry()
    record = registry.get_deployment("minilm")
    assert sorted(record.resources["ids"]) == sorted(r.id for r in live), "traffic switched to the new set"
    (event,) = [e for e in registry.list_events("minilm") if e.kind == "rebalance.replace"]
    assert victim.id in event.reason and event.usd_saved_per_month == 0.0
    assert event.details["drain_budget_s"] == 120
    assert result["orphans"] == []


@pytest.mark.slow
def test_orphans_of_a_deployment_the_registry_forgot_are_swept(
    aws_target_ref: str, variant: tuple[int, str]
) -> None:
    from flows.spot_rebalance import SpotRebalanceParams, spot_rebalance
    from tasks.providers import build_provider, deploy_to_target, gc_orphans
    from thrifty import runtime

    deploy_to_target.fn(_aws(aws_target_ref), _spec(variant, "kept"))
    deploy_to_target.fn(_aws(aws_target_ref), _spec(variant, "forgotten"))
    runtime.registry().delete_deployment("forgotten")  # e.g. a crash between the cloud and the registry

    listed = gc_orphans.fn([aws_target_ref], grace_s=0.0, dry_run=True)
    assert sorted((o["deployment"], o["kind"]) for o in listed) == [
        ("forgotten", "instance"),
        ("forgotten", "instance"),
        ("forgotten", "launch-template"),
        ("forgotten", "secret"),  # its TLS key + token digest in Secrets Manager
        ("forgotten", "security-group"),
    ]
    aws = build_provider(aws_target_ref)
    assert len([r for r in aws.replicas("forgotten") if r.live]) == 2, "dry run deleted something"

    params = SpotRebalanceParams(targets={"aws": aws_target_ref}, health_check="state", gc_grace_s=0.0)
    result = spot_rebalance(params)
    assert len(result["orphans"]) == 5
    assert {r.deployment_name for r in aws.list_managed()} == {"kept"}
    assert aws.status("kept").replicas_ready == 2


def test_a_failed_transaction_rolls_the_deploy_back(aws_target_ref: str, variant: tuple[int, str]) -> None:
    from prefect import flow, task
    from prefect.transactions import transaction

    from tasks.providers import build_provider, deploy_to_target

    @task
    def smoke_test() -> None:
        raise RuntimeError("smoke test failed")

    @flow
    def deploy_then_smoke() -> None:
        with transaction():
            deploy_to_target(_aws(aws_target_ref), _spec(variant, "rolled"))
            smoke_test()

    with pytest.raises(RuntimeError, match="smoke test failed"):
        deploy_then_smoke()
    assert build_provider(aws_target_ref).list_managed() == []


def test_secrets_stay_out_of_blocks_repr_and_errors(aws_target_ref: str) -> None:
    from prefect.blocks.core import Block

    from blocks.credentials import AzureComputeCredentials

    loaded: Any = Block.load(aws_target_ref)
    assert "flow-test-secret" not in repr(loaded)
    assert loaded.credentials.aws_secret_access_key.get_secret_value() == "flow-test-secret"
    with pytest.raises(ValueError, match="together") as info:
        AzureComputeCredentials(client_id="cid-secret-value", client_secret="the-client-secret")
    assert "the-client-secret" not in str(info.value) and "cid-secret-value" not in str(info.value)


def test_the_interruption_notice_becomes_the_trigger_event() -> None:
    from datetime import UTC, datetime

    from tasks.providers import emit_interruption_event
    from thrifty.providers.aws_interruption import EVENT_NAME, InterruptionNotice

    notice = InterruptionNotice(
        "aws", "minilm", "i-0abc", "terminate", datetime(2026, 11, 26, 10, 2, tzinfo=UTC)
    )
    event = emit_interruption_event(notice)
    assert event.event == EVENT_NAME == "thrifty.spot.interruption"
    assert event.resource.id == "thrifty.deployment.minilm"
    assert event.resource["thrifty.instance-id"] == "i-0abc"
    assert event.payload["at"] == "2026-11-26T10:02:00+00:00"


def test_spot_watch_finds_the_prefect_emitter_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library names no Prefect module: pyproject registers the emitter as a plugin."""
    from importlib.metadata import entry_points

    from tasks.providers import emit_interruption_event
    from thrifty.providers.aws_interruption import EMITTER_GROUP, installed_emitter

    assert installed_emitter() is emit_interruption_event
    # a plugin sorted first whose layer is not installed here is skipped, not fatal
    dist = tmp_path / "broken_plugin-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[{EMITTER_GROUP}]\naaa = layer_not_installed_here:emit\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sorted(e.name for e in entry_points(group=EMITTER_GROUP)) == ["aaa", "prefect"]
    assert installed_emitter() is emit_interruption_event
