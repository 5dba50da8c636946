"""Issue 18 item 2: a usage error prints one or two lines and exits 2 — never a traceback.

Run through the real console entry point (``python -m thrifty`` calls ``thrifty.cli.main``) in a
subprocess, as a user types it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _thrifty(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THRIFTY_HOME": str(home), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "thrifty", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["plan", "minilm", "--rps", "20"], "Missing option '--p95-ms'"),  # a missing option
        (["plan", "minilm", "--p95ms", "50", "--rps", "20"], "No such option: --p95ms"),  # a misspelt flag
        (["plan", "minilm", "--p95-ms", "50", "--rps", "abc"], "Invalid value for '--rps'"),  # a bad value
        (["modles"], "No such command 'modles'. Did you mean 'models'?"),  # an unknown command
        (["prices", "show", "--limit", "0"], "Invalid value for '--limit'"),  # out of range
    ],
)
def test_usage_errors_are_two_lines_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    result = _thrifty(*args, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("error: ") and says in lines[0]
    assert lines[-1].startswith("see `thrifty") and lines[-1].endswith(" --help`")
    assert result.stdout == ""


def test_a_thrifty_error_still_exits_1_with_the_fix(tmp_path: Path) -> None:
    result = _thrifty("plan", "explain", "99", home=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
