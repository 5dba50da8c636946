"""Fixed keep-alive: the state of practice (AWS Lambda ~10 min, Azure Functions 20 min, HF 1 h)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.policies.base import FloatArray, IntArray


@dataclass(frozen=True)
class FixedKeepAlive:
    """Keep the instance loaded for ``keepalive_min`` minutes after each invoked minute."""

    keepalive_min: float = 10.0

    def __post_init__(self) -> None:
        if self.keepalive_min < 0:
            raise ConfigError(
                f"keepalive_min={self.keepalive_min} is negative",
                hint="use 0 (scale to zero at once) or more",
            )

    @property
    def name(self) -> str:
        return f"fixed-{self.keepalive_min:g}"

    def settings(self) -> Mapping[str, Any]:
        return {"keepalive_min": self.keepalive_min}

    def start(self, n_functions: int) -> _FixedStepper:
        return _FixedStepper(np.zeros(n_functions), np.full(n_functions, float(self.keepalive_min)))


@dataclass
class _FixedStepper:
    prewarm_min: FloatArray
    keepalive_min: FloatArray

    def windows(self) -> tuple[FloatArray, FloatArray]:
        return self.prewarm_min, self.keepalive_min

    def observe(self, minute: int, counts: IntArray) -> None:
        return None
