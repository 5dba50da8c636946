"""The serverless targets: Lambda on moto, Cloud Run and Container Apps on replayed APIs.

Each deploys the runtime with the offer's size and the warm floor, keeps versions/revisions for
rollback, and refuses bad input (package over the limit, a size not sold, a region without the
service, missing permissions) before anything is created, or rolls back cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.providers.conftest import TEST_BOOT
from tests.unit.providers.replay import ReplayServer
from tests.unit.providers.serverless_doubles import (
    DENIED,
    TOKEN,
    CloudRunApi,
    ContainerAppsApi,
    ProvisionedConcurrency,
)
from thrifty.errors import ConfigError, CredentialsError, QuotaExceededError, UnsupportedFeatureError
from thrifty.providers.base import PriceModel
from thrifty.providers.specs import deploy_first_available

ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/thrifty-runtime@sha256:" + "1" * 64


@pytest.fixture
def serverless_spec(make_spec: Callable[..., Any]) -> Callable[..., Any]:
    def make(instance_type: str, region: str, **overrides: Any) -> Any:
        fields = {"instance_type": instance_type, "region": region, "price_model": PriceModel.SERVERLESS,
                  "replicas": 0, "serving": {"concurrency": 4, "token_sha256": "cd" * 32}}  # fmt: skip
        return make_spec(**(fields | overrides))

    return make


# -- Lambda on moto ------------------------------------------------------------------------------
@pytest.fixture
def lambda_role(moto: str) -> str:
    import boto3

    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1")
    return str(iam.create_role(RoleName="thrifty-fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"])


@pytest.fixture
def make_lambda(moto: str, lambda_role: str) -> Callable[..., Any]:
    from thrifty.providers.aws_lambda import LambdaProvider, LambdaTarget
    from thrifty.providers.boot import BootConfig

    def make(**fields: Any) -> Any:
        boot = BootConfig(artifact_store_url="s3://thrifty-artifacts", image=ECR_IMAGE)
        target = LambdaTarget(
            **({"role_arn": lambda_role, "endpoint_url": moto, "poll_s": 0.01, "boot": boot} | fields)
        )
        provider = LambdaProvider(target)
        provider.provisioned = ProvisionedConcurrency(provider.client)
        return provider

    return make


def functions(provider: Any) -> list[str]:
    return [f["FunctionName"] for f in provider.client.list_functions()["Functions"]]


def test_lambda_deploys_the_image_with_a_version_alias_url_and_warm_floor(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any]
) -> None:
    provider = make_lambda()
    spec = serverless_spec("lambda-3538mb", "us-east-1", replicas=1)
    status = provider.deploy(spec)
    provider.deploy(spec)  # idempotent: still one function, the same alias target
    config = provider.client.get_function(FunctionName="thrifty-minilm")["Configuration"]
    env = config["Environment"]["Variables"]
    assert functions(provider) == ["thrifty-minilm"]
    assert (config["PackageType"], config["MemorySize"]) == ("Image", 3538)
    assert env["THRIFTY_API_TOKEN_SHA256"] == "cd" * 32 and env["THRIFTY_MODEL_DIR"] == "/tmp/thrifty"
    assert status.state == "running" and status.endpoint_url and status.endpoint_url.startswith("http")
    assert (
        provider.client.get_function_url_config(FunctionName="thrifty-minilm", Qualifier="live")["AuthType"]
        == "NONE"
    )
    assert provider.provisioned.configs == {("thrifty-minilm", "live"): 1}
    assert provider.hibernate("minilm").replicas_desired == 0 and provider.provisioned.configs == {}
    # the hibernation sweep's pre-warm sets only the warm floor; scaling to zero stays Lambda's
    assert provider.wake("minilm").replicas_desired == 1
    assert provider.provisioned.configs == {("thrifty-minilm", "live"): 1}


def test_lambda_publishes_a_version_per_deploy_and_rolls_back(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any]
) -> None:
    provider = make_lambda()
    provider.deploy(serverless_spec("lambda-1769mb", "us-east-1"))
    second = provider.deploy(serverless_spec("lambda-1769mb", "us-east-1", artifact_sha256="ef" * 32))
    assert second.details["version"] == "2"
    assert provider.rollback("minilm").details["version"] == "1"


def test_lambda_zip_over_250_mb_is_refused_before_any_upload(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any], tmp_path: Path
) -> None:
    site = tmp_path / "site-packages"
    for name, mib in (("onnxruntime", 150), ("numpy", 60), ("tokenizers", 40), ("thrifty", 1), ("orjson", 1)):
        (site / name).mkdir(parents=True)
        with (site / name / "blob.so").open("wb") as handle:  # sparse: the size without the disk
            handle.truncate(mib * 2**20)
    provider = make_lambda(package="zip", zip_roots=(str(site),), code_bucket="thrifty-code")
    with pytest.raises(
        ConfigError,
        match=r"over the 250 MiB limit; largest parts: onnxruntime 150 MiB, numpy 60 MiB, tokenizers 40 MiB",
    ):
        provider.deploy(serverless_spec("lambda-1769mb", "us-east-1"))
    assert functions(provider) == []


def test_lambda_zip_that_fits_runs_the_handler(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any], tmp_path: Path
) -> None:
    site = tmp_path / "site-packages"
    (site / "thrifty").mkdir(parents=True)
    (site / "thrifty" / "lambda_runtime.py").write_text("def handler(event, context): ...\n")
    provider = make_lambda(package="zip", zip_roots=(str(site),))
    provider.deploy(serverless_spec("lambda-1769mb", "us-east-1"))
    config = provider.client.get_function(FunctionName="thrifty-minilm")["Configuration"]
    assert (config["PackageType"], config["Handler"]) == ("Zip", "thrifty.lambda_runtime.handler")


@pytest.mark.parametrize(
    ("instance_type", "region", "error", "match"),
    [
        ("lambda-64mb", "us-east-1", ConfigError, "Lambda memory 64 MB is not offered"),
        ("lambda-1769mb", "us-nowhere-1", UnsupportedFeatureError, "not offered in region"),
        ("cloud-run-1vcpu-2gib", "us-east-1", UnsupportedFeatureError, "cannot run the offer"),
    ],
)
def test_lambda_refuses_bad_input_before_creating_anything(
    make_lambda: Callable[..., Any],
    serverless_spec: Callable[..., Any],
    instance_type: str,
    region: str,
    error: type[Exception],
    match: str,
) -> None:
    provider = make_lambda()
    with pytest.raises(error, match=match):
        provider.deploy(serverless_spec(instance_type, region))
    assert functions(provider) == []


def test_lambda_without_an_assumable_role_is_a_credentials_error(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any]
) -> None:
    provider = make_lambda(role_arn="arn:aws:iam::123456789012:role/missing")
    with pytest.raises(CredentialsError, match="iam:PassRole"):
        provider.deploy(serverless_spec("lambda-1769mb", "us-east-1"))
    assert functions(provider) == []


def test_lambda_refused_warm_floor_deletes_the_new_function(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any]
) -> None:
    provider = make_lambda()
    provider.provisioned.refuse_with = "TooManyRequestsException"
    with pytest.raises(QuotaExceededError):
        provider.deploy(serverless_spec("lambda-1769mb", "us-east-1", replicas=2))
    assert functions(provider) == []


def test_a_refusing_serverless_target_falls_through_to_the_next_candidate(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any]
) -> None:
    provider = make_lambda()
    first = serverless_spec("lambda-1769mb", "us-nowhere-1")
    second = serverless_spec("lambda-1769mb", "us-east-1")
    deployed, status, skipped = deploy_first_available([first, second], lambda _spec: provider)
    assert deployed is second and status.state == "running"
    assert len(skipped) == 1 and "not offered in region 'us-nowhere-1'" in skipped[0]


# -- Cloud Run (replayed) --------------------------------------------------------------------------
@pytest.fixture
def cloud_run(replay_server: ReplayServer) -> Iterator[tuple[Any, CloudRunApi]]:
    from thrifty.providers.cloud_run import CloudRunProvider, CloudRunTarget

    api = CloudRunApi(replay_server)
    target = CloudRunTarget(project="proj", base_url=replay_server.url, poll_s=0.01, boot=TEST_BOOT)
    provider = CloudRunProvider(target, token=lambda: TOKEN)
    yield provider, api
    provider.rest.close()


@pytest.mark.replayed
def test_cloud_run_deploy_waits_for_the_operation_and_rolls_back_revisions_replayed(
    cloud_run: tuple[Any, CloudRunApi], serverless_spec: Callable[..., Any]
) -> None:
    provider, api = cloud_run
    status = provider.deploy(serverless_spec("cloud-run-2vcpu-4gib", "us-central1"))
    service = api.services["projects/proj/locations/us-central1/services/thrifty-minilm"]
    container = service["template"]["containers"][0]
    assert status.state == "running" and status.endpoint_url == service["uri"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4096Mi"}
    assert service["scaling"]["minInstanceCount"] == 0
    assert service["template"]["maxInstanceRequestConcurrency"] == 4
    assert {"name": "THRIFTY_CPU_LIMIT", "value": "2"} in container["env"]
    assert any("/operations/" in r.path for r in api.server.requests), "the operation was polled"
    first = status.details["revision"]
    second = provider.deploy(
        serverless_spec("cloud-run-2vcpu-4gib", "us-central1", artifact_sha256="ef" * 32)
    )
    assert second.details["revision"] != first and len(api.revisions) == 2
    assert provider.rollback("minilm").details["revision"] == first
    assert provider.scale("minilm", 1).replicas_desired == 1


@pytest.mark.replayed
@pytest.mark.parametrize(
    ("instance_type", "region", "token", "error", "match"),
    [
        ("cloud-run-1vcpu-8gib", "us-central1", TOKEN, ConfigError, "does not offer 1 vCPU with 8 GiB"),
        ("cloud-run-1vcpu-2gib", "us-nowhere1", TOKEN, UnsupportedFeatureError, "not offered in region"),
        ("cloud-run-1vcpu-2gib", "asia-east1", TOKEN, UnsupportedFeatureError, "is not available"),
        ("cloud-run-1vcpu-2gib", "us-central1", DENIED, CredentialsError, "run.services.create"),
    ],
)
def test_cloud_run_refusals_leave_nothing_behind_replayed(
    cloud_run: tuple[Any, CloudRunApi],
    serverless_spec: Callable[..., Any],
    instance_type: str,
    region: str,
    token: str,
    error: type[Exception],
    match: str,
) -> None:
    provider, api = cloud_run
    provider.rest.token = lambda: token
    with pytest.raises(error, match=match):
        provider.deploy(serverless_spec(instance_type, region))
    assert api.services == {}


@pytest.mark.replayed
def test_the_cloud_run_double_refuses_sizes_cloud_run_does_not_sell_replayed(
    cloud_run: tuple[Any, CloudRunApi],
) -> None:
    provider, _ = cloud_run
    body = {"template": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "8Gi"}}}]}}
    with pytest.raises(Exception, match=r"For 1\.0 CPU, memory must be between 128Mi and 4Gi inclusive"):
        provider.rest.call(
            "POST",
            "/v2/projects/proj/locations/us-central1/services",
            "create",
            params={"serviceId": "x"},
            json=body,
        )


# -- Container Apps (replayed) ---------------------------------------------------------------------
@pytest.fixture
def container_apps(replay_server: ReplayServer) -> Iterator[tuple[Any, ContainerAppsApi]]:
    from thrifty.providers.container_apps import ContainerAppsProvider, ContainerAppsTarget

    api = ContainerAppsApi(replay_server)
    env_id = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/thrifty"
    target = ContainerAppsTarget(subscription_id="sub", resource_group="rg", environment_id=env_id,
                                 base_url=replay_server.url, poll_s=0.01, boot=TEST_BOOT)  # fmt: skip
    provider = ContainerAppsProvider(target, token=lambda: TOKEN)
    yield provider, api
    provider.rest.close()


@pytest.mark.replayed
def test_container_apps_deploy_scale_rule_revisions_and_rollback_replayed(
    container_apps: tuple[Any, ContainerAppsApi], serverless_spec: Callable[..., Any]
) -> None:
    provider, api = container_apps
    status = provider.deploy(serverless_spec("container-apps-1vcpu-2gib", "eastus"))
    app = api.apps["thrifty-minilm"]["properties"]
    assert (
        status.state == "running"
        and status.endpoint_url == f"https://{app['configuration']['ingress']['fqdn']}"
    )
    assert app["template"]["scale"]["minReplicas"] == 0
    assert app["template"]["scale"]["rules"] == [
        {"name": "http", "http": {"metadata": {"concurrentRequests": "4"}}}
    ]
    assert app["template"]["containers"][0]["resources"] == {"cpu": 1.0, "memory": "2Gi"}
    first = status.details["revision"]
    provider.deploy(serverless_spec("container-apps-1vcpu-2gib", "eastus"))  # unchanged: no new revision
    assert len(api.revisions["thrifty-minilm"]) == 1
    second = provider.deploy(
        serverless_spec("container-apps-1vcpu-2gib", "eastus", artifact_sha256="ef" * 32)
    )
    assert second.details["revision"] != first
    assert provider.rollback("minilm").details["revision"] == first
    provider.delete("minilm")
    assert api.apps == {}


@pytest.mark.replayed
@pytest.mark.parametrize(
    ("instance_type", "region", "token", "error", "match"),
    [
        ("container-apps-1vcpu-3gib", "eastus", TOKEN, ConfigError, "does not offer 1 vCPU with 3 GiB"),
        ("container-apps-1vcpu-2gib", "antarctica", TOKEN, UnsupportedFeatureError, "not offered in region"),
        (
            "container-apps-1vcpu-2gib",
            "uksouth",
            TOKEN,
            UnsupportedFeatureError,
            "LocationNotAvailableForResourceType",
        ),
        ("container-apps-1vcpu-2gib", "eastus", DENIED, CredentialsError, "AuthorizationFailed"),
        ("functions-consumption-1.5gb", "eastus", TOKEN, UnsupportedFeatureError, "cannot run the offer"),
    ],
)
def test_container_apps_refusals_leave_nothing_behind_replayed(
    container_apps: tuple[Any, ContainerAppsApi],
    serverless_spec: Callable[..., Any],
    instance_type: str,
    region: str,
    token: str,
    error: type[Exception],
    match: str,
) -> None:
    provider, api = container_apps
    provider.rest.token = lambda: token
    with pytest.raises(error, match=match):
        provider.deploy(serverless_spec(instance_type, region))
    assert api.apps == {}


@pytest.mark.replayed
def test_the_container_apps_double_refuses_pairs_not_sold_replayed(
    container_apps: tuple[Any, ContainerAppsApi], serverless_spec: Callable[..., Any]
) -> None:
    provider, _ = container_apps
    body = provider.app_body(serverless_spec("container-apps-1vcpu-2gib", "eastus"))
    body["properties"]["template"]["containers"][0]["resources"] = {"cpu": 1.0, "memory": "3Gi"}
    with pytest.raises(Exception, match="ContainerAppInvalidResourceTotal"):
        provider.rest.call(
            "PUT", provider._path("minilm"), "put", params={"api-version": "2024-03-01"}, json=body
        )
