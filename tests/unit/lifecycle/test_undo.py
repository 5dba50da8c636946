"""Undoing an applied redeploy recommendation (issue 15) on moto: the apply records the revision live
before it; undo starts rollback-deployment to that revision, and the lifecycle makes it live again
(a new revision with its spec). ``start`` here runs what the flows run, in process: the apply's
blue-green update (deploy-model on an existing name) and the rollback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.lifecycle.test_clouds import NAME, StateCheck, _first_deploy, _lifecycle
from thrifty import access, read
from thrifty.errors import ConfigError, NotFoundError
from thrifty.monitor import applied
from thrifty.providers.base import PriceModel
from thrifty.registry import Registry


def _rec(**fields: Any) -> read.RecommendationView:
    return read.RecommendationView(**{
        "deployment": NAME, "kind": "variant", "title": "variant 2 on aws", "usd_per_month_now": 60.0,
        "usd_per_month_after": 30.0, "usd_saved_per_month": 30.0, "evidence": {},
        "flow": "deploy-model/deploy-model", "parameters": {"model": "m", "name": NAME}, "command": "prefect …",
    } | fields)  # fmt: skip


class Flows:
    """``start`` for ``applied``: the apply's update to variant 2 and the undo's rollback, run here."""

    def __init__(self, registry: Registry, providers: dict[str, Any], spec: Any) -> None:
        self.lifecycle = _lifecycle(registry, providers, StateCheck({"aws": providers["aws"]}))
        self.spec, self.started, self.refuse = spec, [], False

    def __call__(self, flow: str, parameters: dict[str, Any]) -> str:
        if self.refuse:
            raise ConfigError("no Prefect server at http://127.0.0.1:1/api", hint="start one")
        self.started.append((flow, parameters))
        if flow == applied.ROLLBACK_FLOW:
            self.lifecycle.rollback(parameters["name"], parameters["to"])
        else:
            self.lifecycle.update(NAME, self.spec.with_changes(variant_id=2), "aws")
        return f"run-{len(self.started)}"


def test_undo_rolls_back_to_the_revision_live_before_the_apply(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    spec = make_spec(price_model=PriceModel.ON_DEMAND, replicas=1, variant_id=1)
    _first_deploy(registry, providers["aws"], spec)
    flows = Flows(registry, providers, spec)
    done = applied.apply(registry, _rec(), "ops", flows)
    assert (done.revision_before, done.run_id, done.kind) == (1, "run-1", "variant")
    assert registry.get_deployment(NAME).variant_id == 2
    flows.refuse = True  # Prefect down: the undo is refused and changes nothing
    with pytest.raises(ConfigError, match="no Prefect server"):
        applied.undo(registry, NAME, "ops", flows)
    assert applied.applied(registry, NAME)[0].undone_at is None
    flows.refuse = False
    undone = applied.undo(registry, NAME, "ops", flows, applied_id=done.id)
    assert flows.started[-1] == (applied.ROLLBACK_FLOW, {"name": NAME, "to": 1})
    assert (undone.undo_run_id, undone.undone_by) == ("run-2", "ops") and undone.undone_at is not None
    row = registry.get_deployment(NAME)
    assert row.variant_id == 1 and row.spec["name"] == "minilm-r3"  # r1's spec, live again as r3
    revisions = [(r.number, r.variant_id, r.state) for r in registry.list_revisions(NAME)]
    assert revisions == [(1, 1, "retired"), (2, 2, "retired"), (3, 1, "live")]
    with pytest.raises(ConfigError, match="already undone") as twice:
        applied.undo(registry, NAME, "ops", flows)
    assert twice.value.hint and "revisions" in twice.value.hint
    entries, _ = access.list_audit(registry)
    assert [(e.action, e.target) for e in entries] == [("recommendations.undo", NAME),
                                                       ("recommendations.apply", NAME)]  # fmt: skip
    assert entries[0].after == {"applied": done.id, "kind": "variant", "rollback_to": 1, "run_id": "run-2"}
    assert (entries[1].before["revision"], entries[1].after["run_id"]) == (1, "run-1")


def test_bad_undos_name_the_fix_and_change_nothing(
    registry: Registry, providers: dict[str, Any], make_spec: Any
) -> None:
    spec = make_spec(price_model=PriceModel.ON_DEMAND, replicas=1, variant_id=1)
    _first_deploy(registry, providers["aws"], spec)
    with pytest.raises(NotFoundError, match="nothing to undo"):
        applied.undo(registry, NAME, "ops", lambda flow, parameters: "never")
    with pytest.raises(NotFoundError, match="nope"):
        applied.undo(registry, "nope", "ops", lambda flow, parameters: "never")
    started: list[str] = []
    first = applied.apply(registry, _rec(), "ops", lambda flow, parameters: started.append(flow) or "run-1")
    with pytest.raises(ConfigError, match="r1 of 'minilm' is still live") as early:
        applied.undo(registry, NAME, "ops", lambda flow, parameters: started.append(flow) or "never")
    assert early.value.hint and "wait for that run" in early.value.hint
    assert started == ["deploy-model/deploy-model"], "the refused undo started nothing"
    second = applied.apply(registry, _rec(kind="cloud"), "ops", lambda flow, parameters: "run-2")
    with pytest.raises(ConfigError, match=f"#{first.id} of 'minilm' is not its latest"):
        applied.undo(registry, NAME, "ops", lambda flow, parameters: "never", applied_id=first.id)
    (r1,) = registry.list_revisions(NAME)
    registry.update_revision(r1.id, state="failed")  # r1 can no longer be made live again
    with pytest.raises(NotFoundError, match=r"r1 of 'minilm'.* is failed") as gone:
        applied.undo(registry, NAME, "ops", lambda flow, parameters: "never", applied_id=second.id)
    assert gone.value.hint and "thrifty rollback minilm --to N" in gone.value.hint
    assert all(a.undone_at is None for a in applied.applied(registry, NAME))
