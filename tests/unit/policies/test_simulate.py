"""The simulator's numbers on hand-made traces whose answers are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.policies.fixed import FixedKeepAlive
from thrifty.policies.histogram import HybridHistogram
from thrifty.policies.simulate import simulate, summarize
from thrifty.policies.trace import Trace


def trace_of(minutes: int, *invoked: list[int]) -> Trace:
    counts = np.zeros((len(invoked), minutes), dtype=np.int64)
    for row, at in enumerate(invoked):
        counts[row, at] = 2  # two invocations per invoked minute: per-invocation % is half
    return Trace(counts, tuple(f"f{i}" for i in range(len(invoked))), source="hand-made")


# A: invoked at 0, 3, 20; B: every minute 0..9; C: never (left out of the statistics). 30 minutes.
HAND = trace_of(30, [0, 3, 20], list(range(10)), [])


def test_fixed_keepalive_by_hand() -> None:
    five = simulate(HAND, FixedKeepAlive(5))
    ten = simulate(HAND, FixedKeepAlive(10))
    # fixed 5: A is cold at 0 (first) and 20 (17 min after 3), warm at 3; B is cold at 0 only.
    assert five.cold_minutes.tolist() == [2, 1, 0]
    # A wastes 1-2 (2), 4-8 (5), 21-25 (5) = 12; B wastes 10-14 = 5
    assert five.wasted_minutes.tolist() == [12, 5, 0]
    # fixed 10: A wastes 1-2 (2), 4-13 (10), 21-29 (9, the trace ends) = 21; B wastes 10-19 = 10
    assert ten.wasted_minutes.tolist() == [21, 10, 0]
    summary = summarize(five, ten)
    assert summary.functions == 2
    assert summary.cold_pct_mean == pytest.approx((200 / 3 + 10) / 2)  # 38.33
    assert summary.cold_pct_p75 == pytest.approx(10 + 0.75 * (200 / 3 - 10))  # numpy's linear p75: 52.5
    assert summary.cold_pct_per_invocation_mean == pytest.approx((100 / 3 + 5) / 2)
    assert summary.wasted_memory_pct == pytest.approx(100 * 17 / 31)
    assert summarize(ten, ten).wasted_memory_pct == pytest.approx(100.0)


def test_memory_weighting_and_dollars() -> None:
    five, ten = simulate(HAND, FixedKeepAlive(5)), simulate(HAND, FixedKeepAlive(10))
    memory_mb = np.array([1024.0, 3072.0, 512.0])
    summary = summarize(five, ten, memory_mb, usd_per_gib_hour=0.6)
    # weighted waste: A 12 min × 1 GiB + B 5 min × 3 GiB = 27 GiB-min; fixed 10: 21 + 30 = 51
    assert summary.wasted_memory_weighted_pct == pytest.approx(100 * 27 / 51)
    assert summary.wasted_gib_hours == pytest.approx(27 / 60)
    assert summary.wasted_usd == pytest.approx(27 / 60 * 0.6)
    assert isinstance(summary.wasted_usd, float)


def test_hybrid_histogram_by_hand() -> None:
    # every 10 minutes (idle time 9) over 50 minutes
    periodic = trace_of(50, [0, 10, 20, 30, 40])
    result = simulate(periodic, HybridHistogram(), record_windows=True)
    # 0: first, cold; no idle time yet → standard keep-alive (0, 240): 10 is warm, 1-9 wasted (9).
    # Then one IT of 9 min: one bin of 240 → CV = sqrt(240) ≈ 15.5 ≥ 2, representative;
    # head = tail = 9 → pre-warm floor(9 × 0.9) = 8, keep-alive ceil(10 × 1.1) − 8 = 3:
    # loaded 9-11 min after each invocation; 20, 30, 40 warm, minute 19, 29, 39 and 49 wasted.
    assert result.windows[1][0][0] == 0 and result.windows[1][1][0] == 240
    assert result.windows[11][0][0] == 8 and result.windows[11][1][0] == 3
    assert result.cold_minutes.tolist() == [1]
    assert result.wasted_minutes.tolist() == [9 + 1 + 1 + 1 + 1]
    assert result.prewarms.tolist() == [4]  # loaded at 19, 29, 39 and 49 with nothing running before
    assert simulate(periodic, FixedKeepAlive(10)).prewarms.tolist() == [0]


def test_hybrid_flat_histogram_falls_back_to_standard_keepalive() -> None:
    # idle times 0, 1, 2, ... spread over many bins: a flat histogram (CV < 2) is not representative
    at = np.cumsum(np.arange(1, 40)).tolist()
    result = simulate(trace_of(at[-1] + 5, at), HybridHistogram(range_min=40), record_windows=True)
    prewarm, keepalive = result.windows[-1]
    assert (prewarm[0], keepalive[0]) == (0, 40)


def test_hybrid_out_of_bounds_uses_the_forecast() -> None:
    # idle times of 29 with a 20-minute range: all out of bounds → forecast 29,
    # pre-warm floor(29 × 0.85) = 24, keep-alive ceil(29 × 0.3) = 9 → loaded 25-33 min after
    at = [0, 30, 60, 90]
    result = simulate(trace_of(100, at), HybridHistogram(range_min=20), record_windows=True)
    prewarm, keepalive = result.windows[95]
    assert (prewarm[0], keepalive[0]) == (24, 9)
    assert result.cold_minutes.tolist() == [2]  # 0 (first) and 30 (standard keep-alive of 20 ran out)
