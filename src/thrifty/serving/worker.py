"""A replica process: starts warm (onnxruntime and the server imported, port reserved), then waits
for one model on stdin, loads it and serves it. The port listens only once the model serves: a warm
worker refuses connections at once rather than leave them unanswered.

Protocol on the pipes (one JSON object per line):

    worker → parent   {"event": "warm", "port": 43121, "pid": 123}
    parent → worker   {"name": ..., "model_path": ..., "tokenizer_path": ..., "optimized_graph_path": ...,
                       "runner": {...RunnerConfig...}, "max_body_bytes": ...}
    worker → parent   {"event": "ready", "load_ms": 31.2}   or   {"event": "failed", "error": "..."}
    parent → worker   {"command": "stop"}   (drain in-flight requests, then exit)

End-of-file on stdin means the parent (the gateway) is gone: the worker drains and exits, so no
replica outlives its gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

# imported up front on purpose: this is what "warm" means
import numpy as np  # noqa: F401
import onnxruntime  # noqa: F401
import tokenizers  # noqa: F401

from thrifty.serving.app import bind_socket, serve_until_stopped
from thrifty.serving.http import run
from thrifty.serving.runner import RunnerConfig
from thrifty.serving.server import InferenceServer, ServerConfig


def _say(event: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the parent is gone; so are we
        os._exit(0)


def runner_config(raw: dict[str, Any]) -> RunnerConfig:
    opt = raw.get("optimized_graph_path")
    return RunnerConfig(
        max_batch_size=int(raw.get("max_batch_size", 32)),
        max_queue_delay_ms=float(raw.get("max_queue_delay_ms", 0.0)),
        intra_op_threads=int(raw.get("intra_op_threads", 0)),
        max_seq_len=int(raw.get("max_seq_len", 128)),
        max_batch_tokens=int(raw.get("max_batch_tokens", 512)),
        spin=bool(raw.get("spin", False)),
        optimized_graph_path=Path(opt) if opt else None,
    )


def load_server(order: dict[str, Any]) -> InferenceServer:
    runner = dict(order.get("runner") or {})
    runner.setdefault("optimized_graph_path", order.get("optimized_graph_path"))
    config = ServerConfig(
        max_body_bytes=int(order.get("max_body_bytes", 16 << 20)), runner=runner_config(runner)
    )
    server = InferenceServer(config)
    tokenizer = order.get("tokenizer_path")
    server.load(
        order["name"], Path(order["model_path"]), tokenizer_path=Path(tokenizer) if tokenizer else None
    )
    return server


def _stdin_lines() -> asyncio.Queue[str]:
    """Lines of stdin ('' at end-of-file), read by a daemon thread so exit never waits on it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        while True:
            line = sys.stdin.readline()
            loop.call_soon_threadsafe(queue.put_nowait, line)
            if not line:
                return

    threading.Thread(target=read, daemon=True, name="stdin").start()
    return queue


async def _watch(lines: asyncio.Queue[str], stop: asyncio.Event) -> None:
    """Stop on {"command": "stop"} or end-of-file (the parent died)."""
    while True:
        line = await lines.get()
        if not line or json.loads(line).get("command") == "stop":
            stop.set()
            return


def prewarm() -> None:
    """Load and run a tiny model once, so the first real load finds onnxruntime's environment,
    its kernels and every lazily imported path already initialized."""
    import tempfile

    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "prewarm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.5] * 16)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prewarm.onnx"
        save(model, str(path))
        InferenceServer().load("prewarm", path).close()


async def main(host: str = "127.0.0.1") -> None:
    sock = bind_socket(host, 0, listen=False)
    prewarm()
    _say({"event": "warm", "port": sock.getsockname()[1], "pid": os.getpid()})
    lines = _stdin_lines()
    line = await lines.get()
    order = json.loads(line) if line else {}
    if "name" not in order:  # end-of-file or a stop before any model: nothing to serve
        return
    started = time.perf_counter()
    try:
        server = load_server(order)
    except Exception as exc:
        _say({"event": "failed", "error": str(exc)})
        return
    stop = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(_watch(lines, stop))
    load_ms = (time.perf_counter() - started) * 1000

    runner = next(iter(server.models.values()))

    def started_cb() -> None:
        timings = {"session_ms": round(runner.session_ms, 2), "warmup_ms": round(runner.warmup_ms, 2)}
        _say({"event": "ready", "load_ms": round(load_ms, 2), **timings})

    await serve_until_stopped(
        server.handle, sock, max_body_bytes=server.config.max_body_bytes, stop=stop, on_started=started_cb
    )
    watcher.cancel()
    server.close()


if __name__ == "__main__":
    run(main())
