"""``make bench``: every benchmark script, one after another (never in parallel: they time things).

Each script prints its table and writes its own section of BENCHMARKS.md. Run one alone with
``.venv/bin/python bench/<name>.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = (
    "planner.py",
    "policies.py",
    "anomaly.py",
    "storage.py",
    "optimize.py",
    "formats.py",
    "serving.py",
    "cloud_boot.py",
    "pipeline.py",
    "noise.py",
    "api.py",
)


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for script in SCRIPTS:
        started = time.monotonic()
        print(f"== bench/{script}", flush=True)
        code = subprocess.call([sys.executable, str(here / script)], cwd=here.parent)
        print(f"== bench/{script}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
