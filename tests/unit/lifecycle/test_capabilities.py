"""A target that cannot keep revisions says so as data: the verb's outcome is ``unsupported``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from thrifty.errors import UnsupportedFeatureError
from thrifty.lifecycle import Lifecycle, capabilities
from thrifty.lifecycle.core import outcome_of_error
from thrifty.providers.base import DeploySpec, Feature
from thrifty.registry import Registry


class NoRevisions:
    """A target (think: a serverless function with one version) that keeps no second revision."""

    name: ClassVar[str] = "aws"
    unsupported: ClassVar[dict[Feature, str]] = {Feature.REVISIONS: "one function version at a time"}

    def deploy(self, spec: DeploySpec) -> Any:
        raise AssertionError("an unsupported update must not deploy anything")


def test_an_update_on_a_target_without_revisions_is_an_unsupported_outcome(tmp_path: Path) -> None:
    registry = Registry.from_url(f"sqlite:///{tmp_path / 'r.db'}")
    spec = DeploySpec(name="m", model_name="m", variant_id=0, artifact_sha256="a" * 64, region="us-east-1")
    registry.upsert_deployment("m", provider="aws", state="running", spec=spec.model_dump(mode="json"))
    lifecycle = Lifecycle(registry, lambda _ref: NoRevisions(), lambda spec, status: "")  # type: ignore[arg-type,return-value]
    assert capabilities(NoRevisions)["rollback"] == "one function version at a time"  # type: ignore[arg-type]
    with pytest.raises(UnsupportedFeatureError) as info:
        lifecycle.update("m", spec.with_changes(variant_id=0, instance_type="c7g.xlarge"), "aws")
    outcome = outcome_of_error("m", "update", info.value)
    assert (outcome.status, outcome.detail) == ("unsupported", info.value.message)
    assert "does not support revisions" in outcome.detail
    assert registry.list_revisions("m") == []  # nothing recorded, nothing started
