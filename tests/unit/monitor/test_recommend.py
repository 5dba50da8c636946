"""Recommendations from observed traffic: a deployment planned for 5 req/s steady gets a day of the
Azure Functions 2019 trace (bursty, as published) replayed into its request log; the re-plan with the
observed traffic and the hibernation backtest on that log say what to change, with $/month saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thrifty import read
from thrifty.errors import ConfigError
from thrifty.monitor.recommend import observed_profile
from thrifty.monitor.replay import replay_into_log

NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
NAME = "minilm-prod"


def deploy_planned(registry: Any, days: float, now: datetime = NOW) -> dict[str, Any]:
    """A deployment on the plan's choice for 5 req/s steady (recorded MiniLM numbers, reference prices)."""
    from thrifty.planner.service import plan_model
    from thrifty.planner.types import Slo, Traffic
    from thrifty.settings import get_settings

    planned = plan_model(
        registry,
        get_settings(),
        "minilm",
        Slo(latency_ms_p95=50.0, serverless_ok=False),
        Traffic(rps=5.0),
        recorded=True,
    )
    chosen = planned.decision.to_dict()["chosen"]
    created = now - timedelta(days=days)
    registry.upsert_deployment(
        NAME, provider="local", region="local", plan_id=planned.plan_id, state="running", replicas=1,
        spec={"replicas": 1}, created_at=created, updated_at=created,
    )  # fmt: skip
    registry.add_event(NAME, "deploy", "1 replica(s)", at=created)
    return dict(chosen)


def replay_functions_day(registry: Any, shared_data: Path, now: datetime = NOW) -> int:
    """The first day of the busiest bursty function (active under half the minutes; under 20,000
    requests, so the test writes a small log)."""
    import numpy as np

    from thrifty.policies.trace import load_trace

    trace = load_trace(shared_data / "traces" / "azure_functions_2019_sample1000")
    day = type(trace)(trace.counts[:, :1440], trace.names, source=trace.source)
    totals, active = day.counts.sum(axis=1), (day.counts > 0).mean(axis=1)
    totals = np.where((active < 0.5) & (totals < 20_000), totals, 0)
    return replay_into_log(registry, NAME, day, now, function=int(np.argmax(totals)))


def test_replayed_bursty_trace_gets_cheaper_set_ups_with_evidence(
    thrifty_home: Path, shared_data: Path
) -> None:
    from thrifty import runtime
    from thrifty.settings import get_settings

    registry = runtime.registry()
    chosen = deploy_planned(registry, days=1.0)
    replayed = replay_functions_day(registry, shared_data)
    profile = observed_profile(registry, NAME, NOW, 1.0)
    assert profile.requests == replayed > 0
    advice = read.recommendations(registry, get_settings(), NAME, days=1.0, now=NOW)
    assert advice.recommendations, advice.skipped
    for rec in advice.recommendations:
        assert rec.usd_saved_per_month >= 1.0 and rec.usd_per_month_after < rec.usd_per_month_now
        assert rec.evidence["requests"] == replayed and rec.command
    kinds = {r.kind for r in advice.recommendations}
    planned = [r for r in advice.recommendations if r.flow == "deploy-model/deploy-model"]
    if planned:  # the re-plan: what it changes is named, and the flow gets the observed traffic
        assert planned[0].kind in {"serverless", "vm", "variant", "cloud", "region", "right-size"}
        assert planned[0].parameters["rps"] == pytest.approx(profile.rps_peak, rel=1e-3)
        # now = one replica of the chosen offer all day (the ledger's rate × 730 h)
        assert planned[0].usd_per_month_now == pytest.approx(chosen["usd_per_hour"] * 730, rel=0.01)
    assert kinds <= {"serverless", "vm", "variant", "cloud", "region", "right-size", "hibernation"}


def test_recommend_command_prints_and_refuses_an_unknown_kind(thrifty_home: Path, shared_data: Path) -> None:
    from thrifty import runtime
    from thrifty.cli import app

    registry = runtime.registry()
    now = datetime.now(UTC)  # the command reads the log up to the real clock
    deploy_planned(registry, days=1.0, now=now)
    replay_functions_day(registry, shared_data, now=now)
    runner = CliRunner()
    shown = runner.invoke(app, ["recommend", NAME, "--days", "1"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "saves $" in shown.output and "--apply" in shown.output
    wrong = runner.invoke(app, ["recommend", NAME, "--days", "1", "--apply", "teleport"])
    assert isinstance(wrong.exception, ConfigError) and "teleport" in wrong.exception.message


def test_hibernation_backtest_recommends_a_policy_that_idles_less(
    registry: Any, thrifty_home: Path, shared_data: Path
) -> None:
    """The sweep runs hybrid-histogram on this deployment; replayed on its own log, thrifty-cost-aware
    keeps replicas idle for fewer hours at no more cold starts (p75), priced at the machine's $/h."""
    from thrifty.monitor.recommend import hibernation_advice
    from thrifty.policies.sweep import POLICY_EVENT_KIND

    chosen = deploy_planned(registry, days=1.0)
    registry.add_event(
        NAME, POLICY_EVENT_KIND, "keep warm", details={"policy": "hybrid-histogram", "do": "none"}
    )
    replay_functions_day(registry, shared_data)
    profile = observed_profile(registry, NAME, NOW, 1.0)
    rec = hibernation_advice(registry, registry.get_deployment(NAME), profile, NOW, chosen["usd_per_hour"])
    assert rec is not None and rec.kind == "hibernation"
    assert rec.evidence["current"]["policy"] == "hybrid-histogram"
    best = rec.evidence["best"]
    assert best["cold_pct_p75"] <= rec.evidence["current"]["cold_pct_p75"]
    # the saving is the idle replica-hours the better policy avoids, at the machine's price, over a month
    saved_per_day = rec.evidence["current"]["wasted_usd"] - best["wasted_usd"]
    assert rec.usd_saved_per_month == pytest.approx(saved_per_day * 30) and rec.usd_saved_per_month >= 1.0
    assert rec.parameters == {"policy": best["policy"]} and rec.flow is None  # applied at once, no run
    assert rec.command == f"thrifty recommend {NAME} --apply hibernation"
