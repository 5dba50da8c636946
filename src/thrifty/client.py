"""Trigger thrifty's flows on a Prefect server and wait for them — over Prefect's REST API.

    from thrifty.client import run_deployment
    run = run_deployment("deploy-model/deploy-model", {"params": {"model": "/models/minilm"}})

This module talks HTTP with httpx, so the library keeps its rule of never importing prefect.
To run the flow in this process instead, use ``from flows.run import deploy_model``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from thrifty.errors import ConfigError, NotFoundError, ThriftyError

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class FlowRunResult:
    flow_run_id: str
    name: str
    state: str
    state_message: str | None

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"


def _api_url(api_url: str | None) -> str:
    url = api_url or os.environ.get("PREFECT_API_URL")
    if not url:
        raise ConfigError(
            "no Prefect server to talk to",
            hint="start one with `make server` and set PREFECT_API_URL=http://127.0.0.1:4200/api",
        )
    return url.rstrip("/")


def run_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    api_url: str | None = None,
    timeout_s: float = 900.0,
    poll_s: float = 1.0,
) -> FlowRunResult:
    """Create a run of deployment ``FLOW/DEPLOYMENT`` and wait until it reaches a final state."""
    flow_name, _, deployment_name = name.partition("/")
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        found = http.get(f"/deployments/name/{flow_name}/{deployment_name}")
        if found.status_code == 404:
            raise NotFoundError(f"no Prefect deployment {name!r}", hint="apply them with `make server`")
        found.raise_for_status()
        created = http.post(
            f"/deployments/{found.json()['id']}/create_flow_run", json={"parameters": parameters or {}}
        )
        created.raise_for_status()
        return _wait(http, created.json()["id"], timeout_s, poll_s)


def _wait(http: httpx.Client, run_id: str, timeout_s: float, poll_s: float) -> FlowRunResult:
    deadline = time.monotonic() + timeout_s
    while True:
        run = http.get(f"/flow_runs/{run_id}").raise_for_status().json()
        state = run.get("state") or {}
        if state.get("type") in FINAL_STATES:
            return FlowRunResult(run_id, run["name"], state["type"], state.get("message"))
        if time.monotonic() > deadline:
            raise ThriftyError(
                f"flow run {run['name']} is still {state.get('type')} after {timeout_s:.0f} s",
                hint="is a worker polling the work pool? `make server` starts one",
            )
        time.sleep(poll_s)
