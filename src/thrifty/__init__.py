"""thrifty: from a model file to the cheapest verified deployment — the domain library.

The library never imports Prefect nor the Prefect layer (``flows/``, ``tasks/``, ``blocks/``); an
import contract in ``make lint`` and ``tests/unit/test_architecture.py`` hold it to that. To run the
``deploy-model`` flow from Python::

    from flows.run import deploy_model  # in this process
    summary = deploy_model("/path/to/model", p95_ms=50, rps=20)

or ``thrifty.client.run_deployment`` to trigger it on a Prefect server and wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thrifty.sdk import Client

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``thrifty.Client`` (the management API's SDK), imported on first use."""
    if name == "Client":
        from thrifty.sdk import Client

        return Client
    raise AttributeError(f"module 'thrifty' has no attribute {name!r}")


__all__ = ["Client", "__version__"]
