"""The shape every policy shares: per-function windows after the last invoked minute.

A policy is a pure description (name + settings). ``start(n_functions)`` returns a *stepper* that
holds the policy's state for ``n_functions`` functions (one deployed model = one function). The
simulator and the decision API drive a stepper the same way, one minute at a time:

    for t in range(minutes):
        prewarm_min, keepalive_min = stepper.windows()   # decided from minutes < t only
        loaded = loaded_mask(t, last, prewarm_min, keepalive_min)
        stepper.observe(t, counts[:, t])                  # then minute t becomes the past

After a function's last invoked minute ``last`` its instance is unloaded for ``prewarm_min``
minutes, then loaded for ``keepalive_min`` minutes: loaded in minute ``u`` iff
``prewarm_min < u - last <= prewarm_min + keepalive_min``. A fixed keep-alive of k minutes is
``(0, k)``. An invoked minute whose instance is not loaded is a cold start; the instance is then
loaded for that minute, which becomes the new ``last``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: ``last`` of a function never invoked so far
NEVER = -(10**9)


class Action(StrEnum):
    KEEP_WARM = "keep-warm"
    HIBERNATE = "hibernate"
    PRE_WARM = "pre-warm"


class Stepper(Protocol):
    """The online state of one policy over ``n`` functions."""

    def windows(self) -> tuple[FloatArray, FloatArray]:
        """``(prewarm_min, keepalive_min)`` per function, relative to its last invoked minute."""
        ...

    def observe(self, minute: int, counts: IntArray) -> None:
        """Minute ``minute`` is over: ``counts[i]`` invocations of function ``i`` happened in it."""
        ...


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def settings(self) -> Mapping[str, Any]: ...

    def start(self, n_functions: int) -> Stepper: ...


def loaded_mask(minute: int, last: IntArray, prewarm_min: FloatArray, keepalive_min: FloatArray) -> BoolArray:
    """Which instances are loaded in ``minute`` given each function's last invoked minute."""
    gap = minute - last
    loaded: BoolArray = (last != NEVER) & (gap > prewarm_min) & (gap <= prewarm_min + keepalive_min)
    return loaded


@dataclass
class LastSeen:
    """Each function's last invoked minute and invoked-minute count (shared by steppers)."""

    last: IntArray
    invoked_minutes: IntArray

    @classmethod
    def empty(cls, n_functions: int) -> LastSeen:
        return cls(np.full(n_functions, NEVER, dtype=np.int64), np.zeros(n_functions, dtype=np.int64))

    def idle_minutes(self, minute: int, invoked: BoolArray) -> tuple[IntArray, IntArray]:
        """(function index, idle minutes since its previous invoked minute) for repeat invocations."""
        repeat = invoked & (self.last != NEVER)
        rows = np.flatnonzero(repeat)
        return rows, (minute - self.last[rows] - 1).astype(np.int64)

    def update(self, minute: int, invoked: BoolArray) -> None:
        self.last[invoked] = minute
        self.invoked_minutes[invoked] += 1
