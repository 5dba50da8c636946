"""Booting a replica: the cloud-init user data of every VM target (AWS, GCP, Azure) and the
artifact fetch that pods run too — a fresh machine becomes a thrifty server for one variant.

The script installs thrifty, pulls the variant's artifact from the artifact store by sha256 (the
same ``S3Store.fetch`` the rest of thrifty uses, so the bytes are verified), starts the inference
server and, on spot capacity, the interruption watcher. The VM reads S3 through its instance role:
user data never carries a credential. GCP (``user-data`` metadata) and Azure (``custom_data``) take
the same document, so the VM providers share this module.

On the VM: ``python -m thrifty.providers.boot fetch STORE_URL SHA256 DEST [--endpoint URL]``.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from thrifty.providers.base import DeploySpec, PriceModel

MODEL_DIR = "/var/lib/thrifty/models"


@dataclass(frozen=True)
class BootConfig:
    """What the VM needs besides the spec: where artifacts live and how to start serving."""

    artifact_store_url: str
    s3_endpoint_url: str | None = None
    port: int = 8080
    thrifty_requirement: str = "thrifty"
    serve_command: str = "thrifty serve {model_path} --name {name} --host 0.0.0.0 --port {port}"
    watch_command: str = "thrifty spot-watch --deployment {name} --cloud {cloud}"


def fetch_line(spec: DeploySpec, boot: BootConfig) -> list[str]:
    """The argv that pulls the variant on the VM (also what the tests run against moto)."""
    argv = ["python3", "-m", "thrifty.providers.boot", "fetch", boot.artifact_store_url]
    argv += [spec.artifact_sha256, f"{MODEL_DIR}/{spec.artifact_sha256}"]
    if boot.s3_endpoint_url:
        argv += ["--endpoint", boot.s3_endpoint_url]
    return argv


def render_user_data(spec: DeploySpec, boot: BootConfig, *, cloud: str) -> str:
    """A ``#cloud-config`` document: install, fetch the artifact, serve, watch for interruption."""
    model_path = f"{MODEL_DIR}/{spec.artifact_sha256}"
    serve = boot.serve_command.format(model_path=model_path, name=spec.name, port=boot.port)
    commands = [
        f"python3 -m pip install --quiet {shlex.quote(boot.thrifty_requirement)}",
        f"mkdir -p {MODEL_DIR}",
        shlex.join(fetch_line(spec, boot)),
        f"nohup {serve} >/var/log/thrifty-serve.log 2>&1 &",
    ]
    if spec.price_model is PriceModel.SPOT:
        watch = boot.watch_command.format(name=spec.name, cloud=cloud)
        commands.append(f"nohup {watch} >/var/log/thrifty-watch.log 2>&1 &")
    lines = ["#cloud-config", "runcmd:"]
    lines += [f"  - [sh, -c, {_yaml_quote(cmd)}]" for cmd in commands]
    return "\n".join(lines) + "\n"


def runcmd_lines(user_data: str) -> list[str]:
    """The shell commands of a document made by ``render_user_data`` (for tests and debugging)."""
    prefix = "  - [sh, -c, "
    return [
        line[len(prefix) : -1].strip("'").replace("''", "'")
        for line in user_data.splitlines()
        if line.startswith(prefix)
    ]


def _yaml_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thrifty.providers.boot")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="pull one artifact from the store")
    fetch.add_argument("store_url")
    fetch.add_argument("sha256")
    fetch.add_argument("dest", type=Path)
    fetch.add_argument("--endpoint", default=None)
    args = parser.parse_args(argv)
    from thrifty.artifacts.fetch import fetch_artifact

    fetch_artifact(args.store_url, args.sha256, args.dest, endpoint_url=args.endpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
