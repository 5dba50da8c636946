"""Planning a registered model end to end: benchmark results + price catalog → stored decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.catalog.store import load_catalog
from thrifty.planner.decision import Decision, plan, save_plan
from thrifty.planner.transfer import price_transfer, variant_sizes
from thrifty.planner.types import Assumptions, Slo, Traffic, perf_from_registry, recorded_minilm

if TYPE_CHECKING:
    from thrifty.registry import Registry
    from thrifty.settings import Settings


@dataclass(frozen=True)
class PlanResult:
    plan_id: int
    decision: Decision


def plan_model(
    registry: Registry,
    settings: Settings,
    model: str,
    slo: Slo,
    traffic: Traffic,
    *,
    version: int | None = None,
    recorded: bool = False,
    assumptions: Assumptions | None = None,
) -> PlanResult:
    """Plan ``model`` (its newest version unless ``version``) and store the decision record.

    ``recorded=True`` plans with the recorded MiniLM numbers instead of the registry's benchmark
    results (a demo for a registry without benchmarks); the record says so.
    """
    model_version_id: int | None = None
    if recorded:
        perf = recorded_minilm()
    else:
        model_version_id = registry.get_model_version(model, version).id
        perf = perf_from_registry(registry, model, version)
    catalog = load_catalog(settings, registry)
    check_regions(slo.regions, catalog.table["region"].unique().tolist(), catalog.origin)
    decision = plan(
        perf, catalog.table, slo, traffic, assumptions=assumptions, model=model, catalog_origin=catalog.origin
    )
    if model_version_id is not None:
        sizes = variant_sizes(registry, model_version_id)
        price_transfer(decision, sizes, settings.resolved_artifact_store_url)
    return PlanResult(save_plan(registry, decision, model_version_id), decision)


def replan(registry: Registry, settings: Settings, plan_id: int) -> Decision:
    """The stored plan ``plan_id`` made again at today's prices: same model, SLO and traffic.

    Nothing is stored; the price monitor compares the answer with what the deployment runs on.
    """
    from thrifty.policies.pricewatch import replan_inputs

    inputs = replan_inputs(registry.get_plan(plan_id).record)
    perf = recorded_minilm() if inputs["recorded"] else perf_from_registry(registry, inputs["model"])
    catalog = load_catalog(settings, registry)
    return plan(
        perf,
        catalog.table,
        Slo(**inputs["slo"]),
        Traffic(**inputs["traffic"]),
        model=inputs["model"],
        catalog_origin=catalog.origin,
    )


def check_regions(wanted: tuple[str, ...] | None, known: list[str], origin: str) -> None:
    """Fail on a region the price table has never heard of (a typo would silently plan nothing)."""
    import difflib

    from thrifty.errors import ConfigError

    unknown = [r for r in wanted or () if r not in known]
    if not unknown:
        return
    close = [(r, difflib.get_close_matches(r, known, n=1, cutoff=0.8)) for r in unknown]
    guesses = [f"{match[0]} for {r}" for r, match in close if match]
    hint = f"did you mean {', '.join(guesses)}? " if guesses else ""
    raise ConfigError(
        f"unknown region(s) {', '.join(unknown)}: not in the {origin} price table",
        hint=hint + f"known regions: {', '.join(sorted(known))}",
    )
