"""``make server``'s anomaly automation, registered against a real Prefect API (the test harness):
created with the webhook block and the event filter, updated in place on a second start, disabled
when the webhook URL is gone."""

from __future__ import annotations

from deployments.server import ANOMALY_AUTOMATION, ANOMALY_WEBHOOK_BLOCK, register_automations


def test_anomaly_automation_routes_anomaly_events_to_the_webhook() -> None:
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook

    said = register_automations("http://127.0.0.1:9/alerts")
    assert ANOMALY_WEBHOOK_BLOCK in said
    first = Automation.read(name=ANOMALY_AUTOMATION)
    assert first.enabled
    trigger = first.trigger
    assert set(trigger.expect) == {"thrifty.anomaly.*"}  # type: ignore[attr-defined]
    action = first.actions[0]
    assert action.type == "call-webhook"
    block = Webhook.load(ANOMALY_WEBHOOK_BLOCK)
    assert action.block_document_id == block._block_document_id  # type: ignore[attr-defined]
    assert block.url.get_secret_value() == "http://127.0.0.1:9/alerts"

    register_automations("http://127.0.0.1:9/other")  # a second start updates in place
    again = Automation.read(name=ANOMALY_AUTOMATION)
    assert again.id == first.id
    assert Webhook.load(ANOMALY_WEBHOOK_BLOCK).url.get_secret_value().endswith("/other")

    assert "recorded only" in register_automations(None)
    assert not Automation.read(name=ANOMALY_AUTOMATION).enabled
