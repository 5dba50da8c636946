"""The on-VM interruption watcher against a local metadata server (never 169.254.169.254).

REPLAYED: the metadata endpoints answer with the documented shapes of AWS IMDSv2, GCP's
``instance/preempted`` and Azure Scheduled Events. Tests end in ``_replayed``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.providers.replay import ReplayServer, Request
from thrifty.errors import ConfigError
from thrifty.providers.aws_interruption import InterruptionNotice, metadata_client, probe_for, watch

pytestmark = pytest.mark.replayed


class Imds:
    """IMDSv2: a token first, then 404 on spot/instance-action until a notice is planned."""

    def __init__(self, server: ReplayServer) -> None:
        self.notice: dict[str, str] | None = None
        self.polls = 0
        server.route("PUT", "/latest/api/token", self.token)
        server.route("GET", "/latest/meta-data/", self.get)

    def token(self, req: Request) -> tuple[Any, ...]:
        assert req.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
        return 200, "imds-token"

    def get(self, req: Request) -> tuple[Any, ...]:
        if req.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            return 401, None
        if req.path.endswith("instance-id"):
            return 200, "i-0abc"
        self.polls += 1
        if self.polls >= 3:
            self.notice = {"action": "terminate", "time": "2026-11-26T10:02:00Z"}
        return (200, self.notice) if self.notice else (404, None)


def test_aws_notice_is_emitted_once_with_time_and_instance_replayed(replay_server: ReplayServer) -> None:
    imds = Imds(replay_server)
    emitted: list[InterruptionNotice] = []
    with metadata_client() as client:
        probe = probe_for("aws", client, replay_server.url)
        notice = watch(probe, "minilm", emitted.append, poll_s=0.01, max_polls=10)
    assert emitted == [notice]
    assert notice is not None and imds.polls == 3
    assert (notice.cloud, notice.deployment, notice.instance_id, notice.action) == (
        "aws",
        "minilm",
        "i-0abc",
        "terminate",
    )
    assert notice.at == datetime(2026, 11, 26, 10, 2, tzinfo=UTC)
    assert notice.payload()["at"] == "2026-11-26T10:02:00+00:00"


def test_no_notice_means_no_event_replayed(replay_server: ReplayServer) -> None:
    imds = Imds(replay_server)
    imds.polls = -100  # never reaches a notice within the polls
    emitted: list[InterruptionNotice] = []
    with metadata_client() as client:
        assert (
            watch(probe_for("aws", client, replay_server.url), "m", emitted.append, poll_s=0.0, max_polls=4)
            is None
        )
    assert emitted == []


def test_gcp_preempted_flag_replayed(replay_server: ReplayServer) -> None:
    answers = iter(["FALSE", "TRUE"])

    def meta(req: Request) -> tuple[Any, ...]:
        assert req.headers["Metadata-Flavor"] == "Google"
        return 200, "thrifty-minilm-1" if req.path.endswith("/name") else next(answers)

    replay_server.route("GET", "/computeMetadata/v1/instance/", meta)
    emitted: list[InterruptionNotice] = []
    with metadata_client() as client:
        notice = watch(
            probe_for("gcp", client, replay_server.url), "minilm", emitted.append, poll_s=0.0, max_polls=5
        )
    assert notice is not None and (notice.instance_id, notice.action) == ("thrifty-minilm-1", "preempted")
    assert len(emitted) == 1


def test_azure_preempt_scheduled_event_replayed(replay_server: ReplayServer) -> None:
    events = {"DocumentIncarnation": 2, "Events": [
        {"EventId": "A1", "EventType": "Freeze", "Resources": ["thrifty-minilm-0"], "NotBefore": ""},
        {"EventId": "B2", "EventType": "Preempt", "ResourceType": "VirtualMachine",
         "Resources": ["thrifty-minilm-0"], "EventStatus": "Scheduled", "NotBefore": "Thu, 26 Nov 2026 10:00:30 GMT"},
    ]}  # fmt: skip
    replay_server.route("GET", "/metadata/scheduledevents", lambda req: (200, events))
    replay_server.route("GET", "/metadata/instance/compute/name", lambda req: (200, "thrifty-minilm-0"))
    with metadata_client() as client:
        notice = watch(
            probe_for("azure", client, replay_server.url), "minilm", lambda n: None, poll_s=0.0, max_polls=2
        )
    assert notice is not None and notice.action == "preempt" and notice.raw["EventId"] == "B2"
    assert notice.at == datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)


def test_a_failing_metadata_endpoint_is_retried_not_fatal_replayed(replay_server: ReplayServer) -> None:
    calls = {"n": 0}

    def flaky(req: Request) -> tuple[Any, ...]:
        calls["n"] += 1
        return (500, None) if calls["n"] < 3 else (200, "TRUE" if "preempted" in req.path else "vm")

    replay_server.route("GET", "/computeMetadata/v1/instance/", flaky)
    with metadata_client() as client:
        notice = watch(
            probe_for("gcp", client, replay_server.url), "m", lambda n: None, poll_s=0.0, max_polls=5
        )
    assert notice is not None


def test_unknown_cloud_is_a_config_error() -> None:
    with metadata_client() as client, pytest.raises(ConfigError, match="'oracle'"):
        probe_for("oracle", client)
