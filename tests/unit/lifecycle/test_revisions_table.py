"""The revisions table (migration 0002_lifecycle), on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from thrifty.errors import NotFoundError
from thrifty.registry import Registry


def test_revisions_number_per_deployment_and_keep_their_spec(registry: Registry) -> None:
    assert "revisions" in set(inspect(registry.engine).get_table_names())
    fields = {"provider": "aws", "target": "thrifty-aws-target/default", "serving_name": "a"}
    first = registry.add_revision("a", spec={"name": "a", "region": "us-east-1"}, state="live", **fields)
    second = registry.add_revision("a", spec={"name": "a", "region": "us-west-2"}, **fields)
    other = registry.add_revision("b", **fields)
    assert (first.number, second.number, other.number) == (1, 2, 1)
    registry.update_revision(second.id, state="failed", reason="smoke test failed")
    rows = registry.list_revisions("a")
    assert [(r.number, r.state) for r in rows] == [(1, "live"), (2, "failed")]
    assert rows[1].spec["region"] == "us-west-2" and rows[1].reason == "smoke test failed"
    assert rows[0].created_at.tzinfo is not None
    assert registry.get_revision("a", 2).id == second.id
    with pytest.raises(NotFoundError, match="no revision 9"):
        registry.get_revision("a", 9)
