"""Applying a hibernation-policy recommendation stores the policy for that deployment, where the
hibernation sweep reads it, and undo puts the previous one back (issue 15). minilm-prod's sweep
ran hybrid-histogram; a day of a bursty Azure Functions 2019 function is replayed into its log, so
the backtest recommends another policy. Driven through ``thrifty recommend``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.monitor.test_recommend import NAME, deploy_planned, replay_functions_day
from thrifty.errors import ConfigError


def seed_hibernation_advice(registry: Any, shared_data: Path) -> None:
    """minilm-prod with a day of bursty traffic and a sweep that last ran hybrid-histogram on it."""
    from thrifty.policies.sweep import POLICY_EVENT_KIND

    now = datetime.now(UTC)  # the command reads the log up to the real clock
    deploy_planned(registry, days=1.0, now=now)
    registry.add_event(
        NAME, POLICY_EVENT_KIND, "keep warm", details={"policy": "hybrid-histogram", "do": "none"}
    )
    replay_functions_day(registry, shared_data, now=now)


def _sweep_policy(config: Any) -> str:
    """The policy the hibernation sweep's decision task uses for minilm-prod with ``config``."""
    from prefect.logging import disable_run_logger

    from tasks.hibernation import decide_hibernation

    with disable_run_logger():
        return str(decide_hibernation.fn(NAME, config.__dict__)["policy"])


def test_apply_and_undo_a_hibernation_policy_from_the_cli(thrifty_home: Path, shared_data: Path) -> None:
    from thrifty import access, read, runtime
    from thrifty.cli import app
    from thrifty.policies.chosen import chosen_policy
    from thrifty.policies.sweep import SweepConfig
    from thrifty.settings import get_settings

    registry = runtime.registry()
    seed_hibernation_advice(registry, shared_data)
    advice = read.recommendations(registry, get_settings(), NAME, days=1.0)
    rec = next(r for r in advice.recommendations if r.kind == "hibernation")
    policy = rec.parameters["policy"]
    assert policy != "hybrid-histogram" and rec.command == f"thrifty recommend {NAME} --apply hibernation"
    block = SweepConfig(policy="hybrid-histogram")  # the sweep's block names another policy
    runner = CliRunner()
    done = runner.invoke(app, ["recommend", NAME, "--days", "1", "--apply", "hibernation"])
    assert done.exit_code == 0, done.output
    assert chosen_policy(registry, NAME) == policy and "--undo" in done.output
    assert _sweep_policy(block) == policy, "the sweep uses the policy chosen for this deployment"
    after = read.recommendations(registry, get_settings(), NAME, days=1.0)
    assert "hibernation" not in {r.kind for r in after.recommendations}, "the chosen policy is in force"
    undone = runner.invoke(app, ["recommend", NAME, "--undo"])
    assert undone.exit_code == 0, undone.output
    assert chosen_policy(registry, NAME) is None and _sweep_policy(block) == "hybrid-histogram"
    again = runner.invoke(app, ["recommend", NAME, "--undo"])
    assert isinstance(again.exception, ConfigError) and "already undone" in again.exception.message
    entries, _ = access.list_audit(registry)
    assert [(e.action, e.actor) for e in entries] == [("recommendations.undo", "cli"),
                                                      ("recommendations.apply", "cli")]  # fmt: skip
    assert (entries[1].before["policy"], entries[1].after["policy"]) == (None, policy)
    kinds = [e.kind for e in registry.list_events(NAME)]
    assert kinds.count("hibernation-policy") == 2


def test_an_unknown_policy_is_refused_and_stores_nothing(thrifty_home: Path) -> None:
    from thrifty import read, runtime
    from thrifty.monitor import applied
    from thrifty.policies.chosen import chosen_policy

    registry = runtime.registry()
    registry.upsert_deployment(NAME, provider="local", state="running", replicas=1)
    rec = read.RecommendationView(
        deployment=NAME, kind="hibernation", title="t", usd_per_month_now=2.0, usd_per_month_after=1.0,
        usd_saved_per_month=1.0, evidence={}, flow=None, parameters={"policy": "teleport"}, command="",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="teleport"):
        applied.apply(registry, rec, "ops", lambda flow, parameters: "never")
    assert chosen_policy(registry, NAME) is None and applied.applied(registry, NAME) == []


def test_apply_and_undo_records_on_sqlite_and_postgresql(database_url: str) -> None:
    """The two tables of migration 0003_ops on both databases: a policy chosen, replaced, undone
    back to the earlier choice; the claim of an undo is one conditional UPDATE."""
    from thrifty import read
    from thrifty.monitor import applied
    from thrifty.policies.chosen import chosen_policy, with_choice
    from thrifty.policies.sweep import SweepConfig
    from thrifty.registry import Registry

    registry = Registry.from_url(database_url)
    registry.upsert_deployment(NAME, provider="local", state="running", replicas=1)

    def rec(policy: str) -> read.RecommendationView:
        return read.RecommendationView(
            deployment=NAME, kind="hibernation", title=policy, usd_per_month_now=2.0, usd_per_month_after=1.0,
            usd_saved_per_month=1.0, evidence={}, flow=None, parameters={"policy": policy}, command="",
        )  # fmt: skip

    never = lambda flow, parameters: "never"  # noqa: E731 (a policy change starts no run)
    applied.apply(registry, rec("fixed-30"), "ops", never)
    second = applied.apply(registry, rec("hybrid-histogram"), "ops", never)
    assert (second.policy_before, second.policy_after) == ("fixed-30", "hybrid-histogram")
    assert with_choice(registry, NAME, SweepConfig(settings={"x": 1})).policy == "hybrid-histogram"
    undone = applied.undo(registry, NAME, "ops", never)
    assert (
        undone.id == second.id
        and undone.undone_at is not None
        and chosen_policy(registry, NAME) == "fixed-30"
    )
    with pytest.raises(ConfigError, match="already undone"):
        applied.undo(registry, NAME, "ops", never)
    registry.engine.dispose()
