"""CLI: ``thrifty prices show`` and ``thrifty prices refresh``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from thrifty.read import PriceTable

prices_app = typer.Typer(
    help="The price catalog (AWS, GCP, Azure: on-demand, spot, serverless).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(prices_app, name="prices")


@prices_app.command("show")
def show(
    cheapest: bool = typer.Option(
        False, "--cheapest", help="Cheapest first, one row per type and price model."
    ),
    vcpus: float | None = typer.Option(None, "--vcpus", help="Only types with exactly this many vCPUs."),
    provider: str | None = typer.Option(None, "--provider", help="Comma-separated: aws,gcp,azure."),
    price_model: str | None = typer.Option(None, "--price-model", help="on_demand, spot or serverless."),
    accelerator: str | None = typer.Option(None, "--accelerator", help="Only offers with this GPU, e.g. T4."),
    limit: int = typer.Option(20, "--limit", min=1, help="Rows to print."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print prices from the current catalog (registry history, snapshot, or reference table)."""
    from thrifty import read, runtime
    from thrifty.catalog.refresh import parse_providers
    from thrifty.settings import get_settings

    answer = read.prices(
        runtime.registry(),
        get_settings(),
        cheapest=cheapest,
        vcpus=vcpus,
        providers=parse_providers(provider) if provider else None,
        price_models=[price_model] if price_model else None,
        accelerator=accelerator,
        limit=limit,
    )
    _print_prices(answer, as_json)


#: (header, record key, key column?, right-aligned?) — key columns are never cut or dropped
PRICE_COLUMNS = (
    ("provider", "provider", True, False),
    ("type", "instance_type", True, False),
    ("$/hour", "usd_per_hour", True, True),
    ("pricing", "price_model", True, False),
    ("region", "region", False, False),
    ("vCPUs", "vcpus", False, True),
    ("GiB", "memory_gib", False, True),
    ("interruptions", "interruption_bucket", False, False),
    ("zone", "zone", False, False),
    ("GPU", "accelerator_name", False, False),
    ("derived", "derived", False, False),
    ("observed", "observed_at", False, False),
)


def _print_prices(answer: PriceTable, as_json: bool) -> None:
    from thrifty.cli import console, print_json
    from thrifty.render import Col, print_table

    if as_json:
        print_json({"origin": answer.origin, "rows": answer.rows})
        return
    columns = [Col(h, key=k, justify="right" if r else "left") for h, _, k, r in PRICE_COLUMNS]
    cells = [[_cell(field, record[field]) for _, field, _, _ in PRICE_COLUMNS] for record in answer.rows]
    title = f"prices from {answer.origin} ({answer.total_rows:,} rows; showing {len(answer.rows)})"
    print_table(console, columns, cells, title=title)
    if answer.origin == "reference":
        console.print("[yellow]reference list prices (hand-curated, with as_of dates): not live.[/]")


def _cell(field: str, value: Any) -> str:
    if value is None or value is False:
        return ""
    if field == "usd_per_hour":
        return f"{float(value):.4f}"
    if field == "derived":
        return "yes"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d"))
    return str(value)


@prices_app.command("refresh")
def refresh(
    snapshot: Path | None = typer.Option(
        None, "--snapshot", help="Read this snapshot folder instead of the APIs."
    ),
    providers: str = typer.Option(
        "aws,azure,gcp", "--providers", help="Live APIs to query (comma-separated)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Fetch prices (live APIs, or a snapshot folder) and append them to the registry's history."""
    from thrifty import runtime
    from thrifty.catalog.refresh import parse_providers, refresh_from_snapshot, refresh_live
    from thrifty.cli import console, err_console, print_json
    from thrifty.settings import get_settings

    registry = runtime.registry()
    settings = get_settings()
    if snapshot is not None:
        report = refresh_from_snapshot(registry, snapshot)
    else:
        report = refresh_live(registry, settings, parse_providers(providers))
    if as_json:
        print_json({"written": report.written, "failed": report.failed})
    else:
        for source, count in report.written.items():
            console.print(f"appended {count:,} price rows from {source}")
        for source, why in report.failed.items():
            err_console.print(f"[red]{source} failed[/] (its previous prices stay in force): {why}")
    if report.failed and not any(count for source, count in report.written.items() if source != "serverless"):
        raise typer.Exit(1)
