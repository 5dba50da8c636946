"""No valid ONNX model ends `thrifty optimize` in a traceback.

A property test over tiny generated graphs: input dtypes (float32, float16, int64, int32, bool),
ranks 1–4, fixed / named-dynamic / unnamed-dynamic dims, with and without an embedding lookup or a
MatMul. Each model is ingested, optimized with every default technique, every variant is judged
and timed on the generated inputs. Either that works, or a ThriftyError with a hint says why.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.optimize.onnx_graphs import DTYPES, VOCAB, make_graph_model

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (dev extra)")
st = hypothesis.strategies

DIM = st.one_of(st.integers(1, 4), st.sampled_from(["n", "m", "seq"]), st.none())
_names = itertools.count()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path]]:
    from thrifty.artifacts import open_store
    from thrifty.registry import open_registry

    root = tmp_path_factory.mktemp("any-onnx")
    registry = open_registry(f"sqlite:///{root / 'registry.db'}")
    yield registry, open_store(str(root / "store")), root
    registry.engine.dispose()


def optimize_judge_time(stores: tuple[Any, Any, Path], model: Path) -> tuple[list[Any], dict[str, str]]:
    from thrifty.bench._worker import run_job
    from thrifty.ingest import ingest_model
    from thrifty.optimize import pipeline
    from thrifty.optimize.config import Tolerance

    registry, store, root = stores
    name = f"tiny-{next(_names)}"
    version = ingest_model(model, name, registry=registry, store=store).version
    work, skipped = root / name, {}
    variants = pipeline.optimize_version(
        version, pipeline.DEFAULT_TECHNIQUES, registry=registry, store=store, work_dir=work, skipped=skipped
    )
    _, evals = pipeline.source_and_evals(version, store, work)
    for variant in variants:
        judged = pipeline.judge_variant(registry, store, variant, evals, Tolerance())
        assert judged.status in ("accepted", "rejected")
    for variant in (variants[0], variants[-1]):  # the original and the last technique's variant
        job = {
            "model_path": str(store.fetch(variant.artifact.sha256)),
            "cases": [{"batch_size": 2, "threads": 1, "seq_len": 8}],
            "inputs": evals.bench_inputs,
            "warmup": 0,
            "runs": 1,
        }
        assert run_job(job)["cases"][0]["latency_ms_p50"] > 0
    return variants, skipped


@pytest.mark.slow
@hypothesis.settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)
@hypothesis.given(
    dtype=st.sampled_from(DTYPES),
    dims=st.lists(DIM, min_size=1, max_size=4),
    embedding=st.booleans(),
    matmul=st.booleans(),
)
def test_optimize_makes_variants_or_says_why(
    stores: tuple[Any, Any, Path], dtype: str, dims: list[Any], embedding: bool, matmul: bool
) -> None:
    from thrifty.errors import ThriftyError

    model = make_graph_model(
        stores[2] / f"m{next(_names)}.onnx", dtype, dims, embedding=embedding, matmul=matmul
    )
    try:
        variants, skipped = optimize_judge_time(stores, model)
    except ThriftyError as exc:
        assert exc.hint, f"{type(exc).__name__} without a hint: {exc}"
        return
    assert variants and variants[0].name == "onnx-fp32"
    assert all(isinstance(reason, str) and reason for reason in skipped.values())


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_gets_valid_inputs_and_a_fitting_task(stores: tuple[Any, Any, Path], dtype: str) -> None:
    """One fixed example per dtype (fast): the original accepts the generated eval inputs."""
    from thrifty.bench.evaluation import synthetic_eval_set
    from thrifty.optimize.pipeline import onnx_vocab_sizes

    model = make_graph_model(stores[2] / f"{dtype}.onnx", dtype, ["batch", "seq"], embedding=True)
    vocab = onnx_vocab_sizes(model)
    assert vocab == ({"x": VOCAB} if dtype.startswith("int") else {})
    evals = synthetic_eval_set(model, vocab)
    feeds = evals.batches[0]["x"]
    assert str(feeds.dtype) == dtype
    if dtype.startswith("int"):
        assert feeds.min() >= 0 and feeds.max() < VOCAB
        assert evals.task == "embedding"  # [batch, seq, 4] from the lookup
    assert len(evals.reference) >= 64


def test_token_feeds_look_like_a_tokenizers_output() -> None:
    """ids below the vocabulary (0 under padding), masks of ones then zeros, zero token types,
    and a dim name shared by two inputs gets one size."""
    import numpy as np

    from thrifty.bench.evalsets import synthetic_feeds

    specs = [
        ("input_ids", "tensor(int64)", ["batch", "sequence"]),
        ("attention_mask", "tensor(int64)", ["batch", "sequence"]),
        ("token_type_ids", "tensor(int64)", ["batch", "sequence"]),
    ]
    feeds = synthetic_feeds(specs, 8, 32, {"input_ids": 30522, "token_type_ids": 2})
    ids, mask, types = feeds["input_ids"], feeds["attention_mask"], feeds["token_type_ids"]
    assert ids.shape == mask.shape == types.shape == (8, 32)
    assert ids.max() < 30522 and (ids[mask == 1] >= 1000).all() and (ids[mask == 0] == 0).all()
    assert (np.diff(mask, axis=1) <= 0).all() and mask[:, 0].all() and not mask.all()  # padding at the end
    assert not types.any()
    timing = synthetic_feeds(specs, 1, 128, {"input_ids": 30522}, pad=False)
    assert timing["attention_mask"].shape == (1, 128) and timing["attention_mask"].all()
