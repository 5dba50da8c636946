"""all-MiniLM-L6-v2 through every ONNX technique, judged at the level of the task.

The deliberately bad variants (per-tensor int8; static QDQ on every op) must be rejected with the
number that failed; per-channel int8 keeps cosine ≥ 0.99; smooth int8 (outlier row + channel
scales) keeps every weight MatMul int8 with several times less error; the search finds one that
also keeps the nearest neighbours, choosing on one split and reporting the held-out other.
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
    SmoothQuantConfig,
    StaticQuantConfig,
    Tolerance,
)
from thrifty.optimize.fp16 import convert_fp16
from thrifty.optimize.quantize import (
    count_ops,
    quantize_blockwise_int8,
    quantize_dynamic_int8,
    quantize_smooth_int8,
    quantize_static_int8,
    weight_matmuls,
)
from thrifty.optimize.search import SearchSpace, search_int8, split_eval_set

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


def test_smooth_int8_keeps_every_weight_matmul_int8_with_less_error(
    minilm_graph: Path, minilm_eval: Any, tmp_path: Path
) -> None:
    split = split_eval_set(minilm_eval)
    calibration = split.search.calibration_feeds()
    path = quantize_smooth_int8(minilm_graph, tmp_path / "smooth", calibration, SmoothQuantConfig())
    ops = count_ops(path)
    assert ops["MatMulInteger"] == len(weight_matmuls(minilm_graph)) == 36
    # fp32: the [CLS] row of each of the 36 weight MatMuls, plus the 12 attention MatMuls (no weights)
    assert ops["MatMul"] == 36 + 12
    smoothing = [
        n for n in onnx.load(str(path)).graph.node if n.op_type == "Mul" and n.name.endswith("_smooth")
    ]
    assert len(smoothing) == 24  # one per activation input (Q/K/V share one): 6 layers x 4
    saved = json.loads((tmp_path / "smooth" / "thrifty_config.json").read_text())
    assert saved["calibration_samples_used"] == len(split.search_rows)  # the held-out half is unseen
    plain = quantize_dynamic_int8(minilm_graph, tmp_path / "plain", DynamicQuantConfig())
    smooth_error = 1 - split.holdout.fidelity(path)["cosine_mean"]
    plain_error = 1 - split.holdout.fidelity(plain)["cosine_mean"]
    assert smooth_error < plain_error / 2  # ~5x less measured (0.0013 vs 0.0071)


def test_search_chooses_on_one_split_and_reports_the_held_out_one(
    minilm_graph: Path, minilm_eval: Any, tmp_path: Path
) -> None:
    tolerance = Tolerance(min_cosine=0.99, min_agreement=0.95)
    result = search_int8(
        minilm_graph,
        tmp_path,
        minilm_eval,
        minilm_eval.timing_feeds(),
        tolerance,
        space=SearchSpace(block_sizes=(64,), node_search=False),
    )
    split = split_eval_set(minilm_eval)
    assert result.passed and result.path is not None
    assert judge(split.search.fidelity(result.path), tolerance)[0]  # chosen on the search split
    assert result.trials[0]["candidate"] == "dynamic-int8"
    assert result.trials[0]["eval_size"] == len(split.search_rows) == len(minilm_eval.reference) // 2
    assert result.holdout_fidelity == split.holdout.fidelity(result.path)
    assert result.holdout_passed == judge(result.holdout_fidelity, tolerance)[0]
    assert any(t["passed"] and "latency_ms_p50" in t for t in result.trials)
    saved = json.loads((tmp_path / "thrifty_config.json").read_text())
    assert saved["chosen"] == result.chosen and len(saved["trials"]) == len(result.trials)
    search_rows, holdout_rows = set(saved["split"]["search_rows"]), set(saved["split"]["holdout_rows"])
    assert not search_rows & holdout_rows
    assert search_rows | holdout_rows == set(range(len(minilm_eval.reference)))
