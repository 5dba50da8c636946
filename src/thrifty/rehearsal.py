"""Rehearse a cloud boot on this machine: a "VM" is a privileged container made from a fresh Debian
base (podman inside, nothing of thrifty's), and it runs the exact boot script thrifty generated for
the cloud. Around it, on loopback: the artifact store (moto's S3 in tests), the registry the runtime
image is pulled from, and an instance-metadata stand-in that hands out role credentials the way
EC2's IMDSv2 does, so the runtime container finds its credentials as it would on a real instance.

What a rehearsal cannot show: the cloud's own VM start, its IAM policies as the cloud evaluates
them, and its network (security groups, public IPs); those are the first real run's to check.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.image import SLIM, ImageError, _run, cache_dir, image_exists, podman

if TYPE_CHECKING:
    import httpx

VM_REF = "localhost/thrifty-vm:bookworm"
#: a fresh cloud image has a shell, curl, python3 and (here) podman; thrifty brings nothing else
VM_PACKAGES = "podman,runc,python3,curl,ca-certificates,iproute2"


def vm_image() -> str:
    """The "VM" base: Debian bookworm minbase with podman, made once per machine."""
    if image_exists(VM_REF):
        return VM_REF
    cache = cache_dir()
    rootfs = cache / "vm-rootfs.tar"
    if not rootfs.is_file():
        part = cache / "vm-rootfs.tar.part"
        _run(["mmdebstrap", "--variant=minbase", "--format=tar", *SLIM, f"--include={VM_PACKAGES}",
              "bookworm", str(part)], "mmdebstrap (the VM base)")  # fmt: skip
        part.replace(rootfs)
    podman("import", str(rootfs), VM_REF)
    return VM_REF


@dataclass
class Instance:
    """What the metadata stand-in says about "this" instance; set ``spot_action`` to serve a
    spot interruption notice (``{"action": "terminate", "time": ...}``), as EC2 does 2 min ahead."""

    instance_id: str = "i-rehearsal"
    spot_action: dict[str, str] | None = None


class _Imds(BaseHTTPRequestHandler):
    """IMDSv2: a session token first, then the instance role's temporary credentials, the instance
    id and (once set) the spot interruption notice."""

    token = "rehearsal-imds-token"
    instance = Instance()

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._send(404, b"")
            return
        self._send(200, self.token.encode())

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._send(401, b"")  # IMDSv2 only, as thrifty's launch templates require
            return
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == "/latest/meta-data/instance-id":
            self._send(200, self.instance.instance_id.encode())
        elif self.path == "/latest/meta-data/spot/instance-action":
            action = self.instance.spot_action  # 404 while nothing is planned, as on EC2
            self._send(200 if action else 404, json.dumps(action).encode() if action else b"")
        elif self.path == base:
            self._send(200, b"thrifty-rehearsal-role")
        elif self.path == base + "thrifty-rehearsal-role":
            expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            body = {"Code": "Success", "AccessKeyId": "testing", "SecretAccessKey": "testing",
                    "Token": "testing", "Expiration": expiry, "Type": "AWS-HMAC"}  # fmt: skip
            self._send(200, json.dumps(body).encode())
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def metadata_server(instance: Instance | None = None) -> Iterator[str]:
    """An IMDSv2 stand-in on loopback for ``instance`` (its notice may be set later); yields its URL."""
    handler = type("Imds", (_Imds,), {"instance": instance or Instance()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Vm:
    """A booted "VM": a privileged container running the boot script, with its own podman."""

    name: str
    workdir: Path
    started_at: float = field(default_factory=time.perf_counter)

    def logs(self) -> str:
        import subprocess

        from thrifty.image import podman_env

        argv = ["podman", "--runtime", "runc", "logs", self.name]
        done = subprocess.run(argv, env=podman_env(), capture_output=True, text=True, check=False)
        return done.stdout + done.stderr

    def state(self) -> str:
        return podman("inspect", self.name, "--format", "{{.State.Status}}").strip()

    def exec(self, *argv: str) -> str:
        return podman("exec", self.name, *argv)

    def stop(self) -> None:
        with suppress(ImageError):
            podman("rm", "-f", "-t", "2", self.name)
        shutil.rmtree(self.workdir, ignore_errors=True)


#: what the rehearsal writes into the "VM" before its first boot: the OS's own container settings
#: (vfs storage: overlay inside overlay is refused here) and, for every container, the route to
#: the metadata service (on a cloud it is 169.254.169.254; here the loopback stand-in)
_VM_SETUP = """set -eu
mkdir -p /etc/containers
printf '[storage]\\ndriver = "vfs"\\nrunroot = "/run/containers/storage"\\ngraphroot = "/var/lib/containers/storage"\\n' > /etc/containers/storage.conf
printf '[containers]\\ndefault_ulimits = []\\npids_limit = 0\\nenv = [%s]\\n[engine]\\nruntime = "runc"\\ncgroup_manager = "cgroupfs"\\nevents_logger = "file"\\n' > /etc/containers/containers.conf
sh /rehearsal/boot.sh
echo "thrifty-rehearsal: boot script done"
exec sleep infinity
"""


def boot_vm(
    script: str,
    *,
    metadata_url: str,
    region: str = "us-east-1",
    gcp_metadata_url: str = "",
    azure_metadata_url: str = "",
) -> Vm:
    """Start a "VM" that runs ``script`` (the boot script from the user data) as its first boot.
    ``gcp_metadata_url`` stands in for ``metadata.google.internal`` (a GCP VM's metadata server),
    ``azure_metadata_url`` for an Azure VM's instance metadata service (its managed identity's token
    endpoint at 169.254.169.254)."""
    workdir = Path(tempfile.mkdtemp(prefix="thrifty-vm-"))
    (workdir / "boot.sh").write_text(script)
    env = [f"AWS_EC2_METADATA_SERVICE_ENDPOINT={metadata_url}", f"AWS_DEFAULT_REGION={region}"]
    if gcp_metadata_url or azure_metadata_url:
        env.append(f"THRIFTY_METADATA_URL={gcp_metadata_url or azure_metadata_url}")
    (workdir / "setup.sh").write_text(_VM_SETUP % ", ".join(f'"{e}"' for e in env))
    vm = Vm(name=f"thrifty-vm-{uuid.uuid4().hex[:8]}", workdir=workdir)
    podman("run", "-d", "--privileged", "--network", "host", "--name", vm.name,
           "-v", f"{workdir}:/rehearsal:ro", vm_image(), "sh", "/rehearsal/setup.sh")  # fmt: skip
    return vm


def wait_ready(url: str, vm: Vm, deadline_s: float = 240.0, client: httpx.Client | None = None) -> float:
    """Seconds until ``url``/v2/health/ready answers 200; an ImageError with the VM's log if never.
    ``client``: an HTTPS endpoint's pinned client (``thrifty.reach.endpoint_client``)."""
    import httpx

    get = client.get if client is not None else httpx.get
    while time.perf_counter() - vm.started_at < deadline_s:
        with suppress(httpx.HTTPError):  # not listening yet: the VM is still booting
            if get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                return time.perf_counter() - vm.started_at
        if vm.state() != "running":
            break
        time.sleep(0.25)
    raise ImageError(
        f"the rehearsed VM {vm.name} never served {url} (state {vm.state()})",
        hint="its boot log: " + vm.logs()[-2000:],
    )


@dataclass
class Launches:
    """The rehearsal's stand-in for EC2 starting a VM: every instance of a deployment that appears
    on moto boots a rehearsed VM from the user data it was launched with."""

    ec2: Any
    deployment: str
    metadata_url: str
    vms: dict[str, Vm] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def poll(self) -> None:
        import base64

        filters = [
            {"Name": "tag:thrifty:deployment", "Values": [self.deployment]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        found = self.ec2.describe_instances(Filters=filters)["Reservations"]
        for instance in (i for r in found for i in r["Instances"]):
            if instance["InstanceId"] in self.vms:
                continue
            attr = self.ec2.describe_instance_attribute(
                InstanceId=instance["InstanceId"], Attribute="userData"
            )
            user_data = base64.b64decode(attr["UserData"]["Value"]).decode()
            from thrifty.providers.boot import script_of

            self.vms[instance["InstanceId"]] = boot_vm(script_of(user_data), metadata_url=self.metadata_url)


@contextmanager
def boot_on_launch(ec2: Any, deployment: str, metadata_url: str, poll_s: float = 0.5) -> Iterator[Launches]:
    """Watch ``ec2`` (a client of moto) in a thread; each new instance of ``deployment`` boots a
    rehearsed VM with its exact user data. Every VM is stopped when the block ends."""
    launches = Launches(ec2, deployment, metadata_url)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_s):
            try:
                launches.poll()
            except Exception as exc:  # reported by the test (Launches.errors); the watch goes on
                launches.errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield launches
    finally:
        stop.set()
        thread.join(30)
        for vm in launches.vms.values():
            vm.stop()


# -- Kubernetes: a pod's container spec run with podman, probed as the kubelet probes ----------------
def pod_run_args(
    pod: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, bytes]],
    workdir: Path,
    platform_env: Mapping[str, str],
) -> list[str]:
    """``podman run`` arguments for the pod's one container as the kubelet would start it: its image
    and env, its user, emptyDir volumes as tmpfs, Secret volumes as read-only files (mode and fsGroup
    as the kubelet sets them). ``platform_env`` is what the platform injects (a pod identity's
    credential endpoint), never a secret of the deployment."""
    (container,) = pod["containers"]
    context = pod.get("securityContext", {})
    args = ["run", "-d", "--network", "host"]
    if "runAsUser" in context:
        args += ["--user", f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"]
    env = {**platform_env, **{e["name"]: e["value"] for e in container.get("env", [])}}
    args += [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            args += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"]
        elif "secret" in volume:
            folder = _secret_files(volume["secret"], secrets, workdir / mount["name"], context.get("fsGroup"))
            args += ["-v", f"{folder}:{mount['mountPath']}:ro"]
    if container.get("command"):
        args += ["--entrypoint", container["command"][0]]
    return [*args, container["image"], *container.get("command", [])[1:], *container.get("args", [])]


def _secret_files(
    volume: Mapping[str, Any], secrets: Mapping[str, Mapping[str, bytes]], folder: Path, fs_group: int | None
) -> Path:
    """A Secret volume's files: one per key, mode ``defaultMode`` (+ group read with an fsGroup)."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    mode = int(volume.get("defaultMode", 0o644))
    for key, data in secrets[volume["secretName"]].items():
        path = folder / key
        path.write_bytes(data)
        if fs_group is not None:
            os.chown(path, 0, fs_group)
            mode |= 0o040
        path.chmod(mode)
    return folder


def kubelet_probe(container: Mapping[str, Any], probe: str, host: str = "127.0.0.1") -> int:
    """One HTTP(S) GET probe as the kubelet sends it (HTTPS without verifying the certificate):
    the status code, or 0 when nothing answered."""
    import httpx

    get = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    port = ports.get(get["port"], get["port"])
    url = f"{get.get('scheme', 'HTTP').lower()}://{host}:{port}{get['path']}"
    try:
        return httpx.get(
            url, verify=False, timeout=float(container[probe].get("timeoutSeconds", 1))
        ).status_code
    except httpx.HTTPError:
        return 0
