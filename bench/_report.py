"""Write one section of BENCHMARKS.md (between markers), leaving the other sections alone.

Every bench script calls ``write_section("serving", markdown)``; sections are kept in name order
under a common header, so scripts can run in any order and on any day.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by the scripts under `bench/` (`make bench` runs them all). Each section says when\n"
    "and on what machine it was measured; compare numbers only within a section (one run,\n"
    "side by side), since these machines are noisy.\n"
)


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str) -> Path:
    text = REPORT.read_text() if REPORT.exists() else HEADER
    sections = dict(re.findall(r"<!-- section:(\S+) -->\n(.*?)<!-- /section:\1 -->\n", text, re.S))
    sections[name] = markdown.rstrip() + "\n"
    body = "".join(f"<!-- section:{k} -->\n{v}<!-- /section:{k} -->\n\n" for k, v in sorted(sections.items()))
    tmp = REPORT.with_suffix(".md.tmp")
    tmp.write_text(HEADER + "\n" + body)
    tmp.replace(REPORT)
    return REPORT
