"""`make run` (flows.demo) ends a failure with its cause and fix, not a traceback."""

from __future__ import annotations

from typing import Any

import pytest


def test_a_failed_demo_prints_the_cause_and_the_fix(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import flows.demo
    from thrifty.errors import SloUnreachableError

    def unreachable(console: Any) -> int:
        raise SloUnreachableError("no (variant, offer) meets p95 ≤ 50 ms", hint="loosen --p95-ms")

    monkeypatch.setattr(flows.demo, "_run", unreachable)
    assert flows.demo.main() == 1
    err = capsys.readouterr().err
    assert "make run failed: no (variant, offer) meets p95 ≤ 50 ms" in err and "fix: loosen --p95-ms" in err
    assert "Traceback" not in err
