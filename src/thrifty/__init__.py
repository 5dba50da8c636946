"""thrifty: from a model file to the cheapest verified deployment.

    from thrifty import deploy_model
    summary = deploy_model("/path/to/model", p95_ms=50, rps=20)

``deploy_model`` runs the ``deploy-model`` Prefect flow in this process (the library itself never
imports Prefect; this entry point loads the flow only when called). To trigger the flow on a
Prefect server instead, use ``thrifty.client.run_deployment``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["deploy_model"]


def deploy_model(model: str, **params: Any) -> dict[str, Any]:
    """Run the deploy-model flow on ``model`` (a path or a registered name); returns its summary.

    Keyword arguments are the flow's parameters (``p95_ms``, ``rps``, ``providers``, ``target``…,
    see ``flows.deploy_model.DeployModelParams``).
    """
    import importlib

    module = importlib.import_module("flows.deploy_model")
    result: dict[str, Any] = module.deploy_model(module.DeployModelParams(model=model, **params))
    return result
