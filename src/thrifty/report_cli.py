"""CLI: ``thrifty report DEPLOYMENT_OR_PLAN [--html out.html]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thrifty.render import Col


def report(
    ref: Annotated[str, typer.Argument(help="A deployment name, or a plan id (e.g. 7 or plan:7).")],
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Write a standalone HTML report with plots here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report data as JSON.")] = False,
) -> None:
    """The summary of a deployment's plan: chosen offer vs the naive baseline, variants, top offers."""
    from rich.markdown import Markdown

    from thrifty import report as reporting
    from thrifty import runtime
    from thrifty.cli import console, print_json
    from thrifty.render import print_table

    data = reporting.collect(runtime.registry(), ref)
    if as_json:
        print_json({"model": data.model, "plan_id": data.plan_id, "deployment": data.deployment,
                    "chosen": data.chosen, "baseline": data.baseline, "variants": data.variants})  # fmt: skip
        return
    console.print(Markdown(reporting.summary_markdown(data)))
    rows = reporting.offers_rows(data)
    cells = [
        [str(r["rank"]), str(r["variant"]), _num(r["usd_per_month"]), r["offer"], str(r["why_lost"]),
         _num(r["usd_per_million_requests"]), _num(r["p95_ms_est"])]
        for r in rows
    ]  # fmt: skip
    print_table(console, OFFER_COLUMNS, cells, title="top offers (one row per offer, its best variant)")
    if html_path is not None:
        written = reporting.write_html(data, html_path)
        console.print(f"[green]wrote[/] {written}")


OFFER_COLUMNS = [Col("#", key=True, justify="right"), Col("variant", key=True)]
OFFER_COLUMNS += [Col("$/month", key=True, justify="right"), Col("offer"), Col("why it lost")]
OFFER_COLUMNS += [Col("$/1M req", justify="right"), Col("p95 est ms", justify="right")]


def _num(value: object) -> str:
    return "-" if value is None else f"{float(value):,.2f}"  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("report")(report)
