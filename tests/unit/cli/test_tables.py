"""Issue 18 item 6: tables a person can read at 80 columns.

Key columns (names, states, prices, policy names) are never cut; empty columns are left out; a
narrower terminal gets fewer columns and a pointer to --json. typer's runner with COLUMNS set is
what rich sees in a real terminal of that width.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.render import Col, fit_columns

runner = CliRunner()


def _at(width: int, *args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= width for line in lines), result.stdout
    drawn = [line for line in lines if line and line[0] in "┏┃┡│└"]
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in drawn), result.stdout  # no table runs off the edge
    return result.stdout


def _cells(output: str, column: int) -> list[str]:
    """The non-empty cells of one column of a rich table (rows drawn with │; a wrapped row's
    continuation lines leave its key columns empty)."""
    cells = [line.split("│")[column].strip() for line in output.splitlines() if line.startswith("│")]
    return [c for c in cells if c]


def test_prices_cheapest_at_80_columns_shows_whole_prices(thrifty_home: Path) -> None:
    out = _at(80, "prices", "show", "--cheapest", "--limit", "8")
    data = json.loads(runner.invoke(app, ["prices", "show", "--cheapest", "--limit", "8", "--json"]).stdout)
    assert "…" not in out
    for row in data["rows"]:
        assert f"{row['usd_per_hour']:.4f}" in out and row["instance_type"] in out
    assert "left out at 80 columns" in out and "--json" in out


def test_status_at_80_columns_shows_whole_states(deployed: dict[str, Any]) -> None:
    out = _at(80, "status")
    assert "…" not in out
    assert "running" in out and "hibernated" in out
    assert "minilm-int8-search-blockwise" in out  # the name is never cut


def test_simulate_at_80_columns_shows_every_policy_name_and_drops_empty_wasted_dollars(
    tmp_path: Path,
) -> None:
    minutes = ",".join(f"minute_{i}" for i in range(1, 61))
    rows = [f"HashFunction,HashApp,HashOwner,{minutes}"]
    rows += [
        f"{n},{n},{n}," + ",".join("1" if i % k == 0 else "0" for i in range(60))
        for n, k in (("a", 7), ("b", 25))
    ]
    (tmp_path / "invocations_per_minute.csv").write_text("\n".join(rows) + "\n")
    out = _at(80, "simulate", "--trace", str(tmp_path), "--policy", "thrifty-cost-aware")
    names = _cells(out, 1)
    assert names == [f"fixed-{m}" for m in (5, 10, 20, 30, 60, 120, 240)] + ["thrifty-cost-aware"]
    assert "wasted $" not in out.split("\n└")[0]  # no prices given: the all-empty column is gone
    assert "--usd-per-gib-hour" in out  # … and the line says how to fill it
    priced = _at(
        200, "simulate", "--trace", str(tmp_path), "--policy", "fixed-5", "--usd-per-gib-hour", "0.6"
    )
    assert "wasted $" in priced


def test_variants_at_80_columns_show_id_name_and_verdict(seeded: dict[str, Any]) -> None:
    out = _at(80, "variants", "minilm")
    assert "…" not in out
    ids, names = _cells(out, 1), _cells(out, 2)
    assert ids == [str(i) for i in seeded["variants"].values()]
    assert names == list(seeded["variants"])
    assert _cells(out, 3) == ["yes", "no", "yes"]
    assert "cos 0.941 NN 0.725" in out  # the fidelity that got int8-static-qdq rejected, on one line
    assert "cosine_mean 0.9410 < 0.99" in _at(160, "variants", "minilm")  # wider: the reason too


def test_plan_at_80_columns_keeps_variant_type_and_price(seeded: dict[str, Any]) -> None:
    out = _at(80, "plan", "minilm", "--p95-ms", "50", "--rps", "200", "--recorded", "--spot-ok")
    data = json.loads(runner.invoke(app, ["plan", "list", "--json"]).stdout)[0]
    assert "…" not in out
    assert f"{data['usd_per_month']:,.2f}" in out and data["variant"] in out
    listed = _at(80, "plan", "list")
    assert "…" not in listed and f"{data['usd_per_month']:,.2f}" in listed


def test_plan_explain_respects_the_width(seeded: dict[str, Any]) -> None:
    made = runner.invoke(app, ["plan", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--json"])
    plan_id = json.loads(made.stdout)["plan_id"]
    narrow = _at(80, "plan", "explain", str(plan_id))
    wide = _at(200, "plan", "explain", str(plan_id))
    assert "CHOSEN" in narrow and "RUNNERS-UP" in narrow
    assert max(len(line) for line in wide.splitlines()) > 80  # there was something to wrap
    assert re.sub(r"\s+", " ", narrow) == re.sub(r"\s+", " ", wide)  # same words, only rewrapped


def test_a_narrow_terminal_gets_fewer_columns_and_a_pointer_to_json(seeded: dict[str, Any]) -> None:
    wide, narrow = _at(160, "variants", "minilm"), _at(50, "variants", "minilm")

    def headers(text: str) -> list[str]:
        first = next(line for line in text.splitlines() if line.startswith("┃"))
        return [h.strip() for h in first.split("┃")[1:-1]]

    assert len(headers(narrow)) < len(headers(wide))
    assert headers(narrow)[:3] == ["id", "variant", "accepted?"]
    assert "left out at 50 columns" in narrow and "--json" in narrow
    assert "left out" not in wide


@pytest.mark.parametrize("width", [40, 80, 120])
def test_fit_columns_keeps_key_columns_and_drops_empty_ones(width: int) -> None:
    columns = [Col("name", key=True), Col("empty"), Col("notes"), Col("price", key=True), Col("more")]
    rows = [["a-long-deployment-name", "", "notes that wrap between words", "12.34", "y" * 20]]
    shown, dropped = fit_columns(columns, rows, width)
    assert 0 in shown and 3 in shown and 1 not in shown  # keys stay, the empty column goes
    assert "empty" not in dropped  # an empty column is not reported as left out
    # keys 22 + 5 wide, notes down to its longest word (6), "more" is one 20-letter word, each
    # column 3 more and 1 for the border: 66 columns fit all of them, 40 only the keys
    assert shown == ([0, 3] if width < 66 else [0, 2, 3, 4])
    assert dropped == (["notes", "more"] if width < 66 else [])
