"""The serving-runtime OCI image: built here with podman, offline, tagged by content.

    base      mmdebstrap → a minimal Debian bookworm with Python 3.11 → ``podman import``
              (made once per machine, cached as ``localhost/thrifty-base:bookworm-py``)
    wheels    ``pip download`` of ``deployments/image/requirements.lock`` for manylinux x86_64,
              plus thrifty's own wheel; the build copies them in and reaches no package index
    image     ``deployments/image/Containerfile`` → ``localhost/thrifty-runtime:<content tag>``;
              the tag is a digest of the Containerfile, the lock and thrifty's source, so an
              unchanged tree reuses the image and any change makes a new one

podman runs with ``--runtime runc`` and a containers.conf without default ulimits (the
sandboxes here refuse setrlimit); see ../shared/CONTAINERS.md. Pushing to a registry (ECR,
Artifact Registry, ACR, or a local ``docker-registry`` in tests) is ``push_image``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from thrifty.errors import ConfigError, ThriftyError

BASE_REF = "localhost/thrifty-base:bookworm-py-slim"
IMAGE_NAME = "localhost/thrifty-runtime"
TOOLS = ("podman", "runc", "mmdebstrap")
#: what the base leaves out: translations, documentation and manuals (~50 MB; licenses stay)
SLIM = (
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


class ImageError(ThriftyError):
    """Building, pushing or running the runtime image failed."""


@dataclass(frozen=True)
class ImageBuild:
    ref: str
    tag: str
    size_mb: float
    build_s: float
    cached: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def project_root() -> Path:
    """The checkout the image is built from (the Containerfile lives in deployments/image)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "deployments" / "image" / "Containerfile").is_file():
        raise ConfigError(
            f"no deployments/image/Containerfile under {root}",
            hint="build the runtime image from a checkout of thrifty (`make image`)",
        )
    return root


def cache_dir() -> Path:
    path = Path(os.environ.get("THRIFTY_IMAGE_CACHE", "/var/cache/thrifty-image"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def podman_env(cache: Path | None = None) -> dict[str, str]:
    """The environment podman needs here: a containers.conf without default ulimits."""
    conf = (cache or cache_dir()) / "containers.conf"
    if not conf.is_file():
        conf.write_text("[containers]\ndefault_ulimits = []\npids_limit = 0\n")
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, env: dict[str, str] | None = None, timeout_s: float = 900.0) -> str:
    """Run ``podman --runtime runc ARGS``; its stdout, or an ImageError with its stderr's tail."""
    argv = ["podman", "--runtime", "runc", *args]
    try:
        done = subprocess.run(
            argv, env=env or podman_env(), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        raise ConfigError("podman is not installed", hint=install_hint()) from None
    except subprocess.TimeoutExpired:
        raise ImageError(
            f"`podman {args[0]}` ran past {timeout_s:.0f} s", hint="see `podman ps -a`"
        ) from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ImageError(f"`podman {' '.join(args[:2])}` failed (exit {done.returncode}): {tail}",
                         hint=podman_hint(args[0], done.stderr))  # fmt: skip
    return done.stdout


#: (what podman says, what to do) per verb, first match wins
_HINTS: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "push": (
        (("connection refused", "no such host", "i/o timeout", "dial tcp"),
         "the registry does not answer: start it, or fix the address given to `thrifty image build --push`"),
        (("unauthorized", "authentication required", "denied", "403 forbidden"),
         "the registry refused the push: log in first (`podman login REGISTRY`; ECR: `aws ecr "
         "get-login-password | podman login --username AWS --password-stdin REGISTRY`) with a role "
         "that may push to that repository"),
        (("http response to https client", "x509", "certificate"),
         "the registry's TLS does not check out: fix its certificate; for a local test registry only, "
         "push with --no-tls-verify"),
    ),
    "build": (
        ((),
         "a step of deployments/image/Containerfile failed (its STEP and output are above): fix it and "
         "build again; the last image that built stays tagged, and running deployments keep it"),
    ),
}  # fmt: skip


def podman_hint(verb: str, stderr: str) -> str:
    """How to fix a failed ``podman VERB``, from what podman printed."""
    text = stderr.lower()
    for needles, hint in _HINTS.get(verb, ()):
        if not needles or any(n in text for n in needles):
            return hint
    return "the last lines of podman's output are above"


def install_hint() -> str:
    return "apt-get install -y podman runc mmdebstrap (Debian packages), or run .ci/podman.sh"


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not installed: the runtime image cannot be built", hint=install_hint()
        )


def image_exists(ref: str) -> bool:
    try:
        podman("image", "exists", ref)
    except ImageError:
        return False
    return True


def base_image(cache: Path) -> str:
    """The offline Debian + Python base, made once per machine."""
    if image_exists(BASE_REF):
        return BASE_REF
    rootfs = cache / "rootfs-slim.tar"
    if not rootfs.is_file():
        part = cache / "rootfs-slim.tar.part"
        _run(["mmdebstrap", "--variant=minbase", "--format=tar", *SLIM,
              "--include=python3,python3-venv,ca-certificates", "bookworm", str(part)],
             "mmdebstrap (the Debian base)")  # fmt: skip
        part.replace(rootfs)
    podman("import", str(rootfs), BASE_REF)
    return BASE_REF


def _run(argv: Sequence[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ImageError(f"{what} failed (exit {done.returncode}): {tail}", hint="see the output above")


def _pip() -> list[str]:
    for python in (sys.executable, shutil.which("python3") or "python3"):
        if (
            subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode
            == 0
        ):
            return [python, "-m", "pip"]
    raise ConfigError("no pip to download the image's wheels", hint="install python3-pip")


def wheelhouse(root: Path, cache: Path, out: Path) -> None:
    """The lock's wheels (cached per lock) and thrifty's own wheel, copied to ``out``."""
    lock = root / "deployments" / "image" / "requirements.lock"
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    wheels = cache / f"wheels-{key}"
    if not wheels.is_dir():
        part = cache / f"wheels-{key}.part"
        shutil.rmtree(part, ignore_errors=True)
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        _run([*_pip(), "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
              *platforms, "-d", str(part), "-r", str(lock)], "downloading the image's wheels")  # fmt: skip
        part.replace(wheels)
    shutil.copytree(wheels, out)
    shutil.copy(lock, out / "requirements.lock")
    shutil.rmtree(root / "build" / "lib", ignore_errors=True)  # setuptools' in-tree copies of deleted modules
    _run([*_pip(), "wheel", "--quiet", "--no-deps", "-w", str(out), str(root)], "building thrifty's wheel")


def content_tag(root: Path) -> str:
    """A digest of everything that goes into the image: Containerfile, lock, thrifty's source."""
    digest = hashlib.sha256()
    files = [root / "deployments" / "image" / "Containerfile", root / "deployments" / "image" / "requirements.lock",
             root / "pyproject.toml", *sorted((root / "src" / "thrifty").rglob("*.py"))]  # fmt: skip
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_size_mb(ref: str) -> float:
    size = json.loads(podman("image", "inspect", ref, "--format", "{{json .Size}}"))
    return round(int(size) / 1e6, 1)


def build_image(root: Path | None = None, *, force: bool = False) -> ImageBuild:
    """Build (or reuse) the runtime image for this tree; returns its ref, size and build time."""
    check_tools()
    root = root or project_root()
    cache = cache_dir()
    ref = f"{IMAGE_NAME}:{content_tag(root)}"
    started = time.perf_counter()
    if image_exists(ref) and not force:
        return ImageBuild(ref, ref.rsplit(":", 1)[1], image_size_mb(ref), time.perf_counter() - started, True)
    base = base_image(cache)
    context = cache / f"context-{os.getpid()}"
    shutil.rmtree(context, ignore_errors=True)
    try:
        wheelhouse(root, cache, context / "wheelhouse")
        containerfile = root / "deployments" / "image" / "Containerfile"
        no_cache = ["--no-cache"] if force else []
        podman("build", "--network", "host", *no_cache, "--build-arg", f"BASE={base}",
               "--build-arg", f"THRIFTY_CONTENT={ref.rsplit(':', 1)[1]}", "-f", str(containerfile),
               "-t", ref, str(context))  # fmt: skip
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return ImageBuild(ref, ref.rsplit(":", 1)[1], image_size_mb(ref), time.perf_counter() - started, False)


def push_image(ref: str, registry: str, *, tls_verify: bool = True) -> str:
    """Push ``ref`` to ``registry`` (host:port[/path]); returns the pushed reference by digest."""
    name = ref.removeprefix("localhost/")
    target = f"{registry.rstrip('/')}/{name}"
    digest_file = cache_dir() / f"digest-{os.getpid()}"
    try:
        podman(
            "push", f"--tls-verify={str(tls_verify).lower()}", "--digestfile", str(digest_file), ref, target
        )
        digest = digest_file.read_text().strip()
    finally:
        digest_file.unlink(missing_ok=True)
    return f"{target.rsplit(':', 1)[0]}@{digest}"
