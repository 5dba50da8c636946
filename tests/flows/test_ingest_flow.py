"""The ingest flow under the Prefect test harness."""

from __future__ import annotations

from pathlib import Path

from flows.ingest import IngestParams, ingest
from thrifty import runtime


def test_ingest_flow_registers_once(thrifty_home: Path, tmp_path: Path) -> None:
    import torch

    path = tmp_path / "lin.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.randn(1, 2),)), str(path))
    first = ingest(IngestParams(path=str(path), name="lin"))
    second = ingest(IngestParams(path=str(path), name="lin"))
    assert first["created"] is True and second["created"] is False
    assert first["version_id"] == second["version_id"]
    assert [v.version for v in runtime.registry().get_model("lin").versions] == [1]
