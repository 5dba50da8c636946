"""``python -m thrifty.web``: the dashboard alone on loopback (``make server`` users open it beside Prefect's UI)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from thrifty.web.app import create_app

    parser = argparse.ArgumentParser(prog="python -m thrifty.web", description=__doc__)
    parser.add_argument("--port", type=int, default=8480)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
