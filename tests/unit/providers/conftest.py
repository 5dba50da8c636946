"""Fixtures for the provider tests.

AWS tests talk to moto's real HTTP server (the session ``moto_server`` fixture), reset before each
test. GCP, Azure and Kubernetes tests talk to HTTP servers started here (``replay_server``) that
answer with real-shaped responses: those tests end in ``_replayed`` and carry the ``replayed``
marker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.unit.providers.replay import ReplayServer, handler_class
from thrifty.providers.boot import BootConfig


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "replayed: talks to a local HTTP server replaying real-shaped cloud API responses"
    )


# -- AWS on moto ---------------------------------------------------------------------------------
@pytest.fixture
def moto(moto_server: str) -> str:
    """moto's endpoint, emptied before the test (the server is shared by the session)."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    return moto_server


@pytest.fixture
def s3_artifact(moto: str, tmp_path: Path) -> tuple[str, str]:
    """(store URL, sha256) of a small blob put into a moto S3 bucket through thrifty's S3Store."""
    import boto3

    from thrifty.artifacts.s3 import S3Store

    boto3.client("s3", endpoint_url=moto).create_bucket(Bucket="thrifty-artifacts")
    blob = tmp_path / "model.onnx"
    blob.write_bytes(b"not really onnx but bytes with a sha256" * 100)
    url = "s3://thrifty-artifacts/models"
    stored = S3Store(url, endpoint_url=moto, cache_dir=tmp_path / "cache").put_file(blob)
    return url, stored.sha256


#: a runtime image reference as `thrifty image build --push` prints it (no VM pulls it here)
RUNTIME_IMAGE = "127.0.0.1:5000/thrifty/thrifty-runtime@sha256:" + "0" * 64
#: the source range of every test deployment's network rule (TEST-NET-2: no real host)
ALLOWED_CIDRS = ("198.51.100.0/24",)
TEST_BOOT = BootConfig(
    artifact_store_url="s3://thrifty-artifacts", image=RUNTIME_IMAGE, allowed_cidrs=ALLOWED_CIDRS
)


@pytest.fixture
def aws_target(moto: str, s3_artifact: tuple[str, str]) -> Any:
    from thrifty.providers.aws import AwsTarget

    return AwsTarget(
        region="us-east-1",
        endpoint_url=moto,
        boot=BootConfig(
            artifact_store_url=s3_artifact[0],
            s3_endpoint_url=moto,
            image=RUNTIME_IMAGE,
            allowed_cidrs=ALLOWED_CIDRS,
        ),
    )


@pytest.fixture
def aws(aws_target: Any) -> Any:
    from thrifty.providers.aws import AwsProvider

    return AwsProvider(aws_target)


@pytest.fixture
def artifact_sha() -> str:
    """The variant's sha256 in specs; modules that pull it from moto's S3 override this fixture."""
    return "ab" * 32


@pytest.fixture
def make_spec(artifact_sha: str) -> Callable[..., Any]:
    from thrifty.providers.base import DeploySpec, PriceModel

    def make(name: str = "minilm", **overrides: Any) -> DeploySpec:
        fields: dict[str, Any] = {
            "name": name,
            "model_name": "all-MiniLM-L6-v2",
            "variant_id": 7,
            "artifact_sha256": artifact_sha,
            "region": "us-east-1",
            "instance_type": "c7g.large",
            "price_model": PriceModel.SPOT,
            "replicas": 2,
        }
        fields.update(overrides)
        return DeploySpec(**fields)

    return make


# -- replay servers (GCP, Azure, Kubernetes) ----------------------------------------------------
@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    server = ReplayServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
