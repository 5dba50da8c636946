"""CLI: ``thrifty plan NAME --p95-ms 50 --rps 20``, ``thrifty plan explain ID``, ``thrifty plan list``.

``plan`` is a group whose unknown first word is taken as the model name, so ``thrifty plan minilm ...``
runs ``thrifty plan make minilm ...``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup


class _PlanGroup(TyperGroup):
    """Route ``thrifty plan NAME ...`` to the ``make`` command; ``explain`` / ``list`` stay commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make", *args]
        return super().parse_args(ctx, args)


plan_app = typer.Typer(
    cls=_PlanGroup,
    help="Cheapest (variant × offer) that meets the SLO: `thrifty plan NAME --p95-ms 50 --rps 20`.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")


def _split(text: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else None


@plan_app.command("make")
def make(
    name: str = typer.Argument(..., help="Registered model name."),
    p95_ms: float = typer.Option(..., "--p95-ms", help="p95 latency target in ms."),
    rps: float = typer.Option(..., "--rps", help="Target traffic in requests per second."),
    providers: str | None = typer.Option(None, "--providers", help="Allowed providers, e.g. aws,gcp."),
    regions: str | None = typer.Option(None, "--regions", help="Allowed regions (comma-separated)."),
    spot_ok: bool = typer.Option(False, "--spot-ok", help="Allow spot capacity (risk priced in)."),
    max_interruption: str | None = typer.Option(
        None, "--max-interruption", help="Worst spot bucket, e.g. 10-15%."
    ),
    min_fidelity: float | None = typer.Option(
        None, "--min-fidelity", help="Minimum fidelity score of a variant."
    ),
    accepted_only: bool = typer.Option(
        False, "--accepted-only", help="Only variants the guardrail accepted."
    ),
    no_serverless: bool = typer.Option(False, "--no-serverless", help="Exclude serverless offers."),
    accelerator: str | None = typer.Option(
        None,
        "--accelerator",
        help="Only offers with this accelerator (e.g. T4, L4, A10G; 'cpu' = CPU-only); needs a benchmark on it.",
    ),
    active_fraction: float = typer.Option(1.0, "--active-fraction", help="Share of the month with traffic."),
    scale_to_zero: bool = typer.Option(False, "--scale-to-zero", help="Dedicated replicas stop when idle."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: newest)."),
    recorded: bool = typer.Option(
        False, "--recorded", help="Use recorded MiniLM numbers (demo, no benchmarks)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Plan a model's placement and store the decision record."""
    from thrifty import runtime
    from thrifty.planner.service import plan_model
    from thrifty.planner.types import Slo, Traffic
    from thrifty.settings import get_settings

    slo = Slo(
        latency_ms_p95=p95_ms,
        min_fidelity=min_fidelity,
        accepted_only=accepted_only,
        max_interruption_bucket=max_interruption,
        providers=_split(providers),
        regions=_split(regions),
        spot_ok=spot_ok,
        serverless_ok=not no_serverless,
        accelerator=accelerator,
    )
    traffic = Traffic(rps=rps, active_fraction=active_fraction, scale_to_zero=scale_to_zero)
    result = plan_model(
        runtime.registry(), get_settings(), name, slo, traffic, version=version, recorded=recorded
    )
    if as_json:
        from thrifty.cli import print_json

        print_json({"plan_id": result.plan_id} | result.decision.to_dict())
        return
    _print_plan(result.plan_id, result.decision.to_dict())


def _print_plan(plan_id: int, record: dict[str, Any]) -> None:
    from rich.table import Table

    from thrifty.cli import console

    table = Table(title=f"plan {plan_id} for {record['model']}: top candidates")
    for column in (
        "#",
        "variant",
        "provider",
        "type",
        "region",
        "option",
        "p95 ms",
        "machines",
        "$/month",
        "$/M req",
    ):
        table.add_column(column)
    for c in record["candidates"][:10]:
        table.add_row(
            str(c["rank"]),
            c["variant"],
            c["provider"],
            c["instance_type"],
            c["region"],
            c["option"],
            f"{c['latency_ms_p95_est']:.1f}" + ("*" if c["estimated"] else ""),
            "-" if c["machines"] is None else f"{c['machines']:g}",
            f"{c['usd_per_month']:,.2f}",
            f"{c['usd_per_million_requests']:.4f}",
        )
    console.print(table)
    console.print("* estimated from the benchmark machine by the stated assumptions")
    base = record.get("baseline")
    if base:
        console.print(
            f"naive baseline ({base['variant']} on m5.xlarge us-east-1): ${base['usd_per_month']:,.2f}/month, "
            f"${base['usd_per_million_requests']:.4f} per million"
        )
    console.print(f"details: `thrifty plan explain {plan_id}`")


@plan_app.command("explain")
def explain(
    plan_id: int = typer.Argument(..., help="Plan id (see `thrifty plan list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored decision record as JSON."),
) -> None:
    """Print a stored decision so a person can check it by hand."""
    from thrifty import runtime
    from thrifty.cli import print_json
    from thrifty.planner.explain import explain_text

    stored = runtime.registry().get_plan(plan_id)
    if as_json:
        print_json({"plan_id": stored.id} | stored.record)
        return
    typer.echo(explain_text(stored.record, stored.id))


@plan_app.command("list")
def list_plans(
    limit: int = typer.Option(20, "--limit", min=1, help="Newest plans to show."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The newest stored plans."""
    from thrifty import runtime
    from thrifty.cli import console, print_json

    rows = [_summary(p.id, p.created_at, p.record) for p in runtime.registry().list_plans(limit)]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="plans")
    for column in ("id", "created", "model", "chosen", "$/month", "$/M req"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["created_at"][:19],
            row["model"],
            row["chosen"],
            f"{row['usd_per_month'] or 0:,.2f}",
            f"{row['usd_per_million_requests'] or 0:.4f}",
        )
    console.print(table)


def _summary(plan_id: int, created_at: Any, record: dict[str, Any]) -> dict[str, Any]:
    chosen = record.get("chosen") or {}
    where = f"{chosen.get('variant')} on {chosen.get('provider')} {chosen.get('instance_type')} {chosen.get('region')}"
    return {
        "id": plan_id,
        "created_at": created_at.isoformat(),
        "model": record.get("model", ""),
        "chosen": f"{where} ({chosen.get('option')})",
        "usd_per_month": chosen.get("usd_per_month"),
        "usd_per_million_requests": chosen.get("usd_per_million_requests"),
    }
