"""all-MiniLM-L6-v2 through every ONNX technique, judged at the level of the task.

The deliberately bad variants (per-tensor int8; static QDQ on every op) must be rejected with the
number that failed; per-channel int8 keeps cosine ≥ 0.99; the search finds one that also keeps the
nearest neighbours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from thrifty.bench.fidelity import judge
from thrifty.optimize.config import (
    BlockwiseQuantConfig,
    DynamicQuantConfig,
    Fp16Config,
    StaticQuantConfig,
    Tolerance,
)
from thrifty.optimize.fp16 import convert_fp16
from thrifty.optimize.quantize import (
    count_ops,
    quantize_blockwise_int8,
    quantize_dynamic_int8,
    quantize_static_int8,
    weight_matmuls,
)
from thrifty.optimize.search import SearchSpace, search_int8

pytestmark = pytest.mark.slow


def test_export_serves_the_sentence_embedding(minilm_fp32: Path, minilm_eval: Any) -> None:
    model = onnx.load(str(minilm_fp32))
    assert [o.name for o in model.graph.output] == ["sentence_embedding"]
    assert {i.name for i in model.graph.input} == {"input_ids", "attention_mask", "token_type_ids"}
    assert not (minilm_fp32.parent / "model.onnx.data").exists()  # one file: 90 MB < 2 GB
    fid = minilm_eval.fidelity(minilm_fp32)
    assert fid["cosine_min"] > 0.99999
    assert fid["nn_agreement"] == 1.0
    # the served vectors are the normalized mean-pooled embeddings (unit length)
    from thrifty.bench.fidelity import run_onnx

    vectors = run_onnx(minilm_fp32, minilm_eval.batches[:1])
    assert vectors.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    saved = json.loads((minilm_fp32.parent / "thrifty_config.json").read_text())
    assert saved["technique"] == "export" and saved["source"] == "sentence-transformers"


def test_graph_optimization_fuses_and_keeps_outputs(minilm_graph: Path, minilm_eval: Any) -> None:
    ops = count_ops(minilm_graph)
    assert ops.get("SkipLayerNormalization", 0) >= 6  # Optimum's transformer fusions ran
    assert minilm_eval.fidelity(minilm_graph)["cosine_min"] > 0.9999
    assert json.loads((minilm_graph.parent / "thrifty_config.json").read_text())["engine"] == (
        "optimum.ORTOptimizer"
    )


def test_per_channel_int8_quantizes_every_weight_matmul(
    minilm_graph: Path, minilm_eval: Any, tmp_path: Path
) -> None:
    path = quantize_dynamic_int8(minilm_graph, tmp_path, DynamicQuantConfig())
    ops = count_ops(path)
    assert ops["MatMulInteger"] == len(weight_matmuls(minilm_graph)) == 36
    assert path.stat().st_size < 0.27 * minilm_graph.stat().st_size  # embeddings are int8 too
    fid = minilm_eval.fidelity(path)
    assert fid["cosine_mean"] >= 0.99
    assert judge(fid, Tolerance(min_cosine=0.99, min_agreement=0.0))[0]


def test_per_tensor_int8_is_rejected_with_the_failing_number(
    minilm_graph: Path, minilm_eval: Any, tmp_path: Path
) -> None:
    path = quantize_dynamic_int8(minilm_graph, tmp_path, DynamicQuantConfig(per_channel=False))
    verdict = minilm_eval.judge(path, Tolerance())
    assert verdict["cosine_mean"] < 0.98  # ~0.966 measured
    assert not verdict["accepted"]
    assert f"cosine_mean {verdict['cosine_mean']:.4f} < 0.9900" in verdict["rejection_reason"]


def test_static_qdq_on_all_ops_is_rejected(minilm_graph: Path, minilm_eval: Any, tmp_path: Path) -> None:
    config = StaticQuantConfig(op_types=(), calibration_samples=8)
    path = quantize_static_int8(minilm_graph, tmp_path, minilm_eval.calibration_feeds(), config)
    assert count_ops(path).get("QuantizeLinear", 0) > 36
    verdict = minilm_eval.judge(path, Tolerance())
    assert not verdict["accepted"]
    assert "cosine_mean" in verdict["rejection_reason"]


def test_fp16_halves_the_file_and_says_so(minilm_graph: Path, minilm_eval: Any, tmp_path: Path) -> None:
    path = convert_fp16(minilm_graph, tmp_path, Fp16Config(target="cpu"))
    ratio = path.stat().st_size / minilm_graph.stat().st_size
    assert 0.45 < ratio < 0.55
    assert minilm_eval.fidelity(path)["cosine_min"] > 0.999
    note = json.loads((tmp_path / "thrifty_config.json").read_text())["note"]
    assert "only the file size halves" in note


def test_blockwise_int8_uses_matmul_nbits(minilm_graph: Path, minilm_eval: Any, tmp_path: Path) -> None:
    path = quantize_blockwise_int8(minilm_graph, tmp_path, BlockwiseQuantConfig(block_size=32))
    assert count_ops(path)["MatMulNBits"] == 36
    assert path.stat().st_size < 0.27 * minilm_graph.stat().st_size
    assert minilm_eval.fidelity(path)["cosine_mean"] > 0.998


def test_search_finds_a_variant_that_keeps_the_neighbours(
    minilm_graph: Path, minilm_eval: Any, tmp_path: Path
) -> None:
    tolerance = Tolerance(min_cosine=0.99, min_agreement=0.95)
    result = search_int8(
        minilm_graph,
        tmp_path,
        minilm_eval.fidelity,
        minilm_eval.timing_feeds(),
        tolerance,
        space=SearchSpace(block_sizes=(64, 32), layer_search=False),
    )
    assert result.passed and result.path is not None
    assert judge(minilm_eval.fidelity(result.path), tolerance)[0]
    plain = result.trials[0]
    assert plain["candidate"] == "dynamic-int8"
    assert any(t["passed"] and "latency_ms_p50" in t for t in result.trials)
    saved = json.loads((tmp_path / "thrifty_config.json").read_text())
    assert saved["chosen"] == result.chosen and len(saved["trials"]) == len(result.trials)
