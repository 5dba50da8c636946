"""The plan prices the always-on front door a VM deployment needs (and none for serverless)."""

from __future__ import annotations

import pytest

from tests.unit.planner.test_planner import HOURS, lam, offer, perf, table
from thrifty.planner.decision import plan
from thrifty.planner.types import Slo, Traffic


def test_a_vm_plan_carries_the_cheapest_small_on_demand_instance_as_its_front_door() -> None:
    catalog = table(
        offer("c7i.xlarge", 4, 8, 0.20),  # serves the model: the winner
        offer("t4g.micro", 2, 1.0, 0.0084),  # the front door: cheapest with ≥ 2 vCPU and ≥ 1 GiB
        offer("t4g.nano", 2, 0.5, 0.0042),  # cheaper, but too little memory
        offer("a1.medium", 1, 2.0, 0.0050),  # cheaper, but one vCPU
        offer("t4g.micro", 2, 1.0, 0.0030, region="eu-west-1"),  # cheaper, but another region
    )
    decision = plan(perf(), catalog, Slo(latency_ms_p95=100.0), Traffic(rps=10.0), with_baseline=False)
    assert decision.front_door is not None
    assert decision.front_door["instance_type"] == "t4g.micro"
    assert decision.front_door["usd_per_month"] == pytest.approx(0.0084 * HOURS)
    chosen = decision.chosen
    assert chosen["usd_per_month_with_front_door"] == pytest.approx(chosen["usd_per_month"] + 0.0084 * HOURS)


def test_a_serverless_plan_needs_no_front_door() -> None:
    catalog = table(lam(), offer("c7i.8xlarge", 32, 64, 1.50))  # lambda wins at 1 req/s
    decision = plan(perf(), catalog, Slo(latency_ms_p95=100.0), Traffic(rps=0.01), with_baseline=False)
    assert decision.chosen["price_model"] == "serverless"
    assert decision.front_door is None and "usd_per_month_with_front_door" not in decision.chosen


def test_plan_explain_shows_the_front_door_line() -> None:
    from thrifty.planner.explain import explain_text

    catalog = table(offer("c7i.xlarge", 4, 8, 0.20), offer("t4g.micro", 2, 1.0, 0.0084))
    decision = plan(perf(), catalog, Slo(latency_ms_p95=100.0), Traffic(rps=10.0), with_baseline=False)
    assert "+ front door t4g.micro on-demand $0.0084/h = $6.13/month" in explain_text(decision.to_dict())
