"""How far a variant may drift from the original before the guardrail rejects it.

The judge (``bench.fidelity.judge``) reads it; the optimize pipeline, the int8 search and the flows
pass it down. It lives here, beside the judge, so that bench never imports optimize.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.errors import ConfigError


def _check_fraction(name: str, value: float, *, low: float = 0.0, high: float = 1.0) -> None:
    if not low <= value <= high:
        raise ConfigError(
            f"{name}={value} is outside [{low}, {high}]", hint=f"pick a {name} between {low} and {high}"
        )


@dataclass
class Tolerance:
    """How far a variant may drift from the original before it is rejected."""

    min_cosine: float = 0.99
    min_agreement: float = 0.95
    max_accuracy_drop: float = 0.01
    max_abs_error: float | None = None

    def __post_init__(self) -> None:
        _check_fraction("min_cosine", self.min_cosine, low=-1.0)
        _check_fraction("min_agreement", self.min_agreement)
        _check_fraction("max_accuracy_drop", self.max_accuracy_drop)
