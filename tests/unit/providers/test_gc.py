"""The orphan decision on hand-made resources (pure), and the sweep on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from thrifty.providers.aws import AwsProvider
from thrifty.providers.base import ManagedResource
from thrifty.providers.gc import find_orphans, label_value, sweep

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _res(name: str, age_s: float | None, provider: str = "aws") -> ManagedResource:
    created = None if age_s is None else NOW - timedelta(seconds=age_s)
    return ManagedResource(provider, "instance", f"i-{name}-{age_s}", "us-east-1", name, created)


@pytest.mark.parametrize(
    ("resource", "orphan"),
    [
        (_res("live", 10_000), False),  # its deployment is live
        (_res("gone", 10_000), True),  # deployment gone, older than the grace period
        (_res("gone", 60), False),  # deployment gone but young: a deploy may be in flight
        (_res("gone", None), True),  # age unknown: treated as old
        (_res("live", 10_000, provider="gcp"), True),  # same name, but live on aws only (migrated)
    ],
)
def test_find_orphans(resource: ManagedResource, orphan: bool) -> None:
    found = find_orphans([resource], [("aws", "live")], now=NOW, grace_s=900)
    assert bool(found) is orphan
    if orphan:
        assert "grace 900 s" in found[0].reason


@pytest.mark.parametrize(
    ("raw", "label"), [("MiniLM_v2", "minilm_v2"), ("a/b c", "a-b-c"), ("x" * 80, "x" * 63)]
)
def test_label_values_are_safe(raw: str, label: str) -> None:
    assert label_value(raw) == label


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


def test_sweep_deletes_only_what_no_live_deployment_owns_on_moto(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec("kept", replicas=1))
    aws.deploy(make_spec("dropped", replicas=2))
    later = datetime.now(UTC) + timedelta(hours=1)
    listed = sweep([aws], [("aws", "kept")], grace_s=900, dry_run=True, now=later)
    assert sorted((o.resource.deployment_name, o.resource.kind) for o in listed) == [
        ("dropped", "instance"),
        ("dropped", "instance"),
        ("dropped", "launch-template"),
        ("dropped", "security-group"),
    ]
    assert len(aws.list_managed()) == 7, "a dry run deletes nothing"
    sweep([aws], [("aws", "kept")], grace_s=900, now=later)
    assert {r.deployment_name for r in aws.list_managed()} == {"kept"}
    assert aws.status("kept").replicas_ready == 1
