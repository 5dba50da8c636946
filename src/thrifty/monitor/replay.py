"""Replay a trace into a deployment's request log (to see what ``thrifty recommend`` makes of traffic
people have): one function's per-minute counts become request rows spread evenly over each minute,
ending at ``end``, each with the same latency."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from thrifty.errors import ConfigError


def busiest_function(trace: Any) -> int:
    """The index of the trace's function with the most requests."""
    return int(np.argmax(np.asarray(trace.counts).sum(axis=1)))


def replay_into_log(
    registry: Any,
    name: str,
    trace: Any,
    end: datetime,
    *,
    function: int | None = None,
    latency_ms: float = 20.0,
) -> int:
    """Write ``trace``'s function ``function`` (default: the busiest) as ``name``'s requests; returns how many."""
    if end.tzinfo is None:
        raise ConfigError("end is a naive datetime", hint="pass a timezone-aware UTC datetime")
    index = busiest_function(trace) if function is None else function
    counts = np.asarray(trace.counts)[index].astype(np.int64)
    start = end - timedelta(minutes=len(counts))
    rows = [
        {
            "model_name": name,
            "at": start + timedelta(minutes=minute, seconds=60 * i / count),
            "latency_ms": latency_ms,
            "cold": False,
            "status_code": 200,
        }
        for minute, count in enumerate(counts.tolist())
        if count
        for i in range(count)
    ]
    for chunk in range(0, len(rows), 5000):
        registry.log_requests_bulk(rows[chunk : chunk + 5000])
    return len(rows)
