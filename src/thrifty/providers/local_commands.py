"""CLI: ``thrifty deploy-local``, ``hibernate``, ``wake`` — deployments on this machine.

They drive the local provider (``providers/local.py``), which runs replicas behind the gateway
daemon; ``thrifty up`` / ``down`` / ``status`` and ``serve`` are serving's (``serving/commands.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from thrifty.providers.base import DeploySpec

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def spec_for(ref: str, name: str | None, replicas: int, tokenizer: Path | None) -> DeploySpec:
    """A DeploySpec from a variant (id or MODEL/VARIANT) or an ONNX path (stored in the artifact store first)."""
    from thrifty import runtime
    from thrifty.providers.base import DeploySpec
    from thrifty.serving.resolve import served_model

    model = served_model(ref, name, tokenizer, runtime.registry(), runtime.store())
    return DeploySpec(
        name=model.name,
        model_name=model.model_name,
        variant_id=model.variant_id,
        artifact_sha256=model.artifact_sha256,
        replicas=replicas,
        serving=dict(model.serving),
    )


def _print_status(status: Any, as_json: bool) -> None:
    from thrifty.cli import console, print_json

    row = {
        "name": status.name,
        "state": status.state,
        "replicas_desired": status.replicas_desired,
        "replicas_ready": status.replicas_ready,
        "endpoint_url": status.endpoint_url,
    }
    if as_json:
        print_json(row)
        return
    console.print(
        f"[bold]{status.name}[/]: {status.state}, {status.replicas_ready}/{status.replicas_desired} replicas, {status.endpoint_url}"
    )


def deploy_local(
    ref: Annotated[
        str,
        typer.Argument(
            help="A variant id or MODEL/VARIANT (see `thrifty variants`), or an .onnx file (or folder)."
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Deployment name (the model name in URLs).")] = None,
    replicas: Annotated[
        int, typer.Option(min=0, help="Replicas to run (0 = hibernated until a request).")
    ] = 1,
    tokenizer: Annotated[
        Path | None, typer.Option(help="tokenizer.json (or its folder) for text models.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy on this machine behind the gateway (starts the gateway daemon if needed).

    Deploying a name that serves already is an update: the new revision starts beside the live
    one, answers the smoke inference, then the gateway swaps them with no request lost.
    """
    from thrifty import runtime
    from thrifty.lifecycle import record_first_revision
    from thrifty.lifecycle.commands import local_lifecycle
    from thrifty.providers.local import LocalProvider
    from thrifty.states import state_of

    spec = spec_for(ref, name, replicas, tokenizer)
    existing = runtime.registry().find_deployment(spec.name)
    if existing is not None and state_of(existing.state).exists and existing.provider == "local":
        local_lifecycle().update(spec.name, spec, "local")
        _print_status(LocalProvider().status(spec.name), as_json)
        return
    status = LocalProvider().deploy(spec)
    record_first_revision(runtime.registry(), spec, "local", "local", state="live")
    _print_status(status, as_json)


def hibernate(
    name: Annotated[str, typer.Argument(help="Deployment name.")], as_json: JsonOpt = False
) -> None:
    """Scale a deployment to zero; the gateway wakes it on the next request."""
    from thrifty.providers.local import LocalProvider

    _print_status(LocalProvider(start_gateway=False).hibernate(name), as_json)


def wake(name: Annotated[str, typer.Argument(help="Deployment name.")], as_json: JsonOpt = False) -> None:
    """Start a hibernated deployment's replicas now (without waiting for a request)."""
    from thrifty.providers.local import LocalProvider

    _print_status(LocalProvider().wake(name), as_json)


def register(app: typer.Typer) -> None:
    app.command("deploy-local")(deploy_local)
    app.command("hibernate")(hibernate)
    app.command("wake")(wake)
