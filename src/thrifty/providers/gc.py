"""Ownership marks and the orphan sweep: nothing thrifty creates outlives its deployment.

Every cloud resource thrifty creates carries ownership marks (AWS/Azure tags, GCP/Kubernetes
labels): ``thrifty:managed=true`` and ``thrifty:deployment=<name>``. ``list_managed`` on each
provider finds them again; the sweep compares them with the registry's live deployments and deletes
what no deployment owns once it is older than a grace period (so a deploy in flight, whose registry
row is written after its first resource, is never swept).

The decision (``find_orphans``) is a pure function; ``sweep`` applies it through any provider that
can delete one resource (``delete_resource``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from thrifty.providers.base import ManagedResource

MANAGED_KEY = "thrifty:managed"
DEPLOYMENT_KEY = "thrifty:deployment"
#: label form of the keys (GCP and Kubernetes label keys allow no ':')
MANAGED_LABEL = "thrifty-managed"
DEPLOYMENT_LABEL = "thrifty-deployment"
DEFAULT_GRACE_S = 15 * 60

_LABEL_VALUE = re.compile(r"[^a-z0-9_-]")


def label_value(value: str) -> str:
    """A GCP/Kubernetes-safe label value: lowercase, [a-z0-9_-], at most 63 characters."""
    return _LABEL_VALUE.sub("-", value.lower())[:63]


@runtime_checkable
class Sweepable(Protocol):
    name: str

    def list_managed(self) -> list[ManagedResource]: ...

    def delete_resource(self, resource: ManagedResource) -> None: ...


@dataclass(frozen=True)
class Orphan:
    resource: ManagedResource
    reason: str


def find_orphans(
    resources: Iterable[ManagedResource],
    live_deployments: Iterable[tuple[str, str]],
    *,
    now: datetime | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> list[Orphan]:
    """Resources whose deployment is not live and that are older than ``grace_s``.

    ``live_deployments`` holds ``(provider, name)`` pairs: a deployment migrated from aws to gcp
    leaves its aws resources orphaned even though its name is still live.

    A resource with no creation time is treated as old enough: the provider could not say, and
    keeping an unknown orphan forever is the costlier mistake.
    """
    now = now or datetime.now(UTC)
    live = set(live_deployments)
    cutoff = now - timedelta(seconds=grace_s)
    found = []
    for res in resources:
        if (res.provider, res.deployment_name) in live:
            continue
        if res.created_at is not None and res.created_at > cutoff:
            continue
        reason = (
            f"no live {res.provider} deployment {res.deployment_name!r} in the registry"
            f" (grace {grace_s:.0f} s passed)"
        )
        found.append(Orphan(res, reason))
    return found


def sweep(
    providers: Sequence[Sweepable],
    live_deployments: Iterable[tuple[str, str]],
    *,
    grace_s: float = DEFAULT_GRACE_S,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Orphan]:
    """Find the orphans of every provider and delete them (unless ``dry_run``); returns them."""
    live = set(live_deployments)
    orphans: list[Orphan] = []
    for provider in providers:
        found = find_orphans(provider.list_managed(), live, now=now, grace_s=grace_s)
        if not dry_run:
            for orphan in found:
                provider.delete_resource(orphan.resource)
        orphans.extend(found)
    return orphans
