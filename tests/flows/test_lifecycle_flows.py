"""The lifecycle flows as Prefect runs them, and the automation prefect.yaml declares for
``thrifty.plan.cheaper`` (what `make server` registers with `prefect deploy --all`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _deployment(name: str) -> dict[str, Any]:
    import yaml

    found = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    return next(d for d in found if d["name"] == name)


def test_the_cheaper_plan_event_runs_migrate_deployment_for_that_deployment() -> None:
    import jinja2
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from tasks.price_monitor import EVENT_NAME

    spec = _deployment("migrate-deployment")
    assert spec["entrypoint"] == "flows/lifecycle.py:migrate_deployment"
    trigger = DeploymentEventTrigger(**spec["triggers"][0])
    assert trigger.expect == {EVENT_NAME}
    # the resource announce-cheaper-plan emits (tasks/price_monitor.py)
    resource = {"prefect.resource.id": "thrifty.deployment.minilm", "prefect.resource.name": "minilm"}
    template = trigger.parameters["params"]["name"]  # type: ignore[index]
    assert jinja2.Template(template).render(event={"resource": resource}) == "minilm"


@pytest.mark.parametrize("name", ["update-deployment", "rollback-deployment", "delete-deployment"])
def test_every_lifecycle_verb_is_a_deployment(name: str) -> None:
    import importlib

    path, _, function = _deployment(name)["entrypoint"].partition(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
    assert flow.name == name


def test_a_rollback_with_nothing_earlier_fails_with_the_reason(thrifty_home: Path) -> None:
    from flows.lifecycle import RollbackParams, rollback_deployment
    from thrifty import runtime
    from thrifty.errors import ProviderError

    runtime.registry().upsert_deployment("m", provider="local", state="running", spec={"name": "m"})
    runtime.registry().add_revision("m", provider="local", target="local", serving_name="m", state="live")
    with pytest.raises(ProviderError, match="no earlier verified revision"):
        rollback_deployment(RollbackParams(name="m"))
    assert [r.state for r in runtime.registry().list_revisions("m")] == ["live"]
