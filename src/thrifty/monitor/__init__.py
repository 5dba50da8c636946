"""Watching live deployments: anomaly detection on their per-minute rollups (``anomaly``)."""

from __future__ import annotations

from thrifty.monitor.anomaly import (
    Alert,
    DetectorConfig,
    MinuteMetrics,
    SeriesRule,
    detect,
    metrics_from_requests,
)

__all__ = ["Alert", "DetectorConfig", "MinuteMetrics", "SeriesRule", "detect", "metrics_from_requests"]
