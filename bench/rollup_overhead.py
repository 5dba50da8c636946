"""Serving with and without the fleet-metrics rollup (``bench/serving.py rollup``; this file: bench/rollup_overhead.py).

The gateway only appends to the request log; the monitor flow rolls it up in another process. This
measures what that costs serving: the small MLP through the gateway at concurrency 32, runs
alternating without and with a rollup loop (every 2 s — the flow runs every 2 minutes, so this is
60× harsher) over the same registry, in one run. Goal: with ≥ 95 % of without (issue 16, item 1).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("THRIFTY_BENCH_ROLLUP_ROUNDS", "3"))


def _with_rollup(env: dict[str, str], run: Any) -> tuple[dict[str, float], dict[str, Any]]:
    loop = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_rollup_loop.py"), "--every-s", "2"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert loop.stdout is not None
        if loop.stdout.readline().strip() != "ready":
            raise RuntimeError(
                "the rollup loop exited before its first rollup; run bench/_rollup_loop.py to see why"
            )
        result = run()
    finally:
        loop.terminate()
        out, _ = loop.communicate(timeout=60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return result, json.loads(lines[-1]) if lines else {}


def _mlp_case(serving: Any) -> Any:
    import numpy as np

    serving.OUT.mkdir(parents=True, exist_ok=True)
    path = serving.build_mlp(serving.OUT / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((1, 32)).astype(np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 32], "data": x.ravel().tolist()}]}
    return serving.Case("mlp", path, None, body)


def measure_rollup(serving: Any) -> dict[str, Any]:
    """Alternate without / with the rollup loop ``ROUNDS`` times each; medians and the loop's stats."""
    case = _mlp_case(serving)  # the cheapest model, where any overhead shows most
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    loops: list[dict[str, Any]] = []
    with serving.thrifty_gateway(case) as (url, env):
        serving.measure(url, case, 32)  # warm-up (and the first rows of the request log)
        for _ in range(ROUNDS):
            runs["without"].append(serving.measure(url, case, 32))
            result, loop = _with_rollup(env, lambda: serving.measure(url, case, 32))
            runs["with"].append(result)
            loops.append(loop)
    return {"runs": runs, "loops": loops}


def _median(rows: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def markdown(found: dict[str, Any], load: str) -> str:
    runs = found["runs"]
    ratio = _median(runs["with"], "rps") / _median(runs["without"], "rps")
    rollups = sum(int(loop.get("runs", 0)) for loop in found["loops"])
    mean_s = (
        statistics.mean(float(loop.get("mean_s", 0.0)) for loop in found["loops"]) if found["loops"] else 0.0
    )
    lines = [
        "## Fleet-metrics rollup vs serving (bench/serving.py rollup)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {machine_line()}; load average {load}. "
        f"MLP through the gateway, concurrency 32, {ROUNDS} runs each way, alternating; 'with' runs the "
        f"monitor's rollup every 2 s in another process over the same SQLite registry ({rollups} rollups, "
        f"{mean_s * 1000:.0f} ms each on average).",
        "",
        "| rollup | req/s (median) | p50 ms | p99 ms | runs (req/s) |",
        "|---|---:|---:|---:|---|",
    ]
    for label, rows in runs.items():
        each = ", ".join(f"{r['rps']:,.0f}" for r in rows)
        lines.append(
            f"| {label} | {_median(rows, 'rps'):,.0f} | {_median(rows, 'p50_ms'):.2f} | "
            f"{_median(rows, 'p99_ms'):.2f} | {each} |"
        )
    verdict = "meets" if ratio >= 0.95 else "misses"
    lines += [
        "",
        f"With the rollup running, serving keeps {ratio:.1%} of its throughput ({verdict} the ≥ 95 % goal).",
    ]
    return "\n".join(lines)


def run(serving: Any) -> None:
    load_before = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    found = measure_rollup(serving)
    load = f"{load_before} → " + " / ".join(f"{v:.1f}" for v in os.getloadavg())
    text = markdown(found, load)
    print(text)
    write_section("fleet-rollup", text)
