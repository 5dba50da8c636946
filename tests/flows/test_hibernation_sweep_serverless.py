"""The hibernation-sweep flow on a serverless deployment: AWS Lambda on moto's real HTTP server.

The sweep never hibernates a serverless deployment (the platform scales it to zero); it turns the
policy's pre-warm decision into the warm floor, provisioned concurrency on the ``live`` alias,
through the target's scale call, and records it as a ``policy-decision`` event. moto lacks
provisioned concurrency: the ``ProvisionedConcurrency`` double answers those calls as AWS does
(it refuses a floor below 1, so setting 0 must be a removal).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block

from blocks.hibernation import HibernationPolicy
from flows.hibernation_sweep import HibernationSweepParams, hibernation_sweep
from tests.unit.providers.serverless_doubles import ProvisionedConcurrency
from thrifty.policies.sweep import policy_state

ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/thrifty-runtime@sha256:" + "1" * 64
#: provisioned-concurrency configs, shared by every provider the block builds (one per task)
PROVISIONED: dict[tuple[str, str], int] = {}


class LambdaOnMotoTarget(Block):
    """Test target: the real Lambda provider against moto, provisioned concurrency answered."""

    _block_type_slug = "test-lambda-on-moto"
    endpoint_url: str
    role_arn: str

    def build_provider(self) -> Any:
        from thrifty.providers.aws_lambda import LambdaProvider, LambdaTarget
        from thrifty.providers.boot import BootConfig

        boot = BootConfig(artifact_store_url="s3://thrifty-artifacts", image=ECR_IMAGE)
        target = LambdaTarget(role_arn=self.role_arn, endpoint_url=self.endpoint_url, poll_s=0.01, boot=boot)
        provider = LambdaProvider(target)
        provisioned = ProvisionedConcurrency(provider.client)
        provisioned.configs = PROVISIONED
        provider.provisioned = provisioned  # type: ignore[attr-defined]
        return provider


@pytest.fixture
def lambda_block(moto_server: str, thrifty_home: Path) -> Iterator[LambdaOnMotoTarget]:
    import boto3
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    PROVISIONED.clear()
    iam = boto3.client("iam", endpoint_url=moto_server, region_name="us-east-1")
    role = str(iam.create_role(RoleName="thrifty-fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"])
    block = LambdaOnMotoTarget(endpoint_url=moto_server, role_arn=role)
    block.save("sweep", overwrite=True)
    HibernationPolicy(min_warm_min=0.0).save("sweep-serverless", overwrite=True)
    yield block
    PROVISIONED.clear()


def deploy_lambda(block: LambdaOnMotoTarget, name: str, floor: int, requests: list[datetime]) -> None:
    """Deploy ``name`` on Lambda with warm floor ``floor`` and record it as a deploy would."""
    from thrifty import runtime
    from thrifty.providers.base import DeploySpec, PriceModel

    spec = DeploySpec(
        name=name, model_name="all-MiniLM-L6-v2", variant_id=7, artifact_sha256="ab" * 32,
        region="us-east-1", instance_type="lambda-1769mb", price_model=PriceModel.SERVERLESS,
        replicas=floor, serving={"concurrency": 4, "token_sha256": "cd" * 32},
    )  # fmt: skip
    status = block.build_provider().deploy(spec)
    assert status.replicas_desired == floor
    registry = runtime.registry()
    registry.upsert_deployment(
        name, provider="aws-lambda", region="us-east-1", state=status.state, replicas=floor,
        spec={"name": name, "replicas": floor},
    )  # fmt: skip
    registry.log_requests(
        {"model_name": name, "at": at, "latency_ms": 5.0, "cold": False, "status_code": 200}
        for at in requests
    )


def hourly(last_ago_min: float, hours: int = 48) -> list[datetime]:
    newest = datetime.now(UTC) - timedelta(minutes=last_ago_min)
    return [newest - timedelta(hours=h) for h in range(hours)]


def test_sweep_sets_the_lambda_warm_floor_and_never_hibernates(lambda_block: LambdaOnMotoTarget) -> None:
    from thrifty import runtime

    deploy_lambda(lambda_block, "due-soon", 0, hourly(57))  # the hourly request is due in ~3 min
    deploy_lambda(lambda_block, "idle", 1, hourly(20))  # 40 min until the next one
    assert PROVISIONED == {("thrifty-idle", "live"): 1}

    params = HibernationSweepParams(
        policy_block="sweep-serverless", targets={"aws-lambda": "test-lambda-on-moto/sweep"}
    )
    result = hibernation_sweep(params)

    assert {k: (v["do"], v["warm_floor"]) for k, v in result.items()} == {
        "due-soon": ("floor", 1),
        "idle": ("floor", 0),
    }
    assert result["due-soon"]["action"] == "pre-warm"
    assert PROVISIONED == {("thrifty-due-soon", "live"): 1}  # set on the alias; idle's removed
    registry = runtime.registry()
    rows = {d.name: (d.state, d.replicas) for d in registry.list_deployments()}
    assert rows == {"due-soon": ("running", 1), "idle": ("running", 0)}  # never "hibernated"
    assert all(e.kind != "hibernate" for n in rows for e in registry.list_events(n))
    decision = registry.list_events("due-soon")[-1]
    assert decision.kind == "policy-decision" and decision.reason.startswith("warm floor 0 → 1: pre-warm")
    assert decision.details["warm_floor"] == 1
    state = policy_state(registry.list_events("idle"))
    assert state is not None and state["do"] == "floor" and state["warm_floor"] == 0


def test_second_sweep_keeps_the_floor_and_repeats_no_call(lambda_block: LambdaOnMotoTarget) -> None:
    deploy_lambda(lambda_block, "idle", 1, hourly(20))
    params = HibernationSweepParams(
        policy_block="sweep-serverless", targets={"aws-lambda": "test-lambda-on-moto/sweep"}
    )
    hibernation_sweep(params)
    again = hibernation_sweep(params)
    assert again["idle"]["do"] == "none" and again["idle"]["warm_floor"] == 0
    assert "result" not in again["idle"]  # nothing called on the target
    assert again["idle"]["reason"].startswith("warm floor stays 0")
    assert PROVISIONED == {}
