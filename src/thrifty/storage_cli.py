"""CLI: ``thrifty storage plan`` (dry run) and ``thrifty storage apply``: render-only over
``thrifty.artifacts.lifecycle``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from thrifty.render import Col

if TYPE_CHECKING:
    from thrifty.artifacts.lifecycle import LifecycleRules, StoragePlan

storage_app = typer.Typer(help="Storage lifecycle: tier blobs by use, collect unreferenced ones.")

Cloud = Annotated[str, typer.Option(help="Whose storage classes price the moves: aws, gcp or azure.")]
WarmDays = Annotated[float, typer.Option(help="Days unused before a blob moves to warm.")]
ColdDays = Annotated[float, typer.Option(help="Days unused before a blob moves to cold.")]
GraceDays = Annotated[float, typer.Option(help="Days an unreferenced blob is kept before deletion.")]
HorizonDays = Annotated[float, typer.Option(help="Days a move must pay back its one-time charges in.")]
Now = Annotated[str | None, typer.Option(help="Plan as of this UTC time (ISO 8601), e.g. a what-if.")]
Limit = Annotated[int, typer.Option(min=0, help="Rows of actions shown (the totals count all).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")]


@storage_app.command("plan")
def plan(
    cloud: Cloud = "aws",
    warm_after_days: WarmDays = 30.0,
    cold_after_days: ColdDays = 90.0,
    gc_grace_days: GraceDays = 7.0,
    horizon_days: HorizonDays = 180.0,
    now: Now = None,
    limit: Limit = 20,
    as_json: JsonOpt = False,
) -> None:
    """What would move or be deleted, why, and what it saves. Changes nothing."""
    rules = _rules(cloud, warm_after_days, cold_after_days, gc_grace_days, horizon_days)
    result = _plan(rules, now)
    _show(result, limit, as_json, applied=None)


@storage_app.command("apply")
def apply(
    cloud: Cloud = "aws",
    warm_after_days: WarmDays = 30.0,
    cold_after_days: ColdDays = 90.0,
    gc_grace_days: GraceDays = 7.0,
    horizon_days: HorizonDays = 180.0,
    limit: Limit = 20,
    as_json: JsonOpt = False,
) -> None:
    """Plan now and execute it: change storage classes, delete unreferenced blobs."""
    from thrifty import runtime
    from thrifty.artifacts.lifecycle import apply_plan

    rules = _rules(cloud, warm_after_days, cold_after_days, gc_grace_days, horizon_days)
    result = _plan(rules, None)
    applied = apply_plan(runtime.store(), result, runtime.registry()).to_dict()
    _show(result, limit, as_json, applied=applied)


def _rules(cloud: str, warm: float, cold: float, grace: float, horizon: float) -> LifecycleRules:
    from thrifty.artifacts.lifecycle import LifecycleRules

    return LifecycleRules(
        cloud=cloud, warm_after_days=warm, cold_after_days=cold, gc_grace_days=grace, horizon_days=horizon
    )


def _plan(rules: LifecycleRules, now: str | None) -> StoragePlan:
    from thrifty import runtime
    from thrifty.artifacts.lifecycle import plan_for_store
    from thrifty.errors import ConfigError

    try:
        at = datetime.fromisoformat(now) if now else datetime.now(UTC)
    except ValueError as exc:
        raise ConfigError(
            f"--now {now!r} is not a time", hint="use ISO 8601, e.g. 2026-07-01T00:00+00:00"
        ) from exc
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # a time without a zone is UTC
    return plan_for_store(runtime.store(), runtime.registry(), rules, at)


ACTION_COLUMNS = [Col("blob", key=True), Col("action", key=True), Col("to", key=True)]
ACTION_COLUMNS += [Col("MiB", justify="right"), Col("$/month saved", key=True, justify="right"), Col("why")]


def _show(result: StoragePlan, limit: int, as_json: bool, applied: dict[str, object] | None) -> None:
    from thrifty.cli import console, print_json
    from thrifty.render import print_table

    data = result.to_dict()
    if as_json:
        print_json(data | ({"applied": applied} if applied is not None else {}))
        return
    rows = sorted(result.actions, key=lambda a: -abs(a.usd_saved_per_month))[:limit]
    cells = [
        [a.sha256[:12], a.action, a.to_tier or "-", f"{a.size_bytes / 2**20:,.2f}",
         f"{a.usd_saved_per_month:,.4f}", a.reason]
        for a in rows
    ]  # fmt: skip
    if cells:
        print_table(console, ACTION_COLUMNS, cells, title=f"storage plan ({len(result.actions)} actions)")
    console.print(
        f"{data['objects_scanned']} blobs ({data['bytes_scanned'] / 2**30:,.3f} GiB) scanned; "
        f"move {data['bytes_moved'] / 2**30:,.3f} GiB, delete {data['bytes_deleted'] / 2**30:,.3f} GiB; "
        f"saves ${data['usd_saved_per_month']:,.4f}/month for ${data['usd_one_time']:,.4f} once "
        f"({result.rules.cloud} list prices). Kept: {data['kept'] or 'none'}"
    )
    if applied is None:
        console.print("dry run: nothing changed (`thrifty storage apply` executes it)")
    else:
        console.print(f"applied: {applied}")


def register(app: typer.Typer) -> None:
    app.add_typer(storage_app, name="storage")
