"""Request-arrival traces as per-minute invocation counts (functions × minutes).

Readers for the two shared traces (../shared/data/traces) and the derivations used to check a
policy's robustness: halves of a day, binomial thinning, and per-minute binning of raw request
timestamps (the gateway's request log, the Azure LLM inference trace). Single files in the layouts
people have (the Azure Functions 2019 trace as published, arrivals as CSV or JSON lines) are read
by ``trace_files``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from thrifty.errors import ConfigError, NotFoundError
from thrifty.policies.base import FloatArray, IntArray

AZURE_FUNCTIONS_FILE = "invocations_per_minute.csv"
AZURE_MEMORY_FILE = "memory.csv"
LLM_GLOB = "AzureLLMInferenceTrace_*.csv"
PUBLISHED_DAYS_GLOB = "invocations_per_function_md.anon.d*.csv"  # the 2019 trace as Azure publishes it


@dataclass(frozen=True)
class Trace:
    """``counts[i, t]``: invocations of function ``i`` in minute ``t``."""

    counts: IntArray
    names: tuple[str, ...]
    memory_mb: FloatArray | None = None
    source: str = ""
    triggers: tuple[str, ...] | None = None  # the published 2019 trace's Trigger column (http, timer, …)

    def __post_init__(self) -> None:
        if self.counts.ndim != 2 or len(self.names) != self.counts.shape[0]:
            raise ConfigError(
                f"trace {self.source!r}: counts of shape {self.counts.shape} for {len(self.names)} names",
                hint="counts must be functions × minutes with one name per function",
            )
        if self.triggers is not None and len(self.triggers) != len(self.names):
            raise ConfigError(
                f"trace {self.source!r}: {len(self.triggers)} triggers for {len(self.names)} functions",
                hint="one trigger per function row",
            )
        if (self.counts < 0).any():
            raise ConfigError(f"trace {self.source!r} has negative counts", hint="counts are invocations ≥ 0")

    @property
    def n_functions(self) -> int:
        return int(self.counts.shape[0])

    @property
    def minutes(self) -> int:
        return int(self.counts.shape[1])

    def window(self, start_min: int, stop_min: int, label: str) -> Trace:
        """Minutes ``[start_min, stop_min)`` as a trace of their own (policies start cold)."""
        return replace(self, counts=self.counts[:, start_min:stop_min], source=f"{self.source} {label}")

    def thinned(self, keep_fraction: float, seed: int = 0) -> Trace:
        """Keep each invocation independently with probability ``keep_fraction`` (sparser traffic)."""
        rng = np.random.default_rng(seed)
        counts = rng.binomial(self.counts, keep_fraction).astype(np.int64)
        return replace(self, counts=counts, source=f"{self.source} thinned to {keep_fraction:g}")

    def with_trigger(self, trigger: str) -> Trace:
        """Only the functions of one trigger kind (``http``, ``timer``, …; case-insensitive)."""
        if self.triggers is None:
            raise ConfigError(
                f"trace {self.source!r} has no Trigger column", hint="drop --trigger for this trace"
            )
        keep = [i for i, t in enumerate(self.triggers) if t.lower() == trigger.lower()]
        if not keep:
            raise ConfigError(
                f"trace {self.source!r} has no {trigger!r} functions",
                hint=f"triggers in it: {', '.join(sorted(set(self.triggers)))}",
            )
        memory = None if self.memory_mb is None else self.memory_mb[keep]
        return replace(
            self,
            counts=self.counts[keep],
            names=tuple(self.names[i] for i in keep),
            memory_mb=memory,
            triggers=tuple(self.triggers[i] for i in keep),
            source=f"{self.source} ({trigger} only)",
        )


def load_trace(path: Path, time_unit: str = "auto") -> Trace:
    """Read a trace folder or file.

    Folders: the shared Azure Functions 2019 sample, the published trace's daily files
    (``invocations_per_function_md.anon.d01.csv`` …, days side by side) or the Azure LLM inference
    CSVs. Files: a per-minute table or an arrivals file (see ``trace_files``).
    """
    from thrifty.policies import trace_files

    if path.is_file():
        return trace_files.read_trace_file(path, time_unit)
    if (path / AZURE_FUNCTIONS_FILE).is_file():
        return load_azure_functions(path)
    if path.is_dir() and (days := sorted(path.glob(PUBLISHED_DAYS_GLOB))):
        return trace_files.join_days([trace_files.read_trace_file(d) for d in days], path.name)
    if path.is_dir() and sorted(path.glob(LLM_GLOB)):
        return load_llm_inference(path)
    raise NotFoundError(
        f"no trace in {path}",
        hint=f"pass a trace file (CSV or JSON lines) or a folder holding {AZURE_FUNCTIONS_FILE} "
        f"(+ {AZURE_MEMORY_FILE}), {PUBLISHED_DAYS_GLOB} or {LLM_GLOB}",
    )


def load_azure_functions(folder: Path) -> Trace:
    """The sampler's Azure Functions 2019 layout: one row per function, minute columns, memory.csv."""
    from thrifty.policies import trace_files

    table = trace_files.read_trace_file(folder / AZURE_FUNCTIONS_FILE)
    return replace(table, memory_mb=_memory_mb(folder, table.names), source=folder.name)


def _memory_mb(folder: Path, names: Sequence[str]) -> FloatArray | None:
    """AverageAllocatedMb per function, joined on HashApp == HashFunction; None without the file."""
    import pandas as pd

    file = folder / AZURE_MEMORY_FILE
    if not file.is_file():
        return None
    frame = pd.read_csv(file).drop_duplicates("HashApp").set_index("HashApp")
    memory: FloatArray = frame["AverageAllocatedMb"].reindex(list(names)).to_numpy(dtype=np.float64)
    if np.isnan(memory).any():
        fill = float(np.nanmedian(memory)) if not np.isnan(memory).all() else 1.0
        memory = np.where(np.isnan(memory), fill, memory)
    return memory


def load_llm_inference(folder: Path) -> Trace:
    """Each AzureLLMInferenceTrace_<service>.csv becomes one function binned per minute."""
    import pandas as pd

    series: list[IntArray] = []
    names: list[str] = []
    for file in sorted(folder.glob(LLM_GLOB)):
        stamps = pd.to_datetime(pd.read_csv(file, usecols=["TIMESTAMP"])["TIMESTAMP"])
        seconds = (stamps - stamps.min()).dt.total_seconds().to_numpy()
        series.append(bin_offsets(seconds / 60.0))
        names.append(file.stem.removeprefix("AzureLLMInferenceTrace_"))
    width = max(len(s) for s in series)
    counts = np.zeros((len(series), width), dtype=np.int64)
    for row, values in enumerate(series):
        counts[row, : len(values)] = values
    return Trace(counts, tuple(names), source=folder.name)


def bin_offsets(offsets_min: FloatArray, minutes: int | None = None) -> IntArray:
    """Counts per whole minute of arrival offsets (minutes from the start, ≥ 0)."""
    index = np.floor(np.asarray(offsets_min, dtype=np.float64)).astype(np.int64)
    index = index[index >= 0]
    width = minutes if minutes is not None else (int(index.max()) + 1 if index.size else 0)
    index = index[index < width]
    return np.bincount(index, minlength=width).astype(np.int64)


def bin_timestamps(timestamps: Sequence[datetime], start: datetime, minutes: int) -> IntArray:
    """Counts per minute of timezone-aware ``timestamps`` in ``[start, start + minutes)``."""
    if start.tzinfo is None:
        raise ConfigError("start is a naive datetime", hint="pass a timezone-aware UTC datetime")
    offsets = np.array([(ts - start).total_seconds() / 60.0 for ts in timestamps], dtype=np.float64)
    return bin_offsets(offsets, minutes)


def dilate_llm_requests(trace_file: Path, n_functions: int, seed: int = 0) -> Trace:
    """A derived many-function trace from one LLM service: seconds read as minutes, thinned.

    Arrivals are binned per *second*, each second read as one minute (so an hour of real bursty
    arrivals becomes 2.5 days of minutes), and function ``i`` keeps each request with a
    probability spread log-uniformly from 1/2000 to 1/5: sparse to busy models with the real
    trace's burstiness.
    """
    import pandas as pd

    stamps = pd.to_datetime(pd.read_csv(trace_file, usecols=["TIMESTAMP"])["TIMESTAMP"])
    seconds = (stamps - stamps.min()).dt.total_seconds().to_numpy()
    per_second = bin_offsets(seconds)
    rng = np.random.default_rng(seed)
    keep = np.logspace(np.log10(1 / 2000), np.log10(1 / 5), n_functions)
    counts = rng.binomial(per_second[None, :], keep[:, None]).astype(np.int64)
    names = tuple(f"{trace_file.stem}-{i}" for i in range(n_functions))
    return Trace(
        counts, names, source=f"{trace_file.stem} dilated (1 s → 1 min), {n_functions} thinned copies"
    )
