"""Fixtures for the provider tests.

AWS tests talk to moto's real HTTP server (the session ``moto_server`` fixture), reset before each
test. GCP, Azure and Kubernetes tests talk to HTTP servers started here (``replay_server``) that
answer with real-shaped responses: those tests end in ``_replayed`` and carry the ``replayed``
marker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


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


@pytest.fixture
def aws_target(moto: str, s3_artifact: tuple[str, str]) -> Any:
    from thrifty.providers.aws import AwsTarget
    from thrifty.providers.aws_cloudinit import BootConfig

    return AwsTarget(
        region="us-east-1",
        endpoint_url=moto,
        boot=BootConfig(artifact_store_url=s3_artifact[0], s3_endpoint_url=moto),
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


class CapacityFault:
    """Makes the EC2 client refuse spot launches with InsufficientInstanceCapacity while ``on``.

    A botocore ``before-parameter-build`` hook raises the same ClientError AWS would send (moto
    has no spot market to run out of); every other call still goes to moto.
    """

    def __init__(self, client: Any) -> None:
        self.on = True
        self.refused = 0
        client.meta.events.register("before-parameter-build.ec2.RunInstances", self._maybe_refuse)

    def _maybe_refuse(self, params: dict[str, Any], **_: Any) -> None:
        from botocore.exceptions import ClientError

        if self.on and "InstanceMarketOptions" in params:
            self.refused += 1
            error = {"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no spot capacity"}}
            raise ClientError(error, "RunInstances")  # type: ignore[arg-type]


# -- replay servers (GCP, Azure, Kubernetes) ----------------------------------------------------
#: a route answers (status, JSON body) or (status, JSON body, extra headers)
Handler = Callable[["Request"], tuple[Any, ...]]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # an email.message.Message: case-insensitive lookups
    body: Any


@dataclass
class ReplayServer:
    """A loopback HTTP server whose routes are Python functions; it records every request."""

    url: str
    routes: list[tuple[str, str, Handler]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def route(self, method: str, path_prefix: str, handler: Handler) -> None:
        self.routes.insert(0, (method, path_prefix, handler))

    def answer(self, request: Request) -> tuple[Any, ...]:
        self.requests.append(request)
        for method, prefix, handler in self.routes:
            if request.method == method and request.path.startswith(prefix):
                return handler(request)
        return 404, {"error": {"code": 404, "message": f"no route for {request.method} {request.path}"}}


def _handler_class(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            request = Request(self.command, parts.path, parse_qs(parts.query), self.headers, body)
            status, payload, *extra = server.answer(request)
            text = isinstance(payload, str)  # metadata endpoints answer plain text
            data = b"" if payload is None else payload.encode() if text else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra[0] if extra else {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return _Handler


@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    server = ReplayServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
