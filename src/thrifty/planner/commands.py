"""CLI: ``thrifty plan NAME --p95-ms 50 --rps 20``, ``thrifty plan explain ID``, ``thrifty plan list``.

``plan`` is a group whose unknown first word is taken as the model name, so ``thrifty plan minilm ...``
runs ``thrifty plan make minilm ...``.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from thrifty.render import Col


class _PlanGroup(TyperGroup):
    """Route ``thrifty plan NAME ...`` to the ``make`` command; ``explain`` / ``list`` stay commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """``thrifty plan --help`` also shows the options of ``thrifty plan NAME``."""
        super().format_help(ctx, formatter)
        make = self.commands["make"]
        with make.make_context("plan", ["x"], parent=ctx.parent, resilient_parsing=True) as sub:
            make.format_help(sub, formatter)


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
    spot_ok: bool = typer.Option(
        True, "--spot-ok/--no-spot", help="Allow spot capacity (risk priced in); deploy-model's default too."
    ),
    max_interruption: str | None = typer.Option(
        None, "--max-interruption", help="Worst spot bucket, e.g. 10-15%."
    ),
    min_fidelity: float | None = typer.Option(
        None, "--min-fidelity", help="Minimum fidelity score of a variant."
    ),
    accepted_only: bool = typer.Option(
        False, "--accepted-only", help="Only variants the guardrail accepted."
    ),
    serverless: bool = typer.Option(
        True,
        "--serverless/--no-serverless",
        help="Allow serverless offers (Lambda, Cloud Run, Container Apps; cold starts are in the p95 check).",
    ),
    warm_floor: int = typer.Option(
        0,
        "--warm-floor",
        help="Serverless instances kept warm (provisioned concurrency / min instances), priced.",
    ),
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
        serverless_ok=serverless,
        accelerator=accelerator,
        warm_floor=warm_floor,
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


PLAN_COLUMNS = [Col("#", key=True, justify="right"), Col("variant", key=True)]
PLAN_COLUMNS += [Col("$/month", key=True, justify="right"), Col("provider"), Col("type", key=True)]
PLAN_COLUMNS += [Col("region"), Col("option"), Col("p95 ms", justify="right")]
PLAN_COLUMNS += [Col("machines", justify="right"), Col("$/M req", justify="right")]


def _plan_cells(c: dict[str, Any]) -> list[str]:
    return [
        str(c["rank"]),
        c["variant"],
        f"{c['usd_per_month']:,.2f}",
        c["provider"],
        c["instance_type"],
        c["region"],
        c["option"],
        f"{c['latency_ms_p95_est']:.1f}" + ("*" if c["estimated"] else ""),
        "-" if c["machines"] is None else f"{c['machines']:g}",
        f"{c['usd_per_million_requests']:.4f}",
    ]


def _print_plan(plan_id: int, record: dict[str, Any]) -> None:
    from thrifty.cli import console
    from thrifty.render import print_table

    rows = [_plan_cells(c) for c in record["candidates"][:10]]
    title = f"plan {plan_id} for {record['model']}: top candidates"
    print_table(console, PLAN_COLUMNS, rows, title=title)
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
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import wrap_text

    stored = read.plan(runtime.registry(), plan_id)
    if as_json:
        print_json({"plan_id": stored.id} | stored.record)
        return
    text = stored.explanation()
    # a terminal (or COLUMNS) sets the width; a file or a pipe gets the lines whole
    wrap = console.is_terminal or "COLUMNS" in os.environ
    typer.echo(wrap_text(text, console.width) if wrap else text)


@plan_app.command("list")
def list_plans(
    limit: int = typer.Option(20, "--limit", min=1, help="Newest plans to show."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The newest stored plans."""
    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.render import print_table

    rows = read.plans(runtime.registry(), limit)
    if as_json:
        print_json(rows)
        return
    columns = [Col("id", key=True, justify="right"), Col("model", key=True), Col("variant", key=True)]
    columns += [Col("$/month", key=True, justify="right"), Col("offer"), Col("$/M req", justify="right")]
    cells = [
        [str(r.id), r.model, r.variant or "-", _money(r.usd_per_month), r.chosen,
         _money(r.usd_per_million_requests, ".4f"), r.created_at.strftime("%Y-%m-%d %H:%M")]
        for r in rows
    ]  # fmt: skip
    print_table(console, [*columns, Col("created (UTC)")], cells, title="plans")


def _money(value: float | None, spec: str = ",.2f") -> str:
    return "-" if value is None else format(value, spec)
