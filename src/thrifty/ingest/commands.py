"""CLI: ``thrifty ingest``, ``thrifty models list``, ``thrifty models show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

models_app = typer.Typer(help="Registered models and their versions.", no_args_is_help=True)


def ingest(
    path: Annotated[
        Path,
        typer.Argument(
            help="Model file or folder: ONNX, PyTorch, a Hugging Face folder, scikit-learn (skops), "
            "XGBoost (JSON/UBJ) or LightGBM (text)."
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Registry name (default: from the path).")
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="Tokenizer folder (with tokenizer.json) for an ONNX text model: stored with it, "
            "used to judge variants on real sentences and to serve text.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Validate a model, store it (content-addressed) and register a version of it."""
    from thrifty import runtime
    from thrifty.cli import console, print_json
    from thrifty.ingest import ingest_model
    from thrifty.read import version_view

    with console.status(f"ingesting {path}…", spinner="dots"):
        result = ingest_model(
            path, name, registry=runtime.registry(), store=runtime.store(), tokenizer=tokenizer
        )
    row = version_view(result.version)
    if as_json:
        print_json(row.model_dump(mode="json") | {"created": result.created})
        return
    verb = "registered" if result.created else "already registered (same bytes)"
    console.print(
        f"[green]{verb}[/] [bold]{row.model}[/] v{row.version}: {row.format}, "
        f"{_params(row.parameter_count)} parameters, {row.size_bytes / 1024**2:.1f} MiB, sha256 {row.sha256[:12]}"
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
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import Col, print_table

    rows = read.models(runtime.registry())
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no models yet: add one with `thrifty ingest PATH --name NAME`")
        return
    columns = [Col("model", key=True), Col("versions", justify="right"), Col("newest", key=True)]
    columns += [Col("format"), Col("task"), Col("params", justify="right"), Col("MiB", justify="right")]
    cells = [
        [r.model, str(r.versions), f"v{r.version}", r.format, r.task or "", _params(r.parameter_count),
         f"{r.size_bytes / 1024**2:.1f}", r.sha256[:12]]
        for r in rows
    ]  # fmt: skip
    print_table(console, [*columns, Col("sha256")], cells, title="models")


@models_app.command("show")
def show_model(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Every version of a model with its signature."""
    from rich.table import Table

    from thrifty import read, runtime
    from thrifty.cli import console, print_json

    found = read.model(runtime.registry(), name)
    if as_json:
        print_json(found)
        return
    for v in found.versions:
        console.print(
            f"[bold]{name}[/] v{v.version}  {v.format}  task={v.task or '-'}  "
            f"params={_params(v.parameter_count)}  opset={v.opset or '-'}  sha256={v.sha256}\n"
            f"  from {v.source_path} at {v.created_at.isoformat()}"
        )
        table = Table("", "name", "dtype", "shape", box=None)
        for kind in ("inputs", "outputs"):
            for t in v.signature.get(kind, []):
                table.add_row(kind[:-1], t["name"], t["dtype"], str(t["shape"]))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.add_typer(models_app, name="models")
