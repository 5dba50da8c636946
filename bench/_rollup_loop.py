"""The monitor flow's rollup, run in a loop (every ``--every-s`` seconds) against THRIFTY_HOME's registry.

A separate process, as the monitor flow is: ``bench/serving.py rollup`` serves with and without it.
Prints "ready" after a first rollup (imports and catch-up are not what is measured), then how
many rollups ran and their mean time when it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every-s", type=float, default=2.0)
    args = parser.parse_args()
    from thrifty.monitor.rollup import roll_up
    from thrifty.registry import open_registry

    registry = open_registry()
    runs, spent_s = 0, 0.0

    def stop(_signum: int, _frame: FrameType | None) -> None:
        print(f'{{"runs": {runs}, "mean_s": {spent_s / max(runs, 1):.4f}}}', flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    roll_up(registry)  # the first one catches up; the bench starts measuring after it
    print("ready", flush=True)
    while True:
        started = time.perf_counter()
        roll_up(registry)
        runs, spent_s = runs + 1, spent_s + time.perf_counter() - started
        time.sleep(max(0.0, args.every_s - (time.perf_counter() - started)))


if __name__ == "__main__":
    main()
