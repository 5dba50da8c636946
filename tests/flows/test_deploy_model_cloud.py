"""The deploy-model flow end to end on each cloud target, against the providers' test peers.

A real flow run (ingest → variants → benchmark + fidelity → plan on the reference prices → deploy
→ verify → live) on the tiny ONNX classifier of test_deploy_model.py, with a saved
``thrifty-<provider>-target/default`` block whose provider talks to a peer on loopback:

- AWS: moto's real HTTP server (EC2, SSM, S3). The artifact store is an S3 bucket on the same moto,
  so the variant a VM's boot script fetches is really there.
- GCP, Azure, Kubernetes: the replay servers of tests/unit/providers (real-shaped API responses;
  they refuse sizes a zone or region does not sell, keep operations pending for some polls and give
  a public IP only to a VM that asks for one).
  Their tests end in ``_replayed``. GCP's and Azure's credential blocks are swapped for an
  anonymous / static-token credential: the real ones would reach Google's or Microsoft's token
  endpoint (no network here).

No VM or pod serves on these peers, so these runs opt in to ``verify="state"`` (the provider
reports the deployment running with its replicas ready); the default, ``verify="inference"``, is
run end to end on AWS in tests/e2e/test_rehearsed_flow.py, where a rehearsed VM boots from the
launch's user data and serves HTTPS. Each test re-runs the flow and checks that nothing is created
twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.flows.test_deploy_model import TECHNIQUES, build_classifier
from tests.unit.providers.replay import ReplayServer, handler_class

pytestmark = pytest.mark.slow

BUCKET = "thrifty-artifacts"
IMAGE = "127.0.0.1:5000/thrifty/thrifty-runtime@sha256:" + "0" * 64
STORE_URL = f"s3://{BUCKET}/models"
TARGET_SLUGS = ("aws", "gcp", "azure", "kubernetes")


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return build_classifier(tmp_path / "tiny.onnx")


@pytest.fixture
def moto(moto_server: str) -> str:
    """moto's endpoint, emptied, with the artifact bucket created."""
    import boto3
    import httpx

    httpx.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return moto_server


@pytest.fixture
def cloud_home(thrifty_home: Path, moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh THRIFTY_HOME whose artifact store is S3 on moto; saved target blocks are removed after."""
    from thrifty import runtime
    from thrifty.serving.daemon import stop_daemon
    from thrifty.settings import get_settings

    monkeypatch.setenv("THRIFTY_ARTIFACT_STORE_URL", STORE_URL)
    monkeypatch.setenv("THRIFTY_S3_ENDPOINT_URL", moto)
    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
    monkeypatch.delenv("THRIFTY_API_TOKENS", raising=False)
    runtime.reset()
    try:
        yield thrifty_home
    finally:
        stop_daemon(get_settings())
        _delete_target_blocks()


def _delete_target_blocks() -> None:
    """Other flow tests expect no saved target (target=auto → local)."""
    from blocks.targets import TARGET_BLOCKS

    for block in TARGET_BLOCKS.values():
        try:
            block.delete("default")
        except (ValueError, KeyError):  # not saved
            continue
        except Exception as exc:  # prefect.exceptions.ObjectNotFound
            if type(exc).__name__ != "ObjectNotFound":
                raise


@pytest.fixture
def replay_server(pytestconfig: pytest.Config) -> Iterator[ReplayServer]:
    """A loopback replay server (the provider tests' fakes add their routes to it)."""
    # the fakes live in tests/unit/providers, whose modules carry the ``replayed`` marker that
    # only that folder's conftest registers (pytest runs with --strict-markers)
    if not any(line.startswith("replayed:") for line in pytestconfig.getini("markers")):
        pytestconfig.addinivalue_line("markers", "replayed: talks to a local replay server")
    server = ReplayServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# -- helpers --------------------------------------------------------------------------------------
def run_cloud_flow(model: Path, **overrides: Any) -> dict[str, Any]:
    """Run deploy-model with state verification; asserts it completed and returns the summary."""
    from flows.deploy_model import DeployModelParams, deploy_model

    params = DeployModelParams(
        model=str(model),
        name="tiny",
        p95_ms=1000.0,
        rps=5.0,
        techniques=TECHNIQUES,
        bench_runs=5,
        verify="state",
    ).model_copy(update=overrides)
    state = deploy_model(params, return_state=True)
    assert state.is_completed(), state.message
    summary: dict[str, Any] = state.result()
    return summary


def assert_one_live_deployment(provider: str, summary: dict[str, Any]) -> Any:
    """Exactly one deployment, on ``provider``, live by the provider's own state."""
    from thrifty import runtime

    registry = runtime.registry()
    assert [(d.name, d.provider) for d in registry.list_deployments()] == [("tiny", provider)]
    row = registry.get_deployment("tiny")
    assert row.state == "running"
    assert summary["target"]["provider"] == provider
    verified = summary["smoke_test"]
    assert verified["metric"] == "provider_state" and verified["state"] == "running"
    assert verified["replicas_ready"] >= max(1, verified["replicas_desired"])
    assert row.resources["verified"] == verified
    events = [(e.kind, e.reason) for e in registry.list_events("tiny")]
    assert ("live", f"state check passed: {verified['detail']}") in events
    return row


# -- AWS on moto ----------------------------------------------------------------------------------
def _save_aws_target(moto: str, **settings: Any) -> None:
    from blocks.credentials import AwsCredentials
    from blocks.targets import AwsDeployTarget

    credentials = AwsCredentials(
        aws_access_key_id="AKIATESTINGTHRIFTY",
        aws_secret_access_key="fake-secret-for-moto",
        region_name="us-east-1",
        endpoint_url=moto,
    )
    AwsDeployTarget(
        credentials=credentials,
        region="us-east-1",
        artifact_store_url=STORE_URL,
        s3_endpoint_url=moto,
        image=IMAGE,
        allowed_cidrs=["198.51.100.0/24"],
    ).model_copy(update=settings).save("default", overwrite=True)


def _aws_instances(moto: str) -> list[dict[str, Any]]:
    """Live EC2 instances that carry thrifty's ownership tags for deployment "tiny"."""
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:thrifty:managed", "Values": ["true"]},
            {"Name": "tag:thrifty:deployment", "Values": ["tiny"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return [i for r in found["Reservations"] for i in r["Instances"]]


def _user_data(moto: str, instance_id: str) -> str:
    import base64

    import boto3

    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    found = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(found["UserData"]["Value"]).decode()


def test_aws_target_end_to_end_then_auto_reuses_it(tiny_model: Path, cloud_home: Path, moto: str) -> None:
    from thrifty import runtime
    from thrifty.artifacts.s3 import S3Store

    _save_aws_target(moto)
    summary = run_cloud_flow(tiny_model, target="aws", providers=["aws"], regions=["us-east-1"])

    row = assert_one_live_deployment("aws", summary)
    assert summary["chosen"]["provider"] == "aws" and row.region.startswith("us-east-1")
    instances = _aws_instances(moto)
    assert len(instances) == row.spec["replicas"] == summary["smoke_test"]["replicas_ready"]
    assert sorted(i["InstanceId"] for i in instances) == sorted(row.resources["ids"])
    assert {i["InstanceType"] for i in instances} == {row.spec["instance_type"]}
    # the VM boots from the chosen variant, which is in the S3 store it is told to pull from
    sha = row.spec["artifact_sha256"]
    assert sha == runtime.registry().get_variant(row.variant_id).artifact.sha256
    user_data = _user_data(moto, instances[0]["InstanceId"])
    assert STORE_URL in user_data and sha in user_data
    assert S3Store(STORE_URL, endpoint_url=moto, cache_dir=cloud_home / "check").exists(sha)

    # target=auto with the aws block saved: the plan's cloud, the same deployment, nothing new
    again = run_cloud_flow(tiny_model, target="auto", providers=["aws"], regions=["us-east-1"])
    assert again["target"]["reason"] == "target block thrifty-aws-target/default is configured"
    assert_one_live_deployment("aws", again)
    assert sorted(i["InstanceId"] for i in _aws_instances(moto)) == sorted(i["InstanceId"] for i in instances)


def test_a_failed_state_check_rolls_the_cloud_deployment_back(
    tiny_model: Path, cloud_home: Path, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from flows.deploy_model import DeployModelParams, deploy_model
    from thrifty import runtime
    from thrifty.errors import ProviderError
    from thrifty.providers.aws import AwsProvider

    real_status = AwsProvider.status

    def never_ready(self: AwsProvider, name: str) -> Any:  # instances launched, none ever ready
        status = real_status(self, name)
        return replace(status, state="pending", replicas_ready=0) if status.state == "running" else status

    monkeypatch.setattr(AwsProvider, "status", never_ready)
    _save_aws_target(moto)
    params = DeployModelParams(
        model=str(tiny_model), name="tiny", p95_ms=1000.0, rps=5.0, techniques=TECHNIQUES, bench_runs=5,
        verify="state", target="aws", providers=["aws"], regions=["us-east-1"],
    )  # fmt: skip
    state = deploy_model(params, return_state=True)

    assert state.is_failed()
    with pytest.raises(
        ProviderError, match=r"state check of 'tiny' failed: aws reports pending, 0/\d+ replicas ready"
    ):
        state.result()
    assert _aws_instances(moto) == [], "the rollback terminates what the deploy step launched"
    row = runtime.registry().get_deployment("tiny")
    assert (row.state, row.replicas, row.endpoint_url) == ("deleted", 0, None)
    assert "live" not in [e.kind for e in runtime.registry().list_events("tiny")]


# -- GCP, Azure, Kubernetes on replay servers ------------------------------------------------------
def _assert_copied_once(row: Any, objects: dict[str, Any], store_url: str) -> None:
    """The deploy copied the variant from thrifty's S3 store into the target cloud's own store
    (verified bytes), priced at AWS's egress rate, and recorded it."""
    from thrifty import runtime
    from thrifty.artifacts.transfer import EGRESS_USD_PER_GB

    sha = row.spec["artifact_sha256"]
    assert sha in {o.sha256 for o in objects.values()}
    events = [e for e in runtime.registry().list_events("tiny") if e.kind == "artifact-copied"]
    assert len(events) == 1 and events[0].reason == f"to {store_url}"
    (copied,) = [c for c in events[0].details["copied"] if c["sha256"] == sha]
    assert copied["egress_usd"] == pytest.approx(copied["size_bytes"] * EGRESS_USD_PER_GB["aws"] / 1e9)


def _inserts(server: ReplayServer, method: str, fragment: str) -> int:
    return sum(r.method == method and fragment in r.path for r in server.requests)


def test_gcp_target_end_to_end_replayed(
    tiny_model: Path,
    cloud_home: Path,
    moto: str,
    replay_server: ReplayServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.oauth2.credentials import Credentials

    from blocks.credentials import GcpCredentials
    from blocks.targets import GcpDeployTarget
    from tests.unit.providers.storage_doubles import FakeGcs
    from tests.unit.providers.test_gcp import GCP_TOKEN, PROJECT, FakeGce, FakeSecretManager

    gce, secret_manager = FakeGce(replay_server), FakeSecretManager(replay_server)
    # thrifty's token writes the bucket and its IAM policy (the VMs' service account gets objectViewer)
    gcs = FakeGcs(replay_server, writers={GCP_TOKEN}, owners={GCP_TOKEN}, buckets={"gcp-models": {}})
    # the real block would build service-account credentials and ask Google's token endpoint
    monkeypatch.setattr(
        GcpCredentials, "get_credentials_from_service_account", lambda self: Credentials(token=GCP_TOKEN)
    )
    GcpDeployTarget(
        credentials=GcpCredentials(project=PROJECT),
        api_endpoint=gce.url,
        artifact_bucket="gcp-models",  # the VMs read GCS with their service account, not S3
        service_account_email=f"thrifty-vms@{PROJECT}.iam.gserviceaccount.com",
        store_endpoint_url=gcs.url,
        secrets_endpoint_url=secret_manager.url,
        image=IMAGE,
        allowed_cidrs=["198.51.100.0/24"],
    ).save("default", overwrite=True)

    summary = run_cloud_flow(tiny_model, target="gcp", providers=["gcp"])

    row = assert_one_live_deployment("gcp", summary)
    assert list(secret_manager.secrets) == ["thrifty-tiny"], "the TLS key went to Secret Manager"
    assert row.endpoint_url.startswith("https://") and len(row.spec["serving"]["tls_cert_sha256"]) == 64
    assert summary["chosen"]["provider"] == "gcp"
    instances = [i for zone in gce.instances.values() for i in zone.values()]
    assert len(instances) == row.spec["replicas"] >= 1
    for inst in instances:
        assert inst["labels"]["thrifty-managed"] == "true" and inst["labels"]["thrifty-deployment"] == "tiny"
        assert inst["machineType"].endswith(f"/machineTypes/{row.spec['instance_type']}")
        user_data = next(i["value"] for i in inst["metadata"]["items"] if i["key"] == "user-data")
        assert "gs://gcp-models/thrifty" in user_data and row.spec["artifact_sha256"] in user_data
    _assert_copied_once(row, gcs.buckets["gcp-models"], "gs://gcp-models/thrifty")
    assert gcs.policies["gcp-models"]["bindings"] == [
        {
            "role": "roles/storage.objectViewer",
            "members": [f"serviceAccount:thrifty-vms@{PROJECT}.iam.gserviceaccount.com"],
        }
    ], "the deploy let the VMs' service account read the bucket"
    # the double gives an external IP only to a VM that asked for one: the endpoint is that IP
    nat_ips = {c["natIP"] for i in instances for c in i["networkInterfaces"][0].get("accessConfigs", [])}
    assert len(nat_ips) == len(instances) and row.endpoint_url.split("//")[1].split(":")[0] in nat_ips
    assert gce.polls and min(gce.polls.values()) >= gce.polls_to_done, "operations were waited for"
    inserts = _inserts(replay_server, "POST", "/instances")

    again = run_cloud_flow(tiny_model, target="gcp", providers=["gcp"])
    assert_one_live_deployment("gcp", again)
    assert _inserts(replay_server, "POST", "/instances") == inserts, "the re-run launched a VM"
    assert [i["name"] for z in gce.instances.values() for i in z.values()] == [i["name"] for i in instances]


def test_azure_target_end_to_end_replayed(
    tiny_model: Path,
    cloud_home: Path,
    moto: str,
    replay_server: ReplayServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from blocks.credentials import AzureComputeCredentials
    from blocks.targets import AzureDeployTarget
    from tests.unit.providers.storage_doubles import FakeAzureBlob
    from tests.unit.providers.test_azure import RG, SUB, TOKEN, FakeArm, StaticToken

    arm = FakeArm(replay_server)
    blob = FakeAzureBlob(replay_server, account="thriftymodels", writers={TOKEN}, containers={"models": {}})
    # the real block would build a ClientSecretCredential and ask Microsoft's token endpoint
    monkeypatch.setattr(AzureComputeCredentials, "get_credential", lambda self: StaticToken())
    AzureDeployTarget(
        credentials=AzureComputeCredentials(client_id="app-id", tenant_id="tenant-id", client_secret="fake"),
        subscription_id=SUB,
        resource_group=RG,
        subnet_id=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s",
        ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI thrifty@test",
        base_url=arm.url,
        artifact_storage_account="thriftymodels",  # the VMs read Blob Storage with their identity
        artifact_container="models",
        store_endpoint_url=blob.url,
        image=IMAGE,
        allowed_cidrs=["198.51.100.0/24"],
    ).save("default", overwrite=True)

    summary = run_cloud_flow(tiny_model, target="azure", providers=["azure"])

    row = assert_one_live_deployment("azure", summary)
    assert summary["chosen"]["provider"] == "azure"
    assert len(arm.vms) == row.spec["replicas"] >= 1
    for vm in arm.vms.values():
        assert vm["tags"]["thrifty:managed"] == "true" and vm["tags"]["thrifty:deployment"] == "tiny"
        assert vm["properties"]["hardwareProfile"]["vmSize"] == row.spec["instance_type"]
        assert vm["properties"]["provisioningState"] == "Succeeded", "the create operation was awaited"
    names = sorted(arm.vms)
    assert sorted(arm.public_ips) == names, "each VM asked for its public IP"
    _assert_copied_once(row, blob.containers["models"], "az://thriftymodels/models/thrifty")
    puts = _inserts(replay_server, "PUT", "/virtualMachines/")

    again = run_cloud_flow(tiny_model, target="azure", providers=["azure"])
    assert_one_live_deployment("azure", again)
    assert sorted(arm.vms) == names
    assert _inserts(replay_server, "PUT", "/virtualMachines/") == puts, "the re-run created a VM"


def test_kubernetes_target_end_to_end_replayed(
    tiny_model: Path, cloud_home: Path, moto: str, replay_server: ReplayServer
) -> None:
    from blocks.credentials import KubernetesClusterConfig
    from blocks.targets import KubernetesDeployTarget
    from tests.unit.providers.test_kubernetes import SECRET_TOKEN, FakeApiServer

    apiserver = FakeApiServer(replay_server)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": replay_server.url}}],
        "users": [{"name": "u", "user": {"token": SECRET_TOKEN}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    KubernetesDeployTarget(
        cluster_config=KubernetesClusterConfig(config=kubeconfig, context_name="ctx"),
        namespace="ml",
        artifact_store_url=STORE_URL,
        s3_endpoint_url=moto,
        image=IMAGE,
    ).save("default", overwrite=True)

    # the price catalog has no Kubernetes offers: the plan ranks the VM clouds, the cluster runs it
    summary = run_cloud_flow(tiny_model, target="kubernetes", providers=["aws"])

    row = assert_one_live_deployment("kubernetes", summary)
    path = "/apis/apps/v1/namespaces/ml/deployments/tiny"
    workload = apiserver.objects[path]
    labels = workload["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "thrifty" and labels["thrifty-deployment"] == "tiny"
    assert workload["status"]["readyReplicas"] >= 1
    assert apiserver.unready_reads > 0, "the deploy waited while the pods were starting"
    assert "/api/v1/namespaces/ml/services/tiny" in apiserver.objects
    assert row.endpoint_url == "https://tiny.ml.svc.cluster.local", "the pods serve TLS"
    assert "/api/v1/namespaces/ml/secrets/tiny-tls" in apiserver.objects, "the key went to a Secret"
    objects = sorted(apiserver.objects)
    generation = workload["metadata"]["generation"]

    again = run_cloud_flow(tiny_model, target="kubernetes", providers=["aws"])
    assert_one_live_deployment("kubernetes", again)
    assert sorted(apiserver.objects) == objects
    assert apiserver.objects[path]["metadata"]["generation"] == generation, "the re-run changed the spec"
