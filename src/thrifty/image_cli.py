"""CLI: ``thrifty image build [--push REGISTRY]`` — the serving-runtime image (``thrifty.image``)."""

from __future__ import annotations

from typing import Annotated

import typer


def build(
    push: Annotated[
        str | None,
        typer.Option(help="Also push to this registry (host:port[/path]), e.g. an ECR repository."),
    ] = None,
    tls_verify: Annotated[bool, typer.Option(help="Verify the registry's TLS certificate.")] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Build even when an image of this tree exists.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Build the serving-runtime image with podman (offline Debian base, content-addressed tag)."""
    from thrifty.cli import console, print_json
    from thrifty.image import build_image, push_image

    with console.status("building the serving-runtime image (first build: ~2 min)…"):
        built = build_image(force=force)
    pushed = push_image(built.ref, push, tls_verify=tls_verify) if push else None
    if as_json:
        print_json(built.as_dict() | {"pushed": pushed})
        return
    how = "reused (this tree was built before)" if built.cached else f"built in {built.build_s:.0f} s"
    console.print(f"[green]{built.ref}[/] {built.size_mb:.0f} MB, {how}")
    if pushed:
        console.print(f"pushed: {pushed}")


def register(app: typer.Typer) -> None:
    image_app = typer.Typer(
        help="The serving-runtime OCI image every cloud target runs.", no_args_is_help=True
    )
    image_app.command("build")(build)
    app.add_typer(image_app, name="image")
