from __future__ import annotations

from pathlib import Path

import pytest

from thrifty.policies.trace import Trace, load_trace


@pytest.fixture(scope="session")
def azure_sample(shared_data: Path) -> Trace:
    folder = shared_data / "traces" / "azure_functions_2019_sample1000"
    if not (folder / "invocations_per_minute.csv").is_file():
        pytest.skip(f"the shared Azure Functions sample is missing at {folder}")
    return load_trace(folder)
