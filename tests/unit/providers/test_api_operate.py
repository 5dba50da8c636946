"""The API's hibernate / wake / scale of cloud deployments (issue 15), over real HTTP, through the
provider the front door uses (``provider_for_deployment``: the registry's row, ``NAME-rN`` after an
update), against moto (AWS EC2, Lambda) and the replay doubles (GCP Compute, Azure ARM). Each call
must really change the target's state and replica count, and the registry row after it; a refusal
(over the double's quota) is a 409 with the fix and changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.unit.api.conftest import serving
from tests.unit.providers import test_serverless
from tests.unit.providers.test_azure import FakeArm, StaticToken
from tests.unit.providers.test_azure import _target as azure_target
from tests.unit.providers.test_gcp import PROJECT, FakeGce
from thrifty.providers.base import record_deployment

# the Lambda-on-moto fixtures of the serverless tests
lambda_role, make_lambda = test_serverless.lambda_role, test_serverless.make_lambda
serverless_spec = test_serverless.serverless_spec


@contextmanager
def api_over(provider: Any) -> Iterator[httpx.Client]:
    """The API with ``provider`` as what the CLI would build for its target (a moto or replay one)."""
    from thrifty import runtime
    from thrifty.api import create_app

    built: list[tuple[str, dict[str, Any]]] = []

    def build(target: str, options: Mapping[str, Any]) -> Any:
        built.append((target, dict(options)))
        assert target == provider.name, f"the API built {target} for a {provider.name} deployment"
        return provider

    app = create_app(runtime.get_settings())
    app.state.build_provider = build
    with serving(app) as url, httpx.Client(base_url=f"{url}/api/v1", timeout=120, trust_env=False) as http:
        yield http
    assert built, "the API never asked for the deployment's provider"


def _deployed(provider: Any, spec: Any) -> Any:
    """``spec`` deployed on ``provider`` and recorded as the deploy flow records it."""
    from thrifty import runtime

    registry = runtime.registry()
    spec = spec.with_changes(variant_id=0)  # no variant in this registry (0: none, as the row stores it)
    status = provider.deploy(spec)
    record_deployment(registry, status, spec, {"target": provider.name, **dict(status.details)})
    return registry


def _verbs(http: httpx.Client, registry: Any, counted: Callable[[], int], up: int) -> None:
    """scale to ``up`` → hibernate → wake: the answer, the target (``counted``) and the row agree."""
    scaled = http.post("/deployments/minilm/scale", json={"replicas": up})
    assert scaled.status_code == 200, scaled.text
    assert (scaled.json()["replicas_desired"], scaled.json()["replicas_ready"]) == (up, up)
    assert counted() == up and registry.get_deployment("minilm").replicas == up
    slept = http.post("/deployments/minilm/hibernate")
    assert slept.status_code == 200, slept.text
    assert (slept.json()["state"], slept.json()["replicas_ready"]) == ("hibernated", 0)
    assert counted() == 0 and registry.get_deployment("minilm").state == "hibernated"
    woken = http.post("/deployments/minilm/wake")
    assert woken.status_code == 200, woken.text
    assert woken.json()["state"] == "running" and woken.json()["replicas_ready"] == up
    assert counted() == up and registry.get_deployment("minilm").state == "running"
    kinds = [e["kind"] for e in http.get("/deployments/minilm/events").json()["items"]]
    assert kinds[-3:] == ["scale", "hibernate", "wake"]
    audited = [a["action"] for a in http.get("/audit").json()["items"][:3]]
    assert audited == ["deployments.wake", "deployments.hibernate", "deployments.scale"]


def test_aws_scale_hibernate_wake_through_the_api(
    aws: Any, make_spec: Any, s3_artifact: tuple[str, str], thrifty_home: Path
) -> None:
    spec = make_spec(replicas=1, price_model="on_demand", artifact_sha256=s3_artifact[1])
    registry = _deployed(aws, spec)

    def running() -> int:
        return sum(r.state == "running" and not r.retired for r in aws.replicas("minilm"))

    with api_over(aws) as http:
        _verbs(http, registry, running, up=2)


def test_gcp_scale_hibernate_wake_and_a_quota_refusal_through_the_api_replayed(
    replay_server: Any, make_spec: Any, thrifty_home: Path
) -> None:
    from google.auth.credentials import AnonymousCredentials

    from tests.unit.providers.conftest import TEST_BOOT
    from thrifty.providers.gcp import GcpProvider, GcpTarget

    gce = FakeGce(replay_server)
    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=TEST_BOOT)
    gcp = GcpProvider(target, credentials=AnonymousCredentials())
    spec = make_spec(region="us-central1", instance_type="e2-standard-2", replicas=1)
    registry = _deployed(gcp, spec)

    def running() -> int:
        return sum(i.get("status") == "RUNNING" for zone in gce.instances.values() for i in zone.values())

    with api_over(gcp) as http:
        _verbs(http, registry, running, up=2)
        gce.quota_cpus = 2
        refused = http.post("/deployments/minilm/scale", json={"replicas": 4})
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["error"] == "QuotaExceededError" and "CPUS" in body["message"] and body["fix"]
        assert registry.get_deployment("minilm").replicas == 2, "the refused scale left the row as it was"
        assert http.get("/audit").json()["items"][0]["outcome"] != "ok"


def test_azure_scale_hibernate_wake_and_a_quota_refusal_through_the_api_replayed(
    replay_server: Any, make_spec: Any, thrifty_home: Path
) -> None:
    from thrifty.providers.azure import AzureProvider

    arm = FakeArm(replay_server)
    azure = AzureProvider(azure_target(arm), credential=StaticToken())
    registry = _deployed(azure, make_spec(region="eastus", instance_type="Standard_D2s_v5", replicas=1))

    def running() -> int:
        return sum(vm.get("_power", "running") == "running" for vm in arm.vms.values())

    with api_over(azure) as http:
        _verbs(http, registry, running, up=2)
        arm.quota_vms = 2
        refused = http.post("/deployments/minilm/scale", json={"replicas": 3})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "QuotaExceededError" and "quota" in refused.json()["message"]
        assert refused.json()["fix"]
        assert registry.get_deployment("minilm").replicas == 2
        assert sorted(arm.vms) == ["thrifty-minilm-0", "thrifty-minilm-1"], "nothing half-made is left"


def test_lambda_warm_floor_through_the_api(
    make_lambda: Callable[..., Any], serverless_spec: Callable[..., Any], thrifty_home: Path
) -> None:
    """A serverless deployment is never stopped: scale sets its provisioned concurrency (the warm
    floor), hibernate drops it to 0, wake raises it to at least 1."""
    provider = make_lambda()
    registry = _deployed(provider, serverless_spec("lambda-3538mb", "us-east-1", replicas=1))
    floor = ("thrifty-minilm", "live")
    with api_over(provider) as http:
        scaled = http.post("/deployments/minilm/scale", json={"replicas": 3})
        assert scaled.status_code == 200, scaled.text
        assert scaled.json()["replicas_desired"] == 3 and provider.provisioned.configs == {floor: 3}
        slept = http.post("/deployments/minilm/hibernate")
        assert slept.json()["replicas_desired"] == 0 and provider.provisioned.configs == {}
        assert slept.json()["endpoint_url"], "the function URL stays: Lambda starts an instance per request"
        woken = http.post("/deployments/minilm/wake")
        assert woken.json()["replicas_desired"] == 1 and provider.provisioned.configs == {floor: 1}
        assert registry.get_deployment("minilm").endpoint_url == woken.json()["endpoint_url"]
