"""The serving tasks through ``task.fn()``: thin wrappers that leave their state in the registry."""

from __future__ import annotations

from pathlib import Path

from prefect.logging import disable_run_logger


def test_hibernate_deployment_task_records_state_and_event(thrifty_home: Path) -> None:
    from tasks.serving import hibernate_deployment
    from thrifty import runtime

    registry = runtime.registry()
    spec = {"replicas": 1, "runtime": {"model_path": str(thrifty_home / "m.onnx")}}
    registry.upsert_deployment("m", provider="local", state="running", replicas=1, spec=spec)
    with disable_run_logger():
        first = hibernate_deployment.fn("m")
        second = hibernate_deployment.fn("m")  # idempotent: no second event
    assert first == second
    assert (first["state"], first["replicas_desired"], first["replicas_ready"]) == ("hibernated", 0, 0)
    assert [e.kind for e in registry.list_events("m")] == ["hibernate"]
