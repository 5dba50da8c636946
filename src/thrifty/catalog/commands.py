"""CLI: ``thrifty prices show`` and ``thrifty prices refresh``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

prices_app = typer.Typer(
    help="The price catalog (AWS, GCP, Azure: on-demand, spot, serverless).", no_args_is_help=True
)

_SHOW_COLUMNS: tuple[str, ...] = ("provider", "region", "zone", "instance_type", "vcpus", "memory_gib")
_SHOW_COLUMNS += (
    "accelerator_name",
    "price_model",
    "usd_per_hour",
    "interruption_bucket",
    "derived",
    "observed_at",
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
    from thrifty import runtime
    from thrifty.catalog.query import cheapest as cheapest_rows
    from thrifty.catalog.query import select_offers
    from thrifty.catalog.refresh import parse_providers
    from thrifty.catalog.store import load_catalog
    from thrifty.settings import get_settings

    catalog = load_catalog(get_settings(), runtime.registry())
    providers = parse_providers(provider) if provider else None
    models = [price_model] if price_model else None
    rows = select_offers(
        catalog.table, providers=providers, vcpus=vcpus, price_models=models, accelerator=accelerator
    )
    rows = cheapest_rows(rows, limit) if cheapest else rows.sort_values(["provider", "region"]).head(limit)
    _print_prices(rows, catalog.origin, len(catalog.table), as_json)


def _print_prices(rows: pd.DataFrame, origin: str, total: int, as_json: bool) -> None:
    from thrifty.catalog.schema import to_records
    from thrifty.cli import console, print_json

    records = to_records(rows)
    if as_json:
        print_json({"origin": origin, "rows": records})
        return
    from rich.table import Table

    table = Table(title=f"prices from {origin} ({total:,} rows; showing {len(records)})")
    for column in _SHOW_COLUMNS:
        table.add_column(
            column, justify="right" if column in ("vcpus", "memory_gib", "usd_per_hour") else "left"
        )
    for record in records:
        table.add_row(*(_cell(record[c]) for c in _SHOW_COLUMNS))
    console.print(table)
    if origin == "reference":
        console.print("[yellow]reference list prices (hand-curated, with as_of dates): not live.[/]")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
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
