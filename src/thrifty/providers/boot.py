"""Booting a replica: the cloud-init user data of every VM target (AWS, GCP, Azure) — a fresh VM
becomes a thrifty server for one variant by running the serving-runtime image.

The user data writes one script and runs it: find a container runtime (podman or docker; install
podman from the OS's own packages only when the image has neither), log in to the registry with
the VM's identity (ECR through the instance profile, Artifact Registry through the service account,
ACR through the managed identity), pull the runtime image by digest, and run it with the variant's
sha256, the artifact store and the digest of the deployment's API token — never a credential or a
token: the container reads the store with the VM's identity and knows the token only by digest.
On spot capacity a second container from the same image watches for the interruption notice.
Nothing is installed from a package index. GCP (``user-data`` metadata) and Azure
(``custom_data``) take the same document, so the VM providers share this module.

``boot_script`` is what the rehearsal (tests/e2e) runs in a "VM" container made from a fresh base.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from thrifty.errors import ConfigError
from thrifty.providers.base import DeploySpec, PriceModel

MODEL_DIR = "/var/lib/thrifty/models"
SCRIPT_PATH = "/usr/local/sbin/thrifty-boot.sh"


@dataclass(frozen=True)
class BootConfig:
    """What the VM needs besides the spec: the runtime image, where artifacts live, the port."""

    artifact_store_url: str
    s3_endpoint_url: str | None = None
    port: int = 8080
    #: the GCS / Azure Blob service address the VMs use (a loopback double in tests; default: the
    #: cloud's own); ``s3_endpoint_url`` stays the S3 one
    store_endpoint_url: str | None = None
    #: the serving-runtime image by digest in the target's registry (``thrifty image build --push``)
    image: str = ""
    #: pull over plain HTTP / without TLS verification (a local registry in the rehearsal only)
    insecure_registry: bool = False
    #: where a spot VM's watcher posts its interruption notice (the front door, reachable from the
    #: VM); None: the notice only lands in the watcher container's log
    front_door_url: str | None = None
    #: the sha256 of the front door's certificate, which the watcher pins (an https front door)
    front_door_sha256: str | None = None
    #: who may reach ``port``: the deployment's network rule (see ``providers.network``); empty =
    #: the control plane's range if configured, else deploy refuses (never open by default)
    allowed_cidrs: tuple[str, ...] = ()
    #: the secret store's endpoint as the container reaches it (default: the cloud's own)
    secrets_endpoint_url: str | None = None


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def vm_front_door_url(url: str | None, *, source: str = "THRIFTY_FRONT_DOOR_URL") -> str | None:
    """The front door's URL as a cloud VM reaches it (its spot watcher posts notices there), checked.

    Empty: None (the notice only lands in the watcher's log). Refused: anything but an http(s) URL
    with a host, and a loopback host, which on the VM is the VM itself, not the control plane.
    """
    if url is None or not url.strip():
        return None
    url = url.strip()
    parts = urlsplit(url)
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        host = ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"{source}={url!r} is not an http(s) URL with a host",
            hint="set it to the front door's address, e.g. https://thrifty.example.com or http://203.0.113.7:8470",
        )
    if _is_loopback(host):
        raise ConfigError(
            f"{source}={url!r} is a loopback address: a cloud VM cannot reach 127.0.0.1 on this machine "
            "(there it is the VM itself), so its spot watcher could not post interruption notices",
            hint=f"set {source} to the front door's public or VPN address the VMs reach "
            "(THRIFTY_FRONT_DOOR_LISTEN serves it: e.g. https://10.0.0.5:8471), or leave it empty",
        )
    return url.rstrip("/")


def front_door_pin(url: str | None, explicit: str | None, home: Path) -> str | None:
    """The certificate fingerprint a VM's watcher pins for an https front door: ``explicit``
    (THRIFTY_FRONT_DOOR_SHA256, checked), else the certificate this machine's front door serves
    (``thrifty.tls.front_door_cert``). None for no front door or a plain-HTTP one."""
    if not url or not url.startswith("https://"):
        return None
    if explicit and explicit.strip():
        pin = explicit.strip().lower().replace(":", "")
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise ConfigError(
                f"THRIFTY_FRONT_DOOR_SHA256={explicit!r} is not a sha256 fingerprint (64 hex digits)",
                hint="copy the fingerprint `thrifty up` prints, or leave it empty to use this machine's",
            )
        return pin
    from thrifty import tls

    return tls.front_door_cert(home).sha256


def secret_name(deployment: str) -> str:
    """The secret's name in Secrets Manager / Secret Manager / Key Vault (letters, digits, dashes)."""
    return "thrifty-" + "".join(c if c.isalnum() else "-" for c in deployment)


def container_env(spec: DeploySpec, boot: BootConfig, cloud: str = "", secret: str = "") -> dict[str, str]:
    """The runtime container's environment: what to serve, where from, and where its secret
    lives (a reference; the container reads it with the VM's identity); no secret itself."""
    env = {
        "THRIFTY_MODEL_NAME": spec.served_name,
        "THRIFTY_ARTIFACT_STORE_URL": boot.artifact_store_url,
        "THRIFTY_ARTIFACT_SHA256": spec.artifact_sha256,
        "PORT": str(boot.port),
    }
    if boot.s3_endpoint_url:
        env["THRIFTY_S3_ENDPOINT_URL"] = boot.s3_endpoint_url
    if boot.store_endpoint_url:
        env["THRIFTY_STORE_ENDPOINT_URL"] = boot.store_endpoint_url
    if spec.serving.get("tokenizer_sha256"):
        env["THRIFTY_TOKENIZER_SHA256"] = str(spec.serving["tokenizer_sha256"])
    if spec.serving.get("optimized_sha256"):  # the graph optimized at deploy time (serverless)
        env["THRIFTY_OPTIMIZED_SHA256"] = str(spec.serving["optimized_sha256"])
    if secret:  # the token's digest comes with the TLS key from the secret store
        env["THRIFTY_SECRET"] = secret
        if boot.secrets_endpoint_url:
            env["THRIFTY_SECRETS_ENDPOINT_URL"] = boot.secrets_endpoint_url
        if cloud == "aws":  # boto3 finds no region on EC2 by itself; a zone (us-east-1a) → its region
            env["AWS_DEFAULT_REGION"] = spec.region.rstrip("abcdefghijklmnopqrstuvwxyz")
    elif spec.serving.get("token_sha256"):
        env["THRIFTY_API_TOKEN_SHA256"] = str(spec.serving["token_sha256"])
    return env


def registry_login(image: str) -> list[str]:
    """Shell lines that log the runtime in to the image's registry with the VM's own identity."""
    host = image.split("/", 1)[0]
    if ".dkr.ecr." in host:
        region = host.split(".dkr.ecr.", 1)[1].split(".", 1)[0]
        return [
            f"aws ecr get-login-password --region {region} | $RT login --username AWS --password-stdin {host}"
        ]
    if host.endswith("-docker.pkg.dev") or host.endswith("gcr.io"):
        token = (
            "curl -fsS -H 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/"
            "instance/service-accounts/default/token | python3 -c 'import json,sys; print(json.load(sys.stdin)"
            '["access_token"])\''
        )
        return [f"{token} | $RT login --username oauth2accesstoken --password-stdin {host}"]
    if host.endswith(".azurecr.io"):
        aad = (
            "curl -fsS -H Metadata:true 'http://169.254.169.254/metadata/identity/oauth2/token?api-version="
            "2018-02-01&resource=https://management.azure.com/' | python3 -c 'import json,sys; "
            'print(json.load(sys.stdin)["access_token"])\''
        )
        exchange = (
            f"curl -fsS -X POST https://{host}/oauth2/exchange -d grant_type=access_token -d service={host} "
            f'--data-urlencode access_token="$({aad})" | python3 -c \'import json,sys; '
            'print(json.load(sys.stdin)["refresh_token"])\''
        )
        user = "00000000-0000-0000-0000-000000000000"
        return [f"{exchange} | $RT login --username {user} --password-stdin {host}"]
    return []  # a public or pre-authorized registry


def _watch_env(spec: DeploySpec, boot: BootConfig) -> str:
    """The watcher's front door, its certificate's pin and the notice token
    (``thrifty.tokens.notice_token``), when a front door and a token exist."""
    notice_token = spec.serving.get("notice_token")
    if not boot.front_door_url or not notice_token:
        return ""
    env = {"THRIFTY_FRONT_DOOR_URL": boot.front_door_url, "THRIFTY_NOTICE_TOKEN": str(notice_token)}
    if boot.front_door_sha256:  # the watcher trusts only the certificate with this fingerprint
        env["THRIFTY_FRONT_DOOR_SHA256"] = boot.front_door_sha256
    return "".join(f"-e {shlex.quote(f'{k}={v}')} " for k, v in env.items())


def boot_script(spec: DeploySpec, boot: BootConfig, *, cloud: str, secret: str = "") -> str:
    """The shell script the VM runs at first boot (and the rehearsal runs in a container).
    ``secret``: where the container reads its TLS key and token digest (``thrifty.secret_fetch``)."""
    if not boot.image:
        raise ConfigError(
            "the target names no serving-runtime image",
            hint="build and push it (`thrifty image build --push REGISTRY`), then set `image` on the target block",
        )
    tls = " --tls-verify=false" if boot.insecure_registry else ""
    env = " ".join(
        f"-e {shlex.quote(f'{k}={v}')}" for k, v in container_env(spec, boot, cloud, secret).items()
    )
    name = f"thrifty-{spec.name}"
    lines = [
        "#!/bin/sh",
        "# thrifty: serve one variant with the serving-runtime image (generated; see thrifty.providers.boot)",
        "set -eu",
        "if command -v podman >/dev/null 2>&1; then RT=podman",
        "elif command -v docker >/dev/null 2>&1; then RT=docker",
        "elif command -v apt-get >/dev/null 2>&1; then",
        "  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman && RT=podman",
        "else dnf install -y -q podman && RT=podman; fi",
        *registry_login(boot.image),
        f"$RT pull{tls} {shlex.quote(boot.image)}",
        f"$RT rm -f {name} {name}-watch >/dev/null 2>&1 || true",
        f"$RT run -d --restart=always --network host --name {name} {env} {shlex.quote(boot.image)}",
    ]
    if spec.price_model is PriceModel.SPOT:
        lines.append(
            f"$RT run -d --restart=always --network host --name {name}-watch {_watch_env(spec, boot)}"
            f"{shlex.quote(boot.image)} watch --deployment {shlex.quote(spec.served_name)} --cloud {cloud}"
        )
    return "\n".join(lines) + "\n"


def render_user_data(spec: DeploySpec, boot: BootConfig, *, cloud: str, secret: str = "") -> str:
    """A ``#cloud-config`` document: write the boot script, run it once."""
    script = boot_script(spec, boot, cloud=cloud, secret=secret)
    body = "".join(f"      {line}\n" for line in script.splitlines())
    return (
        "#cloud-config\n"
        "write_files:\n"
        f"  - path: {SCRIPT_PATH}\n"
        "    permissions: '0755'\n"
        "    content: |\n"
        f"{body}"
        "runcmd:\n"
        f"  - [sh, {SCRIPT_PATH}]\n"
    )


def script_of(user_data: str) -> str:
    """The boot script inside a document made by ``render_user_data`` (what cloud-init writes)."""
    lines = user_data.splitlines()
    start = lines.index("    content: |") + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("      "):
            break
        body.append(line[6:])
    return "\n".join(body) + "\n"


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
