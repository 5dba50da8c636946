"""Trace files people have: the Azure Functions 2019 trace as published, arrivals files, request logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.errors import ConfigError, NotFoundError
from thrifty.policies.trace import load_trace
from thrifty.policies.trace_files import load_request_log


def published_day(path: Path, rows: dict[str, tuple[str, list[int]]]) -> Path:
    """The published layout: HashOwner,HashApp,HashFunction,Trigger,1,2,…"""
    width = len(next(iter(rows.values()))[1])
    lines = ["HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, width + 1))]
    lines += [
        f"o,a,{name},{trigger}," + ",".join(map(str, counts)) for name, (trigger, counts) in rows.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_published_layout_with_trigger_column(tmp_path: Path) -> None:
    day = published_day(
        tmp_path / "invocations_per_function_md.anon.d01.csv",
        {"f1": ("http", [0, 2, 0, 5]), "f2": ("timer", [1, 0, 1, 0]), "f3": ("http", [0, 0, 0, 9])},
    )
    trace = load_trace(day)
    assert trace.counts.tolist() == [[0, 2, 0, 5], [1, 0, 1, 0], [0, 0, 0, 9]]
    assert trace.names == ("f1", "f2", "f3") and trace.triggers == ("http", "timer", "http")
    http = trace.with_trigger("HTTP")
    assert http.names == ("f1", "f3") and int(http.counts.sum()) == 16
    with pytest.raises(ConfigError, match="no 'queue' functions") as info:
        trace.with_trigger("queue")
    assert "http, timer" in (info.value.hint or "")


def test_published_days_in_a_folder_sit_side_by_side(tmp_path: Path) -> None:
    published_day(
        tmp_path / "invocations_per_function_md.anon.d01.csv",
        {"f1": ("http", [1, 1]), "f2": ("timer", [3, 0])},
    )
    published_day(
        tmp_path / "invocations_per_function_md.anon.d02.csv",
        {"f1": ("http", [0, 4]), "f9": ("queue", [2, 2])},
    )
    trace = load_trace(tmp_path)
    # f2 is absent on day 2 and f9 on day 1: those minutes count 0, not a refusal
    assert trace.names == ("f1", "f2", "f9") and trace.minutes == 4
    assert trace.counts.tolist() == [[1, 1, 0, 4], [3, 0, 0, 0], [0, 0, 2, 2]]
    assert trace.triggers == ("http", "timer", "queue")


def test_minute_n_file_given_directly(tmp_path: Path) -> None:
    file = tmp_path / "sample.csv"
    file.write_text("HashFunction,minute_2,minute_1,minute_3\nx,5,4,6\n")
    # columns are put in minute order, whatever order the file has them in
    assert load_trace(file).counts.tolist() == [[4, 5, 6]]


@pytest.mark.parametrize(
    ("text", "suffix", "time_unit", "expected"),
    [
        # relative seconds: minutes 0, 0, 1, 3
        ("ts\n0.5\n59.9\n60\n200\n", ".csv", "auto", {"x": [2, 1, 0, 1]}),
        # epoch milliseconds (≥ 1e11) are recognised without being told
        ("timestamp\n1700000000000\n1700000030000\n1700000090000\n", ".csv", "auto", {"x": [2, 1]}),
        # a column named *_ms says its unit, even for small relative values
        ("arrival_ms\n0\n61000\n62000\n", ".csv", "auto", {"x": [1, 2]}),
        # relative milliseconds need --time-unit ms (read as seconds they would span 17 hours)
        ("time\n0\n61000\n62000\n", ".csv", "ms", {"x": [1, 2]}),
        # date-time text like the Azure LLM 2023 trace (7 fractional digits, no zone: UTC)
        (
            "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03.9799600,4\n2023-11-16 18:18:00.0319600,3\n",
            ".csv",
            "auto",
            {"x": [1, 1]},
        ),
        # a model column makes one function per model
        ("ts,model\n0,a\n10,b\n70,a\n", ".csv", "auto", {"a": [1, 1], "b": [1, 0]}),
        # JSON lines: objects, blank lines skipped, other fields ignored
        ('{"ts": 1}\n\n{"ts": 5}\n{"ts": 130, "extra": true}\n', ".jsonl", "auto", {"x": [2, 0, 1]}),
        # JSON lines of bare numbers
        ("1\n5\n130\n", ".jsonl", "auto", {"x": [2, 0, 1]}),
    ],
)
def test_arrivals_files_binned_per_minute(
    tmp_path: Path, text: str, suffix: str, time_unit: str, expected: dict[str, list[int]]
) -> None:
    file = tmp_path / f"x{suffix}"
    file.write_text(text)
    trace = load_trace(file, time_unit)
    assert dict(zip(trace.names, trace.counts.tolist(), strict=True)) == expected


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("empty.csv", "", "not a readable CSV"),
        ("header.csv", "ts,model\n", "no rows"),
        ("nocolumn.csv", "a,b\n1,2\n", "neither minute columns nor a timestamp"),
        ("text.csv", "HashFunction,1,2\nf,3,lots\n", "line 2, column '2' holds 'lots'"),
        ("negative.csv", "HashFunction,1,2\nf,3,-1\n", "holds '-1'"),
        ("fraction.csv", "HashFunction,minute_1,minute_2\nf,3,1.5\n", "holds '1.5'"),
        ("gap.csv", "HashFunction,minute_1,minute_3\nf,3,1\n", "skip \\[2\\]"),
        ("missing.csv", "ts,model\n1,a\n,b\n", "line 3 has no 'ts'"),
        ("mixed.csv", "ts\n1\nnoon\n", "mixes numbers and text"),
        ("notatime.csv", "ts\nnoon\nlater\n", "not a time"),
        ("bad.jsonl", '{"ts": 1}\n{ts: 2}\n', "line 2 is not JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1 is a list"),
        ("gapjson.jsonl", '{"ts": 1}\n{"model": "a"}\n', "record 2 has no 'ts'"),
        ("nothing.jsonl", "\n\n", "holds no JSON lines"),
    ],
)
def test_garbage_is_refused_naming_the_file(tmp_path: Path, name: str, text: str, match: str) -> None:
    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_trace(file)
    assert name in info.value.message and info.value.hint


def test_cli_reads_the_published_layout(tmp_path: Path) -> None:
    counts = [[1 if i % every == 0 else 0 for i in range(120)] for every in (3, 1, 40)]
    rows = {
        f"f{i}": (trigger, c)
        for i, (trigger, c) in enumerate(zip(("http", "timer", "http"), counts, strict=True))
    }
    day = published_day(tmp_path / "d01.csv", rows)
    args = ["simulate", "--trace", str(day), "--trigger", "http", "--policy", "fixed-10", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["functions"], data["minutes"]) == (2, 120)
    assert [p["policy"] for p in data["policies"]][-1] == "fixed-10"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--trace", "{garbage}"], "garbage.csv"),  # the file is named, and the fix given
        ([], "either --trace or --deployment"),
        (["--trace", "{garbage}", "--deployment", "x"], "either --trace or --deployment"),
        (["--deployment", "nobody"], "no deployment named 'nobody'"),
    ],
)
def test_cli_refusals_have_no_traceback(
    thrifty_home: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xffnot,a\ntrace")
    argv = [a.replace("{garbage}", str(garbage)) for a in args]
    env = {**os.environ, "COLUMNS": "250"}
    result = subprocess.run(
        [sys.executable, "-m", "thrifty", "simulate", *argv], capture_output=True, text=True, env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stderr and "fix:" in result.stderr
    assert "Traceback" not in result.stderr


def log_rows(name: str, now: datetime, minutes_ago: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "model_name": name,
            "at": now - timedelta(minutes=m),
            "latency_ms": 5.0,
            "cold": False,
            "status_code": 200,
        }
        for m in minutes_ago
    ]


def test_request_log_of_deployments(registry: Any) -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    registry.upsert_deployment("a", provider="local")
    registry.upsert_deployment("b", provider="local")
    registry.log_requests(log_rows("a", now, [0, 0, 2, 3 * 1440]))  # the last is older than 1 day
    registry.log_requests(log_rows("b", now, [1]))
    trace = load_request_log(registry, ["a", "b"], now, days=1)
    assert trace.names == ("a", "b") and trace.minutes == 1440
    assert trace.counts[:, -3:].tolist() == [[1, 0, 2], [0, 1, 0]]
    assert int(trace.counts.sum()) == 4
    with pytest.raises(NotFoundError, match="'a' logged no requests"):
        load_request_log(registry, ["a"], now - timedelta(days=10), days=1)
    with pytest.raises(NotFoundError, match="no deployment named 'c'"):
        load_request_log(registry, ["c"], now, days=1)


def test_cli_replays_a_deployment_request_log(thrifty_home: Path) -> None:
    from thrifty import runtime

    registry = runtime.registry()
    now = datetime.now(UTC)
    registry.upsert_deployment("minilm", provider="local")
    registry.log_requests(log_rows("minilm", now, list(range(0, 600, 7))))
    result = CliRunner().invoke(
        app, ["simulate", "--deployment", "minilm", "--days", "0.5", "--policy", "fixed-10", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["deployments"] == ["minilm"] and data["minutes"] == 720
    assert data["policies"][-1]["functions"] == 1


def test_shared_llm_file_read_as_an_arrivals_file(shared_data: Path) -> None:
    file = shared_data / "traces" / "azure_llm_inference_2023" / "AzureLLMInferenceTrace_code.csv"
    if not file.is_file():
        pytest.skip(
            f"needs {file.name} of the Azure LLM 2023 trace (shared data); not found in {file.parent}"
        )
    single = load_trace(file)
    folder = load_trace(file.parent)
    assert single.names == ("AzureLLMInferenceTrace_code",)
    assert int(single.counts.sum()) == 8_819  # every request of the README's count
    # the folder reader starts minute 0 at the first request, the file reader at its whole minute
    assert int(folder.counts[0].sum()) == 8_819 and abs(single.minutes - folder.minutes) <= 1
    assert np.abs(np.sort(single.counts[0])[-5:] - np.sort(folder.counts[0])[-5:]).max() < 200
