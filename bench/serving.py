"""Serving benchmark: thrifty's server and gateway against raw onnxruntime and two peers.

Same machine, one run, side by side. Models: a small MLP and all-MiniLM-L6-v2 (dynamic int8,
text in, server-side tokenization, 128 tokens). Contenders: raw onnxruntime in-process (the limit:
one call at a time), ``thrifty serve`` (direct), thrifty through the gateway (``thrifty up`` +
``deploy-local``), MLServer 1.7.1 and KServe 0.21.0's Python model server, both serving the same
ONNX file with onnxruntime from a separate virtualenv (bench/.peers-venv, created here with uv,
not a project dependency). Load comes from a separate process (bench/_load.py: keep-alive
connections, one request at a time each) at concurrency 1 and 32.

Then the wake table: request → response through the gateway for a hibernated MiniLM int8, next to
the floor (bare session creation; a fresh process's start to first answer).

    .venv/bin/python bench/serving.py            # THRIFTY_BENCH_SECONDS=8 per run by default
"""

from __future__ import annotations

import contextlib
import json
import os
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
WAKE_TRIALS = int(os.environ.get("THRIFTY_BENCH_WAKES", "8"))
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
def wake_table(case: Case) -> dict[str, list[float]]:
    """Hibernate, wait for the warm pool to refill, then time one request through the gateway."""
    rows: dict[str, list[float]] = {}
    body = case.body_file.read_bytes()
    with thrifty_gateway(case) as (url, env):
        wakes = []
        for _ in range(WAKE_TRIALS):
            subprocess.run(
                [str(THRIFTY), "hibernate", case.name], env=env, check=True, stdout=subprocess.DEVNULL
            )
            time.sleep(2.0)  # idle, as a hibernated model would be; the warm pool refills meanwhile
            with httpx.Client() as client:
                client.get(
                    url.rsplit("/v2/", 1)[0] + "/v2/health/live"
                )  # connect first: time the wake, not TCP
                started = time.perf_counter()
                response = client.post(
                    url, content=body, headers={"content-type": "application/json"}, timeout=60
                )
                wakes.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        rows["thrifty gateway: request → response, hibernated (warm pool + saved optimized graph)"] = wakes
        with httpx.Client() as client:
            warm = []
            for _ in range(20):
                started = time.perf_counter()
                client.post(url, content=body, headers={"content-type": "application/json"}, timeout=60)
                warm.append((time.perf_counter() - started) * 1000)
        rows["thrifty gateway: request → response, already awake"] = warm
    rows.update(floors(case))
    return rows


def floors(case: Case) -> dict[str, list[float]]:
    import onnxruntime as ort

    from thrifty.serving.runner import RunnerConfig, create_session, save_optimized_graph

    plain, optimized = [], []
    opt_path = save_optimized_graph(case.path, OUT / "minilm" / "minilm-int8.opt.ort")
    for _ in range(5):
        started = time.perf_counter()
        ort.InferenceSession(str(case.path), providers=["CPUExecutionProvider"])
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        create_session(case.path, RunnerConfig(optimized_graph_path=opt_path))
        optimized.append((time.perf_counter() - started) * 1000)
    script = (
        "import numpy as np, onnxruntime as ort; from tokenizers import Tokenizer\n"
        f"t = Tokenizer.from_file({str(case.tokenizer / 'tokenizer.json')!r}); t.enable_truncation(max_length=128)\n"
        f"s = ort.InferenceSession({str(case.path)!r}, providers=['CPUExecutionProvider'])\n"
        f"e = t.encode({TEXT!r})\n"
        "s.run(None, {'input_ids': np.array([e.ids]), 'attention_mask': np.array([e.attention_mask]), 'token_type_ids': np.array([e.type_ids])})\n"
    )
    process = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(PY), "-c", script], check=True)
        process.append((time.perf_counter() - started) * 1000)
    return {
        "floor: bare InferenceSession creation, int8 export (warm process)": plain,
        "floor: session from the saved optimized graph (warm process)": optimized,
        "floor: fresh process start → first answer (import, session, tokenize, run)": process,
    }


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


def wake_markdown(rows: dict[str, list[float]]) -> str:
    lines = [
        "## Wake from zero (bench/serving.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {machine_line()}. MiniLM int8, one 128-token text;"
        f" {WAKE_TRIALS} wakes, each after `thrifty hibernate` and 2 s idle. Target: p50 < 150 ms.",
        "",
        "| what | p50 ms | min ms | max ms | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in rows.items():
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} | {len(values)} |"
        )
    return "\n".join(lines)


def print_tables(
    all_results: dict[str, dict[str, dict[int, dict[str, float]]]], wake: dict[str, list[float]]
) -> None:
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
    table = Table("wake", "p50 ms", "min", "max", title="wake from zero")
    for name, values in wake.items():
        table.add_row(name, f"{statistics.median(values):.0f}", f"{min(values):.0f}", f"{max(values):.0f}")
    console.print(table)


def _load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


LOAD_BEFORE = _load_average()


def main() -> None:
    peers = ensure_peers()
    all_cases = cases()
    all_results = {case.name: run_case(case, peers) for case in all_cases}
    wake = wake_table(all_cases[1])
    print_tables(all_results, wake)
    write_section("serving", serving_markdown(all_results))
    write_section("wake", wake_markdown(wake))


if __name__ == "__main__":
    main()
