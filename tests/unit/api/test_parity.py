"""Every CLI command has an API operation (``x-thrifty-cli`` in the OpenAPI document), or is in the
list of local-only commands below with the reason. A new command without either fails here."""

from __future__ import annotations

from typing import Any

#: commands that act on the machine they run on, not on the platform the API manages
LOCAL_ONLY = {
    "api": "serves this API",
    "serve": "runs one model in the foreground of a terminal",
    "up": "starts the gateway daemon of the machine it runs on",
    "down": "stops the gateway daemon of the machine it runs on",
    "spot-watch": "runs on a spot VM and watches that VM's metadata service",
    "image build": "builds an OCI image with the local podman",
    "bench": "benchmarks on the machine it runs on; POST /models/{name}/optimize benchmarks on a worker",
    "gc": "sweeps cloud accounts with the credentials of the machine it runs on",
}


def _cli_paths(command: Any, prefix: str = "") -> set[str]:
    children = getattr(command, "commands", None)
    if not children:
        return {prefix}
    paths: set[str] = set()
    for name, child in children.items():
        paths |= _cli_paths(child, f"{prefix} {name}".strip())
    return paths


def _api_commands() -> dict[str, str]:
    from thrifty.api import create_app
    from thrifty.settings import Settings

    doc = create_app(Settings()).openapi()
    found = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            for command in op.get("x-thrifty-cli", []):
                found[command] = f"{method.upper()} {path}"
    return found


def test_every_cli_command_has_an_operation_or_a_reason() -> None:
    import typer.main

    from thrifty.cli import app

    commands = _cli_paths(typer.main.get_command(app))
    assert {"models list", "plan explain", "deploy", "hibernate"} <= commands  # the walk sees groups
    missing = sorted(commands - set(_api_commands()) - set(LOCAL_ONLY))
    assert not missing, f"CLI commands with no API operation (add one, or a reason in LOCAL_ONLY): {missing}"


def test_exclusions_and_mappings_name_real_commands() -> None:
    import typer.main

    from thrifty.cli import app

    commands = _cli_paths(typer.main.get_command(app))
    assert set(LOCAL_ONLY) <= commands, "an excluded command no longer exists: drop it from LOCAL_ONLY"
    mapped = _api_commands()
    assert not set(mapped) & set(LOCAL_ONLY)
    # operations for verbs another branch is adding (update, rollback, delete, scale) exist already;
    # every other mapping names a command the CLI has
    ahead = {"update", "rollback", "delete", "scale"}
    assert set(mapped) - ahead <= commands
