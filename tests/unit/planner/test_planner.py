"""Planner tests on tiny hand-made tables; each case says why the expected row wins."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from thrifty.catalog.schema import validate
from thrifty.errors import ConfigError, SloUnreachableError
from thrifty.planner.decision import naive_baseline, plan
from thrifty.planner.explain import explain_text
from thrifty.planner.rank import rank
from thrifty.planner.types import Slo, Traffic, VariantPerf, perf_frame

HOURS = 730.0
AS_OF = datetime(2026, 5, 1, tzinfo=UTC)


def offer(
    instance_type: str, vcpus: float, memory_gib: float, usd_per_hour: float, **extra: Any
) -> dict[str, Any]:
    row = {
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": instance_type,
        "vcpus": vcpus,
        "memory_gib": memory_gib,
        "price_model": "on_demand",
        "usd_per_hour": usd_per_hour,
        "observed_at": AS_OF,
        "source": "hand-made test row",
    }
    return row | extra


def lam(instance_type: str = "lambda-2gb", vcpus: float = 2.0, memory_gib: float = 2.0) -> dict[str, Any]:
    return offer(
        instance_type,
        vcpus,
        memory_gib,
        float("nan"),
        price_model="serverless",
        usd_per_gb_second=0.0000166667,
        usd_per_million_requests=0.20,
    )


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    return validate(pd.DataFrame(list(rows)))


def variant(name: str = "int8", **extra: Any) -> VariantPerf:
    fields: dict[str, Any] = {
        "variant_name": name,
        "batch_size": 1,
        "threads": 2,
        "latency_ms_p50": 18.0,
        "latency_ms_p95": 20.0,
        "throughput_rps": 50.0,
        "status": "accepted",
        "fidelity_score": 0.99,
        "peak_memory_mib": 300.0,
    }
    return VariantPerf(**(fields | extra))


def perf(*rows: VariantPerf) -> pd.DataFrame:
    return perf_frame(rows or [variant()])


def chosen(catalog: pd.DataFrame, variants: pd.DataFrame, slo: Slo, traffic: Traffic) -> dict[str, Any]:
    return plan(variants, catalog, slo, traffic, with_baseline=False).chosen


# -- capacity ----------------------------------------------------------------------------------


def test_replicas_follow_the_stated_capacity_model() -> None:
    # 4 vCPUs / 2 threads = 2 copies; 2 x 50 req/s x 0.7 = 70 req/s per machine; 200 req/s → 3 machines
    result = chosen(table(offer("m.xlarge", 4, 16, 0.2)), perf(), Slo(50), Traffic(rps=200))
    assert result["copies_per_machine"] == 2
    assert result["machines"] == 3
    assert result["usd_per_month"] == pytest.approx(3 * 0.2 * HOURS)
    assert result["usd_per_million_requests"] == pytest.approx(3 * 0.2 * HOURS / (200 * 3600 * HOURS) * 1e6)
    assert result["estimated"] is True  # not benchmarked on m.xlarge


@pytest.mark.parametrize(
    ("rows", "slo", "winner", "why"),
    [
        (
            # small: 1 copy x 50 x 0.7 = 35 req/s → 3 machines x $0.05 = $0.15/h; big: 4 copies → 1 x $0.12/h
            [offer("small", 2, 8, 0.05), offer("big", 8, 32, 0.12)],
            Slo(50),
            "big",
            "fewer machines beat a lower hourly price",
        ),
        (
            # tiny is cheapest but 1 GiB - 512 MiB reserve < 2000 MiB peak; the 8 GiB type fits
            [offer("tiny", 2, 1, 0.01), offer("roomy", 8, 32, 0.30)],
            Slo(50),
            "roomy",
            "memory does not fit",
        ),
        (
            # the arm64 type is cheaper, but 45 ms / 0.8 = 56 ms > 50 ms; x86 keeps 45 ms
            [offer("graviton", 8, 32, 0.10, arch="arm64"), offer("intel", 8, 32, 0.16)],
            Slo(50),
            "intel",
            "p95 latency over the SLO",
        ),
    ],
)
def test_expected_offer_wins(rows: list[dict[str, Any]], slo: Slo, winner: str, why: str) -> None:
    variants = perf(variant(latency_ms_p95=45.0, latency_ms_p50=40.0, peak_memory_mib=2000.0))
    decision = plan(variants, table(*rows), slo, Traffic(rps=100), with_baseline=False)
    assert decision.chosen["instance_type"] == winner
    if why != "fewer machines beat a lower hourly price":
        assert why in [entry["reason"] for entry in decision.excluded]


def test_memory_does_not_fit_anywhere_names_the_reason() -> None:
    variants = perf(variant(peak_memory_mib=100_000.0))
    with pytest.raises(SloUnreachableError) as caught:
        plan(variants, table(offer("a", 8, 32, 0.1), offer("b", 16, 64, 0.2)), Slo(50), Traffic(rps=1))
    assert "memory does not fit" in caught.value.message


def test_slo_unreachable_names_the_closest_candidate() -> None:
    # arm64 "slow" estimates 20 / 0.8 = 25 ms; "fast" keeps 20 ms: fast is the closest to a 10 ms SLO
    catalog = table(offer("slow", 4, 16, 0.1, arch="arm64"), offer("fast", 4, 16, 0.3))
    with pytest.raises(SloUnreachableError) as caught:
        plan(perf(), catalog, Slo(10), Traffic(rps=5))
    message = caught.value.message
    assert "closest: int8 on aws fast us-east-1" in message
    assert "est. p95 20.0 ms" in message
    assert caught.value.hint and "p95 latency over the SLO: 2" in caught.value.hint


# -- spot --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slo", "winner_model", "why"),
    [
        (Slo(50), "on_demand", "spot refused by default, even though it is cheaper"),
        (Slo(50, spot_ok=True), "spot", "spot allowed and cheaper even with its risk"),
        (
            Slo(50, spot_ok=True, max_interruption_bucket="<5%"),
            "on_demand",
            "the spot row's >20% bucket is too risky",
        ),
    ],
)
def test_spot_choice(slo: Slo, winner_model: str, why: str) -> None:
    catalog = table(
        offer("m", 4, 16, 0.20),
        offer("m", 4, 16, 0.06, price_model="spot", interruption_bucket=">20%"),
    )
    result = chosen(catalog, perf(), slo, Traffic(rps=20))
    assert result["price_model"] == winner_model, why


def test_spot_risk_prefers_the_calmer_bucket_at_equal_price() -> None:
    # same price; expected interruptions 0.30 vs 0.025 per instance-month → the <5% row costs less
    catalog = table(
        offer("calm", 4, 16, 0.06, price_model="spot", interruption_bucket="<5%"),
        offer("wild", 4, 16, 0.06, price_model="spot", interruption_bucket=">20%"),
    )
    decision = plan(perf(), catalog, Slo(50, spot_ok=True), Traffic(rps=20), with_baseline=False)
    assert decision.chosen["instance_type"] == "calm"
    wild = next(c for c in decision.candidates if c["instance_type"] == "wild")
    assert wild["spot_risk_usd_per_month"] > decision.chosen["spot_risk_usd_per_month"] > 0
    assert wild["why_lost"].startswith("$")


def test_on_demand_floor_option_is_priced() -> None:
    # 200 req/s needs 3 machines; the floor option keeps ceil(3 x 0.5) = 2 of them on-demand
    catalog = table(
        offer("m", 4, 16, 0.20),
        offer("m", 4, 16, 0.06, price_model="spot", interruption_bucket="5-10%"),
    )
    ranking = rank(perf(), catalog, Slo(50, spot_ok=True), Traffic(rps=200))
    floor = ranking.pairs[ranking.pairs["option"] == "spot+on_demand_floor"].iloc[0]
    assert floor["floor_machines"] == 2
    assert floor["usd_per_month"] == pytest.approx(
        (2 * 0.20 + 1 * 0.06) * HOURS + floor["spot_risk_usd_per_month"], rel=1e-9
    )


# -- serverless --------------------------------------------------------------------------------

# dedicated: 1 machine x $0.0416/h x 730 h = $30.368/month (1 machine carries up to 35 req/s)
# serverless: 0.018 s x 2 GiB x $0.0000166667 + $0.2e-6 = $8.0000e-7 per request
# break-even = 30.368 / (8.0e-7 x 2,628,000 s) ≈ 14.4 req/s
BREAK_EVEN_RPS = 30.368 / ((0.018 * 2 * 0.0000166667 + 0.2e-6) * 3600 * HOURS)


@pytest.mark.parametrize(
    ("rps", "winner"),
    [
        (0.5, "serverless"),
        (5.0, "serverless"),
        (14.0, "serverless"),
        (15.0, "on_demand"),
        (30.0, "on_demand"),
    ],
)
def test_serverless_cheaper_at_low_traffic_dedicated_at_high(rps: float, winner: str) -> None:
    catalog = table(offer("c.large", 2, 4, 0.0416), lam())
    decision = plan(perf(), catalog, Slo(50), Traffic(rps=rps), with_baseline=False)
    assert decision.chosen["option"] == winner
    assert decision.break_even is not None
    assert decision.break_even["break_even_rps"] == pytest.approx(BREAK_EVEN_RPS, rel=1e-6)
    assert "break-even ≈ 14.4" in explain_text(decision.to_dict())


# cold starts: at 0.001 req/s a request follows an idle gap > 300 s with probability
# exp(-0.001 x 300) = 74 %, so the p95 is a cold start (1,500 ms + 18 ms) and the 50 ms SLO fails;
# one warm instance removes that gap and costs 1 x 2 GiB x $0.0000166667 x 0.25 x 3600 x 730 s
WARM_FLOOR_USD = 2 * 0.0000166667 * 0.25 * 3600 * HOURS


def test_cold_starts_count_in_the_latency_check_and_a_warm_floor_is_priced() -> None:
    catalog = table(offer("c.large", 2, 4, 0.0416), lam())
    cold = plan(perf(), catalog, Slo(50), Traffic(rps=0.001), with_baseline=False)
    assert cold.chosen["option"] == "on_demand"
    lost = next(c for c in cold.to_dict()["excluded"] if c["closest"]["option"] == "serverless")
    assert lost["reason"] == "p95 latency over the SLO" and lost["closest"]["latency_ms_p95_est"] > 1500
    warm = plan(perf(), catalog, Slo(50, warm_floor=1), Traffic(rps=0.001), with_baseline=False)
    assert warm.chosen["option"] == "serverless" and warm.chosen["warm_floor"] == 1
    assert warm.chosen["warm_floor_usd_per_month"] == pytest.approx(WARM_FLOOR_USD, rel=1e-6)
    assert warm.chosen["cold_start_fraction"] < 0.05


def test_bursty_traffic_starts_cold_once_per_active_period() -> None:
    # active 5 % of the month at 2 req/s: 219 periods of 600 s, one cold start each, in 262,800 requests
    catalog = table(offer("c.large", 2, 4, 0.0416), lam())
    decision = plan(perf(), catalog, Slo(50), Traffic(rps=2, active_fraction=0.05), with_baseline=False)
    assert decision.chosen["option"] == "serverless"
    assert decision.chosen["cold_start_fraction"] == pytest.approx(219 / 262_800, rel=1e-3)


def test_break_even_is_stated_for_every_variant_with_both_kinds() -> None:
    catalog = table(offer("c.large", 2, 4, 0.0416), lam())
    variants = perf(
        variant("int8"), variant("fp32", latency_ms_p50=36.0, latency_ms_p95=40.0, throughput_rps=25.0)
    )
    decision = plan(variants, catalog, Slo(50), Traffic(rps=1), with_baseline=False)
    per_variant = {v["variant"]: v["break_even_rps"] for v in decision.break_even["per_variant"]}
    # fp32 takes twice as long per request: serverless costs more per request, breaks even lower
    assert set(per_variant) == {"int8", "fp32"} and per_variant["fp32"] < per_variant["int8"]
    assert per_variant["int8"] == pytest.approx(BREAK_EVEN_RPS, rel=1e-6)


def test_serverless_needs_batch_one_and_enough_vcpus() -> None:
    catalog = table(lam("lambda-1cpu", vcpus=1.0), lam("lambda-2cpu", vcpus=2.0))
    batched = perf(variant(batch_size=8))
    with pytest.raises(SloUnreachableError, match="serverless runs batch 1 only"):
        plan(batched, catalog, Slo(50), Traffic(rps=1))
    decision = plan(perf(), catalog, Slo(50), Traffic(rps=1), with_baseline=False)
    assert decision.chosen["instance_type"] == "lambda-2cpu"  # 2 threads need 2 vCPUs
    assert "too few vCPUs for the benchmarked threads" in [e["reason"] for e in decision.excluded]


def test_scale_to_zero_bills_only_active_hours() -> None:
    # 10% of the month active: always-on pays 730 h, scale-to-zero pays 73 h
    catalog = table(offer("c.large", 2, 4, 0.10))
    always = chosen(catalog, perf(), Slo(50), Traffic(rps=5, active_fraction=0.1))
    scaled = chosen(catalog, perf(), Slo(50), Traffic(rps=5, active_fraction=0.1, scale_to_zero=True))
    assert always["usd_per_month"] == pytest.approx(0.10 * HOURS)
    assert scaled["usd_per_month"] == pytest.approx(0.10 * HOURS * 0.1)


# -- variants ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slo", "winner", "why"),
    [
        (Slo(50), "int8", "int8 needs 1 machine, fp32 2 (at 100 req/s)"),
        (Slo(50, min_fidelity=0.995), "fp32", "int8's 0.99 fidelity is below 0.995"),
    ],
)
def test_fidelity_filter(slo: Slo, winner: str, why: str) -> None:
    variants = perf(
        variant("int8", throughput_rps=80.0, fidelity_score=0.99),
        variant("fp32", throughput_rps=40.0, latency_ms_p95=35.0, fidelity_score=1.0),
    )
    result = chosen(table(offer("m", 4, 16, 0.2)), variants, slo, Traffic(rps=100))
    assert result["variant"] == winner, why


def test_rejected_variant_is_never_chosen() -> None:
    variants = perf(variant("fast", status="rejected", throughput_rps=500.0), variant("ok"))
    decision = plan(variants, table(offer("m", 4, 16, 0.2)), Slo(50), Traffic(rps=200), with_baseline=False)
    assert decision.chosen["variant"] == "ok"
    assert "variant rejected" in [e["reason"] for e in decision.excluded]


def test_filters_on_provider_and_region() -> None:
    catalog = table(
        offer("cheap", 4, 16, 0.05, provider="gcp", region="us-central1"),
        offer("m", 4, 16, 0.2),
        offer("m", 4, 16, 0.1, region="eu-west-1"),
    )
    assert chosen(catalog, perf(), Slo(50), Traffic(rps=5))["instance_type"] == "cheap"
    result = chosen(catalog, perf(), Slo(50, providers=("aws",), regions=("us-east-1",)), Traffic(rps=5))
    assert (result["provider"], result["region"]) == ("aws", "us-east-1")


def test_bad_inputs_fail_with_a_named_field() -> None:
    with pytest.raises(ConfigError, match="p95 target"):
        Slo(0)
    with pytest.raises(ConfigError, match="unknown provider"):
        Slo(50, providers=("ibm",))
    with pytest.raises(ConfigError, match="impossible benchmark numbers"):
        variant(throughput_rps=0.0)
    with pytest.raises(ConfigError, match="active_fraction"):
        Traffic(rps=1, active_fraction=0)


# -- record, baseline, money -------------------------------------------------------------------

MONEY_KEYS = ("usd_per_hour", "usd_per_month", "usd_per_million_requests", "spot_risk_usd_per_month")


def test_money_is_python_float_never_numpy() -> None:
    catalog = table(
        offer("m5.xlarge", 4, 16, 0.192),
        offer("c", 2, 4, 0.05),
        offer("c", 2, 4, 0.02, price_model="spot", interruption_bucket="<5%"),
        lam(),
    )
    variants = perf(variant("fp32", is_baseline=True, technique="original"), variant())
    decision = plan(variants, catalog, Slo(50, spot_ok=True), Traffic(rps=20))
    rows = [decision.chosen, *decision.candidates, decision.baseline]
    for row in rows:
        assert row is not None
        for key in MONEY_KEYS:
            value = row[key]
            assert value is None or type(value) is float, (key, type(value))
    assert type(decision.break_even["break_even_rps"]) is float  # type: ignore[index]
    json.loads(decision.to_json())  # plain JSON all the way down


def test_naive_baseline_is_fp32_on_m5_xlarge() -> None:
    # fp32 at 2 threads: 4 vCPUs → 2 copies x 30 req/s x 0.7 = 42 req/s ≥ 20 → 1 machine x $0.192 x 730 h
    variants = perf(variant("fp32", throughput_rps=30.0, is_baseline=True, technique="original"), variant())
    base = naive_baseline(variants, table(offer("m5.xlarge", 4, 16, 0.192)), Traffic(rps=20))
    assert (base["variant"], base["instance_type"], base["region"]) == ("fp32", "m5.xlarge", "us-east-1")
    assert base["usd_per_month"] == pytest.approx(140.16)
    assert base["usd_per_million_requests"] == pytest.approx(140.16 / (20 * 3600 * HOURS) * 1e6)
    # not in the catalog: the reference table's m5.xlarge list price is used
    fallback = naive_baseline(variants, table(offer("other", 4, 16, 0.1)), Traffic(rps=20))
    assert fallback["usd_per_hour"] == pytest.approx(0.192)
    assert "reference" in fallback["source"]


def test_decision_record_lists_price_rows_and_assumptions() -> None:
    catalog = table(offer("a", 4, 16, 0.2), offer("b", 4, 16, 0.3))
    decision = plan(perf(), catalog, Slo(50), Traffic(rps=20), with_baseline=False)
    record = decision.to_dict()
    assert [c["instance_type"] for c in record["candidates"]] == ["a", "b"]
    assert record["candidates"][1]["why_lost"] == f"${0.1 * HOURS:,.2f}/month more than the chosen plan"
    assert {r["instance_type"] for r in record["price_rows"]} == {"a", "b"}
    assert all(r["observed_at"].startswith("2026-05-01") and r["source"] for r in record["price_rows"])
    assert any("max_utilization" in k for k in record["assumptions"]) and record["assumptions"]["notes"]
    text = explain_text(record, 7)
    assert "plan 7" in text and "compute = 1 x $0.20000 x 730 h" in text
    assert "req/s per machine = 2 x 50.0 x factor 1 x 0.7 = 70.0" in text
    assert not math.isnan(record["chosen"]["usd_per_month"])
