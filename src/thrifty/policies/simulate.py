"""Replay a per-minute trace against a policy, as in Shahrad et al. (ATC'20), vectorized over functions.

The model, at one-minute resolution: each function has one instance; an invoked minute is a
cold start when the instance is not loaded in it (one cold invocation per cold minute); wasted
memory is the loaded minutes without an invocation, counted inside the trace only. The policy's
stepper sees minute ``t`` only after the windows for minute ``t`` were read, so it cannot use the
future (tests perturb the future and compare decisions).

Reported over functions with at least one invocation: the 75th percentile and the mean of each
function's cold-start % (per invoked minute and per invocation), and the total wasted memory as a %
of the fixed 10-minute keep-alive's (plain and weighted by each function's memory), plus dollars
at a given $/GiB-hour.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.policies.base import NEVER, FloatArray, IntArray, Policy, loaded_mask
from thrifty.policies.fixed import FixedKeepAlive
from thrifty.policies.trace import Trace

FIXED_CURVE_MIN = (5, 10, 20, 30, 60, 120, 240)
BASELINE_MIN = 10


@dataclass(frozen=True)
class SimulationResult:
    """Per-function outcome of one policy on one trace."""

    policy: str
    settings: Mapping[str, Any]
    invoked_minutes: IntArray
    invocations: IntArray
    cold_minutes: IntArray
    wasted_minutes: IntArray
    prewarms: IntArray
    elapsed_s: float
    windows: list[tuple[FloatArray, FloatArray]] = field(default_factory=list)


@dataclass(frozen=True)
class PolicySummary:
    policy: str
    cold_pct_p75: float
    cold_pct_mean: float
    cold_pct_per_invocation_p75: float
    cold_pct_per_invocation_mean: float
    wasted_memory_pct: float
    wasted_memory_weighted_pct: float
    wasted_gib_hours: float
    wasted_usd: float | None
    prewarms_per_function_day: float
    functions: int
    elapsed_s: float
    settings: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def simulate(trace: Trace, policy: Policy, *, record_windows: bool = False) -> SimulationResult:
    """Drive ``policy`` over ``trace`` minute by minute."""
    started = time.perf_counter()
    counts = np.ascontiguousarray(trace.counts.T)
    n = trace.n_functions
    stepper = policy.start(n)
    last = np.full(n, NEVER, dtype=np.int64)
    cold = np.zeros(n, dtype=np.int64)
    wasted = np.zeros(n, dtype=np.int64)
    prewarms = np.zeros(n, dtype=np.int64)
    was_up = np.zeros(n, dtype=bool)
    recorded: list[tuple[FloatArray, FloatArray]] = []
    for minute in range(trace.minutes):
        prewarm_min, keepalive_min = stepper.windows()
        if record_windows:
            recorded.append((prewarm_min.copy(), keepalive_min.copy()))
        loaded = loaded_mask(minute, last, prewarm_min, keepalive_min)
        invoked = counts[minute] > 0
        cold += invoked & ~loaded
        wasted += loaded & ~invoked
        prewarms += loaded & ~was_up  # loaded without a request bringing it up: a pre-warm
        was_up = loaded | invoked
        stepper.observe(minute, counts[minute])
        last[invoked] = minute
    return SimulationResult(
        policy=policy.name,
        settings=dict(policy.settings()),
        invoked_minutes=(trace.counts > 0).sum(axis=1).astype(np.int64),
        invocations=trace.counts.sum(axis=1).astype(np.int64),
        cold_minutes=cold,
        wasted_minutes=wasted,
        prewarms=prewarms,
        elapsed_s=time.perf_counter() - started,
        windows=recorded,
    )


def summarize(
    result: SimulationResult,
    baseline: SimulationResult,
    memory_mb: FloatArray | None = None,
    usd_per_gib_hour: float | None = None,
    minutes: int = 1440,
) -> PolicySummary:
    """Cold-start percentiles over invoked functions; memory relative to ``baseline`` (fixed 10 min)."""
    active = result.invoked_minutes > 0
    per_minute = 100.0 * result.cold_minutes[active] / result.invoked_minutes[active]
    per_invocation = 100.0 * result.cold_minutes[active] / result.invocations[active]
    memory_gib = memory_mb / 1024.0 if memory_mb is not None else np.ones_like(result.wasted_minutes, float)
    gib_hours = float((result.wasted_minutes * memory_gib).sum() / 60.0)
    base_gib_hours = float((baseline.wasted_minutes * memory_gib).sum() / 60.0)
    return PolicySummary(
        policy=result.policy,
        cold_pct_p75=float(np.percentile(per_minute, 75)),
        cold_pct_mean=float(per_minute.mean()),
        cold_pct_per_invocation_p75=float(np.percentile(per_invocation, 75)),
        cold_pct_per_invocation_mean=float(per_invocation.mean()),
        wasted_memory_pct=_pct(result.wasted_minutes.sum(), baseline.wasted_minutes.sum()),
        wasted_memory_weighted_pct=_pct(gib_hours, base_gib_hours),
        wasted_gib_hours=gib_hours,
        wasted_usd=None if usd_per_gib_hour is None else float(gib_hours * usd_per_gib_hour),
        prewarms_per_function_day=_per_function_day(result.prewarms[active].sum(), active.sum(), minutes),
        functions=int(active.sum()),
        elapsed_s=float(result.elapsed_s),
        settings=dict(result.settings),
    )


def _per_function_day(total: float, functions: int, minutes: int) -> float:
    return float(total / max(functions, 1) / max(minutes, 1) * 1440.0)


def _pct(value: float, base: float) -> float:
    return float(100.0 * value / base) if base > 0 else float("nan")


def compare(
    trace: Trace,
    policies: Iterable[Policy],
    *,
    fixed_curve_min: Sequence[float] = FIXED_CURVE_MIN,
    usd_per_gib_hour: float | None = None,
) -> list[PolicySummary]:
    """The fixed keep-alive curve plus each policy, normalized to the fixed 10-minute keep-alive."""
    baseline = simulate(trace, FixedKeepAlive(BASELINE_MIN))
    chosen: list[Policy] = [FixedKeepAlive(m) for m in fixed_curve_min]
    chosen += list(policies)
    return [
        summarize(
            baseline if _is_baseline(p) else simulate(trace, p),
            baseline,
            trace.memory_mb,
            usd_per_gib_hour,
            trace.minutes,
        )
        for p in chosen
    ]


def _is_baseline(policy: Policy) -> bool:
    return isinstance(policy, FixedKeepAlive) and policy.keepalive_min == BASELINE_MIN


def below_fixed_curve(point: PolicySummary, curve: Sequence[PolicySummary], metric: str) -> bool:
    """Whether ``point`` beats the fixed keep-alive curve (interpolated) at its memory level."""
    fixed = sorted((s for s in curve if s.policy.startswith("fixed-")), key=lambda s: s.wasted_memory_pct)
    memory = [s.wasted_memory_pct for s in fixed]
    values = [getattr(s, metric) for s in fixed]
    return bool(getattr(point, metric) <= float(np.interp(point.wasted_memory_pct, memory, values)))


def plot_tradeoff(summaries: Sequence[PolicySummary], png: Path, title: str) -> Path:
    """Cold-start % (p75 and mean) against wasted memory %: the fixed curve and each policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed = sorted((s for s in summaries if s.policy.startswith("fixed-")), key=lambda s: s.wasted_memory_pct)
    others = [s for s in summaries if not s.policy.startswith("fixed-")]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in zip(axes, ("cold_pct_p75", "cold_pct_mean"), ("p75", "mean"), strict=True):
        _draw_panel(ax, fixed, others, metric, label)
    figure.suptitle(title)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(png)
    return png


def _draw_panel(
    ax: Any, fixed: list[PolicySummary], others: list[PolicySummary], metric: str, label: str
) -> None:
    ax.plot(
        [s.wasted_memory_pct for s in fixed],
        [getattr(s, metric) for s in fixed],
        "o-",
        color="gray",
        label="fixed keep-alive",
    )
    for s in fixed:
        ax.annotate(
            s.policy.removeprefix("fixed-"),
            (s.wasted_memory_pct, getattr(s, metric)),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
            color="gray",
        )
    for s, marker in zip(others, "s^Dvp*", strict=False):
        ax.plot([s.wasted_memory_pct], [getattr(s, metric)], marker, markersize=9, label=s.policy)
    ax.set_xlabel("wasted memory, % of fixed 10-min keep-alive")
    ax.set_ylabel(f"{label} of per-function cold-start %")
    ax.axvline(100, color="lightgray", linestyle=":")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")  # "best" searches the data and warns when slow


def table_markdown(summaries: Sequence[PolicySummary]) -> str:
    lines = [
        "| policy | cold % p75 | cold % mean | per-invocation cold % p75 / mean | wasted memory % "
        "| weighted by memory % | pre-warms per function-day | time s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.policy} | {s.cold_pct_p75:.1f} | {s.cold_pct_mean:.1f} | "
            f"{s.cold_pct_per_invocation_p75:.1f} / {s.cold_pct_per_invocation_mean:.1f} | "
            f"{s.wasted_memory_pct:.1f} | {s.wasted_memory_weighted_pct:.1f} | {s.prewarms_per_function_day:.1f} | "
            f"{s.elapsed_s:.2f} |"
        )
    return "\n".join(lines)
