"""On-VM spot interruption watcher: poll the instance metadata, emit one event on a notice.

Runs next to the inference server on a spot VM (cloud-init starts ``thrifty spot-watch``). Each
cloud announces a reclaim differently; one probe per cloud turns it into an ``InterruptionNotice``:

- AWS: IMDSv2 token (``PUT /latest/api/token``), then ``GET /latest/meta-data/spot/instance-action``
  — 404 while nothing is planned, ``{"action": "terminate", "time": …}`` two minutes ahead.
- GCP: ``GET /computeMetadata/v1/instance/preempted`` (``Metadata-Flavor: Google``) → ``TRUE``.
- Azure: Scheduled Events ``GET /metadata/scheduledevents`` (``Metadata: true``), an event of type
  ``Preempt`` naming this VM, about 30 s ahead.

The metadata base URL is a parameter (tests point it at a local server); the emitter is a callable.
The library does not know who sends the event: the Prefect layer registers its emitter (the event
``thrifty.spot.interruption`` that triggers the ``spot-rebalance`` flow) under the entry-point group
``thrifty.interruption_emitters`` in pyproject.toml, and ``installed_emitter`` finds it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

EVENT_NAME = "thrifty.spot.interruption"
#: entry-point group of the callables that send an ``InterruptionNotice`` on (plugins register here)
EMITTER_GROUP = "thrifty.interruption_emitters"
DEFAULT_BASE_URLS = {
    "aws": "http://169.254.169.254",
    "gcp": "http://metadata.google.internal",
    "azure": "http://169.254.169.254",
}


@dataclass(frozen=True)
class InterruptionNotice:
    cloud: str
    deployment: str
    instance_id: str
    action: str
    at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """JSON-ready fields for the event."""
        return {
            "cloud": self.cloud,
            "deployment": self.deployment,
            "instance_id": self.instance_id,
            "action": self.action,
            "at": self.at.isoformat() if self.at else None,
        }


class Probe(Protocol):
    cloud: str

    def instance_id(self) -> str: ...

    def check(self) -> tuple[str, datetime | None, dict[str, Any]] | None: ...


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:  # Azure Scheduled Events use RFC 1123 ("Thu, 26 Nov 2026 10:00:30 GMT")
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class AwsImdsProbe:
    client: httpx.Client
    base_url: str = DEFAULT_BASE_URLS["aws"]
    token_ttl_s: int = 21600
    cloud: str = "aws"
    _token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self.client.put(
                f"{self.base_url}/latest/api/token",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(self.token_ttl_s)},
            )
            response.raise_for_status()
            self._token = response.text
        return {"X-aws-ec2-metadata-token": self._token}

    def _get(self, path: str) -> httpx.Response:
        response = self.client.get(f"{self.base_url}/latest/meta-data/{path}", headers=self._headers())
        if response.status_code == 401:  # token expired: get a new one once
            self._token = None
            response = self.client.get(f"{self.base_url}/latest/meta-data/{path}", headers=self._headers())
        return response

    def instance_id(self) -> str:
        response = self._get("instance-id")
        response.raise_for_status()
        return response.text

    def check(self) -> tuple[str, datetime | None, dict[str, Any]] | None:
        response = self._get("spot/instance-action")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()
        return str(data.get("action", "terminate")), _parse_time(data.get("time")), data


@dataclass
class GcpMetadataProbe:
    client: httpx.Client
    base_url: str = DEFAULT_BASE_URLS["gcp"]
    cloud: str = "gcp"

    def _get(self, path: str) -> str:
        response = self.client.get(
            f"{self.base_url}/computeMetadata/v1/instance/{path}", headers={"Metadata-Flavor": "Google"}
        )
        response.raise_for_status()
        return response.text

    def instance_id(self) -> str:
        return self._get("name")

    def check(self) -> tuple[str, datetime | None, dict[str, Any]] | None:
        if self._get("preempted").strip().upper() != "TRUE":
            return None
        return "preempted", datetime.now(UTC), {"preempted": True}


@dataclass
class AzureScheduledEventsProbe:
    client: httpx.Client
    base_url: str = DEFAULT_BASE_URLS["azure"]
    cloud: str = "azure"

    def instance_id(self) -> str:
        response = self.client.get(
            f"{self.base_url}/metadata/instance/compute/name",
            params={"api-version": "2021-02-01", "format": "text"},
            headers={"Metadata": "true"},
        )
        response.raise_for_status()
        return response.text

    def check(self) -> tuple[str, datetime | None, dict[str, Any]] | None:
        response = self.client.get(
            f"{self.base_url}/metadata/scheduledevents",
            params={"api-version": "2020-07-01"},
            headers={"Metadata": "true"},
        )
        response.raise_for_status()
        for event in response.json().get("Events", []):
            if event.get("EventType") == "Preempt":
                return "preempt", _parse_time(event.get("NotBefore")), event
        return None


def probe_for(cloud: str, client: httpx.Client, base_url: str | None = None) -> Probe:
    probes: dict[str, Callable[..., Probe]] = {
        "aws": AwsImdsProbe,
        "gcp": GcpMetadataProbe,
        "azure": AzureScheduledEventsProbe,
    }
    if cloud not in probes:
        from thrifty.errors import ConfigError

        raise ConfigError(
            f"no interruption probe for cloud {cloud!r}", hint=f"use one of {', '.join(probes)}"
        )
    return probes[cloud](client=client, base_url=base_url or DEFAULT_BASE_URLS[cloud])


def watch(
    probe: Probe,
    deployment: str,
    emit: Callable[[InterruptionNotice], None],
    *,
    poll_s: float = 5.0,
    stop: threading.Event | None = None,
    max_polls: int | None = None,
) -> InterruptionNotice | None:
    """Poll until a notice arrives (emit it once and return it), ``stop`` is set, or ``max_polls``.

    A metadata endpoint that fails for a moment is retried on the next poll: missing one poll
    costs ``poll_s`` of a 30-120 s notice, crashing the watcher would cost all of it.
    """
    stop = stop or threading.Event()
    instance_id = ""
    polls = 0
    while not stop.is_set() and (max_polls is None or polls < max_polls):
        polls += 1
        try:
            instance_id = instance_id or probe.instance_id()
            found = probe.check()
        except httpx.HTTPError:
            found = None
        if found is not None:
            action, at, raw = found
            notice = InterruptionNotice(probe.cloud, deployment, instance_id, action, at, raw)
            emit(notice)
            return notice
        stop.wait(poll_s)
    return None


def installed_emitter() -> Callable[[InterruptionNotice], Any] | None:
    """The emitter a plugin registered under ``EMITTER_GROUP`` (first by name that loads), else None."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=EMITTER_GROUP), key=lambda e: e.name):
        try:
            emitter: Callable[[InterruptionNotice], Any] = entry.load()
        except ImportError:  # its layer (e.g. Prefect) is not installed on this machine
            continue
        return emitter
    return None


def metadata_client(timeout_s: float = 2.0) -> httpx.Client:
    """An HTTP client for metadata endpoints: short timeout, never through a proxy."""
    return httpx.Client(timeout=timeout_s, trust_env=False)
