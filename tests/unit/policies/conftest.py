from __future__ import annotations

from pathlib import Path

import pytest

from thrifty.policies.trace import Trace, load_trace


@pytest.fixture(scope="session")
def azure_sample(shared_data: Path) -> Trace:
    folder = shared_data / "traces" / "azure_functions_2019_sample1000"
    if not (folder / "invocations_per_minute.csv").is_file():
        pytest.skip(
            f"needs invocations_per_minute.csv of the Azure Functions 2019 sample (shared data beside "
            f"the checkout); not found in {folder}"
        )
    return load_trace(folder)
