from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from thrifty.errors import ConfigError, NotFoundError
from thrifty.policies.trace import Trace, bin_timestamps, dilate_llm_requests, load_trace


def test_azure_sample_shape_and_memory_join(azure_sample: Trace) -> None:
    assert azure_sample.counts.shape == (1000, 1440)
    assert int(azure_sample.counts.sum()) == 11_639_447  # the README's total
    assert azure_sample.memory_mb is not None and not np.isnan(azure_sample.memory_mb).any()
    # rows of memory.csv are in another order: the join is by hash, not by position
    assert azure_sample.memory_mb.min() > 0


def test_llm_trace_binned_per_minute(shared_data: Path) -> None:
    folder = shared_data / "traces" / "azure_llm_inference_2023"
    if not folder.is_dir():
        pytest.skip(
            f"needs the Azure LLM inference 2023 trace CSVs (shared data beside the checkout); not found in {folder}"
        )
    trace = load_trace(folder)
    assert trace.names == ("code", "conv")
    assert trace.counts.sum(axis=1).tolist() == [8_819, 19_366]  # every request, README's counts
    assert 57 <= trace.minutes <= 60
    derived = dilate_llm_requests(folder / "AzureLLMInferenceTrace_code.csv", 10)
    assert derived.n_functions == 10 and derived.minutes > 3000
    assert derived.counts.sum(axis=1)[0] < derived.counts.sum(axis=1)[-1]  # sparse to busy copies


def test_windows_thinning_and_binning() -> None:
    trace = Trace(np.array([[5, 0, 3, 1]]), ("f",), source="t")
    assert trace.window(1, 3, "middle").counts.tolist() == [[0, 3]]
    thinned = trace.thinned(0.5, seed=3)
    assert (thinned.counts <= trace.counts).all()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [start + timedelta(seconds=s) for s in (5, 59, 61, 250, 9999)]
    assert bin_timestamps(stamps, start, 5).tolist() == [2, 1, 0, 0, 1]


def test_bad_traces_are_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no trace"):
        load_trace(tmp_path)
    with pytest.raises(ConfigError, match="negative"):
        Trace(np.array([[1, -1]]), ("f",))
    with pytest.raises(ConfigError, match="naive"):
        bin_timestamps([], datetime(2026, 1, 1), 3)
