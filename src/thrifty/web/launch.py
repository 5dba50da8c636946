"""How the one-click deploy starts the deploy-model flow and follows its run.

The dashboard asks a ``Launcher``; the default one creates a run of the Prefect deployment
``deploy-model/deploy-model`` (or, for an undo, ``rollback-deployment``) over Prefect's REST API
(``thrifty.client``) and a worker runs it, as ``make server`` sets up. A test can pass any object
with the same methods.
"""

from __future__ import annotations

from typing import Any, Protocol

from thrifty import client
from thrifty.client import FlowRunResult

DEPLOY_MODEL = "deploy-model/deploy-model"


class Launcher(Protocol):
    def start(self, parameters: dict[str, Any]) -> str:
        """Start a deploy-model run with these flow parameters; its run id."""
        ...

    def start_flow(self, flow: str, parameters: dict[str, Any]) -> str:
        """Start a run of another Prefect deployment (``FLOW/DEPLOYMENT``, e.g. the rollback an undo
        starts); its run id."""
        ...

    def status(self, run_id: str) -> FlowRunResult:
        """The run's name and state now."""
        ...


class PrefectLauncher:
    """Runs of the Prefect deployment ``deploy-model`` on the server at ``PREFECT_API_URL``."""

    def __init__(self, api_url: str | None = None, deployment: str = DEPLOY_MODEL) -> None:
        self.api_url = api_url
        self.deployment = deployment

    def start(self, parameters: dict[str, Any]) -> str:
        return self.start_flow(self.deployment, parameters)

    def start_flow(self, flow: str, parameters: dict[str, Any]) -> str:
        return client.start_deployment(flow, parameters, api_url=self.api_url).flow_run_id

    def status(self, run_id: str) -> FlowRunResult:
        return client.read_flow_run(run_id, api_url=self.api_url)
