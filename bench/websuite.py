"""The browser suite's wall time, this tree against a baseline commit, side by side (writes BENCHMARKS.md
"websuite").

    python bench/websuite.py [--baseline 30d2095] [--pairs 1] [--no-write]

Runs ``pytest tests/web`` of the baseline (a temporary detached worktree beside this checkout, so
it finds ../shared like the checkout does, with its own ``src`` first on PYTHONPATH) and of this tree,
back to back, ``--pairs`` times, alternating which goes first. Each row has the 1-minute load average
before and after the run: on a shared 2-core machine the load moves the numbers more than anything
else, so compare only within a pair. The goal (issue 15 item 4) is the suite under 90 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 90.0


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_suite(tree: Path) -> dict[str, object]:
    """One ``pytest tests/web`` in ``tree``: wall seconds, its summary line, the load around it."""
    env = os.environ | {"PYTHONPATH": str(tree / "src")}
    with tempfile.TemporaryDirectory(prefix="websuite-") as basetemp:
        before, start = load1(), time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/web",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--basetemp={basetemp}",
            ],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        wall_s = time.monotonic() - start
    lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return {"wall_s": wall_s, "rc": done.returncode, "summary": lines[-1].strip("= ") if lines else "?",
            "load_before": before, "load_after": load1()}  # fmt: skip


def baseline_tree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=".bench-websuite-", dir=ROOT.parent))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True,
                   capture_output=True)  # fmt: skip
    return folder


def measure(ref: str, pairs: int) -> list[tuple[int, str, dict[str, object]]]:
    base = baseline_tree(ref)
    rows = []
    try:
        for pair in range(1, pairs + 1):
            order = [("baseline", base), ("this tree", ROOT)]
            for label, tree in order if pair % 2 else order[::-1]:
                rows.append((pair, label, run_suite(tree)))
                print(pair, label, rows[-1][2], flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    return rows


def section(ref: str, rows: list[tuple[int, str, dict[str, object]]]) -> str:
    head = (
        "## Browser suite: tests/web wall time, this tree vs a baseline (bench/websuite.py)\n\n"
        f"{datetime.now(UTC):%Y-%m-%d}, {machine_line()}. Baseline: `{ref}`. Goal: under {GOAL_S:g} s on 2 cores.\n"
        "Runs alternate within each pair; compare only within a pair (the load moves with the other\n"
        "sessions on the machine).\n\n"
        "| pair | suite | wall s | load1 before → after | pytest |\n|---:|---|---:|---|---|\n"
    )
    body = "".join(
        f"| {pair} | {label} | {r['wall_s']:.1f} | {r['load_before']:.1f} → {r['load_after']:.1f} | {r['summary']} |\n"
        for pair, label, r in rows
    )
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", default="main", help="commit to compare with (30d2095: main before the speed-up)"
    )
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    mine = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    rows = measure(commit, args.pairs)
    text = section(f"{args.baseline} ({commit}); this tree: {mine}", rows)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('websuite', text)}")


if __name__ == "__main__":
    main()
