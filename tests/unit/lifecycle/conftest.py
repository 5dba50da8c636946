"""The provider tests' fixtures (moto, the replay server, specs), shared with the lifecycle tests."""

from __future__ import annotations

from tests.unit.providers.conftest import (
    aws_target,
    make_spec,
    moto,
    pytest_configure,
    replay_server,
    s3_artifact,
)

__all__ = ["aws_target", "make_spec", "moto", "pytest_configure", "replay_server", "s3_artifact"]
