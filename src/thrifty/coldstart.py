"""The serving runtime's cold start, phase by phase: one JSON line in the container's log.

Marks, in the order a start passes them (wall-clock seconds since the epoch, so a benchmark on the
same kernel can put its own ``podman run`` and first-answer times beside them)::

    process     the kernel created the process (``/proc/self/stat``; 10 ms ticks): in a container,
                when the container runtime forked it, before its set-up and the exec of Python
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
    """When the kernel created this process (seconds since the epoch), or None off Linux.

    ``starttime`` in ``/proc/self/stat`` counts clock ticks since boot; the boot instant comes from
    CLOCK_BOOTTIME, not ``btime`` (whole seconds, so up to a second off). In a container this is
    when the runtime forked the container's process, before it exec'd Python.
    """
    try:
        fields = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat: starttime
    except (OSError, IndexError, ValueError):
        return None
    booted_unix_s = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted_unix_s + ticks / os.sysconf("SC_CLK_TCK")


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
