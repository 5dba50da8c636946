"""Smooth int8 and the search's eval split, on small hand-made graphs and eval sets (fast).

The MiniLM numbers (how many MatMuls end up int8, fidelity on the held-out split) are asserted in
test_minilm.py; here: the rewrites are exact in fp32, the artifact has the structure the config
asks for, and the held-out split never shares a row with the search split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from thrifty.bench.evaluation import EvalSet
from thrifty.errors import ConfigError, OptimizeError
from thrifty.optimize.config import SmoothQuantConfig
from thrifty.optimize.quantize import (
    activation_stats,
    count_ops,
    quantize_smooth_int8,
    smooth_channels,
    smooth_targets,
    split_outlier_tokens,
)
from thrifty.optimize.search import SearchSpace, guardrail_eval_set, split_eval_set

HIDDEN, INNER = 16, 32


def _mlp(path: Path, rank: int = 3) -> Path:
    """x → MatMul → Relu → MatMul (+ a second MatMul on x) → outputs; rank 3 = [batch, tokens, ch]."""
    rng = np.random.default_rng(0)
    shape = ["batch", "tokens", HIDDEN] if rank == 3 else ["batch", HIDDEN]
    out_shape = [*shape[:-1], HIDDEN]
    inits = [
        numpy_helper.from_array(rng.standard_normal((HIDDEN, INNER)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((INNER, HIDDEN)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32), "w3"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="up"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="down"),
        helper.make_node("MatMul", ["x", "w3"], ["z"], name="side"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, out_shape),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _feeds(rank: int = 3, count: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    feeds = []
    for _ in range(count):
        x = rng.standard_normal((2, 6, HIDDEN) if rank == 3 else (2, HIDDEN)).astype(np.float32)
        if rank == 3:
            x[:, 0, 3] *= 40.0  # the first token carries an outlier channel, as [CLS] does in MiniLM
        feeds.append({"x": x})
    return feeds


def _run(model_or_path: onnx.ModelProto | Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    data = (
        model_or_path.SerializeToString()
        if isinstance(model_or_path, onnx.ModelProto)
        else str(model_or_path)
    )
    return list(ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feed))


def test_outlier_split_and_smoothing_are_exact_in_fp32(tmp_path: Path) -> None:
    path = _mlp(tmp_path / "mlp.onnx")
    model = onnx.load(str(path))
    groups = smooth_targets(model)
    assert {x: [n.name for n in g] for x, g in groups.items()} == {"x": ["up", "side"], "r": ["down"]}
    stats = activation_stats(model, list(groups), _feeds(), skip_rows=1)
    assert stats["x"][0] == 3 and stats["x"][1].shape == (HIDDEN,)
    # the maxima leave the outlier token out: channel 3 is not 40x the others
    assert stats["x"][1][3] < 4 * np.median(stats["x"][1])
    fp32_rows = split_outlier_tokens(model, groups, tokens=1)
    assert fp32_rows == ["up_outlier_fp32", "side_outlier_fp32", "down_outlier_fp32"]
    assert smooth_channels(model, groups, {x: s[1] for x, s in stats.items()}, alpha=0.6) == 2
    onnx.checker.check_model(model)
    feed = _feeds(count=1)[0]
    for before, after in zip(_run(path, feed), _run(model, feed), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)


def test_smooth_int8_artifact_structure_and_saved_config(tmp_path: Path) -> None:
    path = _mlp(tmp_path / "mlp.onnx")
    out = quantize_smooth_int8(path, tmp_path / "smooth", _feeds(), SmoothQuantConfig(alpha=0.6))
    ops = count_ops(out)
    assert ops["MatMulInteger"] == 3  # every weight MatMul runs int8 on the ordinary tokens
    assert ops["MatMul"] == 3  # the outlier token's fp32 row, one per weight MatMul
    assert ops["Slice"] == 4 and ops["Concat"] == 3  # two inputs split, three outputs joined
    smoothing = [
        n for n in onnx.load(str(out)).graph.node if n.op_type == "Mul" and n.name.endswith("_smooth")
    ]
    assert len(smoothing) == 2  # one smoothing Mul per activation input
    saved = json.loads((tmp_path / "smooth" / "thrifty_config.json").read_text())
    assert saved["technique"] == "smooth_int8" and saved["config"]["alpha"] == 0.6
    assert (saved["int8_matmuls"], saved["outlier_row_matmuls"], saved["smoothed_inputs"]) == (3, 3, 2)
    feed = _feeds(count=1)[0]
    for ref, got in zip(_run(path, feed), _run(out, feed), strict=True):
        cos = (ref * got).sum(-1) / np.linalg.norm(ref, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.min() > 0.99


def test_excluded_nodes_stay_fp32_and_untouched(tmp_path: Path) -> None:
    path = _mlp(tmp_path / "mlp.onnx")
    config = SmoothQuantConfig(nodes_to_exclude=("down",))
    out = quantize_smooth_int8(path, tmp_path / "smooth", _feeds(), config)
    graph = onnx.load(str(out)).graph
    down = next(n for n in graph.node if n.name == "down")
    assert down.op_type == "MatMul" and list(down.input) == ["r", "w2"]
    assert count_ops(out)["MatMulInteger"] == 2


def test_rank2_inputs_are_smoothed_but_not_split(tmp_path: Path) -> None:
    """A [batch, channels] input has no tokens: splitting its first row would leave batch 1 empty."""
    path = _mlp(tmp_path / "mlp2.onnx", rank=2)
    out = quantize_smooth_int8(path, tmp_path / "smooth", _feeds(rank=2), SmoothQuantConfig())
    saved = json.loads((tmp_path / "smooth" / "thrifty_config.json").read_text())
    assert saved["outlier_row_matmuls"] == 0 and saved["smoothed_inputs"] == 2
    assert count_ops(out).get("Slice", 0) == 0
    one = {"x": _feeds(rank=2)[0]["x"][:1]}
    assert _run(out, one)[0].shape == (1, HIDDEN)


def test_smooth_int8_without_calibration_data_changes_nothing(tmp_path: Path) -> None:
    path = _mlp(tmp_path / "mlp.onnx")
    with pytest.raises(OptimizeError, match="no calibration samples"):
        quantize_smooth_int8(path, tmp_path / "smooth", [], SmoothQuantConfig())
    assert not (tmp_path / "smooth" / "model.onnx").exists()


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: SmoothQuantConfig(alpha=1.2), "alpha=1.2"),
        (lambda: SmoothQuantConfig(outlier_tokens=-1), "outlier_tokens=-1"),
        (lambda: SmoothQuantConfig(alpha=0.0, outlier_tokens=0), "plain dynamic int8"),
        (lambda: SmoothQuantConfig(calibration_samples=0), "calibration_samples=0"),
    ],
)
def test_smooth_config_names_the_bad_value(make: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("space", "named"),
    [
        (lambda: SearchSpace(holdout_fraction=0.9), "holdout_fraction=0.9"),
        (lambda: SearchSpace(max_fp32_nodes=0), "max_fp32_nodes=0"),
        (lambda: SearchSpace(block_sizes=(48,)), "block_size=48"),
    ],
)
def test_search_space_names_the_bad_value(space: object, named: str) -> None:
    with pytest.raises((OptimizeError, ConfigError), match=named):
        space()  # type: ignore[operator]


def _eval_set(rows: int = 20, batch: int = 8) -> EvalSet:
    """Each input row carries its own index, so a split row can be traced back."""
    ids = np.arange(rows, dtype=np.int64)[:, None].repeat(4, axis=1)
    batches = [{"input_ids": ids[i : i + batch]} for i in range(0, rows, batch)]
    reference = np.random.default_rng(0).standard_normal((rows, 5)).astype(np.float32)
    texts = [f"sentence {i}" for i in range(rows)]
    return EvalSet("embedding", batches, reference, None, {"kind": "text", "texts": texts})


def test_holdout_split_is_disjoint_from_the_search_split_and_covers_the_set() -> None:
    evals = _eval_set()
    split = split_eval_set(evals, holdout_fraction=0.5, seed=0)
    assert not set(split.search_rows) & set(split.holdout_rows)
    assert sorted(split.search_rows + split.holdout_rows) == list(range(20))
    assert len(split.holdout_rows) == 10
    for part, rows in ((split.search, split.search_rows), (split.holdout, split.holdout_rows)):
        seen = np.concatenate([b["input_ids"][:, 0] for b in part.batches])
        assert seen.tolist() == list(rows)  # inputs and reference stay aligned row by row
        np.testing.assert_array_equal(part.reference, evals.reference[list(rows)])
        assert part.bench_inputs["texts"] == [f"sentence {r}" for r in rows]
    assert split_eval_set(evals, 0.5, seed=0).holdout_rows == split.holdout_rows  # same for every caller
    assert split_eval_set(evals, 0.5, seed=1).holdout_rows != split.holdout_rows


def test_guardrail_judges_fitted_techniques_on_the_holdout_only() -> None:
    evals = _eval_set()
    holdout = split_eval_set(evals).holdout_rows
    for technique in ("search", "smooth_int8"):
        judged = guardrail_eval_set(evals, technique)
        np.testing.assert_array_equal(judged.reference, evals.reference[list(holdout)])
    assert guardrail_eval_set(evals, "dynamic_int8") is evals


def test_too_small_an_eval_set_cannot_be_split() -> None:
    with pytest.raises(OptimizeError, match="cannot be split"):
        split_eval_set(_eval_set(rows=5))
