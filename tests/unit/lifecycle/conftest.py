"""The provider tests' fixtures (moto, the replay server, specs), shared with the lifecycle tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.providers.conftest import (
    TEST_BOOT,
    aws_target,
    make_spec,
    moto,
    pytest_configure,
    replay_server,
    s3_artifact,
)
from thrifty.providers.aws import AwsProvider, AwsTarget
from thrifty.registry import Registry

__all__ = ["aws_target", "make_spec", "moto", "pytest_configure", "replay_server", "s3_artifact"]


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A registry holding one model version with variants 1, 2 and 3 (what the specs deploy)."""
    registry = Registry.from_url(f"sqlite:///{tmp_path / 'registry.db'}")
    artifact = registry.upsert_artifact("c" * 64, 10, "/store/c")
    version, _ = registry.add_model_version(
        "m", sha256="c" * 64, artifact=artifact, format="onnx", size_bytes=10, source_path="/m.onnx"
    )
    for name in ("v1", "v2", "v3"):
        registry.add_variant(version.id, name, technique="export", artifact=artifact)
    return registry


@pytest.fixture
def providers(aws_target: AwsTarget, replay_server: Any) -> dict[str, Any]:
    from google.auth.credentials import AnonymousCredentials

    from tests.unit.providers.test_gcp import PROJECT, FakeGce
    from thrifty.providers.gcp import GcpProvider, GcpTarget

    gce = FakeGce(replay_server)
    gcp_target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=TEST_BOOT)
    west = AwsTarget(region="us-west-2", endpoint_url=aws_target.endpoint_url, boot=aws_target.boot)
    return {
        "aws": AwsProvider(aws_target),
        "thrifty-aws-target/west": AwsProvider(west),
        "gcp": GcpProvider(gcp_target, credentials=AnonymousCredentials()),
        "fake": gce,
    }
