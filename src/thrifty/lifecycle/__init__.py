"""Revisions, blue-green updates, rollback, delete and migration of deployments (issue 13).

Every deploy of a deployment name is a revision in the registry (``revisions`` table). An update
starts the new revision beside the live one, verifies it with a real inference, moves traffic,
then drains and deletes the old one; on any failure the live revision keeps serving, untouched.
``core`` carries it out; ``commands`` is the CLI (``thrifty revisions | rollback | delete``).
"""

from __future__ import annotations

from thrifty.lifecycle.core import (
    Lifecycle,
    Outcome,
    ServedAs,
    capabilities,
    record_first_revision,
    revision_rows,
    smoke_verifier,
    state_verifier,
)

__all__ = [
    "Lifecycle",
    "Outcome",
    "ServedAs",
    "capabilities",
    "record_first_revision",
    "revision_rows",
    "smoke_verifier",
    "state_verifier",
]
