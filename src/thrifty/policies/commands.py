"""CLI: ``thrifty simulate`` (replay a trace against policies) and ``thrifty policies``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from thrifty.render import Col

if TYPE_CHECKING:
    from thrifty.policies.simulate import PolicySummary
    from thrifty.policies.trace import Trace

DEFAULT_POLICIES = ["hybrid-histogram", "thrifty-cost-aware"]


def simulate_command(
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            help="Trace folder or file: Azure Functions 2019 (as published, or minute_N), Azure LLM CSVs, "
            "or one row per request (CSV / JSON lines with a timestamp column).",
        ),
    ] = None,
    deployment: Annotated[
        list[str] | None,
        typer.Option(
            "--deployment", "-d", help="Replay a deployment's own request log (repeat for several)."
        ),
    ] = None,
    days: Annotated[float, typer.Option("--days", help="With --deployment: how many days of log.")] = 7.0,
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="Numeric timestamps in an arrivals file: auto, s or ms.")
    ] = "auto",
    trigger: Annotated[
        str | None, typer.Option("--trigger", help="Only functions of this trigger (http, timer, …).")
    ] = None,
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

    loaded = _load(trace, deployment or [], days, time_unit, trigger)
    chosen = [get_policy(name) for name in (policy or DEFAULT_POLICIES)]
    with console.status(f"simulating {loaded.n_functions} functions × {loaded.minutes} min…", spinner="dots"):
        summaries = compare(loaded, chosen, usd_per_gib_hour=usd_per_gib_hour)
    if png is not None:
        plot_tradeoff(
            summaries, png, f"{loaded.source}: {loaded.n_functions} functions × {loaded.minutes} min"
        )
    if as_json:
        print_json(
            {
                "trace": str(trace) if trace else None,
                "deployments": deployment or [],
                "source": loaded.source,
                "functions": loaded.n_functions,
                "minutes": loaded.minutes,
                "png": str(png) if png else None,
                "policies": [s.row() for s in summaries],
            }
        )
        return
    _print_summaries(summaries, loaded.source)
    if png is not None:
        console.print(f"trade-off curve written to [bold]{png}[/]")


def _load(
    trace: Path | None, deployments: list[str], days: float, time_unit: str, trigger: str | None
) -> Trace:
    """The trace named on the command line: a file or folder, or deployments' request logs."""
    from datetime import UTC, datetime

    from thrifty.errors import ConfigError
    from thrifty.policies.trace import load_trace
    from thrifty.policies.trace_files import load_request_log

    if (trace is None) == (not deployments):
        raise ConfigError(
            "give either --trace or --deployment", hint="e.g. `--trace trace.csv` or `--deployment minilm`"
        )
    if deployments:
        if days <= 0:
            raise ConfigError(f"--days {days:g}", hint="a positive number of days of request log")
        from thrifty import runtime

        loaded = load_request_log(runtime.registry(), deployments, datetime.now(UTC), days)
    else:
        assert trace is not None
        loaded = load_trace(trace, time_unit)
    return loaded.with_trigger(trigger) if trigger else loaded


SIMULATE_COLUMNS = [Col("policy", key=True), Col("cold % p75", key=True, justify="right")]
SIMULATE_COLUMNS += [Col("wasted mem %", key=True, justify="right")]
SIMULATE_COLUMNS += [Col(h, justify="right") for h in ("wasted $", "cold % mean", "by memory %")]
SIMULATE_COLUMNS += [Col(h, justify="right") for h in ("pre-warms/day", "per-invocation p75/mean", "time s")]


def _print_summaries(summaries: list[PolicySummary], title: str) -> None:
    """Policy names and the two trade-off numbers always; "wasted $" only when priced."""
    from thrifty.cli import console
    from thrifty.render import print_table

    cells = [
        [s.policy, f"{s.cold_pct_p75:.1f}", f"{s.wasted_memory_pct:.1f}",
         "" if s.wasted_usd is None else f"{s.wasted_usd:.2f}", f"{s.cold_pct_mean:.1f}",
         f"{s.wasted_memory_weighted_pct:.1f}", f"{s.prewarms_per_function_day:.1f}",
         f"{s.cold_pct_per_invocation_p75:.1f} / {s.cold_pct_per_invocation_mean:.1f}", f"{s.elapsed_s:.2f}"]
        for s in summaries
    ]  # fmt: skip
    print_table(
        console, SIMULATE_COLUMNS, cells, title=f"{title} — memory relative to fixed 10-min keep-alive"
    )
    if all(s.wasted_usd is None for s in summaries):
        console.print("wasted $: pass --usd-per-gib-hour PRICE to price the idle memory", highlight=False)


def policies_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The hibernation policies and their default settings."""
    from thrifty.cli import console, print_json
    from thrifty.policies import POLICIES, policy_class
    from thrifty.render import print_table

    rows: list[dict[str, Any]] = []
    for name in POLICIES:
        cls = policy_class(name)
        policy = cls()
        doc = _plain_text((cls.__doc__ or "").strip().splitlines()[0])
        rows.append({"name": name, "summary": doc, "settings": dict(policy.settings())})
    if as_json:
        print_json(rows)
        return
    cells = [[str(r["name"]), str(r["summary"]), _settings_text(r["settings"])] for r in rows]
    columns = [Col("name", key=True), Col("what it does"), Col("default settings")]
    print_table(
        console, columns, cells, title="hibernation policies (fixed-<minutes> picks a fixed keep-alive)"
    )


def _settings_text(settings: dict[str, Any]) -> str:
    return "\n".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def _plain_text(doc: str) -> str:
    """A docstring line as a person reads it: rST ``literals`` and `refs` lose their backticks."""
    import re

    return re.sub(r"`{1,2}([^`]+)`{1,2}", r"\1", doc)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command("policies")(policies_command)
