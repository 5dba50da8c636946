"""CLI: ``thrifty api`` (serve the management API) and ``thrifty tokens create|list|revoke``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

tokens_app = typer.Typer(help="API tokens with roles (viewer < deployer < admin).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def api(
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback only until a token exists).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
) -> None:
    """Serve the management API (and the dashboard) with uvicorn until Ctrl-C."""
    import uvicorn

    from thrifty.api import create_app
    from thrifty.cli import console

    console.print(f"[green]thrifty API[/] on http://{host}:{port}/api/v1 (docs: /api/v1/docs; Ctrl-C stops)")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


@tokens_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help="viewer, deployer or admin.")],
    name: Annotated[str, typer.Option("--name", help="Who or what uses it, e.g. ci.")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Make a token; it is printed once (only its sha256 is stored)."""
    from thrifty import access, runtime
    from thrifty.cli import console, print_json

    registry = runtime.registry()
    row, secret = access.create_token(registry, name, role)
    access.audit(registry, "cli", "tokens.create", name, after={"id": row.id, "role": role})
    if as_json:
        print_json({"id": row.id, "name": row.name, "role": row.role, "token": secret})
        return
    console.print(
        f"token {row.id} ({row.role}) for {row.name}: [bold]{secret}[/]\nit is shown once: keep it now"
    )


@tokens_app.command("list")
def list_tokens(as_json: JsonOpt = False) -> None:
    """Live tokens: id, name, role, prefix, last use."""
    from thrifty import access, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import Col, print_table

    rows = access.list_tokens(runtime.registry())
    data: list[dict[str, Any]] = [{"id": r.id, "name": r.name, "role": r.role, "prefix": r.prefix, "created_at": r.created_at,
             "last_used_at": r.last_used_at} for r in rows]  # fmt: skip
    if as_json:
        print_json(data)
        return
    if not rows:
        console.print("no tokens: the API serves this machine only (`thrifty tokens create --role viewer`)")
        return
    columns = [
        Col("id", key=True, justify="right"),
        Col("name", key=True),
        Col("role", key=True),
        Col("prefix"),
    ]
    cells = [[str(d["id"]), str(d["name"]), str(d["role"]), f"{d['prefix']}…",
              d["last_used_at"].isoformat() if d["last_used_at"] else "never"] for d in data]  # fmt: skip
    print_table(console, [*columns, Col("last used")], cells, title="API tokens")


@tokens_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="Token id (see `thrifty tokens list`).")]) -> None:
    """Revoke a token at once."""
    from thrifty import access, runtime
    from thrifty.cli import console

    registry = runtime.registry()
    row = access.revoke_token(registry, token_id)
    access.audit(registry, "cli", "tokens.revoke", row.name, before={"id": row.id}, after={"revoked": True})
    console.print(f"token {row.id} ({row.name}, {row.role}) revoked")


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.add_typer(tokens_app, name="tokens")
