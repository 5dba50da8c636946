"""No policy reads the future: changing minutes ≥ t leaves every decision up to t unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.policies import get_policy
from thrifty.policies.simulate import simulate
from thrifty.policies.trace import Trace

CUT_MIN = 300


def random_trace(seed: int, minutes: int = 600, functions: int = 120) -> Trace:
    rng = np.random.default_rng(seed)
    rates = np.logspace(-2.5, 0.5, functions)[:, None]
    counts = rng.poisson(rates, size=(functions, minutes)).astype(np.int64)
    periodic = np.zeros((20, minutes), dtype=np.int64)
    for row in range(20):
        periodic[row, rng.integers(0, 30) :: 15 + 3 * row] = 1  # timers: ITs of 14, 17, …
    counts = np.vstack([counts, periodic])
    return Trace(counts, tuple(map(str, range(len(counts)))), source=f"random-{seed}")


@pytest.mark.parametrize("name", ["fixed-10", "hybrid-histogram", "thrifty-cost-aware"])
def test_decisions_up_to_t_ignore_the_future(name: str) -> None:
    original = random_trace(1)
    future = random_trace(2).counts
    perturbed = Trace(
        np.concatenate([original.counts[:, :CUT_MIN], future[:, CUT_MIN:]], axis=1),
        original.names,
        source="perturbed",
    )
    a = simulate(original, get_policy(name), record_windows=True)
    b = simulate(perturbed, get_policy(name), record_windows=True)
    # windows[t] is what the policy holds when minute t starts, learned from minutes < t
    for minute in range(CUT_MIN + 1):
        np.testing.assert_array_equal(a.windows[minute][0], b.windows[minute][0], err_msg=f"minute {minute}")
        np.testing.assert_array_equal(a.windows[minute][1], b.windows[minute][1], err_msg=f"minute {minute}")
    if not name.startswith("fixed"):  # the check can fail: after the cut, learning policies diverge
        later = range(CUT_MIN + 1, original.minutes)
        assert any(not np.array_equal(a.windows[m][1], b.windows[m][1]) for m in later)
