"""The price-monitor flow: a source that fails is reported while another refreshes; the live
deployment is re-planned at the fresh prices and a cheaper offer becomes a thrifty.plan.cheaper
event and a deployment event. Prices come from a small snapshot folder and a live source pointed
at a closed loopback port (nothing leaves the machine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flows.price_monitor as price_monitor_module
from blocks.price_monitor import PriceMonitorSettings
from flows.price_monitor import PriceMonitorParams, price_monitor
from tasks.prices import fetch_prices
from tests.conftest import free_port
from tests.unit.api.test_webhooks import SECRET, Receiver, wait_for_events
from thrifty import webhooks

pytestmark = pytest.mark.slow  # the live source's own HTTP retries take ~7 s to give up

AZURE_CSV = (
    "instance_type,vcpus,memory_gib,accelerator_name,accelerator_count,accelerator_memory_mib,region,zone,"
    "ondemand_usd_per_hour,spot_usd_per_hour\n"
    "Standard_D2s_v5,2,8,,,,eastus,,0.096,0.02\n"
    "Standard_D4s_v5,4,16,,,,eastus,,0.192,0.04\n"
)


@pytest.fixture
def home(thrifty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from thrifty.settings import get_settings

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the live Azure source fails fast
    monkeypatch.setenv("THRIFTY_PRICE_API_URLS", json.dumps({"azure_prices": closed}))
    monkeypatch.setenv("THRIFTY_PRICE_FETCH_TIMEOUT_S", "2")
    get_settings.cache_clear()
    # the flow's retries (2 + 5 + 15 s) are for real networks; here one try says enough
    monkeypatch.setattr(price_monitor_module, "fetch_prices", fetch_prices.with_options(retries=0))
    yield thrifty_home
    get_settings.cache_clear()


def deploy_on_an_expensive_offer(registry: Any) -> float:
    """A deployment whose plan chose a dear candidate (planned at the reference prices)."""
    from thrifty.planner.service import plan_model
    from thrifty.planner.types import Slo, Traffic
    from thrifty.settings import get_settings

    first = plan_model(
        registry, get_settings(), "minilm", Slo(latency_ms_p95=50.0), Traffic(rps=5.0), recorded=True
    )
    record = first.decision.to_dict()
    dear = max(record["candidates"], key=lambda c: c["usd_per_month"])
    stored = registry.add_plan(
        slo=record["slo"], chosen=dear, record=record, usd_per_month=dear["usd_per_month"]
    )
    registry.upsert_deployment(
        "minilm-prod", provider=dear["provider"], state="running", replicas=1, plan_id=stored.id
    )
    return float(dear["usd_per_month"])


def test_one_failing_source_never_stops_the_others_and_a_cheaper_offer_is_announced(
    home: Path, tmp_path: Path
) -> None:
    from thrifty import runtime

    registry = runtime.registry()
    receiver = Receiver()
    webhooks.subscribe(registry, receiver.url, ["plan.cheaper"], SECRET)
    dear_usd = deploy_on_an_expensive_offer(registry)
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "azure.csv").write_text(AZURE_CSV)
    PriceMonitorSettings(providers=["azure"], snapshot=str(snapshot), threshold_fraction=0.10).save(
        "monitor-test", overwrite=True
    )

    result = price_monitor(PriceMonitorParams(settings_block="monitor-test"))

    assert "azure" in result["prices"]["failed"]  # the live source failed…
    assert result["prices"]["written"][f"snapshot:{snapshot}"] == 4  # …and the snapshot still landed
    replan = result["deployments"]["minilm-prod"]
    cheaper = replan["cheaper"]
    assert cheaper is not None and cheaper["current_usd_per_month"] == pytest.approx(dear_usd)
    assert cheaper["saving_usd_per_month"] > 0.10 * dear_usd
    assert replan["event_id"] is not None  # emit_event returned the event it sent
    event = registry.list_events("minilm-prod")[-1]
    assert event.kind == "cheaper-plan" and event.usd_saved_per_month == pytest.approx(
        cheaper["saving_usd_per_month"]
    )
    (hook,) = wait_for_events(receiver, 1)  # and reached the webhook subscribers as plan.cheaper
    assert hook["type"] == "plan.cheaper" and hook["data"]["deployment"] == "minilm-prod"
    assert hook["data"]["details"]["saving_usd_per_month"] == pytest.approx(cheaper["saving_usd_per_month"])
    receiver.close()


def test_a_failed_refresh_keeps_the_good_prices(home: Path, tmp_path: Path) -> None:
    from thrifty import runtime

    registry = runtime.registry()
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "azure.csv").write_text(AZURE_CSV)
    PriceMonitorSettings(providers=[], snapshot=str(snapshot)).save("monitor-good", overwrite=True)
    price_monitor(PriceMonitorParams(settings_block="monitor-good"))
    good = azure_prices(registry)
    assert good[("Standard_D2s_v5", "on_demand")] == pytest.approx(0.096)

    PriceMonitorSettings(providers=["azure"]).save("monitor-bad", overwrite=True)
    result = price_monitor(PriceMonitorParams(settings_block="monitor-bad"))
    assert set(result["prices"]["failed"]) == {"azure"} and result["deployments"] == {}
    assert azure_prices(registry) == good  # the good Azure prices are still the newest: nothing erased


def azure_prices(registry: Any) -> dict[tuple[str, str], float | None]:
    return {
        (q.instance_type, q.price_model): q.usd_per_hour
        for q in registry.latest_price_quotes()
        if q.provider == "azure"
    }
