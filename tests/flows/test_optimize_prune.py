"""Flow ``optimize-model`` with prune and distill: a state dict (weights only) plus the user's
module code and a data file; and the same flow refusing, before any task runs, when the data file
is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MODULE_CODE = """
import torch


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))
"""


@pytest.fixture
def digits_files(tmp_path: Path) -> dict[str, Path]:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", inputs=(digits.data / 16.0).astype(np.float32), labels=digits.target)
    (tmp_path / "model.py").write_text(MODULE_CODE)
    namespace: dict[str, object] = {}
    exec(MODULE_CODE, namespace)  # the same code the flow will import from model.py
    torch.save(namespace["make_model"]().state_dict(), tmp_path / "weights.pt")  # type: ignore[operator]
    return {
        "code": tmp_path / "model.py",
        "data": tmp_path / "digits.npz",
        "weights": tmp_path / "weights.pt",
    }


@pytest.mark.slow
def test_flow_prunes_and_distills_with_module_and_data(
    thrifty_home: Path, digits_files: dict[str, Path]
) -> None:
    from flows.optimize import OptimizeParams, optimize_model
    from thrifty import runtime
    from thrifty.ingest import ingest_model

    ingest_model(digits_files["weights"], "digits-sd", registry=runtime.registry(), store=runtime.store())
    params = OptimizeParams(
        model="digits-sd",
        techniques=["prune", "distill"],
        module=f"{digits_files['code']}:make_model",
        data=str(digits_files["data"]),
        batch_sizes=[1],
        runs=2,
    )
    rows = {r["variant"]: r for r in optimize_model(params)}
    assert set(rows) == {"onnx-fp32", "pruned", "distilled"}
    assert rows["onnx-fp32"]["status"] == "accepted"
    assert rows["pruned"]["size_mb"] < rows["onnx-fp32"]["size_mb"]
    assert all(r["latency_ms_p50"] and "accuracy" in r["fidelity"] for r in rows.values())


def test_flow_refuses_prune_without_data_before_any_task(
    thrifty_home: Path, digits_files: dict[str, Path]
) -> None:
    from flows.optimize import OptimizeParams, optimize_model
    from thrifty import runtime
    from thrifty.errors import OptimizeError
    from thrifty.ingest import ingest_model

    version = ingest_model(
        digits_files["weights"], "digits-sd", registry=runtime.registry(), store=runtime.store()
    ).version
    params = OptimizeParams(
        model="digits-sd", techniques=["prune"], module=f"{digits_files['code']}:make_model"
    )
    with pytest.raises(OptimizeError, match="prune needs a data file"):
        optimize_model(params)
    assert runtime.registry().list_variants(version.id) == []
