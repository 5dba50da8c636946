"""The machine's load is recorded with every benchmark, a busy run is measured again, and the output
says which numbers are noisy (the first `make run` measured p50 34 ms for a 17 ms model and every
later plan reused it silently)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.bench.test_harness import _matmul_onnx
from thrifty.bench import load
from thrifty.bench.harness import BenchSpec, run_benchmark
from thrifty.report import RunReport, summary_markdown

HOG = "import time\nwhile True: time.time()  # thrifty-test-hog"


def _fake_proc(root: Path, cpu: list[int], processes: dict[int, tuple[str, int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text("cpu  " + " ".join(map(str, cpu)) + "\ncpu0 0 0 0 0\n")
    for pid, (name, jiffies) in processes.items():
        (root / str(pid)).mkdir(exist_ok=True)
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        (root / str(pid) / "stat").write_text(f"{pid} ({name}) R 1 1 1 0 0 0 0 0 0 0 {jiffies} 0 0 0\n")
    return root


def test_others_busy_and_steal_come_from_the_window(tmp_path: Path) -> None:
    hz = 100.0  # SC_CLK_TCK on Linux
    # user nice system idle iowait irq softirq steal
    before = load.snapshot(_fake_proc(tmp_path / "a", [0, 0, 0, 0, 0, 0, 0, 0], {7: ("ld", 0)}))
    after = load.snapshot(_fake_proc(tmp_path / "b", [300, 0, 100, 80, 0, 0, 0, 20], {7: ("ld", 150)}))
    assert before is not None and after is not None
    (tmp_path / "b" / "7" / "cmdline").write_bytes(b"/usr/bin/python3\0-m\0pytest\0tests/unit\0")
    # pretend the window lasted 2 s: 400 busy jiffies = 4 vCPU-s = 2 vCPUs, the worker used 1 vCPU-s
    after = load.Snapshot(before.at_s + 2.0, after.cpu_jiffies, after.processes, after.proc)
    record = load.measure(before, after, worker_cpu_s=1.0, exclude=set())
    assert record["others_busy_vcpus"] == pytest.approx(400 / hz / 2.0 - 0.5)
    assert record["cpu_steal_pct"] == pytest.approx(100 * 20 / 500)
    # pid 7: 150 jiffies in 2 s, named by its command line (`python -m pytest` reads as pytest)
    assert record["busy_processes"] == [{"pid": 7, "name": "pytest tests/unit", "vcpus": 0.75}]


@pytest.mark.parametrize(
    ("others", "steal", "noisy"),
    [
        (0.0, 0.0, False),  # alone on the machine
        (0.9, 0.0, False),  # one other core's worth on 2 vCPUs: the worker still has a core
        (1.5, 0.0, True),  # the worker had to share a core
        (0.0, 12.0, True),  # the hypervisor took 12 % of the time
    ],
)
def test_judge(others: float, steal: float, noisy: bool) -> None:
    record = {
        "measured": True,
        "vcpus": 2,
        "others_busy_vcpus": others,
        "cpu_steal_pct": steal,
        "busy_processes": [{"pid": 9, "name": "make test", "vcpus": others}],
    }
    judged = load.judge(record, threads=1)
    assert judged["noisy"] is noisy and bool(judged["reasons"]) is noisy
    assert judged["contention"] == pytest.approx((others + 1) / 2)


@pytest.fixture
def hogs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Busy loops on every vCPU while the benchmark runs (what another engineer's `make test` does)."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(load.vcpus())]
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")
def test_a_benchmark_on_a_busy_machine_is_remeasured_and_flagged(
    tmp_path: Path, hogs: list[subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    spec = BenchSpec(batch_sizes=(1,), seq_lens=(None,), runs=2000, warmup=2)  # long enough to see the hogs
    result = run_benchmark(_matmul_onnx(tmp_path / "m.onnx", 64, 16), spec)
    record = result["load"]
    assert record["noisy"] and record["contention"] > 1.0, record
    # the hogs share 2 cores with the benchmark itself, so together they get at least one vCPU, not two
    assert record["others_busy_vcpus"] >= 0.5 * len(hogs), record
    assert "other processes kept" in record["reasons"][0]
    assert record["remeasured"] and len(record["attempts"]) == 2
    assert "measuring it once more" in caplog.text and "is noisy" in caplog.text


def test_the_summary_says_which_numbers_are_noisy() -> None:
    reason = "other processes kept 1.9 of 2 vCPUs busy (pytest 1.0)"
    details = {"load": {"noisy": True, "reasons": [reason]}}
    assert load.load_note(details) == reason
    assert load.load_note({"load": {"noisy": False, "reasons": []}}) is None
    assert load.load_note({}) is None  # results stored before load was recorded
    rows = [{"variant": "onnx-fp32", "noisy": None}, {"variant": "int8-dynamic", "noisy": reason}]
    text = summary_markdown(RunReport(model="minilm", decision={}, variants=rows))
    (line,) = [x for x in text.splitlines() if "Noisy" in x]
    assert "`int8-dynamic`" in line and "onnx-fp32" not in line and reason in line
    assert "thrifty bench minilm" in line


def test_variants_marks_noisy_latencies() -> None:
    from thrifty.cli import console
    from thrifty.optimize.commands import print_summary
    from thrifty.read import VariantView

    common = {"model": "minilm", "version": 1, "parent_variant_id": None, "size_mb": 90.0, "fidelity": {}}
    rows = [
        VariantView(id=1, variant="onnx-fp32", technique="export", status="accepted", rejection_reason=None,
                    latency_ms_p50=16.8, latency_ms_p95=17.0, **common),
        VariantView(id=2, variant="int8-dynamic", technique="dynamic_int8", status="accepted",
                    rejection_reason=None, latency_ms_p50=34.1, latency_ms_p95=40.2,
                    noisy="other processes kept 1.9 of 2 vCPUs busy", **common),
    ]  # fmt: skip
    with console.capture() as captured:
        print_summary(rows, "minilm v1: variants")
    text = captured.get()
    assert "~34.10" in text and "~16.80" not in text and "16.80" in text, text
    assert "int8-dynamic: noisy, measured while other processes kept 1.9 of 2 vCPUs busy" in " ".join(
        text.split()
    )
