"""Every dashboard page in a real browser, over a seeded fleet (three deployments, 600 requests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import LEDGER_USD

#: Chromium majors this Playwright (pinned in pyproject) was checked against; Debian's package moves on
#: its own, so a new major fails here first, loudly, instead of as odd timeouts in the page tests
CHECKED_CHROMIUM_MAJORS = {150}


def registry() -> Any:
    from thrifty import runtime

    return runtime.registry()


def test_browser_is_the_checked_chromium(browser: Any) -> None:
    major = int(browser.version.split(".")[0])
    assert major in CHECKED_CHROMIUM_MAJORS, (
        f"chromium-headless-shell {browser.version} was never checked with playwright; run tests/web and "
        "add its major to CHECKED_CHROMIUM_MAJORS, or pin the Debian package"
    )


def test_guard_fails_a_page_that_asks_for_the_outside(page: Any, guard: Any) -> None:
    page.set_content(
        '<img src="http://198.51.100.7/logo.png"><script src="https://cdn.invalid/x.js"></script>'
    )
    page.wait_for_timeout(200)
    assert sorted(guard.outside) == ["http://198.51.100.7/logo.png", "https://cdn.invalid/x.js"]
    guard.outside.clear()  # seen and aborted: this test is the guard's own check


def test_deployments_list(page: Any, web_home: Path) -> None:
    from thrifty import read

    expected = read.deployments_page(registry())
    page.goto("/")
    rows = page.locator("#deployments tbody tr")
    assert rows.count() == expected.total >= 3
    first = expected.rows[0]
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[0] == first.name and cells[1] == first.state
    assert cells[4] == f"${first.usd_per_month:,.2f}"
    assert cells[7] == str(first.requests) and first.requests > 0
    rows.first.locator("a").click()
    page.wait_for_url(f"**/deployments/{first.name}")


def test_deployment_detail_charts_cost_events_and_a_dead_endpoint(page: Any, web_home: Path) -> None:
    from thrifty import read

    view = read.deployment(registry(), "fleet-0002")
    page.goto("/deployments/fleet-0002")
    assert page.locator("#charts svg").count() == 4
    assert page.locator("#charts svg polyline").count() == 2  # latency mean and max; bars for the rest
    cost = page.locator("#cost").inner_text()
    assert f"${view.usd_per_month:,.2f}/month" in cost
    spend = read.costs(registry(), "fleet-0002").deployments[0]
    assert spend.total_usd > 0 and "nothing measured" not in cost  # its replica ran this month
    assert page.locator("#actual").inner_text() == f"${spend.total_usd:,.2f}"
    assert page.locator("#transfer").inner_text() == f"transfer ${spend.transfer_usd:,.2f}"
    assert f"forecast to month end ${spend.forecast_month_usd:,.2f}" in cost
    assert "live" in page.locator("#events").inner_text()
    assert page.locator("#replicas tbody tr").count() == 1
    # the seeded endpoint has nothing behind it: the playground shows why, never a traceback
    page.click("#playground button")
    panel = page.locator("#answer [role=alert]")
    panel.wait_for()
    assert "did not answer" in panel.inner_text() and "Traceback" not in page.content()


def test_unknown_deployment_is_an_error_panel(page: Any, web_home: Path) -> None:
    response = page.goto("/deployments/no-such-thing")
    assert response.status == 404
    assert "no deployment named 'no-such-thing'" in page.locator("[role=alert]").inner_text()


def test_models_and_variants(page: Any, web_home: Path) -> None:
    page.goto("/models")
    page.click("#models a:text('fleet-model')")
    rows = page.locator("#variants tbody tr")
    assert rows.count() == 2
    texts = rows.all_inner_texts()
    assert "int8" in texts[1] and "cosine_mean 0.9950" in texts[1] and "accepted" in texts[1]


def test_plans_list_and_explanation(page: Any, web_home: Path) -> None:
    from thrifty import read

    newest = read.plans(registry(), limit=1)[0]
    page.goto("/plans")
    assert page.locator("#plans tbody tr").count() == len(read.plans(registry(), limit=50))
    page.click(f"#plans a:text-is('{newest.id}')")
    text = page.locator("#explanation").inner_text()
    assert "CHOSEN" in text and "BASELINE" in text and f"plan {newest.id}" in text


def test_costs_by_cloud_and_by_deployment(page: Any, web_home: Path) -> None:
    from thrifty import read

    costs = read.costs_page(registry())
    page.goto("/costs")
    clouds = page.locator("#by-cloud tbody tr")
    assert clouds.count() == len(costs.by_cloud)
    assert sum(int(t.split("\t")[1]) for t in clouds.all_inner_texts()) == costs.total
    rows = page.locator("#by-deployment tbody tr").all_inner_texts()
    assert len(rows) == costs.total
    first = costs.rows[0]
    assert first.saving_fraction is not None
    assert f"{100 * first.saving_fraction:.0f}%" in rows[0]
    # actual month to date from the seeded ledger hour, next to the plan and baseline pro rata
    row = next(r for r in costs.rows if r.deployment == "fleet-0001")
    assert row.actual_usd_month_to_date == pytest.approx(sum(LEDGER_USD.values()))
    shown = page.locator("#by-deployment tr:has(a:text-is('fleet-0001')) td").all_inner_texts()
    assert shown[2:5] == [f"${v:,.2f}" for v in (row.actual_usd_month_to_date, row.plan_usd_to_date,
                                                  row.baseline_usd_to_date)]  # fmt: skip
    cloud = next(c for c in costs.by_cloud if c.cloud == row.cloud)
    assert cloud.actual_usd_month_to_date == pytest.approx(sum(LEDGER_USD.values()))
    assert "through" in page.locator("#ledger").inner_text()


def test_recommendations_list_the_cheaper_plan_events(page: Any, web_home: Path) -> None:
    from thrifty import read

    found = read.recent_events(registry(), read.RECOMMENDATION_KINDS)
    page.goto("/recommendations")
    rows = page.locator("#events tbody tr")
    assert rows.count() == len(found) >= 1
    assert any("$12.00" in t and "fleet-0001" in t for t in rows.all_inner_texts())


def test_recommendations_from_observed_traffic_with_one_click_apply(
    page: Any, web_home: Path, launcher: Any, shared_data: Path
) -> None:
    """minilm-prod's replayed bursty day: the page lists what `thrifty recommend` says, and Apply
    starts the recommendation's deploy-model run with its parameters (held: the launcher records it)."""
    from thrifty import read
    from thrifty.settings import get_settings

    page.goto("/recommendations")
    page.fill("#recommend input[name=deployment]", "minilm-prod")
    page.fill("#recommend input[name=days]", "1")
    page.click("#recommend button")
    rows = page.locator("#advice tr.recommendation")
    rows.first.wait_for(timeout=60_000)
    advice = read.recommendations(registry(), get_settings(), "minilm-prod", days=1.0)
    assert rows.count() == len(advice.recommendations) >= 1
    rec = next(r for r in advice.recommendations if r.flow == "deploy-model/deploy-model")
    row = page.locator(f"#advice tr[data-kind='{rec.kind}']")
    assert f"${rec.usd_saved_per_month:,.2f}" == row.locator(".saved").inner_text()
    assert "redeploys minilm-prod" in row.locator(".what").inner_text()  # says what apply does
    assert launcher.hold  # the run is recorded, not run
    before = set(launcher.runs)
    row.locator("form.apply button").click()
    page.wait_for_url(re.compile(r"/runs/"), timeout=60_000)
    (started,) = set(launcher.runs) - before
    assert launcher.runs[started]["state"] == "SCHEDULED"
    started_with = launcher.runs[started]["parameters"]
    # recomputed a moment later: the observed rate's window has moved by the seconds in between
    assert started_with.keys() == rec.parameters.keys() and started_with["model"] == rec.parameters["model"]
    assert started_with["rps"] == pytest.approx(rec.parameters["rps"], rel=0.05)


def test_a_forged_apply_starts_nothing(page: Any, web_home: Path, launcher: Any) -> None:
    page.goto("/recommendations")
    before = len(launcher.runs)
    answer = page.request.post("/recommendations/apply", form={"csrf_token": "x", "deployment": "fleet-0001",
                                                               "kind": "serverless"})  # fmt: skip
    assert answer.status == 400 and "CSRF token does not match" in answer.text()
    assert len(launcher.runs) == before


def test_a_hibernation_policy_applies_and_undoes_from_the_page(
    page: Any, web_home: Path, shared_data: Path
) -> None:
    """minilm-prod's sweep last ran hybrid-histogram: Apply stores the recommended policy for it at
    once (no run), the Applied list shows it with an Undo button, and Undo restores the one before."""
    from thrifty.policies.chosen import chosen_policy
    from thrifty.policies.sweep import POLICY_EVENT_KIND

    registry().add_event("minilm-prod", POLICY_EVENT_KIND, "keep warm",
                         details={"policy": "hybrid-histogram", "do": "none"})  # fmt: skip
    page.goto("/recommendations?deployment=minilm-prod&days=1")
    row = page.locator("#advice tr[data-kind='hibernation']")
    row.wait_for(timeout=60_000)
    assert "next sweep uses it" in row.locator(".what").inner_text()
    row.locator("form.apply button").click()
    page.wait_for_url(re.compile(r"applied=\d+"), timeout=60_000)
    chosen = chosen_policy(registry(), "minilm-prod")
    assert chosen is not None and chosen != "hybrid-histogram"
    applied = page.locator("#applied-list tr.applied").first
    assert applied.get_attribute("data-kind") == "hibernation"
    assert "policy of the sweep's block" in applied.locator(".before").inner_text()
    applied.locator("form.undo button").click()
    page.wait_for_url(re.compile(r"undone=\d+"), timeout=60_000)
    assert "undone" in page.locator("#applied-list tr.applied").first.inner_text()
    assert chosen_policy(registry(), "minilm-prod") is None
    assert page.locator("#applied-list form.undo").count() == 0


def test_a_forged_undo_changes_nothing(page: Any, web_home: Path) -> None:
    page.goto("/recommendations")
    answer = page.request.post("/recommendations/undo", form={"csrf_token": "x", "deployment": "fleet-0001",
                                                              "applied_id": "1"})  # fmt: skip
    assert answer.status == 400 and "CSRF token does not match" in answer.text()


def test_alerts_list_anomalies_and_interruptions(page: Any, web_home: Path) -> None:
    from thrifty import read

    anomalies = read.alerts(registry())
    page.goto("/alerts")
    rows = page.locator("#anomalies tbody tr")
    assert rows.count() == len(anomalies) >= 1
    assert "roll back to the previous revision" in rows.first.inner_text()
    assert anomalies[0].deployment in rows.first.inner_text()
    found = read.recent_events(registry(), [k for k in read.ALERT_KINDS if k != "anomaly"])
    if found:
        assert page.locator("#events tbody tr").count() == len(found)
    else:
        assert "spot-rebalance flow" in page.locator(".empty").inner_text()


def test_deploy_refuses_a_forged_form(page: Any, web_home: Path, launcher: Any) -> None:
    before = len(launcher.runs)
    page.goto("/deploy")
    page.fill("input[name=model]", "fleet-model")
    page.eval_on_selector("input[name=csrf_token]", "e => e.value = 'forged'")
    page.click("#deploy button")
    assert "CSRF token does not match" in page.locator("[role=alert]").inner_text()
    assert len(launcher.runs) == before  # nothing started


@pytest.mark.slow
def test_one_click_deploy_then_the_playground_answers(
    page: Any, web_home: Path, tmp_path: Path, prefect_harness: str, running_launcher: Any
) -> None:
    import numpy as np

    from tests.flows.test_deploy_model import CLASSES, IN_FEATURES, build_classifier, original_logits

    model = build_classifier(tmp_path / "tiny.onnx")
    page.goto("/deploy")
    page.fill("input[name=model]", str(model))
    page.fill("input[name=name]", "tiny-web")
    page.fill("input[name=p95_ms]", "1000")
    page.fill("input[name=rps]", "5")
    page.select_option("select[name=target]", "local")
    page.click("#deploy button")
    page.wait_for_url(re.compile(r"/runs/"))
    page.locator("#state:text-matches('COMPLETED|FAILED|CRASHED')").wait_for(timeout=240_000)
    assert page.locator("#state").inner_text() == "COMPLETED", page.locator("#run-state").inner_text()
    page.click("#deployment-link")
    page.click("#playground button")  # the prefilled body: zeros shaped like the model's input
    answer = page.locator("#playground-answer")
    answer.wait_for(timeout=60_000)
    assert answer.locator(".status").inner_text() == "200"
    import json

    output = json.loads(answer.locator("pre").inner_text())["outputs"][0]
    assert output["shape"] == [1, CLASSES]
    expected = original_logits(model, np.zeros((1, IN_FEATURES), dtype=np.float32))
    np.testing.assert_allclose(np.asarray(output["data"]).reshape(1, CLASSES), expected, rtol=1e-2, atol=1e-2)
