"""The states of a deployment, and the one set of states in which it serves.

    pending ──▶ running ◀──▶ hibernated          (degraded: running with fewer ready replicas)
        └────────┴──▶ failed / deleted

Every layer (gateway, sweep, rebalance, price monitor, tasks, CLI) asks these predicates instead of
keeping its own list of strings. ``DeploymentState`` is a ``StrEnum``: it compares equal to the
strings the registry stores.
"""

from __future__ import annotations

from enum import StrEnum


class DeploymentState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DEGRADED = "degraded"
    HIBERNATED = "hibernated"
    FAILED = "failed"
    DELETED = "deleted"

    @property
    def active(self) -> bool:
        """Replicas are wanted now (serving, or starting to): the gateway routes, rebalance acts."""
        return self in ACTIVE_STATES

    @property
    def exists(self) -> bool:
        """Still a deployment (active or hibernated): swept, re-planned, listed as current."""
        return self in ACTIVE_STATES or self is DeploymentState.HIBERNATED


#: the one set of states in which a deployment serves (or is about to)
ACTIVE_STATES = frozenset({DeploymentState.PENDING, DeploymentState.RUNNING, DeploymentState.DEGRADED})


def state_of(value: str) -> DeploymentState:
    """The registry's stored string as a state (an unknown string is a failed deployment)."""
    try:
        return DeploymentState(value)
    except ValueError:
        return DeploymentState.FAILED
