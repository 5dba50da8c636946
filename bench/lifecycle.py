"""Requests lost during a blue-green update and a rollback, and how long each takes (issue 13).

A real gateway daemon on this machine serves one deployment (an MLP, 32 → 128 → 10) on local
replicas. An open-loop client sends 50 requests a second through the gateway — each request at
its scheduled time, whether or not earlier ones were answered, so a stall shows as lost or late
requests rather than as a slower sender — for 2,000 requests per phase (40 s). Five seconds into
the first phase ``thrifty.lifecycle`` updates the deployment to another revision (a second MLP:
started beside the live one, verified with the smoke inference, swapped in the gateway, old one
drained); five seconds into the second phase it rolls back. A request is lost if it is not
answered 200 (any status, a refused or reset connection, or no answer within 30 s).

The migration row (``bench/_migration.py``) moves a VM deployment between two targets (AWS
us-east-1 → us-west-2 on moto's server; each instance's replica an inference server on loopback)
with a rebalance ``migrate`` action, the same load going through the front door (the gateway
fronting the clouds, re-reading the registry every second) for as many requests; the old replica
stops when its instance is deleted after the 5 s drain. It also gives the switch: the registry
naming the new revision → the front door's first request to it.

    .venv/bin/python bench/lifecycle.py [--rps 50] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import machine_line, write_section

NAME = "mlp"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}


def build_mlp(path: Path, seed: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    shapes = [("w1", (32, 128)), ("b1", (128,)), ("w2", (128, 10)), ("b2", (10,))]
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in shapes]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OpenLoop:
    """``count`` requests at ``rps``, each sent at its scheduled time; results by request index."""

    def __init__(self, url: str, rps: float, count: int) -> None:
        self.url, self.rps, self.count = url, rps, count
        self.statuses: list[int] = []
        self.latencies_ms: list[float] = []

    async def _one(self, client: Any, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        sent = time.perf_counter()
        try:
            status = (await client.post(self.url, json=BODY)).status_code
        except Exception:  # a refused/reset connection or a timeout: the request is lost
            status = 0
        self.statuses.append(status)
        self.latencies_ms.append((time.perf_counter() - sent) * 1000)

    async def run(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            start = time.perf_counter() + 0.2
            await asyncio.gather(*(self._one(client, start + i / self.rps) for i in range(self.count)))

    def summary(self) -> dict[str, float]:
        ms = np.array(self.latencies_ms)
        lost = sum(s != 200 for s in self.statuses)
        return {
            "requests": len(self.statuses),
            "lost": lost,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
        }


def phase(url: str, rps: float, count: int, verb: Any, after_s: float = 5.0) -> tuple[dict[str, float], Any]:
    """Run ``verb`` ``after_s`` seconds into an open-loop phase; (the load's summary, the verb's outcome).

    The load runs in its own process, so the verb's own work here (the smoke inference loads the
    reference model) cannot delay the requests.
    """
    import json
    import subprocess

    argv = [sys.executable, __file__, "--load", url, "--rps", str(rps), "--requests", str(count)]
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    time.sleep(after_s)
    outcome = verb()
    out, _ = load.communicate(timeout=count / rps + 120)
    summary: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return summary, outcome


def setup(home: Path) -> tuple[Any, Any, Any]:
    os.environ["THRIFTY_HOME"] = str(home)
    os.environ["THRIFTY_GATEWAY_PORT"] = str(free_port())
    for var in ("THRIFTY_DATABASE_URL", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_API_TOKENS"):
        os.environ.pop(var, None)
    from thrifty import runtime
    from thrifty.lifecycle import Lifecycle, smoke_verifier
    from thrifty.providers.local import LocalProvider, spec_for_path

    runtime.reset()
    v1 = spec_for_path(build_mlp(home / "v1.onnx", seed=0), NAME, runtime.store())
    v2 = spec_for_path(build_mlp(home / "v2.onnx", seed=1), NAME, runtime.store())
    LocalProvider().deploy(v1)
    lifecycle = Lifecycle(
        runtime.registry(), lambda _ref: LocalProvider(), smoke_verifier(ready_deadline_s=30)
    )
    return lifecycle, v2, runtime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load process of one phase
    args = parser.parse_args()
    if args.load:
        import json

        load = OpenLoop(args.load, args.rps, args.requests)
        asyncio.run(load.run())
        print(json.dumps(load.summary()))
        return 0
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    with tempfile.TemporaryDirectory(prefix="thrifty-bench-lifecycle-") as tmp:
        lifecycle, v2, _ = setup(Path(tmp))
        url = f"{daemon.gateway_url(get_settings())}/v2/models/{NAME}/infer"
        try:
            rows: list[tuple[str, dict[str, Any], Any]] = [
                ("no verb (baseline)", *phase(url, args.rps, args.requests, lambda: None)),
                (
                    "update (r1 → r2)",
                    *phase(url, args.rps, args.requests, lambda: lifecycle.update(NAME, v2, "local")),
                ),
                (
                    "rollback (r2 → r1)",
                    *phase(url, args.rps, args.requests, lambda: lifecycle.rollback(NAME)),
                ),
            ]
        finally:
            daemon.stop_daemon(get_settings())
        rows.append(migration(Path(tmp), args.rps, args.requests))
    report(rows, args.rps)
    return 0 if all(r[1]["lost"] == 0 for r in rows) else 1


def migration(home: Path, rps: float, count: int) -> tuple[str, dict[str, Any], Any]:
    """The migration drill (``bench/_migration.py``) on a moto server of its own."""
    from moto.server import ThreadedMotoServer

    from bench._migration import Drill
    from bench.serving import build_mlp as build_small
    from thrifty import runtime
    from thrifty.policies.rebalance import Offer
    from thrifty.providers.base import DeploySpec, PriceModel

    for var, value in MOTO_ENV.items():  # moto only: never a real credential chain
        os.environ[var] = value
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        model = build_small(home / "small.onnx", in_features=4, hidden=8, out_features=3)
        providers = _moto_providers(f"http://127.0.0.1:{port}")
        drill = Drill(runtime.registry(), providers, home, model, rps=rps, drain_s=5.0, min_requests=count)
        spec = DeploySpec(
            name="mover", model_name="mover", variant_id=0, artifact_sha256="ab" * 32, region="us-east-1",
            instance_type="c7g.large", price_model=PriceModel.ON_DEMAND, replicas=1,
        )  # fmt: skip
        result = drill.run(spec, Offer("aws", "us-west-2", "c7g.large", PriceModel.ON_DEMAND, 0.05))
    finally:
        moto.stop()
    return "migration (AWS us-east-1 → us-west-2, front door)", result, result["outcome"]


MOTO_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _moto_providers(endpoint: str) -> dict[str, Any]:
    """Two AWS targets on moto: ``aws`` (us-east-1) and the block ``west`` (us-west-2)."""
    from thrifty.providers.aws import AwsProvider, AwsTarget
    from thrifty.providers.boot import BootConfig

    image = "127.0.0.1:5000/r@sha256:" + "0" * 64
    boot = BootConfig(artifact_store_url="s3://bench/blobs", image=image, allowed_cidrs=("198.51.100.0/24",))
    regions = {"aws": "us-east-1", "thrifty-aws-target/west": "us-west-2"}
    return {
        ref: AwsProvider(AwsTarget(region=region, endpoint_url=endpoint, boot=boot))
        for ref, region in regions.items()
    }


def _seconds(outcome: Any) -> str:
    return "—" if outcome is None else f"{outcome.seconds:.2f}"


def _migration_note(rows: list[tuple[str, dict[str, Any], Any]]) -> str:
    moved = next((load for label, load, _ in rows if label.startswith("migration")), None)
    if moved is None:
        return ""
    return (
        "Migration: a rebalance `migrate` action through `thrifty.lifecycle` (start r2 on the other "
        "target, verify it with an inference, point the registry at it, drain "
        f"{moved['drain_s']:g} s, delete r1 — its replica then stops), the load through the front door "
        f"(re-reading the registry every {moved['reconcile_interval_s']:g} s). Switch: the registry "
        "naming r2 → the front door's first request to it; the old replica answered its last request "
        f"{moved['old_last_s']:.2f} s after the registry moved (old: {moved['old_answered']} requests, "
        f"new: {moved['new_answered']}). Moto plays EC2 and the replicas are inference servers on "
        "loopback: no real VM boots here (the cloud-boot section measures that)."
    )


def report(rows: list[tuple[str, dict[str, float], Any]], rps: float) -> None:
    lines = [
        "## Lifecycle: requests lost during an update, a rollback and a migration (through the gateway)",
        "",
        f"`bench/lifecycle.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine_line()}. "
        f"Open loop at {rps:g} req/s through the gateway; the verb starts 5 s into each phase. "
        "Verb time: from the call to the old revision drained (start beside, smoke inference, "
        "swap, drain). Lost: any answer but 200, a refused connection, or none within 30 s. "
        "Model: a small MLP (the swap, not the model, is measured). The baseline phase sends the "
        "same load with no verb, side by side in the same run, for the machine's own tail.",
        "",
        "| phase | requests | lost | verb time (s) | switch (s) | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, load, outcome in rows:
        switch = "—" if load.get("switch_s") is None else f"{load['switch_s']:.2f}"
        lines.append(
            f"| {label} | {load['requests']:.0f} | {load['lost']:.0f} | {_seconds(outcome)} | {switch} | "
            f"{load['p50_ms']:.1f} | {load['p99_ms']:.1f} | {load['max_ms']:.1f} |"
        )
    lines += ["", _migration_note(rows)]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_section("lifecycle", markdown)


if __name__ == "__main__":
    raise SystemExit(main())
