"""The rehearsal: the AWS target deploys on moto's EC2, and the exact user data it put in the launch
template boots a "VM" — a privileged container from a fresh Debian base that knows nothing of
thrifty — which installs nothing from a package index, pulls the runtime image by digest from the
local registry, and serves the variant it fetched from moto's S3 with credentials from the
instance-metadata stand-in. The VM's container reads its TLS key and the token's digest from
Secrets Manager (moto) with those credentials — the user data holds neither — and serves HTTPS: the
answer goes through a client that trusts only the pinned certificate, with the bearer token that
only the control plane knows. GCP's and Azure's "VMs" have no AWS identity: the deploy copies the
variant into the GCS / Blob Storage double and the VM reads it with its metadata-server token /
managed identity. Also: the boot scripts of all three clouds parse and name the image."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import tiny_onnx

pytestmark = pytest.mark.slow

#: the AWS instance-metadata address of a GCP or Azure "VM": nothing answers there, so nothing in
#: the VM can borrow an AWS identity (the artifact comes from the cloud's own store)
NO_AWS_IDENTITY = "http://127.0.0.1:9"


@pytest.fixture(scope="session")
def vm_base() -> str:
    from thrifty.rehearsal import vm_image

    return vm_image()


def _spec(sha: str, token_sha: str, **kw: Any) -> Any:
    from thrifty.providers.base import DeploySpec, PriceModel

    return DeploySpec(
        name="tiny",
        model_name="tiny",
        variant_id=1,
        artifact_sha256=sha,
        region="us-east-1",
        instance_type="c7g.large",
        price_model=PriceModel.ON_DEMAND,
        serving={"token_sha256": token_sha},
        **kw,
    )


def _tls_spec(sha: str, token: str, home: Path) -> Any:
    """A spec as the deploy step makes it: token digest and certificate pinned, bundle for the store."""
    from pydantic import SecretStr

    from thrifty import tls

    cert = tls.issue(home, "tiny")
    token_sha = hashlib.sha256(token.encode()).hexdigest()
    spec = _spec(sha, token_sha, secret_bundle=SecretStr(tls.secret_bundle(cert, token_sha)))
    serving = {**spec.serving, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem}
    return spec.with_changes(serving=serving), cert


def test_aws_user_data_boots_a_fresh_vm_into_a_verified_https_endpoint(
    vm_base: str, pushed_image: str, store: tuple[Any, str], tmp_path: Path
) -> None:
    from thrifty.providers.aws import AwsProvider, AwsTarget
    from thrifty.providers.boot import BootConfig, script_of
    from thrifty.reach import endpoint_client
    from thrifty.rehearsal import boot_vm, metadata_server, wait_ready

    s3, moto = store
    weights = tiny_onnx(tmp_path / "tiny.onnx")
    sha = s3.put_file(tmp_path / "tiny.onnx").sha256
    token = secrets.token_urlsafe(24)
    port = free_port()
    boot = BootConfig(
        artifact_store_url="s3://artifacts/blobs",
        s3_endpoint_url=moto,
        port=port,
        image=pushed_image,
        insecure_registry=True,
        allowed_cidrs=("127.0.0.1/32",),
        secrets_endpoint_url=moto,
    )
    aws = AwsProvider(AwsTarget(region="us-east-1", endpoint_url=moto, boot=boot))
    spec, cert = _tls_spec(sha, token, tmp_path)
    status = aws.deploy(spec)
    assert status.endpoint_url is not None and status.endpoint_url.startswith("https://")
    template = aws.ec2.describe_launch_template_versions(LaunchTemplateName="thrifty-tiny")
    user_data = base64.b64decode(template["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"])
    assert token not in user_data.decode() and cert.key_pem.splitlines()[1] not in user_data.decode()

    with metadata_server() as imds, endpoint_client(spec.model_dump()) as client:
        vm = boot_vm(script_of(user_data.decode()), metadata_url=imds)
        try:
            ready_s = wait_ready(f"https://127.0.0.1:{port}", vm, client=client)
            x = np.random.default_rng(11).standard_normal((3, 4)).astype(np.float32)
            body = {
                "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}]
            }
            url = f"https://127.0.0.1:{port}/v2/models/tiny/infer"
            answer = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
            assert answer.status_code == 200, answer.text
            out = answer.json()["outputs"][0]
            got = np.array(out["data"]).reshape(out["shape"])
            np.testing.assert_allclose(got, x @ weights, rtol=1e-5, atol=1e-5)
            assert client.post(url, json=body, timeout=10.0).status_code == 401
            wrong = {"Authorization": "Bearer " + secrets.token_urlsafe(24)}
            assert client.post(url, json=body, headers=wrong, timeout=10.0).status_code in (401, 403)
            with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer: the port speaks TLS only
                httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5.0)
            logs = vm.logs()
            assert "thrifty-rehearsal: boot script done" in logs
            assert token not in logs and cert.key_pem.splitlines()[1] not in logs
            assert "pip" not in vm.exec("sh", "-c", "ls /usr/bin /usr/local/bin"), "the VM got no pip"
        finally:
            vm.stop()
    assert ready_s < 240
    aws.delete("tiny")


@pytest.mark.parametrize(
    ("image", "login"),
    [
        ("us-central1-docker.pkg.dev/p/thrifty/thrifty-runtime@sha256:" + "a" * 64, "oauth2accesstoken"),
        ("thriftyacr.azurecr.io/thrifty-runtime@sha256:" + "a" * 64, "oauth2/exchange"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/thrifty-runtime@sha256:" + "a" * 64, "ecr get-login"),
    ],
)
def test_every_clouds_boot_script_is_valid_shell_and_logs_in_with_the_vms_identity(
    image: str, login: str
) -> None:
    from thrifty.providers.boot import BootConfig, render_user_data, script_of

    boot = BootConfig(artifact_store_url="s3://artifacts/blobs", image=image)
    cloud = "gcp" if "pkg.dev" in image else "azure" if "azurecr" in image else "aws"
    script = script_of(render_user_data(_spec("ab" * 32, "cd" * 32), boot, cloud=cloud))
    checked = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert login in script and f"pull {image}" in script
    assert "pip install" not in script


@contextmanager
def _replay() -> Iterator[Any]:
    """A loopback replay server for the GCP doubles (Compute Engine, Secret Manager, metadata)."""
    from http.server import ThreadingHTTPServer

    from tests.unit.providers.replay import ReplayServer, handler_class

    server = ReplayServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_gcp_user_data_boots_a_vm_that_reads_secret_manager_and_gcs_and_serves_https(
    vm_base: str, pushed_image: str, tmp_path: Path
) -> None:
    """GCP's user data from the Compute Engine double, in a rehearsed VM with no AWS identity at all
    (the AWS metadata address leads nowhere): the deploy copies the variant from thrifty's own
    folder into the GCS double with the provider's credentials, and the VM's container reads its key
    and token digest from the Secret Manager double and the variant from the GCS double, both with
    the metadata server's token (the doubles refuse any other), then serves HTTPS through the
    pinned certificate."""

    from google.oauth2.credentials import Credentials

    from tests.unit.providers.storage_doubles import FakeGcs
    from tests.unit.providers.test_gcp import GCP_TOKEN, PROJECT, VM_TOKEN, FakeGce, FakeSecretManager
    from thrifty.artifacts import open_store
    from thrifty.artifacts.local import LocalStore
    from thrifty.artifacts.transfer import copy_for_deploy
    from thrifty.providers.boot import BootConfig, script_of
    from thrifty.providers.gcp import GcpProvider, GcpTarget
    from thrifty.reach import endpoint_client
    from thrifty.rehearsal import boot_vm, wait_ready

    weights = tiny_onnx(tmp_path / "tiny.onnx")
    sha = LocalStore(tmp_path / "own-store").put_file(tmp_path / "tiny.onnx").sha256
    token, port = secrets.token_urlsafe(24), free_port()
    with _replay() as replay:
        gce, secret_manager = FakeGce(replay), FakeSecretManager(replay)
        # the VM's token reads the bucket only through the objectViewer binding the deploy adds
        vm_account = f"thrifty-vms@{PROJECT}.iam.gserviceaccount.com"
        gcs = FakeGcs(replay, writers={GCP_TOKEN}, owners={GCP_TOKEN}, buckets={"models": {}},
                      identities={VM_TOKEN: f"serviceAccount:{vm_account}"})  # fmt: skip
        boot = BootConfig("gs://models/thrifty", store_endpoint_url=gcs.url, port=port, image=pushed_image,
                          insecure_registry=True, secrets_endpoint_url=secret_manager.url,
                          allowed_cidrs=("127.0.0.1/32",))  # fmt: skip
        gcp = GcpProvider(
            GcpTarget(
                project=PROJECT,
                api_endpoint=gce.url,
                poll_s=0.01,
                boot=boot,
                service_account_email=vm_account,
            ),
            credentials=Credentials(token=GCP_TOKEN),
        )
        bucket = open_store(
            boot.artifact_store_url, endpoint_url=gcs.url, credentials=gcp.store_credentials()
        )
        (copied,) = copy_for_deploy(LocalStore(tmp_path / "own-store"), bucket, [sha])
        assert copied.copied and list(gcs.buckets["models"]) == [f"thrifty/sha256/{sha[:2]}/{sha}"]
        spec, cert = _tls_spec(sha, token, tmp_path)
        spec = spec.with_changes(region="us-central1", instance_type="e2-standard-2")
        assert gcp.deploy(spec).endpoint_url.startswith("https://")
        inst = next(i for zone in gce.instances.values() for i in zone.values())
        user_data = next(i["value"] for i in inst["metadata"]["items"] if i["key"] == "user-data")
        assert token not in user_data and cert.key_pem.splitlines()[1] not in user_data
        assert "gs://models/thrifty" in user_data and GCP_TOKEN not in user_data and VM_TOKEN not in user_data
        with endpoint_client(spec.model_dump()) as client:
            vm = boot_vm(script_of(user_data), metadata_url=NO_AWS_IDENTITY, gcp_metadata_url=replay.url)
            try:
                wait_ready(f"https://127.0.0.1:{port}", vm, client=client)
                x = np.random.default_rng(13).standard_normal((2, 4)).astype(np.float32)
                body = {
                    "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]
                }
                url = f"https://127.0.0.1:{port}/v2/models/tiny/infer"
                answer = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200, answer.text
                out = answer.json()["outputs"][0]
                np.testing.assert_allclose(
                    np.array(out["data"]).reshape(out["shape"]), x @ weights, rtol=1e-5, atol=1e-5
                )
                assert client.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code in (
                    401,
                    403,
                )
            finally:
                vm.stop()
        access = [r for r in replay.requests if r.path.endswith("/versions/latest:access")]
        assert access and access[-1].headers.get("Authorization") == f"Bearer {VM_TOKEN}"
        downloads = [
            r for r in replay.requests if r.path.startswith("/storage/v1/b/models/o/") and r.query.get("alt")
        ]
        assert downloads and all(r.headers.get("Authorization") == f"Bearer {VM_TOKEN}" for r in downloads)
        gcp.delete("tiny")
        assert secret_manager.secrets == {}


def test_azure_user_data_boots_a_vm_that_reads_key_vault_and_blob_storage_with_its_identity(
    vm_base: str, pushed_image: str, tmp_path: Path
) -> None:
    """Azure's custom data from the ARM double, in a rehearsed VM. The deploy gave the VM's identity
    "Key Vault Secrets User" on the vault (the ARM double's role assignment); the container takes
    its managed identity's token from the IMDS double (which refuses a request without
    ``Metadata: true``) and reads its key and token digest from the Key Vault double, which answers
    that identity only while it holds the role — and refuses its first read, as a new role takes a
    while to reach the data plane, so the container waits and asks again. The deploy copied the
    variant from thrifty's own folder into the Blob Storage double with the provider's credential;
    the container fetches it from there with the same managed identity (IMDS token for resource
    https://storage.azure.com/, ``x-ms-version`` on every call; the double refuses anything else) —
    the "VM" has no AWS identity at all — and serves HTTPS through the pinned certificate."""
    from tests.unit.providers.storage_doubles import FakeAzureBlob
    from tests.unit.providers.test_azure import (
        MI_TOKEN_PREFIX,
        RG,
        SUB,
        TOKEN,
        VAULT_ID,
        FakeArm,
        FakeImds,
        FakeKeyVault,
        StaticToken,
    )
    from thrifty.artifacts import open_store
    from thrifty.artifacts.local import LocalStore
    from thrifty.artifacts.transfer import copy_for_deploy
    from thrifty.providers.azure import AzureProvider, AzureTarget
    from thrifty.providers.boot import BootConfig, script_of
    from thrifty.reach import endpoint_client
    from thrifty.rehearsal import boot_vm, wait_ready

    weights = tiny_onnx(tmp_path / "tiny.onnx")
    sha = LocalStore(tmp_path / "own-store").put_file(tmp_path / "tiny.onnx").sha256
    token, port = secrets.token_urlsafe(24), free_port()
    with _replay() as replay:
        arm, imds = FakeArm(replay), FakeImds(replay)
        vault = FakeKeyVault(replay, arm.rbac)
        account_id = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/thriftyblobs"
        # the VM's identity reads the container only through the role the deploy grants it there
        blobs = FakeAzureBlob(
            replay, writers={TOKEN}, containers={"models": {}}, rbac=arm.rbac, account_id=account_id
        )
        store_url = f"az://{blobs.account}/models/thrifty"
        boot = BootConfig(store_url, store_endpoint_url=blobs.url, port=port, image=pushed_image,
                          insecure_registry=True, allowed_cidrs=("127.0.0.1/32",))  # fmt: skip
        subnet = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
        target = AzureTarget(SUB, RG, subnet, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI thrifty@test", base_url=arm.url,
                             polling_interval_s=0.01, key_vault_url=vault.url, key_vault_id=VAULT_ID, boot=boot)  # fmt: skip
        azure = AzureProvider(target, credential=StaticToken())
        container = open_store(store_url, endpoint_url=blobs.url, credentials=azure.store_credentials())
        (copied,) = copy_for_deploy(LocalStore(tmp_path / "own-store"), container, [sha])
        assert copied.copied and list(blobs.containers["models"]) == [f"thrifty/sha256/{sha[:2]}/{sha}"]
        spec, cert = _tls_spec(sha, token, tmp_path)
        spec = spec.with_changes(region="eastus", instance_type="Standard_D2s_v5")
        assert azure.deploy(spec).details["serves"].startswith("https")
        vm_json = arm.vms["thrifty-tiny-0"]
        user_data = base64.b64decode(vm_json["properties"]["osProfile"]["customData"]).decode()
        assert token not in user_data and cert.key_pem.splitlines()[1] not in user_data
        principal = vm_json["identity"]["principalId"]
        grants = {
            a["properties"]["scope"]: a["properties"]["principalId"] for a in arm.rbac.assignments.values()
        }
        assert grants == {
            VAULT_ID: principal,
            f"{account_id}/blobServices/default/containers/models": principal,
        }
        assert store_url in user_data and TOKEN not in user_data
        imds.principal, vault.propagation_reads = principal, 1
        with endpoint_client(spec.model_dump()) as client:
            vm = boot_vm(script_of(user_data), metadata_url=NO_AWS_IDENTITY, azure_metadata_url=imds.url)
            try:
                wait_ready(f"https://127.0.0.1:{port}", vm, client=client)
                x = np.random.default_rng(17).standard_normal((2, 4)).astype(np.float32)
                body = {
                    "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]
                }
                url = f"https://127.0.0.1:{port}/v2/models/tiny/infer"
                answer = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200, answer.text
                out = answer.json()["outputs"][0]
                np.testing.assert_allclose(
                    np.array(out["data"]).reshape(out["shape"]), x @ weights, rtol=1e-5, atol=1e-5
                )
                assert client.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code in (
                    401,
                    403,
                )
                served = vm.exec("sh", "-c", "podman logs thrifty-tiny 2>&1")
                assert "answered 403; waiting" in served and token not in served + vm.logs()
            finally:
                vm.stop()
        token_calls = [r for r in replay.requests if r.path == "/metadata/identity/oauth2/token"]
        assert token_calls and all(r.headers.get("Metadata") == "true" for r in token_calls)
        assert {r.query["resource"][0] for r in token_calls} == {
            "https://vault.azure.net",
            "https://storage.azure.com/",
        }
        downloads = [
            r for r in replay.requests if r.method == "GET" and r.path.startswith(f"/{blobs.account}/models/")
        ]
        assert downloads and all(
            r.headers["Authorization"] == f"Bearer {MI_TOKEN_PREFIX}{principal}" for r in downloads
        )
        assert all(r.headers.get("x-ms-version") for r in downloads)
        reads = [r for r in replay.requests if r.path == "/secrets/thrifty-tiny" and r.method == "GET"]
        assert vault.refused_reads[principal] == 1 and reads[-1].headers["Authorization"].endswith(principal)
        azure.delete("tiny")
        assert vault.secrets == {} and arm.rbac.assignments == {} and arm.vms == {}
