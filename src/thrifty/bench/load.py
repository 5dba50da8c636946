"""How busy the machine was while a benchmark ran: recorded with every result, judged in one place.

A benchmark taken while other programs keep the CPUs busy measures them as much as the model (the
first `make run` on a shared 2-vCPU machine measured p50 34 ms for what is 17 ms quiet), and the
registry keeps results. So every run records, from /proc, over the benchmark's own window:

- ``others_busy_vcpus``: CPU time used by everything but the benchmark worker, in vCPUs
  (machine busy time from /proc/stat minus the worker's own CPU time);
- ``cpu_steal_pct``: time the hypervisor gave our vCPUs to someone else (/proc/stat ``steal``);
- ``loadavg_1m`` and the busiest other processes (``/proc/PID/stat``: name and vCPUs used);
- ``contention``: (others_busy_vcpus + the worker's threads) / vCPUs; above 1 the worker had to
  share a core, and its latency is not the model's.

``judge`` turns that into ``noisy`` plus the reasons, against ``LoadLimits``. Without /proc (macOS)
nothing is measured and nothing is flagged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True)
class LoadLimits:
    """Above either limit a benchmark result is flagged noisy (and re-measured once)."""

    max_contention: float = 1.0
    max_steal_pct: float = 5.0
    busy_process_vcpus: float = 0.2  # a process using more than this is named in the record


@dataclass(frozen=True)
class Snapshot:
    at_s: float
    cpu_jiffies: tuple[int, ...]  # the "cpu" line of /proc/stat
    processes: dict[int, tuple[str, int]]  # pid → (name, utime + stime jiffies)
    proc: Path = PROC


def _cpu_line(proc: Path) -> tuple[int, ...]:
    first = (proc / "stat").read_text().splitlines()[0].split()
    return tuple(int(x) for x in first[1:])


def _process_times(proc: Path) -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))  # utime, stime
    return found


def _command(pid: int, proc: Path, width: int = 60) -> str | None:
    """``pytest tests/unit/x.py`` rather than ``python``: program name and first arguments, short."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    words = [Path(a).name if i == 0 or a.startswith("/") else a for i, a in enumerate(argv) if a]
    if len(words) > 1 and words[0].startswith("python"):  # python -m uvicorn … → uvicorn …
        words = words[2:] if words[1] == "-m" else [Path(words[1]).name, *words[2:]]
    text = " ".join(words)
    return text if len(text) <= width else text[: width - 1] + "…"


def snapshot(proc: Path = PROC) -> Snapshot | None:
    """CPU counters now; None where /proc is missing."""
    try:
        return Snapshot(time.monotonic(), _cpu_line(proc), _process_times(proc), proc)
    except (OSError, ValueError, IndexError):
        return None


def vcpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def measure(
    before: Snapshot | None,
    after: Snapshot | None,
    *,
    worker_cpu_s: float,
    exclude: set[int],
    limits: LoadLimits | None = None,
) -> dict[str, Any]:
    """The load record of one benchmark window (``exclude``: the harness's own pids)."""
    if before is None or after is None:
        return {"measured": False, "noisy": False, "reasons": []}
    limits = limits or LoadLimits()
    hz = float(os.sysconf("SC_CLK_TCK"))
    wall_s = max(after.at_s - before.at_s, 1e-3)
    delta = [b - a for a, b in zip(before.cpu_jiffies, after.cpu_jiffies, strict=False)]
    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)  # idle + iowait
    steal = delta[7] if len(delta) > 7 else 0
    busy_vcpus = (sum(delta[:8]) - idle - steal) / hz / wall_s
    busiest: list[dict[str, Any]] = []
    for pid, (name, jiffies) in after.processes.items():
        if pid in exclude:
            continue
        used = (jiffies - before.processes.get(pid, (name, 0))[1]) / hz / wall_s
        if used >= limits.busy_process_vcpus:
            busiest.append({"pid": pid, "name": _command(pid, after.proc) or name, "vcpus": round(used, 2)})
    busiest.sort(key=lambda p: -float(p["vcpus"]))
    return {
        "measured": True,
        "wall_s": round(wall_s, 2),
        "vcpus": vcpus(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "others_busy_vcpus": round(max(0.0, busy_vcpus - worker_cpu_s / wall_s), 2),
        "cpu_steal_pct": round(100.0 * steal / max(sum(delta[:8]), 1), 1),
        "busy_processes": busiest[:5],
    }


def judge(record: dict[str, Any], threads: int, limits: LoadLimits | None = None) -> dict[str, Any]:
    """``record`` with ``contention``, ``noisy`` and the ``reasons`` a person can act on."""
    limits = limits or LoadLimits()
    if not record.get("measured"):
        return {**record, "noisy": False, "reasons": []}
    contention = (record["others_busy_vcpus"] + threads) / record["vcpus"]
    reasons = []
    if contention > limits.max_contention:
        who = ", ".join(f"{p['name']} {p['vcpus']:.1f}" for p in record["busy_processes"][:3])
        reasons.append(
            f"other processes kept {record['others_busy_vcpus']:.1f} of {record['vcpus']} vCPUs busy"
            + (f" ({who})" if who else "")
        )
    if record["cpu_steal_pct"] > limits.max_steal_pct:
        reasons.append(f"CPU steal {record['cpu_steal_pct']:.0f}%")
    return {**record, "contention": round(contention, 2), "noisy": bool(reasons), "reasons": reasons}


def load_note(details: dict[str, Any] | None) -> str | None:
    """Why a stored benchmark's numbers are noisy (its ``details["load"]``), or None when they are not."""
    record = (details or {}).get("load") or {}
    return "; ".join(record.get("reasons") or ["busy machine"]) if record.get("noisy") else None
