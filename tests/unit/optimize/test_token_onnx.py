"""A sentence-transformers model exported to ONNX as commonly shipped — int64 input_ids /
attention_mask / token_type_ids, no tokenizer beside it — goes through `thrifty optimize`
(built from the bundled all-MiniLM-L6-v2 by the project's own exporter; nothing downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

BENCH = ["--batch-sizes", "1", "--seq-lens", "16", "--runs", "2", "--json"]


@pytest.fixture
def shipped_onnx(minilm_fp32: Path, tmp_path: Path) -> Path:
    """The .onnx file alone, in a folder of its own (no tokenizer, no config beside it)."""
    alone = tmp_path / "shipped" / "model.onnx"
    alone.parent.mkdir()
    shutil.copyfile(minilm_fp32, alone)
    return alone


def test_token_onnx_without_tokenizer_optimizes_on_valid_ids(thrifty_home: Path, shipped_onnx: Path) -> None:
    from thrifty import runtime
    from thrifty.cli import app

    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(shipped_onnx), "--name", "minilm-onnx", "--json"])
    assert ingested.exit_code == 0, ingested.output
    version = runtime.registry().get_model_version("minilm-onnx", None)
    assert version.details["vocab_sizes"]["input_ids"] == 30522  # rows of the word-embedding table

    result = runner.invoke(app, ["optimize", "minilm-onnx", "--techniques", "dynamic_int8", *BENCH])
    assert result.exit_code == 0, result.output
    rows = {r["variant"]: r for r in json.loads(result.output)}
    assert set(rows) == {"onnx-fp32", "onnx-graph", "int8-dynamic"}
    assert rows["onnx-fp32"]["fidelity"]["cosine_mean"] == pytest.approx(1.0, abs=1e-6)
    assert rows["onnx-fp32"]["status"] == "accepted"
    assert all(r["latency_ms_p50"] > 0 for r in rows.values())
    # the eval inputs were token ids (embedding task: cosine and nearest-neighbour agreement)
    assert "nn_agreement" in rows["int8-dynamic"]["fidelity"]


def test_tokenizer_attached_at_ingest_judges_on_sentences_and_serves_text(
    thrifty_home: Path, shipped_onnx: Path, minilm_folder: Path, minilm_eval: Any
) -> None:
    from thrifty import runtime
    from thrifty.cli import app
    from thrifty.optimize import pipeline
    from thrifty.serving.resolve import _version_tokenizer

    runner = CliRunner()
    args = ["ingest", str(shipped_onnx), "--name", "minilm-text", "--tokenizer", str(minilm_folder), "--json"]
    ingested = runner.invoke(app, args)
    assert ingested.exit_code == 0, ingested.output
    registry, store = runtime.registry(), runtime.store()
    version = registry.get_model_version("minilm-text", None)
    assert version.details["tokenizer"] == "tokenizer" and version.details["entry"] == "model.onnx"

    work = pipeline.work_dir_for(version, thrifty_home)
    (variant,) = pipeline.optimize_version(
        version, ("export",), registry=registry, store=store, work_dir=work
    )
    _, evals = pipeline.source_and_evals(version, store, work)
    assert evals.bench_inputs["kind"] == "text" and evals.task == "embedding"
    # the ONNX original on the tokenized sentences is the PyTorch model's embedding
    n = len(minilm_eval.reference)
    cosine = (evals.reference[:n] * minilm_eval.reference).sum(axis=1)
    assert np.min(cosine) > 0.9999
    tokenizer = _version_tokenizer(variant.id, registry, store, thrifty_home / "cache")
    assert tokenizer is not None and tokenizer.name == "tokenizer.json"
