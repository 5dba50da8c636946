"""Run thrifty's flows in this Python process (an ephemeral Prefect API, or the server in PREFECT_API_URL).

    from flows.run import deploy_model
    summary = deploy_model("/path/to/model", p95_ms=50, rps=20)

To trigger a flow on a Prefect server and wait for it instead, use ``thrifty.client.run_deployment``
(plain HTTP: the library never imports the Prefect layer).
"""

from __future__ import annotations

from typing import Any

__all__ = ["deploy_model"]


def deploy_model(model: str, **params: Any) -> dict[str, Any]:
    """Run the deploy-model flow on ``model`` (a path or a registered name); returns its summary.

    Keyword arguments are the flow's parameters (``p95_ms``, ``rps``, ``providers``, ``target``…,
    see ``flows.deploy_model.DeployModelParams``).
    """
    from flows.deploy_model import DeployModelParams
    from flows.deploy_model import deploy_model as deploy_model_flow

    result: dict[str, Any] = deploy_model_flow(DeployModelParams(model=model, **params))
    return result
