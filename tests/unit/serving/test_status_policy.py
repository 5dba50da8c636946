"""`thrifty status` shows each deployment's hibernation-policy state (issue 6: warm until, next pre-warm)."""

from __future__ import annotations

from pathlib import Path

from thrifty import runtime
from thrifty.serving.status import local_status
from thrifty.settings import get_settings


def test_status_reports_the_latest_policy_decision(thrifty_home: Path) -> None:
    registry = runtime.registry()
    registry.upsert_deployment("minilm", provider="local", state="hibernated", replicas=0)
    before = local_status(get_settings(), registry)["deployments"][0]
    assert before["policy"] is None and before["warm_until"] is None
    registry.add_event(
        "minilm",
        "policy-decision",
        "idle for 40 min; next request expected in ~2 h",
        details={"do": "hibernate", "action": "hibernate", "policy": "thrifty-cost-aware",
                 "warm_until": None, "next_prewarm_at": "2026-11-26T17:55:00+00:00"},
    )  # fmt: skip
    row = local_status(get_settings(), registry)["deployments"][0]
    assert (row["policy"], row["policy_action"]) == ("thrifty-cost-aware", "hibernate")
    assert row["next_prewarm_at"] == "2026-11-26T17:55:00+00:00"
