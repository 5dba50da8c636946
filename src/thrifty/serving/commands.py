"""CLI: ``thrifty serve``, ``up``, ``down``, ``status``, ``deployments``, ``events``.

``deploy-local``, ``hibernate`` and ``wake`` drive the local provider: ``providers/local_commands.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from thrifty.render import Col

if TYPE_CHECKING:
    from thrifty.read import LocalDeployment

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def serve(
    ref: Annotated[str, typer.Argument(help="An .onnx file (or folder), a variant id, or MODEL/VARIANT.")],
    name: Annotated[
        str | None, typer.Option(help="Model name in URLs (default: file stem / model-variant).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    tokenizer: Annotated[
        Path | None, typer.Option(help="tokenizer.json (or its folder) for text models.")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most rows per onnxruntime call.")] = None,
    max_queue_delay_ms: Annotated[float | None, typer.Option(help="Wait this long to fill a batch.")] = None,
) -> None:
    """Serve one model in the foreground (Open Inference Protocol v2) until Ctrl-C."""
    from thrifty import runtime
    from thrifty.cli import console
    from thrifty.serving.app import bind_socket, serve_until_stopped
    from thrifty.serving.http import run
    from thrifty.serving.resolve import resolve_files, served_model
    from thrifty.serving.server import InferenceServer
    from thrifty.settings import get_settings

    settings = get_settings()
    registry, store = runtime.registry(), runtime.store()
    spec = served_model(ref, name, tokenizer, registry, store)
    files = resolve_files(spec, registry, store, settings.home / "cache")
    config = _server_config(
        settings, host, port, files.optimized_graph_path, max_batch_size, max_queue_delay_ms
    )
    server = InferenceServer(config)
    loaded = server.load(spec.name, files.model_path, tokenizer_path=files.tokenizer_path)
    sock = bind_socket(host, port)
    console.print(
        f"[green]serving[/] [bold]{spec.name}[/] on http://{host}:{port}/v2/models/{spec.name} (loaded in {loaded.load_ms:.0f} ms; Ctrl-C stops)"
    )
    run(serve_until_stopped(server.handle, sock, max_body_bytes=config.max_body_bytes))


def _server_config(
    settings: Any, host: str, port: int, optimized: Path | None, max_batch: int | None, delay_ms: float | None
) -> Any:
    from thrifty.serving.runner import RunnerConfig
    from thrifty.serving.server import ServerConfig

    runner = RunnerConfig(
        max_batch_size=max_batch or settings.serving_max_batch_size,
        max_queue_delay_ms=settings.serving_max_queue_delay_ms if delay_ms is None else delay_ms,
        optimized_graph_path=optimized,
    )
    return ServerConfig(
        host=host,
        port=port,
        max_body_bytes=settings.serving_max_body_bytes,
        api_tokens=tuple(t.get_secret_value() for t in settings.api_tokens),
        runner=runner,
    )


def up() -> None:
    """Start the gateway as a background daemon (pid file and log under THRIFTY_HOME)."""
    from thrifty.cli import console
    from thrifty.serving import daemon
    from thrifty.serving.public import public_listener
    from thrifty.settings import get_settings

    settings = get_settings()
    public = public_listener(settings)  # a bad THRIFTY_FRONT_DOOR_LISTEN is refused here, not in the log
    pid = daemon.start_daemon(settings)
    console.print(
        f"[green]gateway up[/] on {daemon.gateway_url(settings)} (pid {pid}, log {daemon.log_file(settings)})"
    )
    if public is not None:
        console.print(
            f"front door public on {public.url} (HTTPS; certificate sha256 {public.sha256}, "
            "pinned by the VMs' watchers)"
        )


def down() -> None:
    """Stop the gateway daemon cleanly: in-flight requests are answered first."""
    from thrifty.cli import console
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    stopped = daemon.stop_daemon(get_settings())
    console.print("[green]gateway stopped[/]" if stopped else "gateway was not running")


STATUS_COLUMNS = [Col("name", key=True), Col("state", key=True), Col("replicas", key=True, justify="right")]
STATUS_COLUMNS += [
    Col("requests", justify="right"),
    Col("req/s", justify="right"),
    Col("p95 ms", justify="right"),
]
STATUS_COLUMNS += [Col("last request"), Col("policy"), Col("warm until"), Col("next pre-warm")]
STATUS_COLUMNS += [Col("ports")]


def _hhmm(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%MZ") if value else ""


def _status_cells(row: LocalDeployment) -> list[str]:
    return [
        row.name,
        row.state,
        f"{row.replicas_ready}/{row.replicas_desired}",
        str(row.requests),
        f"{row.rps:.2f}" if row.requests else "",
        "" if row.latency_ms_p95 is None else f"{row.latency_ms_p95:.1f}",
        _hhmm(row.last_request_at),
        f"{row.policy}: {row.policy_action}" if row.policy else "",
        _hhmm(row.warm_until),
        _hhmm(row.next_prewarm_at),
        ",".join(map(str, row.ports)),
    ]


def status(as_json: JsonOpt = False) -> None:
    """Deployments on this machine: state, replicas, requests (rate and p95 over 5 min), policy.

    Times are UTC."""
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import print_table
    from thrifty.settings import get_settings

    report = read.local_status(runtime.registry(), get_settings())
    if as_json:
        print_json(report)
        return
    gateway = report.gateway
    console.print(f"gateway: {gateway.url} ({'up, pid ' + str(gateway.pid) if gateway.pid else 'down'})")
    others = [w for w in gateway.workers if w["role"] != "replica"]  # spares, starting, stopping
    if others:
        listed = ", ".join(
            f"pid {w['pid']} {w['role']}" + (f" ({w['model']})" if w["model"] else "") for w in others
        )
        console.print(f"other workers: {listed}")
    if not report.deployments:
        console.print("no local deployments: `thrifty deploy-local MODEL/VARIANT` or `make run`")
        return
    print_table(console, STATUS_COLUMNS, [_status_cells(r) for r in report.deployments], title="deployments")


DEPLOYMENT_COLUMNS = [Col("name", key=True), Col("state", key=True), Col("target", key=True)]
DEPLOYMENT_COLUMNS += [Col("$/month", key=True, justify="right"), Col("replicas", justify="right")]
DEPLOYMENT_COLUMNS += [Col("plan", justify="right"), Col("offer"), Col("revision"), Col("endpoint")]


def deployments(as_json: JsonOpt = False) -> None:
    """Every deployment on every target: state, replicas, the plan it follows and its cost."""
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import print_table

    rows = read.deployments(runtime.registry())
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no deployments yet: `make run`, `thrifty deploy-local` or `thrifty deploy`")
        return
    cells = [
        [d.name, d.state, d.provider, "" if d.usd_per_month is None else f"{d.usd_per_month:,.2f}",
         str(d.replicas), "" if d.plan_id is None else str(d.plan_id), d.offer or "", d.revision or "",
         d.endpoint_url or ""]
        for d in rows
    ]  # fmt: skip
    print_table(console, DEPLOYMENT_COLUMNS, cells, title="deployments ($/month: what the plan chose)")


def events(
    name: Annotated[str, typer.Argument(help="Deployment name (see `thrifty status`).")],
    as_json: JsonOpt = False,
) -> None:
    """A deployment's history: deployed, live, hibernated, woken, rebalanced, re-planned."""
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import print_table

    rows = read.events(runtime.registry(), name)
    if as_json:
        print_json(rows)
        return
    columns = [
        Col("at (UTC)", key=True),
        Col("event", key=True),
        Col("reason"),
        Col("$/month saved", justify="right"),
    ]
    cells = [
        [
            _hhmm(e.at),
            e.kind,
            e.reason,
            "" if e.usd_saved_per_month is None else f"{e.usd_saved_per_month:,.2f}",
        ]
        for e in rows
    ]
    print_table(console, columns, cells, title=f"{name}: events")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("deployments")(deployments)
    app.command("events")(events)
