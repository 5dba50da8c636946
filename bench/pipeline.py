"""Pipeline benchmark: the wall time of `make run`, its split per step, and Prefect's share of it.

1. `make run` as a user runs it (``python -m flows.demo``: the deploy-model flow on the bundled
   all-MiniLM-L6-v2, an ephemeral Prefect API, a fresh THRIFTY_HOME so nothing is cached), then the
   same command again on the same homes (everything reused: the cached re-run).
2. In one process, with the ephemeral API already started and the heavy imports done: the flow on
   a fresh THRIFTY_HOME (the split per step comes from its task runs), and the same steps called
   directly as library functions (each task's ``.fn``) on another fresh THRIFTY_HOME. Prefect's
   overhead = (flow − direct) / flow.

Run: ``.venv/bin/python bench/pipeline.py`` (about 10 minutes on 2 busy cores; writes BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/pipeline.py` finds bench._report

from rich.console import Console
from rich.table import Table

from bench._report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]
NAME = "minilm"
RAW = ROOT / "bench" / "out" / "pipeline.json"
console = Console()

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}.items():
    os.environ.setdefault(_key, _value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_avg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def use_home(home: Path) -> None:
    """Point this process's thrifty at ``home`` with its own gateway port."""
    from thrifty import runtime

    os.environ["THRIFTY_HOME"] = str(home)
    os.environ["THRIFTY_GATEWAY_PORT"] = str(free_port())
    runtime.reset()


def stop_gateway() -> None:
    from thrifty.serving.daemon import stop_daemon
    from thrifty.settings import get_settings

    stop_daemon(get_settings())


# -- 1. `make run`, fresh and cached ------------------------------------------------------------
def make_run(env: dict[str, str]) -> tuple[float, str | None]:
    """(wall seconds, None) or (wall seconds, the last error line) when `make run` failed."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.demo"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall_s = time.perf_counter() - started
    if done.returncode == 0:
        return wall_s, None
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "Error:" in line]
    console.print(f"[red]make run failed[/] after {wall_s:.0f} s:\n{done.stderr[-2000:]}")
    return wall_s, (errors[-1] if errors else f"exit code {done.returncode}")[:400]


def make_run_twice(tmp: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "THRIFTY_HOME": str(tmp / "make-run-home"),
        "THRIFTY_GATEWAY_PORT": str(free_port()),
        "PREFECT_HOME": str(tmp / "make-run-prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    out: dict[str, Any] = {"load_before": load_avg(), "measured_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M}"}
    try:
        out["fresh_s"], out["fresh_error"] = make_run(env)
        out["load_fresh"] = load_avg()
        out["cached_s"], out["cached_error"] = make_run(env)
        out["load_cached"] = load_avg()
    finally:
        subprocess.run(
            [sys.executable, "-c", "from thrifty.serving.daemon import stop_daemon; from thrifty.settings "
             "import get_settings; stop_daemon(get_settings())"],
            env=env, check=False,
        )  # fmt: skip
    return out


# -- 2. flow vs direct in one process ------------------------------------------------------------
def warm_up(model: str) -> float:
    """Start the ephemeral API (a trivial flow) and import what the steps import; returns its time."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def nothing() -> int:
        return 1

    started = time.perf_counter()
    nothing()
    api_s = time.perf_counter() - started
    import onnxruntime  # noqa: F401
    import optimum.onnxruntime  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import flows.deploy_model  # noqa: F401

    return api_s


def flow_run(model: str, p95_ms: float) -> tuple[float, UUID]:
    from flows.deploy_model import DeployModelParams, deploy_model

    started = time.perf_counter()
    state = deploy_model(DeployModelParams(model=model, name=NAME, p95_ms=p95_ms), return_state=True)
    wall_s = time.perf_counter() - started
    if not state.is_completed():
        raise SystemExit(f"the flow failed: {state.message}")
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return wall_s, run_id


def step_split(flow_run_id: UUID) -> dict[str, dict[str, Any]]:
    """Task name → runs, wall span (first start → last end) and summed run time, in seconds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    steps: dict[str, dict[str, Any]] = {}
    for run in runs:
        step = steps.setdefault(
            run.name.rsplit("-", 1)[0], {"runs": 0, "starts": [], "ends": [], "sum_s": 0.0}
        )
        step["runs"] += 1
        step["sum_s"] += run.total_run_time.total_seconds()
        if run.start_time and run.end_time:
            step["starts"].append(run.start_time)
            step["ends"].append(run.end_time)
    return steps_summary(steps)


def busy_seconds(split: dict[str, dict[str, Any]]) -> float:
    """Seconds during which at least one task run was running (the union of their intervals)."""
    intervals = sorted(i for s in split.values() for i in s["intervals"])
    total_s, end = 0.0, None
    for start, stop in intervals:
        if end is None or start > end:
            total_s += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total_s += (stop - end).total_seconds()
            end = stop
    return total_s


def steps_summary(steps: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "intervals": list(zip(s["starts"], s["ends"], strict=True)),
            "runs": s["runs"],
            "span_s": (max(s["ends"]) - min(s["starts"])).total_seconds() if s["starts"] else 0.0,
            "sum_s": s["sum_s"],
        }
        for name, s in steps.items()
    }


class Timer:
    """Seconds per step of the direct calls."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def __call__(self, step: str, fn: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.steps[step] = self.steps.get(step, 0.0) + time.perf_counter() - started


def direct_run(model: str, p95_ms: float) -> tuple[float, dict[str, float]]:
    """The flow's steps as plain calls of the tasks' functions, in the flow's order."""
    from prefect.logging import disable_run_logger

    from flows.deploy_model import QUANT_TECHNIQUES, DeployModelParams, _deploy_spec
    from tasks import benchmark, deploy, optimize, plan

    params = DeployModelParams(model=model, name=NAME, p95_ms=p95_ms)
    tolerance = {"min_cosine": params.min_cosine, "min_agreement": params.min_agreement}
    t = Timer()
    started = time.perf_counter()
    with disable_run_logger():
        version = t("resolve-model", deploy.resolve_model.fn, params.model, params.name)
        refs = [t("export-onnx", optimize.export_onnx.fn, version["version_id"])]
        refs.append(t("optimize-graph", optimize.optimize_graph.fn, version["version_id"], refs[0]))
        for technique in [q for q in QUANT_TECHNIQUES if q in params.techniques]:
            try:
                refs.append(
                    t("quantize-model", optimize.quantize_model.fn, version["version_id"], technique,
                      refs[1], "cpu", tolerance)
                )  # fmt: skip
            except Exception as exc:  # as in the flow: one technique failing does not stop the run
                console.print(f"direct: {technique} produced no variant: {exc}")
        spec = {"batch_sizes": (1, 8), "threads": (1,), "seq_lens": (128,), "runs": params.bench_runs}
        for ref in refs:
            t("run-benchmark", benchmark.run_benchmark.fn, ref.variant_id, spec)
        for ref in refs:
            t("measure-fidelity", benchmark.measure_fidelity.fn, ref.variant_id, tolerance)
        slo = {"latency_ms_p95": params.p95_ms, "accepted_only": True, "providers": params.providers,
               "regions": params.regions, "spot_ok": params.spot_ok,
               "serverless_ok": params.serverless_ok}  # fmt: skip
        traffic = {"rps": params.rps, "active_fraction": params.active_fraction}
        planned = t("plan-placement", plan.plan_placement.fn, version["model"], slo, traffic)
        chosen = planned["record"]["chosen"]
        where = t("choose-target", deploy.choose_target.fn, chosen, params.target)
        deploy_spec = _deploy_spec(NAME, version, refs, chosen, planned["plan_id"], where)
        t("deploy-local", deploy.deploy_local.fn, deploy_spec)
        smoke = t("smoke-test", deploy.smoke_test.fn, NAME, version["version_id"], params.min_cosine)
        t("mark-live", deploy.mark_live.fn, NAME, planned["plan_id"], smoke, where["reason"])
        t("publish-run-artifacts", deploy.publish_run_artifacts.fn, NAME, where["reason"])
    return time.perf_counter() - started, t.steps


def flow_vs_direct(tmp: Path, model: str, p95_ms: float, pairs: int) -> dict[str, Any]:
    """``pairs`` flow/direct pairs, the order alternating (flow first, then direct first)."""
    out: dict[str, Any] = {"api_start_s": warm_up(model), "p95_ms": p95_ms, "pairs": []}
    for index in range(pairs):
        pair: dict[str, Any] = {"order": "flow → direct" if index % 2 == 0 else "direct → flow"}
        for kind in ("flow", "direct") if index % 2 == 0 else ("direct", "flow"):
            use_home(tmp / f"{kind}-home-{index}")
            pair[f"load_{kind}"] = load_avg()
            try:
                if kind == "flow":
                    pair["flow_s"], run_id = flow_run(model, p95_ms)
                else:
                    pair["direct_s"], steps = direct_run(model, p95_ms)
            finally:
                stop_gateway()
        split = step_split(run_id)
        pair["outside_tasks_s"] = pair["flow_s"] - busy_seconds(split)
        out["pairs"].append(pair)
        out.setdefault("split", split)
        out.setdefault("direct_steps", steps)
    out["flow_s"] = sum(p["flow_s"] for p in out["pairs"])
    out["direct_s"] = sum(p["direct_s"] for p in out["pairs"])
    out["outside_tasks_s"] = sum(p["outside_tasks_s"] for p in out["pairs"])
    out["load_after"] = load_avg()
    return out


# -- report -------------------------------------------------------------------------------------
def step_table(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    split, direct = result["split"], result["direct_steps"]
    first = {n: min((i[0] for i in s["intervals"]), default=None) for n, s in split.items()}
    ordered = sorted(split, key=lambda n: str(first[n]))  # in the order the flow ran them
    rows = []
    for name in ordered + [n for n in direct if n not in split]:
        s = split.get(name, {})
        rows.append(
            (
                name,
                str(s.get("runs", "-")),
                f"{s['span_s']:.1f}" if s else "-",
                f"{s['sum_s']:.1f}" if s else "-",
                f"{direct[name]:.1f}" if name in direct else "-",
            )
        )
    return rows


def render(runs: dict[str, Any], inproc: dict[str, Any]) -> str:
    overhead_s = inproc["flow_s"] - inproc["direct_s"]
    share = overhead_s / inproc["flow_s"]
    failed = [
        f"`make run` ({k}) FAILED: {runs[k + '_error']}" for k in ("fresh", "cached") if runs[k + "_error"]
    ]
    lines = [
        "## Pipeline (`make run`: deploy-model on all-MiniLM-L6-v2)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_line()}; the machine is shared with "
        "other engineers' work, load average (1/5/15 min) shown with each number.",
        "",
        f"`make run` measured {runs['measured_at']} UTC:",
        "",
        "| run | wall time | target | load before → after |",
        "|---|---:|---:|---|",
        f"| `make run`, fresh THRIFTY_HOME and PREFECT_HOME (nothing cached) | {runs['fresh_s']:.0f} s | < 180 s "
        f"| {runs['load_before']} → {runs['load_fresh']} |",
        f"| `make run` again (cached re-run: model, variants, benchmarks reused; same deployment) | "
        f"{runs['cached_s']:.0f} s | | {runs['load_fresh']} → {runs['load_cached']} |",
        "",
        *[f"**{line}**\n" for line in failed],
        "Prefect's share, in one process (ephemeral API already up, heavy imports done; fresh "
        f"THRIFTY_HOME for each; SLO p95 ≤ {inproc['p95_ms']:g} ms so a busy machine's timings still plan):",
        "",
        "| pair | order | flow s (load before) | direct s (load before) | flow − direct | "
        "flow time outside every task run |",
        "|---:|---|---:|---:|---:|---:|",
        *[
            f"| {i + 1} | {p['order']} | {p['flow_s']:.1f} ({p['load_flow']}) | {p['direct_s']:.1f} "
            f"({p['load_direct']}) | {p['flow_s'] - p['direct_s']:+.1f} s = "
            f"{(p['flow_s'] - p['direct_s']) / p['flow_s']:+.1%} | {p['outside_tasks_s']:.1f} s = "
            f"{p['outside_tasks_s'] / p['flow_s']:.1%} |"
            for i, p in enumerate(inproc["pairs"])
        ],
        f"| **all** | | **{inproc['flow_s']:.1f}** | **{inproc['direct_s']:.1f}** | **{overhead_s:+.1f} s = "
        f"{share:+.1%}** (target < 10 %) | **{inproc['outside_tasks_s']:.1f} s = "
        f"{inproc['outside_tasks_s'] / inproc['flow_s']:.1%}** |",
        "",
        f"Ephemeral Prefect API start (the first flow call in a process, paid once by `make run`): "
        f"{inproc['api_start_s']:.1f} s = {inproc['api_start_s'] / runs['fresh_s']:.0%} of the fresh `make run`, "
        f"{inproc['api_start_s'] / runs['cached_s']:.0%} of the cached one (a running `make server` with "
        f"PREFECT_API_URL set avoids it). Load average after: {inproc['load_after']}.",
        "",
        "Reading it: flow − direct swings by tens of seconds between pairs (other engineers' jobs share the "
        "2 cores; the flow also runs the mapped quantizers and fidelity checks concurrently), so it cannot "
        "resolve an overhead of a few percent; the flow time outside every task run (Prefect's engine, "
        "state changes and API calls between tasks) is the direct measure of the orchestration cost.",
        "",
        "Split per step (flow: task runs from the Prefect API; mapped steps run concurrently, so their "
        "wall span is less than the summed run time):",
        "",
        "| step | task runs | flow wall span s | flow summed run time s | direct s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in step_table(inproc)]
    return "\n".join(lines) + "\n"


def print_tables(runs: dict[str, Any], inproc: dict[str, Any]) -> None:
    table = Table("run", "wall s", "load avg", title="make run")
    for key, label in (("fresh", "make run, fresh"), ("cached", "make run, cached re-run")):
        status = " (failed)" if runs[f"{key}_error"] else ""
        table.add_row(label + status, f"{runs[f'{key}_s']:.1f}", runs[f"load_{key}"])
    for i, p in enumerate(inproc["pairs"]):
        table.add_row(f"pair {i + 1}: flow in-process", f"{p['flow_s']:.1f}", p["load_flow"])
        table.add_row(f"pair {i + 1}: direct calls", f"{p['direct_s']:.1f}", p["load_direct"])
    console.print(table)
    steps = Table("step", "runs", "flow span s", "flow sum s", "direct s", title="split per step")
    for row in step_table(inproc):
        steps.add_row(*row)
    console.print(steps)


def main() -> int:
    import argparse

    from flows.demo import bundled_minilm

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--p95-ms", type=float, default=50.0, help="SLO of the in-process flow/direct pair (make run uses 50)"
    )
    parser.add_argument("--pairs", type=int, default=2, help="flow/direct pairs, alternating their order")
    parser.add_argument(
        "--reuse-make-run",
        action="store_true",
        help="take the make run numbers from the last bench/out/pipeline.json",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="re-write the section from bench/out/pipeline.json"
    )
    args = parser.parse_args()
    p95_ms = args.p95_ms
    if args.render_only:
        raw = json.loads(RAW.read_text())
        write_section("pipeline", render(raw["make_run"], raw["in_process"]))
        return 0

    model = str(bundled_minilm())
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-pipeline-") as tmp_dir:
        tmp = Path(tmp_dir)
        os.environ["PREFECT_HOME"] = str(tmp / "in-process-prefect")  # before this process imports prefect
        os.environ.pop("PREFECT_API_URL", None)
        if args.reuse_make_run:
            runs = json.loads(RAW.read_text())["make_run"]
        else:
            console.print(f"load average {load_avg()}: `make run` fresh, then cached …")
            runs = make_run_twice(tmp)
        console.print(f"make run: fresh {runs['fresh_s']:.1f} s, cached {runs['cached_s']:.1f} s")
        console.print(f"load average {load_avg()}: flow vs direct in one process …")
        inproc = flow_vs_direct(tmp, model, p95_ms, args.pairs)
    print_tables(runs, inproc)
    RAW.parent.mkdir(exist_ok=True)
    RAW.write_text(json.dumps({"make_run": runs, "in_process": inproc}, indent=2, default=str))
    write_section("pipeline", render(runs, inproc))
    console.print("wrote the pipeline section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
