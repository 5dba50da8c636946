"""Load generator (a separate process): C keep-alive connections, each sending one request at a
time for D seconds; prints {"rps", "p50_ms", "p99_ms", "errors", "requests"} as JSON.

    python bench/_load.py --url http://127.0.0.1:8000/v2/models/mlp/infer --body body.json -c 32 -d 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from thrifty.serving.http import ClientConnection, run


async def _user(
    host: str, port: int, raw: bytes, until: float, warm_until: float, lat: list[float], errors: list[int]
) -> None:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(ClientConnection, host, port)
    while (now := time.perf_counter()) < until:
        try:
            status, _, _ = await conn.send(raw)
        except ConnectionError:
            errors.append(0)
            _, conn = await loop.create_connection(ClientConnection, host, port)
            continue
        done = time.perf_counter()
        if now >= warm_until:
            lat.append(done - now)
            if status != 200:
                errors.append(status)
    if conn.transport is not None:
        conn.transport.close()


async def load(
    url: str, body: bytes, concurrency: int, duration_s: float, warmup_s: float
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = (
        f"POST {parts.path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    warm_until = start + warmup_s
    until = warm_until + duration_s
    await asyncio.gather(
        *(_user(host, port, raw, until, warm_until, lat, errors) for _ in range(concurrency))
    )
    ms = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {
        "rps": len(lat) / duration_s,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": len(errors),
        "requests": len(lat),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-w", "--warmup", type=float, default=1.0)
    args = parser.parse_args()
    result = run(load(args.url, args.body.read_bytes(), args.concurrency, args.duration, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
