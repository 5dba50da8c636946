"""The CLI as a user runs it: a subprocess for start-up cost, typer's runner for behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from thrifty.cli import app

runner = CliRunner()


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, runpy; sys.argv = ['thrifty', '--help']\n"
        "try:\n    from thrifty.cli import main; main()\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'boto3', 'pandas', 'sqlalchemy', 'prefect')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ingest" in out and "models" in out
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_ingest_twice_keeps_one_version(thrifty_home: Path, tmp_path: Path) -> None:
    import torch

    path = tmp_path / "tiny.pt2"
    model = torch.nn.Linear(3, 2)
    torch.export.save(torch.export.export(model, (torch.randn(1, 3),)), str(path))
    first = runner.invoke(app, ["ingest", str(path), "--name", "tiny", "--json"])
    second = runner.invoke(app, ["ingest", str(path), "--name", "tiny", "--json"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert json.loads(first.stdout)["created"] is True
    assert json.loads(second.stdout)["created"] is False
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    assert [(m["model"], m["versions"], m["format"]) for m in listed] == [("tiny", 1, "torch_export")]
    shown = runner.invoke(app, ["models", "show", "tiny"])
    assert shown.exit_code == 0 and "torch_export" in shown.stdout


def test_bad_input_exits_non_zero_with_the_fix(thrifty_home: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"\x08\x07garbage that is not protobuf" * 3)
    result = subprocess.run(
        [sys.executable, "-m", "thrifty", "ingest", str(garbage), "--name", "g"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert result.returncode == 1
    assert "model.onnx" in result.stderr and "fix:" in result.stderr
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert json.loads(listed.stdout) == []


def test_unknown_model_is_an_error_naming_the_fix(thrifty_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "thrifty", "models", "show", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "thrifty ingest" in result.stderr
