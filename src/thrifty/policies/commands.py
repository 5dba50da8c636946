"""CLI: ``thrifty simulate`` (replay a trace against policies) and ``thrifty policies``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from thrifty.policies.simulate import PolicySummary

DEFAULT_POLICIES = ["hybrid-histogram", "thrifty-cost-aware"]


def simulate_command(
    trace: Annotated[
        Path, typer.Option("--trace", help="Trace folder (Azure Functions 2019 layout or Azure LLM CSVs).")
    ],
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", "-p", help="Policy name (repeat for several); see `thrifty policies`."),
    ] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Draw the trade-off curve to this PNG.")] = None,
    usd_per_gib_hour: Annotated[
        float | None,
        typer.Option("--usd-per-gib-hour", help="Price of idle memory, to report wasted dollars."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Replay a trace: the fixed keep-alive curve (5–240 min) and each policy, cold starts vs wasted memory."""
    from thrifty.cli import console, print_json
    from thrifty.policies import get_policy
    from thrifty.policies.simulate import compare, plot_tradeoff
    from thrifty.policies.trace import load_trace

    loaded = load_trace(trace)
    chosen = [get_policy(name) for name in (policy or DEFAULT_POLICIES)]
    with console.status(f"simulating {loaded.n_functions} functions × {loaded.minutes} min…", spinner="dots"):
        summaries = compare(loaded, chosen, usd_per_gib_hour=usd_per_gib_hour)
    if png is not None:
        plot_tradeoff(
            summaries, png, f"{loaded.source}: {loaded.n_functions} functions × {loaded.minutes} min"
        )
    if as_json:
        print_json(
            {"trace": str(trace), "png": str(png) if png else None, "policies": [s.row() for s in summaries]}
        )
        return
    console.print(_table(summaries, loaded.source))
    if png is not None:
        console.print(f"trade-off curve written to [bold]{png}[/]")


def _table(summaries: list[PolicySummary], title: str) -> Table:
    from rich.table import Table

    table = Table(title=f"{title} — memory relative to fixed 10-min keep-alive")
    columns = (
        "policy",
        "cold % p75",
        "cold % mean",
        "per-invocation p75/mean",
        "wasted mem %",
        "by memory %",
        "pre-warms/day",
        "wasted $",
        "time s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "policy" else "right")
    for s in summaries:
        table.add_row(
            s.policy,
            f"{s.cold_pct_p75:.1f}",
            f"{s.cold_pct_mean:.1f}",
            f"{s.cold_pct_per_invocation_p75:.1f} / {s.cold_pct_per_invocation_mean:.1f}",
            f"{s.wasted_memory_pct:.1f}",
            f"{s.wasted_memory_weighted_pct:.1f}",
            f"{s.prewarms_per_function_day:.1f}",
            "—" if s.wasted_usd is None else f"{s.wasted_usd:.2f}",
            f"{s.elapsed_s:.2f}",
        )
    return table


def policies_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The hibernation policies and their default settings."""
    from rich.table import Table

    from thrifty.cli import console, print_json
    from thrifty.policies import POLICIES, policy_class

    rows: list[dict[str, Any]] = []
    for name in POLICIES:
        cls = policy_class(name)
        policy = cls()
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append({"name": name, "summary": doc, "settings": dict(policy.settings())})
    if as_json:
        print_json(rows)
        return
    table = Table(title="hibernation policies (`fixed-<minutes>` picks a fixed keep-alive)")
    for column in ("name", "what it does", "default settings"):
        table.add_column(column)
    for row in rows:
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        table.add_row(str(row["name"]), str(row["summary"]), settings)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command("policies")(policies_command)
