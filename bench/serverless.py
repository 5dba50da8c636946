"""Serverless targets measured (writes BENCHMARKS.md "serverless").

    python bench/serverless.py [--starts 5] [--before REF] [--no-write]

1. Cold start, rehearsed: the serving-runtime image started fresh under podman as each platform
   starts it, timed from ``podman run`` to the first correct answer, MiniLM int8 and fp32:
   - Lambda: the image's own Runtime API client against a loopback server that speaks the Lambda
     Runtime API (``thrifty.lambda_rehearsal``), AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1769 (1 vCPU),
     the answer to a function URL event with the deployment's token;
   - Cloud Run: PORT, K_SERVICE / K_REVISION / K_CONFIGURATION, 1 CPU and 2 GiB limits;
   - Container Apps: CONTAINER_APP_NAME / CONTAINER_APP_REVISION, 1 CPU and 2 GiB limits;
   the variant is fetched from a mounted store and verified by sha256 at every start. The
   platforms' own scheduling and image pull are not in these numbers.
   ``--before REF`` also builds the runtime image of git ``REF`` and starts it beside this tree's,
   round by round in the same order (before, after; each target; each variant), so both see the
   same load. This tree's starts get the deploy-time optimized graph (``thrifty.serving.prebuilt``),
   as a deploy gives them, and their phase record (``thrifty.coldstart``) is read from the log.
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Start:
    """One cold start: seconds from ``podman run`` to the first answer, the answer, and the phases
    (ms) from the runtime's own record when it writes one."""

    seconds: float
    answer: np.ndarray
    phases_ms: dict[str, float]
    #: CPU the container's processes used up to the first answer (its cgroup's account): the work a
    #: start does, which a busy machine stretches in wall-clock time but does not change
    cpu_s: float | None = None


def cold_start(image: str, target: str, env: dict[str, str], store: Path, feeds: dict[str, Any]) -> Start:
    """One fresh container of ``image`` as ``target`` starts it."""
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
    started, started_unix = time.perf_counter(), time.time()
    _podman(
        "run", "-d", "--name", name, "--network", "host", *limits, "-v", f"{store}:/store:ro", *flags, image
    )
    try:
        if api is not None:
            answer = _answer_over_runtime_api(api, token, feeds)
        else:
            answer = _first_answer(f"http://127.0.0.1:{port}", token, feeds)
        seconds, answered_unix = time.perf_counter() - started, time.time()
        cpu_s = container_cpu_s(name)
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, env=_env()).stderr
        return Start(seconds, answer, phases(logs, started_unix, answered_unix), cpu_s)
    finally:
        _podman("rm", "-f", "-t", "1", name, check=False)  # a stop race must not lose the run
        if api is not None:
            api.close()


def container_cpu_s(name: str) -> float | None:
    """CPU seconds the container has used so far, from its cgroup (v2 ``cpu.stat``, v1 ``cpuacct``)."""
    group = _podman("inspect", name, "--format", "{{.State.CgroupPath}}").strip()
    for path, scale in (
        (f"/sys/fs/cgroup{group}/cpu.stat", 1e-6),
        (f"/sys/fs/cgroup/cpuacct{group}/cpuacct.usage", 1e-9),
    ):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        fields = dict(line.split() for line in text.splitlines()) if " " in text else {"usage_usec": text}
        return int(fields.get("usage_usec", "0").strip()) * scale
    return None


def _env() -> dict[str, str]:
    from thrifty.image import podman_env

    return podman_env()


#: the phases of one start, in order: (name, from mark, to mark); "run" and "received" are the
#: benchmark's own clock (podman run, the answer back), the rest the runtime's record
PHASES = (
    ("container start (podman run → the container's process forked)", "run", "process"),
    ("container set-up, Python start, thrifty.container import", "process", "main"),
    ("imports (serving code, numpy, onnxruntime, tokenizers)", "main", "imported"),
    ("artifact fetch + sha256", "imported", "fetched"),
    ("tokenizer + onnxruntime session (graph load/optimization)", "fetched", "loaded"),
    ("listening / asking the Runtime API", "loaded", "ready"),
    ("first request: parse, tokenize, first inference, answer back", "ready", "received"),
)


def phases(logs: str, run_unix: float, received_unix: float) -> dict[str, float]:
    """Milliseconds per phase of one start; empty when the runtime wrote no record (an old image)."""
    from thrifty.coldstart import parse_report

    record = parse_report(logs)
    if record is None:
        return {}
    marks = dict(record["marks_unix_s"]) | {"run": run_unix, "received": received_unix}  # type: ignore[call-overload]
    out = {name: 1000 * (marks[b] - marks[a]) for name, a, b in PHASES if a in marks and b in marks}
    details = ("session_ms", "tokenizer_ms")
    return out | {
        f"  of which {k.removesuffix('_ms')} (own thread)": float(record[k]) for k in details if k in record
    }  # type: ignore[arg-type]


def _row(starts: list[Start], expected: np.ndarray) -> dict[str, Any]:
    times = sorted(s.seconds for s in starts)
    named = {k for s in starts for k in s.phases_ms}
    cpu = [s.cpu_s for s in starts if s.cpu_s is not None]
    return {
        "cpu_p50_s": statistics.median(cpu) if cpu else None,
        "p50_s": statistics.median(times),
        "p95_s": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "max_abs_diff": max(float(np.max(np.abs(s.answer - expected))) for s in starts),
        "phases_ms": {
            k: statistics.median(s.phases_ms[k] for s in starts if k in s.phases_ms) for k in named
        },
    }


def cold_starts(
    images: dict[str, str], store: Path, blobs: dict[str, str], starts: int
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``starts`` rounds; each round starts every (variant, target, image) once, images side by side."""
    refs = {v: _reference(Path(blobs[f"{v}_path"]), Path(blobs["tokenizer_path"])) for v in ("int8", "fp32")}
    runs: dict[tuple[str, str, str], list[Start]] = {}
    for round_ in range(starts):
        for variant in ("int8", "fp32"):
            feeds = refs[variant][0]
            for target in TARGETS:
                for label, image in images.items():
                    env = _deploy_env(blobs, variant, optimized=label == "after")
                    start = cold_start(image, target, env, store, feeds)
                    runs.setdefault((label, target, variant), []).append(start)
                    print(f"round {round_ + 1}: {label} {target} {variant} {start.seconds:.2f} s", flush=True)
    return {key: _row(found, refs[key[2]][1]) for key, found in runs.items()}


def _deploy_env(blobs: dict[str, str], variant: str, *, optimized: bool) -> dict[str, str]:
    env = {"THRIFTY_MODEL_NAME": "minilm", "THRIFTY_ARTIFACT_STORE_URL": "/store",
           "THRIFTY_ARTIFACT_SHA256": blobs[variant], "THRIFTY_TOKENIZER_SHA256": blobs["tokenizer"]}  # fmt: skip
    return env | ({"THRIFTY_OPTIMIZED_SHA256": blobs[f"{variant}_optimized"]} if optimized else {})


def image_at(ref: str) -> str:
    """The runtime image of git ``ref`` (built from its tracked files; cached by content like any)."""
    from thrifty.image import build_image

    with tempfile.TemporaryDirectory(prefix="thrifty-before-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return build_image(Path(tmp)).ref


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
    from thrifty.serving.prebuilt import store_optimized

    store = LocalStore(work / "store")
    fp32, int8 = export_minilm(work / "minilm")
    tokenizer = model_folder() / "tokenizer.json"
    blobs = {"fp32": store.put_file(fp32).sha256, "int8": store.put_file(int8).sha256,
             "tokenizer": store.put_file(tokenizer).sha256, "fp32_path": str(fp32), "int8_path": str(int8),
             "tokenizer_path": str(tokenizer)}  # fmt: skip
    for variant in ("fp32", "int8"):  # what a deploy stores beside the variant (thrifty.serving.prebuilt)
        blobs[f"{variant}_optimized"] = store_optimized(store, blobs[variant])
    (work / "store").chmod(0o755)
    for path in (work / "store").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return work / "store", blobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument(
        "--before", default=None, help="a git ref whose runtime image starts beside this tree's"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / ".ci" / "podman.sh")], check=True)
    from thrifty.image import build_image

    images = {"after": build_image().ref}
    if args.before:  # named by its commit: a branch name moves
        args.before = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
                                     capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        images = {"before": image_at(args.before)} | images
    work = Path(tempfile.mkdtemp(prefix="thrifty-serverless-"))
    store, blobs = _store(work)
    load = os.getloadavg()
    starts = cold_starts(images, store, blobs, args.starts)
    load_end = os.getloadavg()
    sizes = package_sizes(images["after"])
    cold_ms = 1000 * max(
        row["p95_s"] for (label, _, variant), row in starts.items() if label == "after" and variant == "int8"
    )
    shapes = plans(cold_ms)
    run = Run(args.starts, (load, load_end), images, args.before, blobs)
    markdown = render(run, starts, sizes, shapes, cold_ms)
    print(markdown)
    if not args.no_write:
        write_section("serverless", markdown)


@dataclass(frozen=True)
class Run:
    starts: int
    load: tuple[tuple[float, ...], tuple[float, ...]]
    images: dict[str, str]
    before_ref: str | None
    blobs: dict[str, str]


def render(run: Run, starts: dict[tuple[str, str, str], dict[str, Any]], sizes: dict[str, Any],
           shapes: list[dict[str, Any]], cold_ms: float) -> str:  # fmt: skip
    (l1, l5, l15), (e1, e5, e15) = run.load
    lines = [
        "## Serverless: rehearsed cold starts, package sizes, plans (bench/serverless.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine_line()}; load average"
        f" {l1:.1f} / {l5:.1f} / {l15:.1f} (1/5/15 min) at the start of the cold starts, {e1:.1f} / {e5:.1f} / {e15:.1f} at"
        f" the end. Images: "
        + ", ".join(f"{k} `{v}`" for k, v in run.images.items())
        + (f" (before = git `{run.before_ref}`)" if run.before_ref else "")
        + ".",
        "",
        f"Cold start = `podman run` of the runtime image with the platform's environment and 1 CPU / 2 GiB limits"
        f" → first correct answer through the deployment's token; {run.starts} fresh containers per row, started"
        " round by round (each round: every variant, target and image once, before and after back to back) so"
        " every row sees the same load. Every blob is fetched from a mounted store and verified by sha256 at"
        " each start; the after image also gets the graph optimized at deploy time. Lambda: the image's"
        " Runtime API client against a loopback Runtime API, a function URL event; Cloud Run / Container Apps:"
        " HTTP on PORT. The platforms' own scheduling and image pull are not included. Goal: p50 ≤ 1.0 s for"
        " MiniLM int8.",
        "",
    ]
    lines += (
        _start_lines(run, starts) + _phase_lines(starts) + _size_lines(sizes) + _plan_lines(shapes, cold_ms)
    )
    return "\n".join(lines) + "\n"


def _start_lines(run: Run, starts: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    model_mb = {v: Path(run.blobs[f"{v}_path"]).stat().st_size / 1e6 for v in ("int8", "fp32")}
    both = "before" in run.images
    lines = [
        "| target | variant | model MB | "
        + ("before p50 / p95 s | " if both else "")
        + "p50 / p95 s | "
        + ("after ÷ before (p50) | " if both else "")
        + "container CPU s to the answer, p50"
        + (" (before → after)" if both else "")
        + " | max abs diff vs local runtime |",
        "|---|---|---:|" + ("---:|" if both else "") + "---:|" + ("---:|" if both else "") + "---:|---:|",
    ]
    for variant in ("int8", "fp32"):
        for target in TARGETS:
            after = starts[("after", target, variant)]
            cells = [target, f"MiniLM {variant}", f"{model_mb[variant]:.1f}"]
            if both:
                before = starts[("before", target, variant)]
                cells.append(f"{before['p50_s']:.2f} / {before['p95_s']:.2f}")
            cells.append(f"**{after['p50_s']:.2f}** / {after['p95_s']:.2f}")
            if both:
                cells.append(f"{after['p50_s'] / before['p50_s']:.2f}×")
            cells.append(" → ".join(_cpu(row) for row in ([before, after] if both else [after])))
            diff = max(after["max_abs_diff"], before["max_abs_diff"]) if both else after["max_abs_diff"]
            cells.append(f"{diff:.1e}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cpu(row: dict[str, Any]) -> str:
    return "—" if row["cpu_p50_s"] is None else f"{row['cpu_p50_s']:.2f}"


def _phase_lines(starts: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    """The after image's starts, phase by phase (medians; the phases of one row need not add up to its p50)."""
    keys = [name for name, _, _ in PHASES]
    keys += sorted({k for row in starts.values() for k in row["phases_ms"]} - set(keys))
    columns = [(t, v) for v in ("int8", "fp32") for t in TARGETS]
    short = {"aws-lambda": "Lambda", "gcp-cloud-run": "Cloud Run", "azure-container-apps": "Container Apps"}
    lines = [
        "",
        "Where the after image's cold start goes, phase by phase (median ms over the starts of each row;"
        " `thrifty.coldstart` marks in the runtime's log, podman run and the answer's arrival on this side):",
        "",
        "| phase | " + " | ".join(f"{short[t]} {v}" for t, v in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for key in keys:
        values = [starts[("after", t, v)]["phases_ms"].get(key) for t, v in columns]
        lines.append(f"| {key} | " + " | ".join("—" if x is None else f"{x:.0f}" for x in values) + " |")
    return lines


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
