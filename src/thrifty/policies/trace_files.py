"""Trace files people have, read into a :class:`~thrifty.policies.trace.Trace` (functions × minutes).

Three shapes are accepted, told apart by their header, never by the file name alone:

* a per-minute table, one row per function: the Azure Functions 2019 trace as published
  (``HashOwner,HashApp,HashFunction,Trigger,1,2,…,1440``) or the sampler's ``minute_1 … minute_N``;
* an arrivals file, one row per request (CSV, or JSON lines): a timestamp column (seconds or
  milliseconds since the epoch or since the trace's start, or date-time text such as the Azure
  LLM 2023 trace's ``TIMESTAMP``), optionally a column naming the model or function;
* a deployment's request log in the registry (``load_request_log``).

Every refusal is a :class:`~thrifty.errors.ConfigError` that names the file and says what to change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import ConfigError, NotFoundError
from thrifty.policies.base import FloatArray, IntArray
from thrifty.policies.trace import Trace, bin_offsets, bin_timestamps

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.registry import Registry

TIME_UNITS = ("auto", "s", "ms")
TIME_COLUMNS = ("timestamp", "time", "ts", "at", "arrival", "arrival_time", "start_time")
TIME_PREFIXES = ("timestamp", "arrival", "time_")
GROUP_COLUMNS = ("function", "hashfunction", "model", "model_name", "deployment", "service", "app", "name")
NAME_COLUMNS = ("HashFunction", "function", "name", "HashApp")
EPOCH_MS_ABOVE = 1e11  # seconds since 1970 stay below this until the year 5138
ARRIVAL_SUFFIXES = (".jsonl", ".ndjson")
LAYOUT_HINT = (
    "give a per-minute table (Azure Functions 2019: HashFunction,Trigger,1,…,1440 or minute_1,…) "
    "or one row per request with a timestamp column (" + ", ".join(TIME_COLUMNS) + ")"
)


def read_trace_file(path: Path, time_unit: str = "auto") -> Trace:
    """A per-minute table or an arrivals file (CSV or JSON lines)."""
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"time unit {time_unit!r}", hint=f"use one of {', '.join(TIME_UNITS)}")
    frame = _read_jsonl(path) if path.suffix.lower() in ARRIVAL_SUFFIXES else _read_csv(path)
    if _count_columns(frame.columns):
        return minute_table(frame, path)
    return arrivals_trace(frame, path, time_unit)


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable CSV table ({exc})", hint=LAYOUT_HINT) from exc
    if frame.empty:
        raise ConfigError(f"{path} has a header but no rows", hint=LAYOUT_HINT)
    return frame


def _read_jsonl(path: Path) -> pd.DataFrame:
    """One JSON object per line (a bare number is a timestamp); blank lines are skipped."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_json_row(path, number, line))
    if not rows:
        raise ConfigError(f"{path} holds no JSON lines", hint='write one request per line, e.g. {"ts": 1.5}')
    return pd.DataFrame(rows)


def _json_row(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} line {number} is not JSON ({exc.msg})", hint='one JSON object per line, e.g. {"ts": 1.5}'
        ) from exc
    if isinstance(value, dict):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"timestamp": value}
    raise ConfigError(
        f"{path} line {number} is a {type(value).__name__}, not an object",
        hint="one request per line: an object with a timestamp field, or a bare number",
    )


# -- per-minute tables ------------------------------------------------------------------------
def _count_columns(columns: Sequence[Any]) -> list[str]:
    """The minute columns in minute order: ``minute_N`` or the published layout's bare ``N``."""
    named = {int(m.group(1)): str(c) for c in columns if (m := re.fullmatch(r"minute_(\d+)", str(c)))}
    if not named:
        named = {int(str(c)): str(c) for c in columns if re.fullmatch(r"\d+", str(c).strip())}
    return [named[k] for k in sorted(named)]


def minute_table(frame: pd.DataFrame, path: Path) -> Trace:
    """One row per function, one column per minute; a Trigger column is kept for filtering."""
    columns = _count_columns(frame.columns)
    numbers = [int(re.sub(r"\D", "", c)) for c in columns]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))[:5]
        raise ConfigError(
            f"{path}: minute columns skip {missing}", hint="every minute needs a column, 0 if idle"
        )
    counts = _integer_counts(frame[columns], path)
    names = _row_names(frame, path)
    triggers = tuple(str(t) for t in frame["Trigger"]) if "Trigger" in frame.columns else None
    return Trace(counts, names, source=path.name, triggers=triggers)


def _integer_counts(table: pd.DataFrame, path: Path) -> IntArray:
    import pandas as pd

    numeric = table.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() | (numeric < 0) | (numeric % 1 != 0)
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise ConfigError(
            f"{path}: line {row + 2}, column {table.columns[col]!r} holds {str(table.iat[row, col])!r}",
            hint="minute columns hold whole invocation counts ≥ 0 (write 0 for an idle minute)",
        )
    result: IntArray = numeric.to_numpy(dtype=np.int64)
    return result


def _row_names(frame: pd.DataFrame, path: Path) -> tuple[str, ...]:
    for column in NAME_COLUMNS:
        if column in frame.columns:
            names = [str(v) for v in frame[column]]
            if len(set(names)) < len(names) and {"HashOwner", "HashApp"} <= set(frame.columns):
                names = [
                    f"{o}/{a}/{f}"
                    for o, a, f in zip(frame["HashOwner"], frame["HashApp"], names, strict=True)
                ]
            return tuple(names)
    return tuple(f"{path.stem}-{i}" for i in range(len(frame)))


def join_days(days: Sequence[Trace], source: str) -> Trace:
    """Consecutive days of the published trace side by side; a function absent on a day counts 0."""
    names = sorted({n for day in days for n in day.names})
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), sum(d.minutes for d in days)), dtype=np.int64)
    triggers = dict.fromkeys(names, "")
    offset = 0
    for day in days:
        rows = [index[n] for n in day.names]
        counts[rows, offset : offset + day.minutes] = day.counts
        triggers.update(zip(day.names, day.triggers or ("",) * len(day.names), strict=True))
        offset += day.minutes
    has_triggers = any(d.triggers for d in days)
    return Trace(
        counts, tuple(names), source=source, triggers=tuple(triggers.values()) if has_triggers else None
    )


# -- arrivals (one row per request) -----------------------------------------------------------
def _time_column(frame: pd.DataFrame, path: Path) -> str:
    lowered = {str(c).strip().lower(): str(c) for c in frame.columns}
    for name in TIME_COLUMNS:
        if name in lowered:
            return lowered[name]
    for low, original in lowered.items():
        if low.startswith(TIME_PREFIXES):
            return original
    raise ConfigError(
        f"{path} has neither minute columns nor a timestamp column (columns: {', '.join(map(str, frame.columns[:8]))})",
        hint=LAYOUT_HINT,
    )


def _group_column(frame: pd.DataFrame) -> str | None:
    lowered = {str(c).strip().lower(): str(c) for c in frame.columns}
    return next((lowered[n] for n in GROUP_COLUMNS if n in lowered), None)


def arrival_seconds(values: pd.Series, column: str, path: Path, time_unit: str) -> FloatArray:
    """Arrival times as seconds (epoch or relative), from numbers or date-time text."""
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        seconds: FloatArray = numeric.to_numpy(dtype=np.float64)
        return seconds / 1000.0 if _unit(column, seconds, time_unit) == "ms" else seconds
    if numeric.notna().any():
        row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
        raise ConfigError(
            f"{path}: {column!r} mixes numbers and text ({_where(path, row)}: {values.iat[row]!r})",
            hint="use one timestamp form for every request",
        )
    return _datetime_seconds(values, column, path)


def _where(path: Path, row: int) -> str:
    """Where a data row sits, as a person finds it: CSV line (header is line 1) or JSON record."""
    return f"record {row + 1}" if path.suffix.lower() in ARRIVAL_SUFFIXES else f"line {row + 2}"


def _unit(column: str, seconds: FloatArray, time_unit: str) -> str:
    if time_unit != "auto":
        return time_unit
    low = column.lower()
    if low.endswith("ms"):
        return "ms"
    if low.endswith(("_s", "_sec", "_seconds")):
        return "s"
    return "ms" if float(np.nanmax(np.abs(seconds))) >= EPOCH_MS_ABOVE else "s"


def _datetime_seconds(values: pd.Series, column: str, path: Path) -> FloatArray:
    """Date-time text; text without a zone is read as UTC (the Azure traces state none)."""
    import pandas as pd

    try:
        stamps = pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(
            f"{path}: {column!r} holds something that is not a time ({exc})",
            hint="timestamps are seconds or milliseconds (numbers) or ISO 8601 text",
        ) from exc
    seconds: FloatArray = (stamps.astype("int64") / 1e9).to_numpy(dtype=np.float64)
    return seconds


def arrivals_trace(frame: pd.DataFrame, path: Path, time_unit: str = "auto") -> Trace:
    """Requests binned per minute from the minute of the first arrival; one function per group."""
    column = _time_column(frame, path)
    if frame[column].isna().any():
        row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
        raise ConfigError(
            f"{path}: {_where(path, row)} has no {column!r}", hint="every request needs a timestamp"
        )
    seconds = arrival_seconds(frame[column], column, path, time_unit)
    start_s = np.floor(seconds.min() / 60.0) * 60.0
    offsets_min = (seconds - start_s) / 60.0
    width = int(offsets_min.max()) + 1
    group = _group_column(frame)
    if group is None:
        return Trace(bin_offsets(offsets_min, width)[None, :], (path.stem,), source=path.name)
    labels = frame[group].astype(str).to_numpy()
    names = tuple(sorted(set(labels)))
    counts = np.stack([bin_offsets(offsets_min[labels == n], width) for n in names])
    return Trace(counts, names, source=path.name)


# -- a deployment's request log ---------------------------------------------------------------
def load_request_log(registry: Registry, names: Sequence[str], until: datetime, days: float) -> Trace:
    """Each deployment's gateway request log, per minute, over ``days`` before ``until``."""
    if until.tzinfo is None:
        raise ConfigError("until is a naive datetime", hint="pass a timezone-aware UTC datetime")
    minutes = max(int(days * 1440), 1)
    start = until.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    rows = []
    for name in names:
        registry.get_deployment(name)  # NotFoundError names `thrifty status`
        counts = bin_timestamps(registry.request_times_since(name, start), start, minutes)
        if not counts.any():
            raise NotFoundError(
                f"deployment {name!r} logged no requests between {start:%Y-%m-%d %H:%M} and {until:%H:%M} UTC",
                hint="send traffic through the gateway (`thrifty up`), or widen --days",
            )
        rows.append(counts)
    return Trace(np.stack(rows), tuple(names), source=f"request log since {start:%Y-%m-%d %H:%M} UTC")
