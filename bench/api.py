"""Dashboard pages at fleet size: 1,000 deployments and 1M request-log rows (issue 15, item 5).

Seeds a fresh registry (``bench/fleet.py``: bulk inserts), serves the dashboard with uvicorn on
loopback, and asks each page ``RUNS`` times: time to first byte of the body (median and worst) and
the HTML size, against the goals (≤ 300 ms, ≤ 200 KB). Prints the table and writes the ``api``
section of BENCHMARKS.md.

    .venv/bin/python bench/api.py [--deployments 1000] [--requests 1000000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/api.py` finds bench._report

import httpx

from bench._report import machine_line, write_section
from bench.fleet import seed_fleet
from thrifty.registry import Registry

RUNS = 7
TTFB_GOAL_MS = 300.0
SIZE_GOAL_KB = 200.0


def pages(names: list[str], plan_id: int) -> list[tuple[str, str]]:
    middle = names[len(names) // 2]
    return [
        ("deployments list", "/"),
        ("deployments list, page 11", "/?offset=500"),
        ("deployment detail", f"/deployments/{middle}"),
        ("models", "/models"),
        ("model variants", "/models/fleet-model"),
        ("plans", "/plans"),
        ("plan explanation", f"/plans/{plan_id}"),
        ("costs", "/costs"),
        ("recommendations", "/recommendations"),
        ("alerts", "/alerts"),
        ("deploy form", "/deploy"),
    ]


def serve(registry: Registry) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    from tests.conftest import free_port
    from thrifty.web.app import create_app
    from thrifty.web.base import get_registry

    app = create_app()
    app.dependency_overrides[get_registry] = lambda: registry
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def measure(http: httpx.Client, path: str) -> tuple[float, int, int]:
    """(ms to the first body byte, body bytes, status) of one GET."""
    started = time.perf_counter()
    with http.stream("GET", path) as response:
        chunks = response.iter_bytes()
        first = next(chunks, b"")
        ttfb_ms = (time.perf_counter() - started) * 1000
        size = len(first) + sum(len(c) for c in chunks)
    return ttfb_ms, size, response.status_code


def run(registry: Registry, names: list[str]) -> list[dict[str, Any]]:
    plan_id = registry.list_plans(1)[0].id
    url, server, thread = serve(registry)
    rows = []
    try:
        with httpx.Client(base_url=url, timeout=60.0) as http:
            for label, path in pages(names, plan_id):
                measure(http, path)  # warm: templates compiled, caches filled
                samples = [measure(http, path) for _ in range(RUNS)]
                times = [s[0] for s in samples]
                rows.append(
                    {
                        "page": label,
                        "path": path,
                        "status": samples[0][2],
                        "median_ms": statistics.median(times),
                        "worst_ms": max(times),
                        "kb": samples[0][1] / 1000,
                    }
                )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| page | path | HTTP | TTFB median | TTFB worst | HTML | within goals |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = r["median_ms"] <= TTFB_GOAL_MS and r["kb"] <= SIZE_GOAL_KB and r["status"] == 200
        lines.append(
            f"| {r['page']} | `{r['path']}` | {r['status']} | {r['median_ms']:.0f} ms | {r['worst_ms']:.0f} ms | "
            f"{r['kb']:.1f} KB | {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines)


def measure_database(url: str, deployments: int, requests: int) -> tuple[str, list[dict[str, Any]]]:
    """Seed an empty database at ``url``, time every page; (a line about the run, the rows)."""
    load = os.getloadavg()[0]  # other work on the machine slows every page alike
    registry = Registry.from_url(url)
    started = time.perf_counter()
    names = seed_fleet(registry, deployments, requests, now=datetime.now(UTC))
    seed_s = time.perf_counter() - started
    rows = run(registry, names)
    dialect = registry.engine.dialect.name
    registry.engine.dispose()
    return f"### {dialect}\n\nSeeded in {seed_s:.0f} s; load average {load:.1f} when it started.\n\n", rows


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server at ``admin_url``, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"thrifty_bench_api_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deployments", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("THRIFTY_TEST_POSTGRES_URL"),
        help="a PostgreSQL server to measure too (a scratch database is made and dropped); "
        "default: $THRIFTY_TEST_POSTGRES_URL, as `bash .ci/postgres.sh start` prints it",
    )
    args = parser.parse_args()
    parts, all_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        parts.append(measure_database(f"sqlite:///{tmp}/registry.db", args.deployments, args.requests))
    if args.postgres_url:
        with scratch_postgres(args.postgres_url) as url:
            parts.append(measure_database(url, args.deployments, args.requests))
    body = ""
    for line, rows in parts:
        body += line + table(rows) + "\n\n"
        all_rows += rows
    print(body)
    head = (
        f"## Dashboard pages at fleet size (`bench/api.py`)\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine_line()}. "
        f"{args.deployments:,} deployments and {args.requests:,} request-log rows per database; "
        f"each page asked {RUNS} times after one warm-up over HTTP on loopback (uvicorn, one worker). "
        f"Goals: first byte ≤ {TTFB_GOAL_MS:.0f} ms, HTML ≤ {SIZE_GOAL_KB:.0f} KB.\n\n"
    )
    write_section("api", head + body)
    return 0 if all(r["status"] == 200 for r in all_rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
