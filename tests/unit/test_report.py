"""The report a person reads: summary markdown, offers rows, the standalone HTML, `thrifty report`.

The registry holds a small hand-made run: a model version with two variants (fp32 accepted, int8
rejected for fidelity), their benchmark rows, a plan whose decision record ranks three offers
against the naive baseline, and the deployment made from it.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thrifty import report
from thrifty.cli import app
from thrifty.errors import NotFoundError

runner = CliRunner()


def _offer(
    rank: int, variant: str, provider: str, instance: str, usd_per_month: float, why: str | None
) -> dict[str, Any]:
    return {
        "rank": rank,
        "variant": variant,
        "provider": provider,
        "instance_type": instance,
        "region": "us-east-1" if provider == "aws" else "eastus",
        "price_model": "spot" if rank == 1 else "on_demand",
        "option": "spot" if rank == 1 else "on_demand",
        "usd_per_month": usd_per_month,
        "usd_per_million_requests": usd_per_month / 13.14,  # 5 req/s for a month ≈ 13.14 M requests
        "machines": 1.0,
        "latency_ms_p95_est": 12.5 + rank,
        "estimated": True,
        "why_lost": why,
    }


CANDIDATES = [
    _offer(1, "onnx-fp32", "aws", "c7g.large", 35.04, None),
    _offer(2, "onnx-fp32", "azure", "Standard_D2s_v5", 70.08, "costs 2.0× the chosen"),
    _offer(3, "onnx-fp32", "aws", "m5.xlarge", 140.16, "costs 4.0× the chosen"),
]
BASELINE = {**_offer(3, "onnx-fp32", "aws", "m5.xlarge", 140.16, None), "label": "naive baseline"}
RECORD = {
    "model": "tiny",
    "chosen": CANDIDATES[0],
    "baseline": BASELINE,
    "candidates": CANDIDATES,
    "slo": {"latency_ms_p95": 50.0},
    "traffic": {"rps": 5.0},
    "assumptions": {"max_utilization": 0.7, "note": "<b>not markup</b>"},
}


@pytest.fixture
def run(thrifty_home: Path) -> dict[str, Any]:
    """The registry rows of one finished deploy-model run; returns their ids."""
    from thrifty import runtime
    from thrifty.registry.models import BenchmarkResult

    registry = runtime.registry()
    model_art = registry.upsert_artifact("a" * 64, 4_000_000, "file:///m")
    version, _ = registry.add_model_version(
        "tiny", sha256="a" * 64, artifact=model_art, format="onnx", size_bytes=4_000_000, source_path="/m"
    )
    fp32, _ = registry.add_variant(
        version.id, "onnx-fp32", technique="export", artifact=model_art,
        status="accepted", fidelity={"top1_agreement": 1.0, "cosine_min": 1.0},
    )  # fmt: skip
    int8_art = registry.upsert_artifact("b" * 64, 1_000_000, "file:///q", kind="variant")
    int8, _ = registry.add_variant(
        version.id, "int8-dynamic", technique="dynamic_int8", artifact=int8_art, status="rejected",
        fidelity={"top1_agreement": 0.81}, rejection_reason="top1_agreement 0.810 < 0.95",
    )  # fmt: skip
    rows = []
    for variant, latency_ms in ((fp32, 4.0), (int8, 1.5)):
        for batch, threads in ((1, 1), (1, 2), (8, 1)):
            rows.append(
                BenchmarkResult(
                    variant_id=variant.id, batch_size=batch, threads=threads, seq_len=None,
                    latency_ms_p50=latency_ms * batch / threads, latency_ms_p95=latency_ms * 1.2 * batch / threads,
                    latency_ms_p99=latency_ms * 1.5, throughput_rps=1000 / latency_ms, load_ms=30.0,
                    peak_memory_mib=50.0,
                )
            )  # fmt: skip
    registry.add_benchmark_results(rows)
    plan = registry.add_plan(
        model_version_id=version.id, slo=RECORD["slo"], chosen=RECORD["chosen"], record=RECORD
    )
    registry.upsert_deployment(
        "tiny", provider="local", region="local", state="running", replicas=1, plan_id=plan.id,
        endpoint_url="http://127.0.0.1:8470/v2/models/tiny", variant_id=fp32.id,
    )  # fmt: skip
    return {"plan_id": plan.id, "fp32": fp32.id, "int8": int8.id}


def test_collect_by_deployment_and_by_plan_id(run: dict[str, Any]) -> None:
    from thrifty import runtime

    by_name = report.collect(runtime.registry(), "tiny")
    by_plan = report.collect(runtime.registry(), f"plan:{run['plan_id']}")
    assert by_name.plan_id == by_plan.plan_id == run["plan_id"]
    assert by_name.deployment["state"] == "running" and by_plan.deployment == {}
    rows = {r["variant"]: r for r in by_name.variants}
    # the batch-1 row with the most threads is what a single request sees: 4.0 ms / 2 threads
    assert rows["onnx-fp32"]["latency_ms_p50"] == pytest.approx(2.0)
    assert rows["onnx-fp32"]["threads"] == 2
    assert rows["int8-dynamic"]["status"] == "rejected"
    assert rows["int8-dynamic"]["rejection_reason"] == "top1_agreement 0.810 < 0.95"
    assert rows["int8-dynamic"]["size_mb"] == 1.0


def test_collect_unknown_ref_names_it(run: dict[str, Any]) -> None:
    from thrifty import runtime

    with pytest.raises(NotFoundError, match="'nope' is neither a deployment nor a plan id"):
        report.collect(runtime.registry(), "nope")


def test_summary_markdown_compares_with_the_baseline(run: dict[str, Any]) -> None:
    from thrifty import runtime

    data = report.collect(runtime.registry(), "tiny")
    curl = report.curl_example("http://127.0.0.1:8470", "tiny")
    text = report.summary_markdown(data, curl=curl)

    assert "**Chosen plan:** variant `onnx-fp32` on aws c7g.large us-east-1 (spot)" in text
    assert "| chosen | $2.67 | $35.04 | 13.5 ms |" in text
    assert "| naive baseline (fp32, on-demand m5.xlarge us-east-1) | $10.67 | $140.16 | 15.5 ms |" in text
    # 140.16 / 35.04 = 4.0×, 140.16 − 35.04 = 105.12 saved per month
    assert "4.0× cheaper than the naive baseline ($105.12/month saved)" in text
    assert "\n\n**Fidelity vs the original:** cosine (min) 1.000, top-1 agreement 1.000\n\n" in text
    assert "**SLO:** p95 ≤ 50.0 ms at 5.0 req/s" in text
    assert "endpoint http://127.0.0.1:8470/v2/models/tiny" in text
    assert "curl -s -X POST http://127.0.0.1:8470/v2/models/tiny/infer" in text


def test_summary_without_a_baseline_says_so() -> None:
    data = report.RunReport(model="m", decision={"chosen": CANDIDATES[0]}, variants=[])
    text = report.summary_markdown(data)
    assert "no baseline to compare with" in text
    assert "naive baseline (fp32" not in text


def test_offers_rows_rank_and_say_why_each_lost(run: dict[str, Any]) -> None:
    from thrifty import runtime

    data = report.collect(runtime.registry(), "tiny")
    rows = report.offers_rows(data)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    # 70.08 − 35.04 = 35.04 more (+100 %); 140.16 − 35.04 = 105.12 more (+300 %)
    assert [r["why_lost"] for r in rows] == [
        "chosen",
        "costs $35.04/month more (+100%)",
        "costs $105.12/month more (+300%)",
    ]
    assert rows[1]["offer"] == "azure Standard_D2s_v5 eastus (on_demand)"
    assert len(report.offers_rows(data, top=2)) == 2


def _images(html_text: str) -> list[bytes]:
    return [
        base64.b64decode(b) for b in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html_text)
    ]


def test_write_html_is_standalone_with_two_plots(run: dict[str, Any], tmp_path: Path) -> None:
    from thrifty import runtime

    data = report.collect(runtime.registry(), "tiny")
    path = report.write_html(data, tmp_path / "out.html")
    text = path.read_text()

    images = _images(text)
    assert len(images) == 2
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 1000 for img in images)
    assert "http://" not in text.replace("http://127.0.0.1:8470", "")  # nothing fetched from elsewhere
    assert text.count("<table>") == 4  # the summary's cost table, variants, offers, assumptions
    assert "int8-dynamic" in text and "top1_agreement 0.810 &lt; 0.95" in text
    assert "&lt;b&gt;not markup&lt;/b&gt;" in text and "<b>not markup</b>" not in text
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_report_prints_and_writes_html(run: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "tiny", "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "4.0× cheaper than the naive baseline" in result.output
    assert "top offers" in result.output and "c7g.large" in result.output
    assert len(_images(out.read_text())) == 2


def test_cli_report_json(run: dict[str, Any]) -> None:
    result = runner.invoke(app, ["report", str(run["plan_id"]), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["plan_id"] == run["plan_id"]
    assert data["chosen"]["instance_type"] == "c7g.large"
    assert data["baseline"]["instance_type"] == "m5.xlarge"
    assert {v["variant"] for v in data["variants"]} == {"onnx-fp32", "int8-dynamic"}


def test_cli_report_unknown_deployment_fails_cleanly(thrifty_home: Path) -> None:
    result = runner.invoke(app, ["report", "nope"])
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFoundError)


def test_curl_example_for_a_tensor_model_uses_its_signature() -> None:
    signature = {
        "inputs": [
            {"name": "x", "dtype": "float32", "shape": ["batch", 3]},
            {"name": "mask", "dtype": "int64", "shape": [None, 2]},
        ]
    }
    curl = report.curl_example("http://127.0.0.1:8470", "m", inputs=report.example_inputs(signature))
    body = json.loads(curl.split(" -d '", 1)[1].removesuffix("'"))
    assert body["inputs"] == [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0.0, 0.0, 0.0]},
        {"name": "mask", "shape": [1, 2], "datatype": "INT64", "data": [0, 0]},
    ]
    assert curl.startswith("curl -s -X POST http://127.0.0.1:8470/v2/models/m/infer ")


def test_curl_example_for_a_text_model_sends_a_sentence() -> None:
    body = json.loads(
        report.curl_example("http://h:1", "m", sample="hi").split(" -d '", 1)[1].removesuffix("'")
    )
    assert body == {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}


# -- issue 18 item 6: artifacts and HTML a person can read ----------------------------------------
def _decision(candidates: list[dict[str, Any]], rps: float = 5.0) -> dict[str, Any]:
    return RECORD | {"chosen": candidates[0], "candidates": candidates, "traffic": {"rps": rps}}


def test_offers_rows_one_row_per_offer_with_its_best_variant() -> None:
    # the int8 rows rank after fp32 on the same two machines: the reader sees each machine once
    cands = [
        _offer(1, "onnx-fp32", "aws", "c7g.large", 35.04, None),
        {**_offer(2, "int8", "aws", "c7g.large", 35.04, None), "price_model": "spot", "option": "spot"},
        _offer(3, "onnx-fp32", "azure", "Standard_D2s_v5", 70.08, None),
        _offer(4, "int8", "azure", "Standard_D2s_v5", 70.08, None),
    ]
    rows = report.offers_rows(report.RunReport(model="m", decision=_decision(cands), variants=[]))
    assert [(r["rank"], r["variant"]) for r in rows] == [(1, "onnx-fp32"), (3, "onnx-fp32")]


def test_a_cost_tie_is_worded_as_a_tie_not_as_zero_dollars_more() -> None:
    chosen = {**_offer(1, "fp32", "aws", "c7g.large", 35.04, None), "fidelity_score": 1.0}
    less_faithful = {
        **_offer(2, "int8", "aws", "c6g.large", 35.04, "$0.00/month more"),
        "fidelity_score": 0.95,
    }
    slower = {**_offer(3, "fp32", "gcp", "n2-standard-2", 35.04, None), "fidelity_score": 1.0}
    rows = report.offers_rows(
        report.RunReport(model="m", decision=_decision([chosen, less_faithful, slower]), variants=[])
    )
    assert rows[1]["why_lost"] == "same cost, less faithful (0.950 vs 1.000)"
    assert rows[2]["why_lost"] == "same cost, slower (p95 15.5 vs 13.5 ms)"
    assert not any("$0.00" in r["why_lost"] for r in rows)


def test_artifact_tables_have_human_headers_rounded_numbers_and_the_verdict_early(
    run: dict[str, Any],
) -> None:
    from thrifty import runtime

    data = report.collect(runtime.registry(), "tiny")
    for table in (report.variants_table(data), report.offers_table(data)):
        headers = list(table[0])
        assert not [h for h in headers if "_" in h], headers
        numbers = [v for row in table for v in row.values() if isinstance(v, float)]
        assert numbers and all(len(repr(v).split(".")[1]) <= 4 for v in numbers), numbers
    variants = report.variants_table(data)
    assert list(variants[0])[:2] == ["variant", "verdict"]
    assert {r["variant"]: r["verdict"] for r in variants}["int8-dynamic"] == (
        "rejected: top1_agreement 0.810 < 0.95"
    )


def test_html_summary_is_html_and_carries_no_python_reprs(run: dict[str, Any], tmp_path: Path) -> None:
    from thrifty import runtime

    text = report.write_html(report.collect(runtime.registry(), "tiny"), tmp_path / "r.html").read_text()
    body = re.sub(r"src='data:[^']+'", "", text)
    assert "<pre>" not in body.split("<h2>")[0]  # the summary is rendered, not raw Markdown
    assert "<strong>Chosen plan:</strong>" in body and "**" not in body
    assert not re.search(r">(True|False|None)<", body) and "{&#x27;" not in body and "{'" not in body
    assert "<td>max utilization</td><td>0.7</td>" in body  # assumptions as a two-column table
    assert "<td>35.04</td>" in body and "35.040" not in body  # money as money, no padded floats
    assert "width:100%" in body and "overflow-wrap:anywhere" in body  # the tables fit the page


# -- issue 18 item 9: the summary says what the local fallback carries ----------------------------
def test_summary_says_what_the_local_fallback_carries_against_the_slo() -> None:
    chosen = {**_offer(1, "int8", "azure", "Standard_F2s_v2", 72.63, None), "machines": 5.0}
    chosen |= {"max_utilization": 0.7, "bench_throughput_rps": 58.8}
    variants = [{"variant": "int8", "throughput_rps": 40.0, "fidelity": "-"}]
    deployed = {"name": "m", "provider": "local", "state": "running", "replicas": 1, "endpoint_url": "x"}
    data = report.RunReport(
        model="m", decision=_decision([chosen], rps=200.0), variants=variants, deployment=deployed
    )
    text = report.summary_markdown(data)
    # 1 replica × 40 req/s measured here × 0.7 utilisation = 28 req/s, 14 % of 200
    assert "**Local fallback:** 1 replica ≈ 28 req/s of the 200 req/s planned (14%" in text
    assert "5 × Standard_F2s_v2" in text
    on_the_cloud = report.RunReport(
        model="m", decision=_decision([chosen], rps=200.0), variants=variants,
        deployment=deployed | {"provider": "azure", "replicas": 5},
    )  # fmt: skip
    assert "Local fallback" not in report.summary_markdown(on_the_cloud)


def test_cli_report_at_80_columns_keeps_prices_whole(run: dict[str, Any]) -> None:
    result = runner.invoke(app, ["report", "tiny"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    assert "35.04" in result.output and "140.16" in result.output and "…" not in result.output
