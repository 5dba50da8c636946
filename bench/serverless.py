"""Serverless targets measured (writes BENCHMARKS.md "serverless").

    python bench/serverless.py [--starts 5] [--no-write]

1. Cold start, rehearsed: the serving-runtime image started fresh under podman as each platform
   starts it, timed from ``podman run`` to the first correct answer, MiniLM int8 and fp32:
   - Lambda: the image's own Runtime API client against a loopback server that speaks the Lambda
     Runtime API (``thrifty.lambda_rehearsal``), AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1769 (1 vCPU),
     the answer to a function URL event with the deployment's token;
   - Cloud Run: PORT, K_SERVICE / K_REVISION / K_CONFIGURATION, 1 CPU and 2 GiB limits;
   - Container Apps: CONTAINER_APP_NAME / CONTAINER_APP_REVISION, 1 CPU and 2 GiB limits;
   the variant is fetched from a mounted store and verified by sha256 at every start. The
   platforms' own scheduling and image pull are not in these numbers.
2. Package sizes against each platform's limit (the image; the .zip Lambda would need, from the
   image's own site-packages, with its three largest parts).
3. Plans on the reference prices at two traffic shapes (bursty: 5 % of the month at 2 req/s;
   steady: 20 req/s), with the measured cold start in the p95 check, and the break-even.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._minilm import export_minilm, model_folder
from bench._report import machine_line, write_section
from bench.cloud_boot import _first_answer, _free_port, _podman, _reference

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT.parent / "shared" / "data" / "pricing"
TARGETS = ("aws-lambda", "gcp-cloud-run", "azure-container-apps")
LIMITS = {"cpus": "1", "memory": "2g"}


def _oip_request(feeds: dict[str, Any]) -> dict[str, Any]:
    from thrifty.verify import oip_request

    return oip_request(feeds)


def platform_env(target: str, port: int) -> dict[str, str]:
    """What each platform puts in the container's environment (beside the deployment's own)."""
    if target == "aws-lambda":
        return {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769", "AWS_LAMBDA_FUNCTION_NAME": "thrifty-minilm",
                "AWS_LAMBDA_FUNCTION_VERSION": "1", "THRIFTY_MODEL_DIR": "/tmp/thrifty"}  # fmt: skip
    if target == "gcp-cloud-run":
        return {"PORT": str(port), "K_SERVICE": "thrifty-minilm", "K_REVISION": "thrifty-minilm-00001",
                "K_CONFIGURATION": "thrifty-minilm", "THRIFTY_CPU_LIMIT": "1"}  # fmt: skip
    return {"PORT": str(port), "CONTAINER_APP_NAME": "thrifty-minilm", "CONTAINER_APP_REVISION": "thrifty-minilm--r1",
            "THRIFTY_CPU_LIMIT": "1"}  # fmt: skip


def _answer_over_runtime_api(api: Any, token: str, feeds: dict[str, Any]) -> np.ndarray:
    from thrifty.lambda_rehearsal import url_event

    kind, answer = api.invoke(url_event("/v2/models/minilm/infer", _oip_request(feeds), token))
    if kind != "response" or answer["statusCode"] != 200:
        raise RuntimeError(f"the Lambda runtime answered {kind}: {answer}")
    output = json.loads(answer["body"])["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def cold_start(
    image: str, target: str, env: dict[str, str], store: Path, feeds: dict[str, Any]
) -> tuple[float, np.ndarray]:
    """One fresh container of ``image`` as ``target`` starts it → (seconds to the first answer, answer)."""
    from thrifty.lambda_rehearsal import RuntimeApi

    token, port, name = secrets.token_urlsafe(16), _free_port(), f"thrifty-sl-{uuid.uuid4().hex[:8]}"
    env = (
        env
        | platform_env(target, port)
        | {"THRIFTY_API_TOKEN_SHA256": hashlib.sha256(token.encode()).hexdigest()}
    )
    api = RuntimeApi() if target == "aws-lambda" else None
    if api is not None:
        env["AWS_LAMBDA_RUNTIME_API"] = api.address
    flags = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    limits = ["--cpus", LIMITS["cpus"], "--memory", LIMITS["memory"]]
    started = time.perf_counter()
    _podman(
        "run", "-d", "--name", name, "--network", "host", *limits, "-v", f"{store}:/store:ro", *flags, image
    )
    try:
        if api is not None:
            answer = _answer_over_runtime_api(api, token, feeds)
        else:
            answer = _first_answer(f"http://127.0.0.1:{port}", token, feeds)
        return time.perf_counter() - started, answer
    finally:
        _podman("rm", "-f", "-t", "1", name, check=False)  # a stop race must not lose the run
        if api is not None:
            api.close()


def cold_starts(
    image: str, store: Path, blobs: dict[str, str], starts: int
) -> dict[tuple[str, str], dict[str, float]]:
    rows = {}
    for variant in ("int8", "fp32"):
        feeds, expected = _reference(Path(blobs[f"{variant}_path"]), Path(blobs["tokenizer_path"]))
        env = {"THRIFTY_MODEL_NAME": "minilm", "THRIFTY_ARTIFACT_STORE_URL": "/store",
               "THRIFTY_ARTIFACT_SHA256": blobs[variant], "THRIFTY_TOKENIZER_SHA256": blobs["tokenizer"]}  # fmt: skip
        for target in TARGETS:
            times, diffs = [], []
            for _ in range(starts):
                seconds, answer = cold_start(image, target, env, store, feeds)
                times.append(seconds)
                diffs.append(float(np.max(np.abs(answer - expected))))
            times.sort()
            rows[(target, variant)] = {
                "p50_s": statistics.median(times),
                "p95_s": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                "max_abs_diff": max(diffs),
            }
            print(target, variant, rows[(target, variant)], flush=True)
    return rows


def package_sizes(image: str) -> dict[str, Any]:
    """The image's size, and the .zip Lambda would need: the image's site-packages, per package."""
    from thrifty.errors import ConfigError
    from thrifty.providers.serverless import LAMBDA_ZIP_LIMIT_BYTES, Part, check_package

    size = int(json.loads(_podman("image", "inspect", image))[0]["Size"])
    script = ("import json,pathlib,sysconfig;r=pathlib.Path(sysconfig.get_paths()['purelib']);"
              "print(json.dumps({p.name:(p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob('*') if f.is_file())) for p in r.iterdir()}))")  # fmt: skip
    parts = json.loads(_podman("run", "--rm", "--entrypoint", "python3", image, "-c", script))
    zip_parts = [Part(name, size_bytes) for name, size_bytes in parts.items()]
    try:
        total = check_package(zip_parts, LAMBDA_ZIP_LIMIT_BYTES, "the Lambda .zip package")
        verdict = "fits"
    except ConfigError as exc:
        total, verdict = sum(p.size_bytes for p in zip_parts), exc.message
    return {"image_bytes": size, "zip_bytes": total, "zip_verdict": verdict}


def plans(cold_start_ms: float) -> list[dict[str, Any]]:
    """The two traffic shapes on the reference prices, with the measured cold start."""
    import pandas as pd

    from thrifty.catalog.serverless import serverless_table
    from thrifty.catalog.snapshot import read_snapshot
    from thrifty.planner.decision import plan
    from thrifty.planner.types import Assumptions, Slo, Traffic, recorded_minilm

    catalog = pd.concat([read_snapshot(SNAPSHOT), serverless_table()], ignore_index=True)
    assumptions = Assumptions(serverless_cold_start_ms=cold_start_ms)
    out = []
    for shape, traffic in (("bursty: 5 % of the month at 2 req/s", Traffic(rps=2, active_fraction=0.05)),
                           ("steady: 20 req/s", Traffic(rps=20))):  # fmt: skip
        decision = plan(
            recorded_minilm(),
            catalog,
            Slo(50, spot_ok=True),
            traffic,
            assumptions=assumptions,
            with_baseline=False,
        )
        out.append({"shape": shape, "chosen": decision.chosen, "break_even": decision.break_even})
    return out


def _store(work: Path) -> tuple[Path, dict[str, str]]:
    from thrifty.artifacts.local import LocalStore

    store = LocalStore(work / "store")
    fp32, int8 = export_minilm(work / "minilm")
    tokenizer = model_folder() / "tokenizer.json"
    blobs = {"fp32": store.put_file(fp32).sha256, "int8": store.put_file(int8).sha256,
             "tokenizer": store.put_file(tokenizer).sha256, "fp32_path": str(fp32), "int8_path": str(int8),
             "tokenizer_path": str(tokenizer)}  # fmt: skip
    (work / "store").chmod(0o755)
    for path in (work / "store").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return work / "store", blobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / ".ci" / "podman.sh")], check=True)
    from thrifty.image import build_image

    load = os.getloadavg()[0]
    image = build_image().ref
    work = Path(tempfile.mkdtemp(prefix="thrifty-serverless-"))
    store, blobs = _store(work)
    starts = cold_starts(image, store, blobs, args.starts)
    sizes = package_sizes(image)
    cold_ms = 1000 * max(row["p95_s"] for (target, variant), row in starts.items() if variant == "int8")
    shapes = plans(cold_ms)
    markdown = render(args.starts, load, image, blobs, starts, sizes, shapes, cold_ms)
    print(markdown)
    if not args.no_write:
        write_section("serverless", markdown)


def render(n: int, load: float, image: str, blobs: dict[str, str], starts: dict[tuple[str, str], dict[str, float]],
           sizes: dict[str, Any], shapes: list[dict[str, Any]], cold_ms: float) -> str:  # fmt: skip
    model_mb = {v: Path(blobs[f"{v}_path"]).stat().st_size / 1e6 for v in ("int8", "fp32")}
    lines = [
        "## Serverless: rehearsed cold starts, package sizes, plans (bench/serverless.py)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {machine_line()}, load average {load:.1f} at the start; image `{image}`.",
        "",
        f"Cold start = `podman run` of the runtime image with the platform's environment and 1 CPU / 2 GiB limits"
        f" → first correct answer through the deployment's token; {n} fresh containers per row (the variant"
        " fetched from a mounted store and verified by sha256 each time). Lambda: the image's Runtime API client"
        " against a loopback Runtime API, a function URL event; Cloud Run / Container Apps: HTTP on PORT."
        " The platforms' own scheduling and image pull are not included. Goal: p50 ≤ 1.0 s for MiniLM int8.",
        "",
        "| target | variant | model MB | p50 s | p95 s | max abs diff vs local runtime |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (target, variant), row in starts.items():
        lines.append(
            f"| {target} | MiniLM {variant} | {model_mb[variant]:.1f} | {row['p50_s']:.2f} | {row['p95_s']:.2f} | {row['max_abs_diff']:.1e} |"
        )
    lines += _size_lines(sizes) + _plan_lines(shapes, cold_ms)
    return "\n".join(lines) + "\n"


def _size_lines(sizes: dict[str, Any]) -> list[str]:
    image_gb = sizes["image_bytes"] / 1e9
    return [
        "",
        "| package | size | limit | verdict |",
        "|---|---:|---:|---|",
        f"| runtime image (Lambda container image, Cloud Run, Container Apps) | {sizes['image_bytes'] / 1e6:.0f} MB | Lambda 10 GB | {'fits' if image_gb < 10 else 'too big'} |",
        f"| Lambda .zip of the image's site-packages | {sizes['zip_bytes'] / 2**20:.0f} MiB unzipped | 250 MiB | {sizes['zip_verdict']} |",
    ]


def _plan_lines(shapes: list[dict[str, Any]], cold_ms: float) -> list[str]:
    lines = [
        "",
        f"Plans on the reference prices (recorded MiniLM numbers, p95 ≤ 50 ms, spot allowed), cold start"
        f" {cold_ms:.0f} ms (the worst int8 p95 above) in the p95 check:",
        "",
        "| traffic | chosen | cost/month | cold starts | serverless vs dedicated (same variant) | break-even |",
        "|---|---|---:|---:|---|---:|",
    ]
    for entry in shapes:
        c, be = entry["chosen"], entry["break_even"] or {}
        cold = f"{c['cold_start_fraction']:.3%}" if c.get("cold_start_fraction") is not None else "—"
        pair = next((v for v in be.get("per_variant", []) if v["variant"] == c["variant"]), be)
        versus = (f"${pair['usd_per_month_serverless']:,.2f} ({pair['serverless']['instance_type']}) vs "
                  f"${pair['usd_per_month_dedicated']:,.2f} ({pair['dedicated']['instance_type']})") if pair else "—"  # fmt: skip
        even = f"{pair['break_even_rps']:.2f} req/s" if pair else "—"
        lines.append(
            f"| {entry['shape']} | {c['variant']} on {c['provider']} {c['instance_type']} ({c['option']}) | ${c['usd_per_month']:,.2f} | {cold} | {versus} | {even} |"
        )
    return lines


if __name__ == "__main__":
    main()
