"""`thrifty plan NAME|explain|list` through the real CLI app (recorded MiniLM numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.errors import NotFoundError, SloUnreachableError

runner = CliRunner()


def test_plan_explain_and_list(thrifty_home: Path) -> None:
    made = runner.invoke(app, ["plan", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--json"])
    assert made.exit_code == 0, made.output
    record = json.loads(made.stdout)
    plan_id = record["plan_id"]
    chosen, baseline = record["chosen"], record["baseline"]
    assert chosen["latency_ms_p95_est"] <= 50
    assert baseline["instance_type"] == "m5.xlarge" and baseline["usd_per_month"] > chosen["usd_per_month"]
    explained = runner.invoke(app, ["plan", "explain", str(plan_id)], env={"COLUMNS": "200"})
    assert explained.exit_code == 0, explained.output
    text = explained.output
    assert f"plan {plan_id} for minilm" in text and "CHOSEN" in text and "BASELINE" in text
    assert f"= ${chosen['usd_per_month']:,.2f}/month" in text  # the arithmetic ends in the stored number
    listed = runner.invoke(app, ["plan", "list", "--json"])
    assert [row["id"] for row in json.loads(listed.stdout)] == [plan_id]


def test_the_cli_plans_with_the_flows_defaults_and_says_which(thrifty_home: Path) -> None:
    """`thrifty plan` and deploy-model once disagreed (on-demand vs spot): one default, stated."""
    from flows.deploy_model import DeployModelParams

    defaults = DeployModelParams(model="minilm")
    made = runner.invoke(app, ["plan", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--json"])
    slo = json.loads(made.stdout)["slo"]
    assert (
        (slo["spot_ok"], slo["serverless_ok"]) == (defaults.spot_ok, defaults.serverless_ok) == (True, True)
    )
    shown = runner.invoke(
        app, ["plan", "explain", str(json.loads(made.stdout)["plan_id"])], env={"COLUMNS": "200"}
    )
    assert "spot ok" in shown.output and "serverless ok" in shown.output
    on_demand = runner.invoke(
        app, ["plan", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--no-spot", "--json"]
    )
    assert json.loads(on_demand.stdout)["chosen"]["price_model"] == "on_demand"


def test_plan_with_spot_and_provider_filter(thrifty_home: Path) -> None:
    args = ["plan", "make", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--providers", "aws"]
    made = runner.invoke(app, [*args, "--spot-ok", "--json"])
    assert made.exit_code == 0, made.output
    chosen = json.loads(made.stdout)["chosen"]
    assert chosen["provider"] == "aws" and chosen["price_model"] == "spot"
    assert chosen["derived"] is True  # reference AWS spot rows are derived from Spot Advisor savings


def test_plan_errors_are_clear(thrifty_home: Path) -> None:
    unreachable = runner.invoke(app, ["plan", "minilm", "--p95-ms", "5", "--rps", "20", "--recorded"])
    assert isinstance(unreachable.exception, SloUnreachableError)
    assert "closest:" in unreachable.exception.message
    missing = runner.invoke(app, ["plan", "nope", "--p95-ms", "50", "--rps", "20"])
    assert isinstance(missing.exception, NotFoundError)
    with pytest.raises(NotFoundError):
        raise runner.invoke(app, ["plan", "explain", "99"]).exception  # type: ignore[misc]
