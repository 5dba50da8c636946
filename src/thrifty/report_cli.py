"""CLI: ``thrifty report DEPLOYMENT_OR_PLAN [--html out.html]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    ref: Annotated[str, typer.Argument(help="A deployment name, or a plan id (e.g. 7 or plan:7).")],
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Write a standalone HTML report with plots here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report data as JSON.")] = False,
) -> None:
    """The summary of a deployment's plan: chosen offer vs the naive baseline, variants, top offers."""
    from rich.markdown import Markdown
    from rich.table import Table

    from thrifty import report as reporting
    from thrifty import runtime
    from thrifty.cli import console, print_json

    data = reporting.collect(runtime.registry(), ref)
    if as_json:
        print_json({"model": data.model, "plan_id": data.plan_id, "deployment": data.deployment,
                    "chosen": data.chosen, "baseline": data.baseline, "variants": data.variants})  # fmt: skip
        return
    console.print(Markdown(reporting.summary_markdown(data)))
    table = Table(
        "rank", "variant", "offer", "$/1M req", "$/month", "p95 est ms", "why it lost", title="top offers"
    )
    for row in reporting.offers_rows(data):
        table.add_row(
            str(row["rank"]), str(row["variant"]), row["offer"], _num(row["usd_per_million_requests"]),
            _num(row["usd_per_month"]), _num(row["p95_ms_est"]), str(row["why_lost"]),
        )  # fmt: skip
    console.print(table)
    if html_path is not None:
        written = reporting.write_html(data, html_path)
        console.print(f"[green]wrote[/] {written}")


def _num(value: object) -> str:
    return "-" if value is None else f"{float(value):,.2f}"  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("report")(report)
