"""deploy-model with serverless on by default: a bursty plan deploys on Lambda (moto), and a
Lambda target that refuses every serverless candidate hands the plan's next dedicated candidate to
EC2, the summary saying why. Same set-up as test_deploy_model_cloud.py (state verification)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.flows import test_deploy_model_cloud as cloud
from tests.flows.test_deploy_model_cloud import _aws_instances, _save_aws_target, run_cloud_flow

# the cloud tests' fixtures: a tiny classifier, moto with the artifact bucket, a THRIFTY_HOME on it
tiny_model, moto, cloud_home = cloud.tiny_model, cloud.moto, cloud.cloud_home

pytestmark = pytest.mark.slow

ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/thrifty-runtime@sha256:" + "1" * 64
BURSTY = {"rps": 2.0, "active_fraction": 0.05, "providers": ["aws"], "regions": ["us-east-1"]}


def _save_lambda_target(moto: str, region: str = "us-east-1") -> None:
    import boto3

    from blocks.credentials import AwsCredentials
    from blocks.targets import AwsLambdaDeployTarget

    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1")
    role = iam.create_role(RoleName="thrifty-fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    credentials = AwsCredentials(aws_access_key_id="AKIATESTINGTHRIFTY", aws_secret_access_key="fake-secret-for-moto",
                                 region_name=region, endpoint_url=moto)  # fmt: skip
    AwsLambdaDeployTarget(credentials=credentials, region=region, role_arn=role, image=ECR_IMAGE,
                          artifact_store_url="s3://thrifty-artifacts/models").save("default", overwrite=True)  # fmt: skip


def _functions(moto: str, region: str = "us-east-1") -> list[dict[str, Any]]:
    import boto3

    return list(boto3.client("lambda", endpoint_url=moto, region_name=region).list_functions()["Functions"])


def test_a_bursty_plan_deploys_on_lambda(tiny_model: Path, cloud_home: Path, moto: str) -> None:
    from thrifty import runtime

    _save_lambda_target(moto)
    summary = run_cloud_flow(tiny_model, **BURSTY)
    assert summary["chosen"]["option"] == "serverless" and summary["target"]["provider"] == "aws-lambda"
    [function] = _functions(moto)
    assert function["FunctionName"] == "thrifty-tiny" and function["PackageType"] == "Image"
    assert function["MemorySize"] == int(
        summary["chosen"]["instance_type"].removeprefix("lambda-").removesuffix("mb")
    )
    row = runtime.registry().get_deployment("tiny")
    assert (row.provider, row.state) == ("aws-lambda", "running") and row.endpoint_url
    variables = function["Environment"]["Variables"]  # the graph optimized once, at deploy time
    optimized = variables["THRIFTY_OPTIMIZED_SHA256"]
    assert optimized != variables["THRIFTY_ARTIFACT_SHA256"] and runtime.store().exists(optimized)
    run_cloud_flow(tiny_model, **BURSTY)  # again: the same function, one more version
    assert [f["FunctionName"] for f in _functions(moto)] == ["thrifty-tiny"]


def test_a_refusing_lambda_target_falls_back_to_the_next_dedicated_candidate(
    tiny_model: Path, cloud_home: Path, moto: str
) -> None:
    _save_lambda_target(moto, region="eu-west-1")  # the plan's Lambda offers are in us-east-1
    _save_aws_target(moto)
    summary = run_cloud_flow(tiny_model, **BURSTY)
    assert summary["chosen"]["option"] == "serverless" and summary["target"]["provider"] == "aws"
    assert _functions(moto, "eu-west-1") == [] and _aws_instances(moto)
    from thrifty import runtime

    reason = runtime.registry().get_deployment("tiny").resources["target_reason"]
    assert "skipped target aws-lambda" in reason and "the Lambda target runs in eu-west-1" in reason
