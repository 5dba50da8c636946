"""`thrifty serve` in the foreground: a real process that serves, then drains and exits on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_thrifty_serve_answers_and_stops_cleanly(mlp_path: Path, thrifty_home: Path) -> None:
    port = free_port()
    thrifty = Path(sys.executable).parent / "thrifty"
    proc = subprocess.Popen(
        [str(thrifty), "serve", str(mlp_path), "--name", "mlp", "--port", str(port)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/models/mlp/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        response = httpx.post(f"{url}/v2/models/mlp/infer", json=body)
        assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [1, 3]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"serving mlp on http://127.0.0.1:" in out
