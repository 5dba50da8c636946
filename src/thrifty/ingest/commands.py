"""CLI: ``thrifty ingest``, ``thrifty models list``, ``thrifty models show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

models_app = typer.Typer(help="Registered models and their versions.", no_args_is_help=True)


def version_row(version: Any) -> dict[str, Any]:
    return {
        "model": version.model.name,
        "version": version.version,
        "format": version.format,
        "task": version.task,
        "sha256": version.sha256,
        "size_bytes": version.size_bytes,
        "parameter_count": version.parameter_count,
        "opset": version.opset,
        "signature": version.signature,
        "source_path": version.source_path,
        "created_at": version.created_at.isoformat(),
    }


def ingest(
    path: Annotated[
        Path, typer.Argument(help="Model file or folder: ONNX, PyTorch, or a Hugging Face folder.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Registry name (default: from the path).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Validate a model, store it (content-addressed) and register a version of it."""
    from thrifty import runtime
    from thrifty.cli import console, print_json
    from thrifty.ingest import ingest_model

    with console.status(f"ingesting {path}…", spinner="dots"):
        result = ingest_model(path, name, registry=runtime.registry(), store=runtime.store())
    row = version_row(result.version) | {"created": result.created}
    if as_json:
        print_json(row)
        return
    verb = "registered" if result.created else "already registered (same bytes)"
    console.print(
        f"[green]{verb}[/] [bold]{row['model']}[/] v{row['version']}: {row['format']}, "
        f"{_params(row['parameter_count'])} parameters, {row['size_bytes'] / 1024**2:.1f} MiB, sha256 {row['sha256'][:12]}"
    )


def _params(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e6:.1f} M" if count >= 1e5 else str(count)


@models_app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Every registered model with its newest version."""
    from rich.table import Table

    from thrifty import runtime
    from thrifty.cli import console, print_json

    rows = [
        version_row(m.versions[-1]) | {"versions": len(m.versions)}
        for m in runtime.registry().list_models()
        if m.versions
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("model", "versions", "newest", "format", "task", "params", "MiB", "sha256", title="models")
    for r in rows:
        table.add_row(
            r["model"],
            str(r["versions"]),
            f"v{r['version']}",
            r["format"],
            r["task"] or "",
            _params(r["parameter_count"]),
            f"{r['size_bytes'] / 1024**2:.1f}",
            r["sha256"][:12],
        )
    console.print(table if rows else "no models yet: add one with `thrifty ingest PATH --name NAME`")


@models_app.command("show")
def show_model(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Every version of a model with its signature."""
    from rich.table import Table

    from thrifty import runtime
    from thrifty.cli import console, print_json

    model = runtime.registry().get_model(name)
    rows = [version_row(v) for v in model.versions]
    if as_json:
        print_json({"model": name, "versions": rows})
        return
    for r in rows:
        console.print(
            f"[bold]{name}[/] v{r['version']}  {r['format']}  task={r['task'] or '-'}  "
            f"params={_params(r['parameter_count'])}  opset={r['opset'] or '-'}  sha256={r['sha256']}\n"
            f"  from {r['source_path']} at {r['created_at']}"
        )
        table = Table("", "name", "dtype", "shape", box=None)
        for kind in ("inputs", "outputs"):
            for t in r["signature"].get(kind, []):
                table.add_row(kind[:-1], t["name"], t["dtype"], str(t["shape"]))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.add_typer(models_app, name="models")
