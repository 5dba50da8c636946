"""Task-level fidelity on tiny hand-made arrays: the numbers and the verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.bench.fidelity import (
    classification_fidelity,
    embedding_fidelity,
    judge,
    nearest_neighbours,
    regression_fidelity,
    task_fidelity,
)
from thrifty.errors import BenchmarkError
from thrifty.optimize.config import Tolerance

# four points: 0 and 1 are close, 2 and 3 are close
REFERENCE = np.array([[1.0, 0.0], [0.95, 0.1], [0.0, 1.0], [0.1, 0.95]])


def test_nearest_neighbours_skip_self() -> None:
    assert nearest_neighbours(REFERENCE).tolist() == [1, 0, 3, 2]


def test_identical_embeddings_agree_fully() -> None:
    fid = embedding_fidelity(REFERENCE, REFERENCE.copy())
    assert fid["cosine_mean"] == pytest.approx(1.0)
    assert fid["nn_agreement"] == 1.0


def test_high_cosine_can_hide_changed_neighbours() -> None:
    # move point 1 between the clusters and point 0 slightly: 0 and 1 are still each other's
    # nearest, but point 2's nearest becomes 1 instead of 3 — the agreement check must see it
    candidate = REFERENCE.copy()
    candidate[1] = [0.7, 0.71]
    candidate[0] = [1.0, -0.1]
    fid = embedding_fidelity(REFERENCE, candidate)
    assert fid["nn_agreement"] < 1.0
    ok, reason = judge(fid, Tolerance(min_cosine=0.5, min_agreement=0.95))
    assert not ok and reason is not None and "nn_agreement" in reason


def test_classification_with_and_without_labels() -> None:
    ref = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    cand = np.array([[2.0, 1.0], [0.0, 3.0], [0.0, 1.0], [0.0, 1.0]])
    fid = classification_fidelity(ref, cand)
    assert fid["top1_agreement"] == 0.75
    ok, reason = judge(fid, Tolerance(min_agreement=0.95))
    assert not ok and reason == "outside tolerance: top1_agreement 0.7500 < 0.9500"
    labelled = classification_fidelity(ref, cand, labels=np.array([0, 1, 1, 1]))
    # with labels the verdict is on accuracy: the variant is *more* accurate here, so it passes
    assert labelled["accuracy"] == 1.0 and labelled["reference_accuracy"] == 0.75
    assert judge(labelled, Tolerance())[0]


def test_regression_errors_and_bound() -> None:
    fid = regression_fidelity(np.array([[1.0], [2.0]]), np.array([[1.1], [2.0]]))
    assert fid["max_abs_error"] == pytest.approx(0.1)
    assert fid["mean_abs_error"] == pytest.approx(0.05)
    ok, reason = judge(fid, Tolerance(max_abs_error=0.05))
    assert not ok and reason is not None and "max_abs_error 0.1000 > 0.0500" in reason


def test_shape_mismatch_and_unknown_task_are_errors() -> None:
    with pytest.raises(BenchmarkError, match="differs from the original"):
        embedding_fidelity(REFERENCE, REFERENCE[:3])
    with pytest.raises(BenchmarkError, match="unknown task"):
        task_fidelity("ranking", REFERENCE, REFERENCE)
