"""The serving runtime's cold start, phase by phase: one JSON line in the container's log.

Marks, in the order a start passes them (wall-clock seconds since the epoch, so a benchmark on the
same kernel can put its own ``podman run`` and first-answer times beside them)::

    process     the kernel started the interpreter (``/proc/self/stat``; 10 ms ticks)
    main        ``thrifty.container.main`` runs (interpreter start, ``python -m`` imports)
    imported    the serving code, numpy, onnxruntime and tokenizers are imported
    fetched     the variant (or its saved optimized graph) and the tokenizer are copied from the
                store and verified by sha256
    loaded      the tokenizer is parsed and the onnxruntime session created (graph optimization,
                unless a saved optimized graph was loaded)
    ready       listening on PORT, or asking the Lambda Runtime API for the first event
    answered    the first inference answer is handed to the platform

Durations inside ``loaded`` (the tokenizer and the session load on two threads; ``warmup_ms`` is 0
where the first request is the warm-up) ride along. Stdlib only: this is imported first.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("thrifty.coldstart")
MARKS = ("process", "main", "imported", "fetched", "loaded", "ready", "answered")


def process_start_s(proc: Path = Path("/proc")) -> float | None:
    """When the kernel started this process (seconds since the epoch), or None off Linux."""
    try:
        fields = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        boot_s = next(
            float(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot_s + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime in ticks


class ColdStart:
    """The marks of one start; ``report`` logs them once, at the first answer."""

    def __init__(self) -> None:
        started = process_start_s()
        self.marks: dict[str, float] = {"process": started} if started is not None else {}
        self.details: dict[str, float] = {}
        self.reported = False

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())

    def note(self, **durations_ms: float) -> None:
        self.details |= {k: round(v, 1) for k, v in durations_ms.items()}

    def phases_ms(self) -> dict[str, float]:
        """Milliseconds from each mark to the next one reached."""
        reached = [m for m in MARKS if m in self.marks]
        return {
            f"{a}_to_{b}_ms": round((self.marks[b] - self.marks[a]) * 1000, 1)
            for a, b in itertools.pairwise(reached)
        }

    def report(self) -> None:
        if self.reported:
            return
        self.mark("answered")
        self.reported = True
        record = {"event": "cold_start", "marks_unix_s": self.marks, **self.phases_ms(), **self.details}
        log.warning("%s", json.dumps(record))


#: this process's cold start (a runtime process serves one start)
COLD_START = ColdStart()


def parse_report(log_text: str) -> dict[str, object] | None:
    """The cold-start record in a runtime's log (the benchmark reads it from ``podman logs``)."""
    for line in log_text.splitlines():
        _, found, rest = line.partition("thrifty.coldstart ")
        if found and rest.startswith("{"):
            record: dict[str, object] = json.loads(rest)
            return record
    return None
