"""Serving benchmark: thrifty's server and gateway against raw onnxruntime and two peers.

Same machine, one run, side by side. Models: a small MLP and all-MiniLM-L6-v2 (dynamic int8,
text in, server-side tokenization, 128 tokens). Contenders: raw onnxruntime in-process (the limit:
one call at a time), ``thrifty serve`` (direct), thrifty through the gateway (``thrifty up`` +
``deploy-local``), MLServer 1.7.1 and KServe 0.21.0's Python model server, both serving the same
ONNX file with onnxruntime from a separate virtualenv (bench/.peers-venv, created here with uv,
not a project dependency). Load comes from a separate process (bench/_load.py: keep-alive
connections, one request at a time each) at concurrency 1 and 32.

Then the wake table: request → answer through the gateway (tritonclient) for hibernated MiniLM fp32
and int8, each with the saved graph's weights memory-mapped (the default) and, side by side in the
same gateway, with the ORT flatbuffer graph used before; then with the files evicted from the page
cache; next to the floors (session creation alone, a request to an awake model).

    .venv/bin/python bench/serving.py            # THRIFTY_BENCH_SECONDS=8 per run by default
    .venv/bin/python bench/serving.py wake       # the wake section only (THRIFTY_BENCH_WAKES=10)
    .venv/bin/python bench/serving.py rollup     # serving with and without the fleet-metrics rollup
    .venv/bin/python bench/serving.py egress     # serving before and after logging request/response sizes
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._minilm import export_minilm, model_folder  # noqa: E402
from bench._report import machine_line, write_section  # noqa: E402

OUT = ROOT / "bench" / "out" / "serving"
PEERS_DIR = ROOT / "bench" / ".peers-venv"
PEER_DIR = ROOT / "bench" / "peers"
PY = ROOT / ".venv" / "bin" / "python"
THRIFTY = ROOT / ".venv" / "bin" / "thrifty"
DURATION_S = float(os.environ.get("THRIFTY_BENCH_SECONDS", "8"))
WAKE_TRIALS = int(os.environ.get("THRIFTY_BENCH_WAKES", "10"))
COLD_WAKE_TRIALS = int(os.environ.get("THRIFTY_BENCH_COLD_WAKES", "5"))
PEER_REQUIREMENTS = {
    "mlserver": ["mlserver==1.7.1"],
    "kserve": ["kserve==0.21.0"],
}
COMMON_PEER_REQUIREMENTS = ["onnxruntime==1.32.0", "numpy", "tokenizers==0.22.2"]
TEXT = " ".join(["The quick brown fox jumps over the lazy dog while the cat sleeps."] * 12)
console = Console()
RAW = "raw onnxruntime (in-process, 1 call at a time)"


# -- models --------------------------------------------------------------------------------------
def build_mlp(path: Path, in_features: int = 32, hidden: int = 128, out_features: int = 10) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in [
            ("w1", (in_features, hidden)),
            ("b1", (hidden,)),
            ("w2", (hidden, out_features)),
            ("b2", (out_features,)),
        ]
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["hr"]),
            helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_features])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class Case:
    def __init__(self, name: str, path: Path, tokenizer: Path | None, body: dict[str, Any]) -> None:
        self.name, self.path, self.tokenizer = name, path, tokenizer
        self.body_file = OUT / f"{name}.json"
        self.body_file.write_text(json.dumps(body))


def cases() -> list[Case]:
    OUT.mkdir(parents=True, exist_ok=True)
    mlp = build_mlp(OUT / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((1, 32)).astype(np.float32)
    mlp_body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 32], "data": x.ravel().tolist()}]}
    _, minilm = export_minilm(OUT / "minilm")
    text_body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXT]}]}
    return [Case("mlp", mlp, None, mlp_body), Case("minilm-int8", minilm, model_folder(), text_body)]


# -- raw onnxruntime -----------------------------------------------------------------------------
def raw_onnxruntime(case: Case) -> dict[str, float]:
    """One call at a time in this process (with tokenization for text): the limit."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as every server here
    session = ort.InferenceSession(str(case.path), options, providers=["CPUExecutionProvider"])
    call = _raw_call(case, session)
    for _ in range(20):
        call()
    latencies = []
    until = time.perf_counter() + DURATION_S
    while (start := time.perf_counter()) < until:
        call()
        latencies.append(time.perf_counter() - start)
    ms = np.array(latencies) * 1000
    return {
        "rps": len(latencies) / DURATION_S,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": 0,
    }


def _raw_call(case: Case, session: Any) -> Any:
    body = json.loads(case.body_file.read_text())["inputs"][0]
    if case.tokenizer is None:
        x = np.array(body["data"], dtype=np.float32).reshape(body["shape"])
        return lambda: session.run(None, {"x": x})
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(case.tokenizer / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=128)
    names = {i.name for i in session.get_inputs()}

    def call() -> Any:
        e = tokenizer.encode(body["data"][0])
        feeds = {"input_ids": [e.ids], "attention_mask": [e.attention_mask], "token_type_ids": [e.type_ids]}
        return session.run(None, {k: np.array(v, dtype=np.int64) for k, v in feeds.items() if k in names})

    return call


# -- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout_s:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _thrifty_env(home: Path, port: int | None = None) -> dict[str, str]:
    env = dict(os.environ, THRIFTY_HOME=str(home), HF_HUB_OFFLINE="1")
    if port is not None:
        env["THRIFTY_GATEWAY_PORT"] = str(port)
    return env


@contextlib.contextmanager
def thrifty_direct(case: Case) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        args = [str(THRIFTY), "serve", str(case.path), "--name", case.name, "--port", str(port)]
        if case.tokenizer:
            args += ["--tokenizer", str(case.tokenizer)]
        proc = subprocess.Popen(args, env=_thrifty_env(Path(home)), stdout=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{port}/v2/models/{case.name}/ready", proc)
            yield f"http://127.0.0.1:{port}/v2/models/{case.name}/infer"
        finally:
            _stop(proc)


@contextlib.contextmanager
def thrifty_gateway(case: Case) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = _thrifty_env(Path(home), port)
        args = [str(THRIFTY), "deploy-local", str(case.path), "--name", case.name]
        if case.tokenizer:
            args += ["--tokenizer", str(case.tokenizer)]
        try:
            subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
            yield f"http://127.0.0.1:{port}/v2/models/{case.name}/infer", env
        finally:
            subprocess.run([str(THRIFTY), "down"], env=env, check=False, stdout=subprocess.DEVNULL)


def ensure_peers() -> dict[str, Path]:
    """bench/.peers-venv/<peer> virtualenvs (created with uv on first use); {} entries that fail are skipped."""
    ready = {}
    for peer, requirements in PEER_REQUIREMENTS.items():
        venv = PEERS_DIR / peer
        python = venv / "bin" / "python"
        if not python.exists():
            console.print(f"creating {venv} (uv) …")
            try:
                subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(venv)], check=True)
                env = dict(os.environ, VIRTUAL_ENV=str(venv))
                subprocess.run(
                    ["uv", "pip", "install", "-q", *requirements, *COMMON_PEER_REQUIREMENTS],
                    check=True,
                    env=env,
                )
            except (subprocess.CalledProcessError, FileNotFoundError) as exc:
                console.print(f"[yellow]skipping {peer}: {exc}[/]")
                shutil.rmtree(venv, ignore_errors=True)
                continue
        ready[peer] = venv
    return ready


@contextlib.contextmanager
def mlserver(case: Case, venv: Path) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 0,
            "debug": False,
        }
        (root / "settings.json").write_text(json.dumps(settings))
        extra = {"tokenizer": str(case.tokenizer)} if case.tokenizer else {}
        model_settings = {
            "name": case.name,
            "implementation": "mlserver_runtime.OnnxRuntime",
            "parameters": {"uri": str(case.path), "extra": extra},
        }
        (root / "model-settings.json").write_text(json.dumps(model_settings))
        env = dict(os.environ, PYTHONPATH=str(PEER_DIR))
        proc = subprocess.Popen(
            [str(venv / "bin" / "mlserver"), "start", str(root)],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/v2/models/{case.name}/ready", proc)
            yield f"http://127.0.0.1:{port}/v2/models/{case.name}/infer"
        finally:
            _stop(proc)


@contextlib.contextmanager
def kserve(case: Case, venv: Path) -> Iterator[str]:
    port = free_port()
    args = [
        str(venv / "bin" / "python"),
        str(PEER_DIR / "kserve_server.py"),
        "--name",
        case.name,
        "--model",
        str(case.path),
        "--port",
        str(port),
    ]
    if case.tokenizer:
        args += ["--tokenizer", str(case.tokenizer)]
    env = dict(os.environ, PYTHONPATH=str(PEER_DIR))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/models/{case.name}/ready", proc)
        yield f"http://127.0.0.1:{port}/v2/models/{case.name}/infer"
    finally:
        _stop(proc)


# -- load ----------------------------------------------------------------------------------------
def measure(url: str, case: Case, concurrency: int) -> dict[str, float]:
    args = [
        str(PY),
        str(ROOT / "bench" / "_load.py"),
        "--url",
        url,
        "--body",
        str(case.body_file),
        "-c",
        str(concurrency),
        "-d",
        str(DURATION_S),
    ]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def both(url: str, case: Case) -> dict[int, dict[str, float]]:
    # one untimed request first: peers load lazily, and nobody should pay that inside a run
    httpx.post(
        url, content=case.body_file.read_bytes(), headers={"content-type": "application/json"}, timeout=60
    )
    return {c: measure(url, case, c) for c in (1, 32)}


def run_case(case: Case, peers: dict[str, Path]) -> dict[str, dict[int, dict[str, float]]]:
    results: dict[str, dict[int, dict[str, float]]] = {}
    console.print(f"[bold]{case.name}[/]: raw onnxruntime …")
    raw = raw_onnxruntime(case)
    results[RAW] = {1: raw, 32: raw}
    console.print(f"[bold]{case.name}[/]: thrifty direct …")
    with thrifty_direct(case) as url:
        results["thrifty serve (direct)"] = both(url, case)
    console.print(f"[bold]{case.name}[/]: thrifty via gateway …")
    with thrifty_gateway(case) as (url, _):
        results["thrifty via gateway"] = both(url, case)
    servers = {"mlserver": mlserver, "kserve": kserve}
    labels = {"mlserver": "MLServer 1.7.1", "kserve": "KServe 0.21.0 (Python server)"}
    for peer, venv in peers.items():
        console.print(f"[bold]{case.name}[/]: {peer} …")
        try:
            with servers[peer](case, venv) as url:
                results[labels[peer]] = both(url, case)
        except RuntimeError as exc:
            console.print(f"[yellow]{peer} failed: {exc}[/]")
    console.print(f"[bold]{case.name}[/]: raw onnxruntime again …")
    again = raw_onnxruntime(case)
    if again["rps"] > raw["rps"]:  # the machine is shared: keep the better (stricter) limit
        results[RAW] = {1: again, 32: again}
    return results


# -- wake ----------------------------------------------------------------------------------------
#: (deployment, label, the serving option that picks the saved graph's format)
WAKE_FORMATS = (
    ("mapped", "optimized ONNX, weights memory-mapped (model.data)", "onnx"),
    ("ort", "ORT flatbuffer (.opt.ort, before)", "ort"),
)
DEPLOY_SCRIPT = """
import json, sys
from pathlib import Path
from thrifty import runtime
from thrifty.providers.local import LocalProvider, spec_for_path
for name, path, tokenizer, graph in json.loads(sys.argv[1]):
    serving = {"tokenizer_path": tokenizer, "optimized_graph": graph}
    LocalProvider().deploy(spec_for_path(Path(path), name, runtime.store(), replicas=0, serving=serving))
"""


class WakeCase:
    def __init__(self, variant: str, path: Path, fmt: str, label: str, graph: str) -> None:
        self.variant, self.path, self.fmt, self.label, self.graph = variant, path, fmt, label, graph
        self.name = f"{variant}-{fmt}"
        self.size_mb = path.stat().st_size / 1e6


def wake_cases() -> list[WakeCase]:
    fp32, int8 = export_minilm(OUT / "minilm")
    return [
        WakeCase(variant, path, fmt, label, graph)
        for variant, path in (("minilm-fp32", fp32), ("minilm-int8", int8))
        for fmt, label, graph in WAKE_FORMATS
    ]


@contextlib.contextmanager
def wake_gateway(cases: list[WakeCase]) -> Iterator[tuple[str, dict[str, str], Path]]:
    """One gateway, every case deployed hibernated (the optimized graphs are saved at deploy)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = _thrifty_env(Path(home), port)
        orders = [[c.name, str(c.path), str(model_folder()), c.graph] for c in cases]
        try:
            subprocess.run([str(PY), "-c", DEPLOY_SCRIPT, json.dumps(orders)], env=env, check=True)
            yield f"127.0.0.1:{port}", env, Path(home)
        finally:
            subprocess.run([str(THRIFTY), "down"], env=env, check=False, stdout=subprocess.DEVNULL)


def _admin(address: str) -> dict[str, Any]:
    return dict(httpx.get(f"http://{address}/admin/status", timeout=10).json())


def _quiet(address: str, name: str, timeout_s: float = 60.0) -> None:
    """Wait until ``name`` has no replica and a warm spare is ready (the state a wake starts from)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = _admin(address)
        model = state["models"].get(name, {})
        booting = any(w["role"] == "booting" for w in state["workers"])
        if (
            not model.get("replicas")
            and not model.get("retiring")
            and state["warm_pool"]["spares"]
            and not booting
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not settle hibernated with a warm spare within {timeout_s:g} s")


def evict(home: Path, case: WakeCase) -> None:
    """Drop the deployment's files from the page cache (as after a long hibernation)."""
    for path in [case.path, *(home / "cache" / "serving").rglob("*")]:
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def one_wake(address: str, env: dict[str, str], home: Path, case: WakeCase, *, cold_cache: bool) -> float:
    """Hibernate ``case``, let it settle, then time one request through the gateway (tritonclient)."""
    import tritonclient.http as triton

    subprocess.run([str(THRIFTY), "hibernate", case.name], env=env, check=True, stdout=subprocess.DEVNULL)
    _quiet(address, case.name)
    time.sleep(1.0)  # idle, as a hibernated model would be
    if cold_cache:
        evict(home, case)
    client = triton.InferenceServerClient(address, network_timeout=60)
    try:
        assert client.is_server_live()  # connect first: time the wake, not TCP
        text = triton.InferInput("text", [1], "BYTES")
        text.set_data_from_numpy(np.array([TEXT.encode()], dtype=object))
        started = time.perf_counter()
        result = client.infer(case.name, [text])
        elapsed_ms = (time.perf_counter() - started) * 1000
    finally:
        client.close()
    assert result.as_numpy("sentence_embedding").shape == (1, 384)
    return elapsed_ms


def wake_table(cases: list[WakeCase]) -> dict[tuple[str, str], list[float]]:
    """Wakes per (case, page cache), interleaved round by round so noise hits every case alike."""
    rows: dict[tuple[str, str], list[float]] = {}
    with wake_gateway(cases) as (address, env, home):
        for _ in range(WAKE_TRIALS):
            for case in cases:
                rows.setdefault((case.name, "cached"), []).append(
                    one_wake(address, env, home, case, cold_cache=False)
                )
        for _ in range(COLD_WAKE_TRIALS):
            for case in cases:
                if case.variant == "minilm-fp32":
                    rows.setdefault((case.name, "evicted"), []).append(
                        one_wake(address, env, home, case, cold_cache=True)
                    )
        rows[("awake", "cached")] = _awake(address, cases[0])
        rows.update(_memory(address, cases[0]))
        rows.update(worker_cpu(cases, home))
        log = (home / "logs" / "gateway.log").read_text()
    rows.update(_ready_timings(log))
    return rows


def _memory(address: str, awake: WakeCase) -> dict[tuple[str, str], list[float]]:
    """Resident memory (MB) of the warm spare and of ``awake``'s replica: what hibernation frees."""
    deadline = time.monotonic() + 60
    while not (state := _admin(address))["warm_pool"]["spares"] and time.monotonic() < deadline:
        time.sleep(0.2)

    def rss(pid: int) -> list[float]:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        return [int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")]

    replica = state["models"][awake.name]["replicas"][0]["pid"]
    spare = state["warm_pool"]["spares"][0]["pid"]
    return {("warm spare", "memory"): rss(spare), (awake.name, "memory"): rss(replica)}


def _awake(address: str, case: WakeCase) -> list[float]:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(address, network_timeout=60)
    text = triton.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([TEXT.encode()], dtype=object))
    client.infer(case.name, [text])  # untimed: it is awake from here on
    warm = []
    for _ in range(20):
        started = time.perf_counter()
        client.infer(case.name, [text])
        warm.append((time.perf_counter() - started) * 1000)
    client.close()
    return warm


def _ready_timings(log: str) -> dict[tuple[str, str], list[float]]:
    """The worker's own load times per case, from the gateway log ('session_ms': …)."""
    found: dict[tuple[str, str], list[float]] = {}
    pattern = r"replica of (\S+) ready on port \d+ \(pid \d+\) in [\d.]+ ms: .*?'session_ms': ([\d.]+)"
    for name, session_ms in re.findall(pattern, log):
        found.setdefault((name, "session"), []).append(float(session_ms))
    return found


def _cpu_ms(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def worker_cpu(cases: list[WakeCase], home: Path) -> dict[tuple[str, str], list[float]]:
    """CPU (user + sys, ms) a warm worker spends to load each case and answer its first request.

    Unlike wall time this barely depends on what else runs on the machine: the work a wake costs.
    """
    import hashlib

    out: dict[tuple[str, str], list[float]] = {}
    graphs = {}
    for case in cases:  # the cache names the saved graph by the file's sha256 (serving/resolve.py)
        sha = hashlib.sha256(case.path.read_bytes()).hexdigest()
        graphs[case.name] = (
            home / "cache" / "serving" / (f"{sha}.opt.ort" if case.graph == "ort" else f"{sha}.opt")
        )
    for _ in range(3):
        for case in cases:
            load_ms, first_ms = _one_worker(case, graphs[case.name])
            out.setdefault((case.name, "cpu load"), []).append(load_ms)
            out.setdefault((case.name, "cpu first request"), []).append(first_ms)
    return out


def _one_worker(case: WakeCase, graph: Path) -> tuple[float, float]:
    proc = subprocess.Popen(
        [str(PY), "-m", "thrifty.serving.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = json.loads(proc.stdout.readline())["port"]
        before = _cpu_ms(proc.pid)
        graph_file = graph if graph.is_file() else graph / "model.onnx"
        order = {"name": "m", "model_path": str(case.path), "tokenizer_path": str(model_folder()),
                 "optimized_graph_path": str(graph_file), "runner": {}}  # fmt: skip
        proc.stdin.write(json.dumps(order).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["event"] == "ready"
        loaded = _cpu_ms(proc.pid)
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXT]}]}
        httpx.post(f"http://127.0.0.1:{port}/v2/models/m/infer", json=body, timeout=60).raise_for_status()
        return loaded - before, _cpu_ms(proc.pid) - loaded
    finally:
        proc.stdin.write(b'{"command": "stop"}\n')
        proc.stdin.flush()
        proc.wait(30)


def floors(cases: list[WakeCase]) -> dict[tuple[str, str], list[float]]:
    """Session creation alone, in this (warm) process: the original file and each saved graph."""
    import onnxruntime as ort

    from thrifty.serving.runner import RunnerConfig, create_session, save_optimized_graph

    out: dict[tuple[str, str], list[float]] = {}
    for case in cases:
        suffix = ".opt.ort" if case.graph == "ort" else ".opt"
        graph = save_optimized_graph(case.path, OUT / "minilm" / f"{case.path.stem}{suffix}")
        times = []
        for _ in range(5):
            started = time.perf_counter()
            create_session(case.path, RunnerConfig(optimized_graph_path=graph))
            times.append((time.perf_counter() - started) * 1000)
        out[(case.name, "floor")] = times
    for variant, path in {(c.variant, c.path) for c in cases}:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            times.append((time.perf_counter() - started) * 1000)
        out[(f"{variant}-original", "floor")] = times
    return out


# -- report --------------------------------------------------------------------------------------
def serving_markdown(all_results: dict[str, dict[str, dict[int, dict[str, float]]]]) -> str:
    lines = [
        "## Serving (bench/serving.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {machine_line()}. Load from a separate process"
        f" (keep-alive connections, one request at a time each), {DURATION_S:g} s per run after 1 s warm-up;"
        " client and servers share this machine's cores. MiniLM: int8, one 128-token text per request,"
        " tokenized server-side. Raw onnxruntime = one call at a time in-process (the limit at any concurrency),"
        " measured before and after the servers; the faster of the two is shown."
        " Every contender runs onnxruntime with the same options (CPU provider, intra-op spinning off)."
        f" Load average before the run: {LOAD_BEFORE}; after: {_load_average()} (this machine is shared;"
        " compare within a table only).",
        "",
    ]
    for case_name, results in all_results.items():
        raw = results[RAW]
        lines += [
            f"### {case_name}",
            "",
            "| server | req/s c=1 | p50 ms c=1 | req/s c=32 | p50 ms c=32 | p99 ms c=32 | c=32 vs raw | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, by_c in results.items():
            one, many = by_c[1], by_c[32]
            errors = int(one.get("errors", 0) + many.get("errors", 0))
            lines.append(
                f"| {name} | {one['rps']:,.0f} | {one['p50_ms']:.2f} | {many['rps']:,.0f} | {many['p50_ms']:.2f} | "
                f"{many['p99_ms']:.2f} | {many['rps'] / raw[32]['rps']:.0%} | {errors} |"
            )
        lines += ["", *targets(case_name, results), ""]
    return "\n".join(lines)


def targets(case_name: str, results: dict[str, dict[int, dict[str, float]]]) -> list[str]:
    raw = results[RAW]
    direct = results["thrifty serve (direct)"]
    peers = {k: v for k, v in results.items() if not k.startswith(("raw", "thrifty"))}
    best_peer = max((v[32]["rps"] for v in peers.values()), default=float("nan"))
    added_ms = direct[1]["p50_ms"] - raw[1]["p50_ms"]
    out = [f"- p50 added latency at c=1 (thrifty direct − raw): {added_ms:.2f} ms (target ≤ 1 ms)"]
    if case_name == "mlp":
        out.append(
            f"- thrifty direct vs best peer at c=32: {direct[32]['rps'] / best_peer:.1f}× (target ≥ 2×)"
        )
    else:
        out.append(
            f"- thrifty direct at c=32 vs raw onnxruntime: {direct[32]['rps'] / raw[32]['rps']:.0%} (target ≥ 95 %)"
        )
        worst_peer_p99 = min((v[32]["p99_ms"] for v in peers.values()), default=float("nan"))
        out.append(
            f"- p99 at c=32: thrifty {direct[32]['p99_ms']:.0f} ms vs best peer {worst_peer_p99:.0f} ms"
        )
    return out


def _stats(values: list[float]) -> str:
    return (
        f"{statistics.median(values):.0f} | {float(np.percentile(values, 95)):.0f} | "
        f"{min(values):.0f} | {max(values):.0f} | {len(values)}"
    )


def wake_markdown(cases: list[WakeCase], rows: dict[tuple[str, str], list[float]], load: str) -> str:
    lines = [
        "## Wake from zero (bench/serving.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {machine_line()}. all-MiniLM-L6-v2 (mean-pooled"
        " sentence embedding), one 128-token text tokenized server-side, sent with tritonclient through the"
        " gateway. Each wake: `thrifty hibernate`, wait until a warm worker is ready, 1 s idle, then one timed"
        " request (request → answer). Both saved-graph formats are deployed side by side in one gateway and"
        f" woken in turn, round by round. Load average {load} (1/5/15 min, before → after; 2 shared cores)."
        " Target (issue 17): p50 ≤ 150 ms for every variant up to 100 MB.",
        "",
        "| variant | file MB | saved graph | wake p50 ms | p95 | min | max | n | session ms p50 (worker) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        session = rows.get((case.name, "session"), [])
        session_p50 = f"{statistics.median(session):.0f}" if session else "—"
        lines.append(
            f"| {case.variant} | {case.size_mb:.0f} | {case.label} | {_stats(rows[(case.name, 'cached')])} | {session_p50} |"
        )
    lines += [
        "",
        "Files evicted from the page cache before each wake (`POSIX_FADV_DONTNEED`), as after a long hibernation:",
        "",
    ]
    lines += [
        "| variant | saved graph | wake p50 ms | p95 | min | max | n |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        if (case.name, "evicted") in rows:
            lines.append(f"| {case.variant} | {case.label} | {_stats(rows[(case.name, 'evicted')])} |")
    lines += [
        "",
        "Floors, in this already-warm process:",
        "",
        "| what | p50 ms | p95 | min | max | n |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines.append(
        f"| request → answer, already awake ({cases[0].variant}) | {_stats(rows[('awake', 'cached')])} |"
    )
    for (name, kind), values in sorted(rows.items()):
        if kind == "floor":
            lines.append(f"| session creation only: {name} | {_stats(values)} |")
    lines += [
        "",
        "CPU a warm worker spends (user + sys from /proc, ms; p50 of 3; barely affected by the machine's load):",
        "",
    ]
    lines += ["| variant | saved graph | load the model | answer the first request |", "|---|---|---:|---:|"]
    for case in cases:
        load_ms = statistics.median(rows[(case.name, "cpu load")])
        first_ms = statistics.median(rows[(case.name, "cpu first request")])
        lines.append(f"| {case.variant} | {case.label} | {load_ms:.0f} | {first_ms:.0f} |")
    memory = [(name, v) for (name, kind), v in rows.items() if kind == "memory"]
    lines += [
        "",
        "Resident memory after the run (MB: total / anonymous / file-backed, the mapped weights):",
        "",
    ]
    lines += [f"- {name}: {v[0]:.0f} / {v[1]:.0f} / {v[2]:.0f}" for name, v in memory]
    lines += ["", *wake_verdict(cases, rows)]
    return "\n".join(lines)


def wake_verdict(cases: list[WakeCase], rows: dict[tuple[str, str], list[float]]) -> list[str]:
    out = []
    for case in cases:
        if case.graph != "onnx":
            continue
        p50 = statistics.median(rows[(case.name, "cached")])
        before = statistics.median(rows[(f"{case.variant}-ort", "cached")])
        verdict = "met" if p50 <= 150 else "NOT met"
        out.append(
            f"- {case.variant} ({case.size_mb:.0f} MB): wake p50 {p50:.0f} ms with mapped weights vs {before:.0f} ms"
            f" with the ORT flatbuffer — target ≤ 150 ms {verdict}"
        )
    return out


def print_wake(cases: list[WakeCase], rows: dict[tuple[str, str], list[float]]) -> None:
    table = Table("case", "page cache", "p50 ms", "p95", "min", "max", "n", title="wake from zero")
    for (name, kind), values in rows.items():
        if kind == "memory":
            continue
        table.add_row(
            name,
            kind,
            f"{statistics.median(values):.0f}",
            f"{float(np.percentile(values, 95)):.0f}",
            f"{min(values):.0f}",
            f"{max(values):.0f}",
            str(len(values)),
        )
    console.print(table)


def print_tables(all_results: dict[str, dict[str, dict[int, dict[str, float]]]]) -> None:
    for case_name, results in all_results.items():
        table = Table("server", "req/s c=1", "p50 c=1", "req/s c=32", "p50 c=32", "p99 c=32", title=case_name)
        for name, by_c in results.items():
            table.add_row(
                name,
                f"{by_c[1]['rps']:,.0f}",
                f"{by_c[1]['p50_ms']:.2f}",
                f"{by_c[32]['rps']:,.0f}",
                f"{by_c[32]['p50_ms']:.2f}",
                f"{by_c[32]['p99_ms']:.2f}",
            )
        console.print(table)


def _load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


LOAD_BEFORE = _load_average()


def run_wake() -> None:
    load_before = _load_average()
    wake = wake_cases()
    rows = wake_table(wake)
    rows.update(floors(wake))
    print_wake(wake, rows)
    write_section("wake", wake_markdown(wake, rows, f"{load_before} → {_load_average()}"))


def main() -> None:
    """``bench/serving.py`` runs everything; ``wake`` only the wake section; ``rollup`` only the
    fleet-metrics rollup against serving (bench/rollup_overhead.py)."""
    if sys.argv[1:] == ["rollup"]:
        from bench.rollup_overhead import run

        run(sys.modules[__name__])
        return
    if sys.argv[1:] == ["egress"]:
        from bench.egress_overhead import run as run_egress

        run_egress(sys.modules[__name__])
        return
    if sys.argv[1:] != ["wake"]:
        peers = ensure_peers()
        all_results = {case.name: run_case(case, peers) for case in cases()}
        print_tables(all_results)
        write_section("serving", serving_markdown(all_results))
    run_wake()


if __name__ == "__main__":
    main()
