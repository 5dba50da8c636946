"""`thrifty …` — the command line (typer + rich).

This module stays light: ``thrifty --help`` must not import torch, onnx or a cloud SDK. Each area
registers its commands from its own ``commands`` module, whose heavy imports live inside the
command functions.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import typer
from rich.console import Console

from thrifty.errors import ThriftyError

app = typer.Typer(
    name="thrifty",
    help="Serve a trained model at the lowest cost that meets its latency and accuracy targets.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

#: modules that define ``register(app)``; one line per area
COMMAND_MODULES = [
    "thrifty.ingest.commands",
    "thrifty.optimize.commands",
    "thrifty.report_cli",
    "thrifty.serving.commands",
    "thrifty.catalog.commands",
    "thrifty.planner.commands",
    "thrifty.policies.commands",
    "thrifty.providers.commands",
    "thrifty.image_cli",
]


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(error: ThriftyError) -> None:
    err_console.print(f"[bold red]error:[/] {error.message}")
    if error.hint:
        err_console.print(f"[yellow]fix:[/] {error.hint}")


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main() -> None:
    """Console-script entry point: thrifty errors become a message and exit code 1."""
    try:
        result = app(standalone_mode=False)
    except ThriftyError as exc:
        fail(exc)
        raise SystemExit(1) from None
    except typer.Abort:
        err_console.print("aborted")
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, click.exceptions.Exit):
            raise SystemExit(exc.exit_code) from None
        raise
    if isinstance(result, int) and result:
        raise SystemExit(result)


_register()
