"""The registry glue on all-MiniLM-L6-v2: ingest → variants (content-addressed, linked to their
parents, config saved) → benchmark rows → accepted / rejected; then `thrifty variants --json`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

TECHNIQUES = ("export", "graph", "dynamic_int8", "blockwise_int8", "fp16")


def test_optimize_minilm_yields_accepted_and_rejected_variants(
    thrifty_home: Path, minilm_fp32: Path, minilm_eval: Any
) -> None:
    """Starts from MiniLM's ONNX export (the session fixture) to spare a second 20 s export;
    the Hugging Face folder path of the pipeline runs in bench/optimize.py and the flow test."""
    import dataclasses

    from thrifty import runtime
    from thrifty.bench.harness import BenchSpec
    from thrifty.ingest import ingest_model
    from thrifty.optimize import pipeline
    from thrifty.optimize.config import Tolerance

    registry, store = runtime.registry(), runtime.store()
    version = ingest_model(minilm_fp32, "minilm", registry=registry, store=store).version
    assert version.format == "onnx"
    work = pipeline.work_dir_for(version, thrifty_home)
    variants = pipeline.optimize_version(
        version, TECHNIQUES, registry=registry, store=store, work_dir=work, evals=minilm_eval
    )
    by_name = {v.name: v for v in variants}
    assert set(by_name) == {"onnx-fp32", "onnx-graph", "int8-dynamic", "int8-blockwise", "fp16"}
    assert by_name["onnx-graph"].parent_variant_id == by_name["onnx-fp32"].id
    assert by_name["int8-dynamic"].parent_variant_id == by_name["onnx-graph"].id
    assert by_name["int8-dynamic"].config["config"]["per_channel"] is True
    assert store.exists(by_name["fp16"].artifact.sha256)

    # idempotent: running again makes nothing new
    again = pipeline.optimize_version(
        version, TECHNIQUES, registry=registry, store=store, work_dir=work, evals=minilm_eval
    )
    assert [v.id for v in again] == [v.id for v in variants]

    spec = BenchSpec(batch_sizes=(1,), seq_lens=(16,), runs=3, warmup=1)
    random_tokens = dataclasses.replace(minilm_eval, bench_inputs={"kind": "random"})
    for variant in variants:
        rows = pipeline.benchmark_variant(registry, store, variant, spec, random_tokens)
        assert rows[0].latency_ms_p50 > 0 and rows[0].load_ms and rows[0].file_size_bytes
        assert {"cpu_model", "cpu_flags", "vcpus"} <= set(rows[0].hardware)
        pipeline.judge_variant(registry, store, variant, minilm_eval, Tolerance())

    accepted = registry.list_accepted_variants(version.id)
    assert len(accepted) >= 3
    assert {"onnx-fp32", "int8-blockwise", "fp16"} <= {v.name for v in accepted}
    for variant in registry.list_variants(version.id):
        if variant.status == "rejected":
            assert variant.rejection_reason and "<" in variant.rejection_reason
            assert variant.id not in {v.id for v in accepted}

    from thrifty.cli import app

    result = CliRunner().invoke(app, ["variants", "minilm", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 5 and all(r["latency_ms_p50"] for r in rows)
    assert sum(r["status"] == "accepted" for r in rows) >= 3
    table = CliRunner().invoke(app, ["variants", "minilm"], env={"COLUMNS": "160"})
    assert "int8-blockwise" in table.output and "nn_agreement" in table.output
    # cells under their headers: the id first, the variant, ..., its technique last
    assert re.search(r"│ +\d+ │ int8-blockwise +│ .*│ blockwise_int8 +│", table.output)


def test_unknown_techniques_and_prune_without_its_inputs_are_refused() -> None:
    from thrifty.errors import OptimizeError
    from thrifty.optimize.pipeline import check_techniques, check_user_inputs
    from thrifty.optimize.user_inputs import UserInputs

    with pytest.raises(OptimizeError, match="unknown technique"):
        check_techniques(["int3"])
    assert check_techniques(["prune"]) == ("export", "prune")
    with pytest.raises(OptimizeError, match="prune needs the module's code and a data file"):
        check_user_inputs("onnx", ("export", "prune"), UserInputs())
    with pytest.raises(OptimizeError, match="apply to neural networks"):
        check_user_inputs("xgboost", ("export", "prune"), UserInputs("m.py:f", "d.npz"))
    assert check_techniques(["dynamic_int8"]) == ("export", "graph", "dynamic_int8")
