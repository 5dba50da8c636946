"""CLI: ``thrifty costs`` (the spend ledger), ``thrifty alerts`` (anomalies found by the monitor flow)
and ``thrifty recommend`` (cheaper set-ups from observed traffic). They render ``thrifty.read``
answers; ``--json`` prints the same fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from thrifty.render import Col

if TYPE_CHECKING:
    from thrifty import read
    from thrifty.read import CostsView, SpendView

COSTS_COLUMNS = [
    Col("deployment", key=True),
    Col("month to date $", key=True, justify="right"),
    Col("forecast $", key=True, justify="right"),
    Col("plan $/month", justify="right"),
    Col("baseline $/month", justify="right"),
    Col("$/1M reserved", justify="right"),
    Col("$/1M used", justify="right"),
    Col("requests", justify="right"),
    Col("replica h", justify="right"),
    Col("storage $", justify="right"),
    Col("transfer $", justify="right"),
    Col("offer"),
]


def _money(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _row(view: SpendView) -> list[str]:
    return [
        view.deployment,
        _money(view.total_usd, 4),
        _money(view.forecast_month_usd),
        _money(view.plan_usd_per_month),
        _money(view.baseline_usd_per_month),
        _money(view.usd_per_million_requests_reservation),
        _money(view.usd_per_million_requests_usage),
        f"{view.requests:,}",
        f"{view.replica_hours:,.1f}",
        _money(view.storage_usd, 4),
        _money(view.transfer_usd, 4),
        view.offer or "unpriced",
    ]


def transfer_line(view: SpendView) -> str:
    """``thrifty costs NAME``'s transfer line: bytes out, the rate, the free allowance, the copy."""
    sent = f"{view.egress_gib:,.6f} GiB out"
    if view.egress_rate is None:
        egress = f"{sent}, not priced (no cloud offer)"
    else:
        egress = f"{sent} at {view.egress_rate}: ${view.egress_usd:,.6f}"
        if view.egress_usd_saved:
            egress += f" (the free allowance took ${view.egress_usd_saved:,.6f} off)"
    copy = f"; artifact copy at deploy ${view.artifact_copy_usd:,.4f}" if view.artifact_copy_usd else ""
    return f"transfer ${view.transfer_usd:,.6f} this month: {egress}{copy}"


def _print_costs(answer: CostsView) -> None:
    from thrifty.cli import console
    from thrifty.render import print_table

    month = answer.month_start.strftime("%B %Y")
    title = f"spend in {month} to {answer.as_of:%d %H:%M} UTC (USD; forecast to month end at the last 24 h's rate)"
    print_table(console, COSTS_COLUMNS, [_row(v) for v in answer.deployments], title=title)
    console.print(
        f"total ${answer.total_usd:,.4f} so far, ${answer.forecast_month_usd:,.2f} forecast for {month}",
        highlight=False,
    )
    if len(answer.deployments) == 1:
        console.print(transfer_line(answer.deployments[0]), highlight=False)
    notes = sorted({note for view in answer.deployments for note in view.notes})
    for note in notes:
        console.print(f"note: {note}", highlight=False)


def costs_command(
    name: Annotated[str | None, typer.Argument(help="One deployment (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """What each deployment cost this month, its forecast, and $/1M requests next to its plan and the naive baseline."""
    from thrifty import read, runtime
    from thrifty.cli import print_json

    answer = read.costs(runtime.registry(), name)
    if as_json:
        print_json(answer)
        return
    if not answer.deployments:
        from thrifty.cli import console

        console.print("no deployments yet: `thrifty deploy` or `make run` makes one")
        return
    _print_costs(answer)


def alerts_command(
    name: Annotated[str | None, typer.Argument(help="One deployment (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Anomalies the monitor flow found (cost per request, p95 latency, error rate, traffic)."""
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import print_table

    found = read.alerts(runtime.registry(), name, limit=limit)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(
            "no anomalies recorded (the monitor flow records them: `prefect deployment run monitor/monitor`)"
        )
        return
    columns = [
        Col("at", key=True),
        Col("deployment", key=True),
        Col("kind", key=True),
        Col("what and what to do"),
    ]
    cells = [[f"{a.at:%Y-%m-%d %H:%M}", a.deployment, a.kind, a.message] for a in found]
    print_table(console, columns, cells, title="anomalies, newest first")


def recommend_command(
    name: Annotated[str | None, typer.Argument(help="One deployment (default: every live one).")] = None,
    days: Annotated[float, typer.Option(min=0.01, help="How many days of request log to learn from.")] = 7.0,
    apply: Annotated[
        str | None, typer.Option("--apply", help="Apply the recommendation of this kind (needs NAME).")
    ] = None,
    undo: Annotated[
        bool, typer.Option("--undo", help="Undo NAME's latest applied recommendation (rollback or policy).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Cheaper set-ups from the traffic each deployment really gets, with $/month saved and the evidence."""
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.settings import get_settings

    if undo:
        _undo(name)
        return
    answer = read.recommendations(runtime.registry(), get_settings(), name, days=days)
    if apply is not None:
        _apply(answer, name, apply)
        return
    if as_json:
        print_json(answer)
        return
    for rec in answer.recommendations:
        console.print(
            f"[bold]{rec.deployment}[/]: {rec.title} — saves ${rec.usd_saved_per_month:,.2f}/month "
            f"(${rec.usd_per_month_now:,.2f} → ${rec.usd_per_month_after:,.2f})",
            highlight=False,
        )
        console.print(f"  evidence: {_evidence_text(rec.evidence)}", highlight=False, soft_wrap=True)
        console.print(f"  apply: thrifty recommend {rec.deployment} --apply {rec.kind}", highlight=False)
    for skipped, why in answer.skipped.items():
        console.print(f"{skipped}: nothing to recommend — {why}", highlight=False)


def _evidence_text(evidence: dict[str, object]) -> str:
    return "; ".join(f"{k}={v}" for k, v in evidence.items())


#: who the audit log names for a CLI apply or undo
CLI_ACTOR = "cli"


def _start_and_wait(flow: str, parameters: dict[str, Any]) -> str:
    """Start ``flow`` on the Prefect API and wait for it; its run id (ProviderError unless it completed,
    so a failed run is not recorded as applied or undone)."""
    from thrifty.cli import console
    from thrifty.client import start_deployment, wait_flow_run
    from thrifty.errors import ProviderError

    run = start_deployment(flow, parameters)
    console.print(f"running {flow} ({run.name}) …", highlight=False)
    result = wait_flow_run(run.flow_run_id)
    if not result.ok:
        raise ProviderError(
            f"{flow} run {run.name} ended {result.state}: {result.state_message or 'no message'}",
            hint=f"see its logs: prefect flow-run logs {run.flow_run_id}",
        )
    console.print(f"{flow}: {result.state}", highlight=False)
    return run.flow_run_id


def _apply(answer: read.RecommendationsView, name: str | None, kind: str) -> None:
    """Apply it (a redeploy runs its flow on the Prefect API; a hibernation policy is stored)."""
    from thrifty import runtime
    from thrifty.cli import console
    from thrifty.monitor.applied import apply
    from thrifty.read import find_recommendation

    rec = find_recommendation(answer, name, kind)
    if rec.flow is not None:
        console.print(
            f"applying {kind} to {rec.deployment} (same as: {rec.command})", highlight=False, soft_wrap=True
        )
    row = apply(runtime.registry(), rec, CLI_ACTOR, _start_and_wait)
    what = (
        f"r{row.revision_before} was live before"
        if row.revision_before
        else f"policy {row.policy_after} chosen"
    )
    console.print(
        f"applied #{row.id} ({what}); undo: thrifty recommend {rec.deployment} --undo", highlight=False
    )


def _undo(name: str | None) -> None:
    from thrifty import runtime
    from thrifty.cli import console
    from thrifty.errors import ConfigError
    from thrifty.monitor.applied import undo

    if name is None:
        raise ConfigError("--undo needs a deployment name", hint="thrifty recommend NAME --undo")
    row = undo(runtime.registry(), name, CLI_ACTOR, _start_and_wait)
    back = (
        f"rolled back to r{row.revision_before}"
        if row.revision_before
        else f"policy {row.policy_before or 'of the sweep block'} again"
    )
    console.print(f"undid #{row.id} ({row.kind}): {back}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("costs")(costs_command)
    app.command("alerts")(alerts_command)
    app.command("recommend")(recommend_command)
