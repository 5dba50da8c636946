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
from typer.exceptions import TyperException

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
    "thrifty.providers.local_commands",
    "thrifty.catalog.commands",
    "thrifty.planner.commands",
    "thrifty.policies.commands",
    "thrifty.providers.commands",
    "thrifty.image_cli",
    "thrifty.storage_cli",
    "thrifty.monitor.commands",
    "thrifty.api.commands",
    "thrifty.lifecycle.commands",
]


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else.

    The read layer's models (``thrifty.read``) print as their ``model_dump(mode="json")``, so the
    CLI and an API answer with the same fields.
    """
    sys.stdout.write(json.dumps(_plain(data), indent=2, default=str) + "\n")


def _plain(data: Any) -> Any:
    if hasattr(data, "model_dump"):
        return data.model_dump(mode="json")
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data


def fail(error: ThriftyError) -> None:
    err_console.print(f"[bold red]error:[/] {error.message}")
    if error.hint:
        err_console.print(f"[yellow]fix:[/] {error.hint}")


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def usage_error(exc: TyperException) -> int:
    """One or two lines for a usage error (the hint names ``--help``); returns the exit code."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        return 0
    err_console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False, soft_wrap=True)
    ctx = getattr(exc, "ctx", None) if isinstance(exc, UsageError) else None
    if ctx is not None:
        err_console.print(f"see `{ctx.command_path} --help`", highlight=False)
    return int(exc.exit_code)


def main() -> None:
    """Console-script entry point: thrifty errors exit 1, usage errors 2, never a traceback."""
    try:
        result = app(prog_name="thrifty", standalone_mode=False)
    except ThriftyError as exc:
        fail(exc)
        raise SystemExit(1) from None
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        raise SystemExit(130) from None
    except TyperException as exc:  # typer ships its own click: its errors derive from this
        raise SystemExit(usage_error(exc)) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    if isinstance(result, int) and result:
        raise SystemExit(result)


_register()
