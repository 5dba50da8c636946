"""`thrifty optimize NAME --techniques prune,distill --module FILE.py:FUNC --data FILE.npz`: a state
dict (weights only) plus the user's module code and data becomes ONNX, pruned and distilled
variants, judged on held-out data; without the code or the data the error says what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

MODULE_CODE = """
import torch


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 10))
"""


@pytest.fixture
def user_files(tmp_path: Path) -> dict[str, Path]:
    """The user's module code, a state dict trained on sklearn's digits, and the data as .npz."""
    import importlib.util

    import torch
    from sklearn.datasets import load_digits

    from thrifty.optimize.training import fit

    code = tmp_path / "digits_model.py"
    code.write_text(MODULE_CODE)
    spec = importlib.util.spec_from_file_location("digits_model", code)
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    digits = load_digits()
    inputs, labels = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    model = fit(loaded.make_model(), inputs, labels, epochs=3, learning_rate=3e-3, batch_size=64)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    np.savez(tmp_path / "digits.npz", inputs=inputs, labels=labels)
    return {"code": code, "weights": tmp_path / "weights.pt", "data": tmp_path / "digits.npz"}


def test_missing_module_or_data_is_named(thrifty_home: Path, user_files: dict[str, Path]) -> None:
    from thrifty.cli import app
    from thrifty.errors import OptimizeError

    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(user_files["weights"]), "--name", "digits"]).exit_code == 0
    module = f"{user_files['code']}:make_model"
    no_data = runner.invoke(app, ["optimize", "digits", "--techniques", "prune", "--module", module])
    assert isinstance(no_data.exception, OptimizeError)  # main() prints it as an error, no traceback
    assert no_data.exception.message == "prune needs a data file"
    assert no_data.exception.hint and "--data" in no_data.exception.hint
    data = str(user_files["data"])
    no_code = runner.invoke(app, ["optimize", "digits", "--techniques", "distill", "--data", data])
    assert isinstance(no_code.exception, OptimizeError)
    assert no_code.exception.message == "distill needs the module's code"
    assert no_code.exception.hint and "--module" in no_code.exception.hint


@pytest.mark.slow
def test_prune_and_distill_from_the_cli(thrifty_home: Path, user_files: dict[str, Path]) -> None:
    from thrifty import runtime
    from thrifty.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(user_files["weights"]), "--name", "digits"]).exit_code == 0
    args = [
        "optimize",
        "digits",
        "--techniques",
        "prune,distill",
        "--module",
        f"{user_files['code']}:make_model",
        "--data",
        str(user_files["data"]),
        "--batch-sizes",
        "1",
        "--runs",
        "2",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["variant"]: r for r in json.loads(result.output)}
    assert set(rows) == {"onnx-fp32", "pruned", "distilled"}
    assert rows["onnx-fp32"]["fidelity"]["top1_agreement"] == 1.0
    assert rows["pruned"]["size_mb"] < rows["onnx-fp32"]["size_mb"]
    assert all("accuracy" in r["fidelity"] and r["latency_ms_p50"] > 0 for r in rows.values())
    registry = runtime.registry()
    variants = {v.name: v for v in registry.list_variants(registry.get_model_version("digits", None).id)}
    pruned = variants["pruned"].config
    assert pruned["parameters_after"] < pruned["parameters_before"] and pruned["finetuned"] is True
    assert (
        variants["distilled"].config["student_parameters"]
        < variants["distilled"].config["teacher_parameters"]
    )
    # a later `thrifty bench` finds the same held-out data (remembered with the version)
    bench = runner.invoke(app, ["bench", "digits", "--batch-sizes", "1", "--runs", "2", "--json"])
    assert bench.exit_code == 0, bench.output
