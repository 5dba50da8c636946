"""What the three serverless targets (Lambda, Cloud Run, Container Apps) share.

- ``Shape``: the vCPUs and memory of a serverless price row's ``instance_type``
  (``lambda-1769mb``, ``cloud-run-1vcpu-2gib``, ``container-apps-0.5vcpu-1gib``), checked against
  what each platform sells *before* anything is created (``lambda_memory_mb``,
  ``cloud_run_limits``, ``container_apps_resources``).
- ``runtime_env``: the runtime container's environment (the VM boot's, plus the threads the
  platform allots), so a serverless replica serves exactly what a VM replica serves.
- ``package_parts`` / ``check_package``: the size check of a deployment package against the
  platform's limit, run before any upload; a package that does not fit is refused with its three
  largest parts named.
- The warm floor of a serverless spec is its ``replicas`` (provisioned concurrency, min instances,
  min replicas); 0 leaves scale-to-zero to the platform.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import ConfigError, UnsupportedFeatureError
from thrifty.providers.base import DeploySpec
from thrifty.providers.boot import BootConfig, container_env

#: Lambda allots one vCPU per 1,769 MB of memory (AWS Lambda developer guide, "Memory and computing power")
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MEMORY_MB = (128, 10240)
#: unzipped size of a .zip function with its layers; a container image may be 10 GB
LAMBDA_ZIP_LIMIT_BYTES = 250 * 1024 * 1024
LAMBDA_IMAGE_LIMIT_BYTES = 10 * 1024 * 1024 * 1024
#: Cloud Run: max memory per CPU count (2 GiB minimum from 4 CPUs up is not modelled)
CLOUD_RUN_MAX_MEMORY_GIB = {1.0: 4.0, 2.0: 8.0, 4.0: 16.0, 6.0: 24.0, 8.0: 32.0}
#: Container Apps (Consumption profile): the CPU/memory pairs it accepts, 0.5 GiB per 0.25 vCPU
CONTAINER_APPS_PAIRS = tuple((q / 4, q / 2) for q in range(1, 17))

_SHAPE = re.compile(
    r"^(?P<platform>lambda|cloud-run|container-apps)-(?:(?P<cpu>[\d.]+)vcpu-(?P<gib>[\d.]+)gib|(?P<mb>\d+)mb)$"
)


@dataclass(frozen=True)
class Shape:
    platform: str
    vcpus: float
    memory_mib: int


def shape_of(instance_type: str, platform: str) -> Shape:
    """The vCPUs and memory a price row names; another platform's row is refused (next candidate)."""
    match = _SHAPE.match(instance_type)
    if match is None or match["platform"] != platform:
        raise UnsupportedFeatureError(
            f"{platform} cannot run the offer {instance_type!r}",
            hint=f"deploy a {platform}-* offer here; the plan's next candidate may be one",
        )
    if match["mb"]:
        memory_mib = int(match["mb"])
        return Shape(platform, memory_mib / LAMBDA_MB_PER_VCPU, memory_mib)
    return Shape(platform, float(match["cpu"]), round(float(match["gib"]) * 1024))


def lambda_memory_mb(shape: Shape) -> int:
    low, high = LAMBDA_MEMORY_MB
    if not low <= shape.memory_mib <= high:
        raise ConfigError(
            f"Lambda memory {shape.memory_mib} MB is not offered",
            hint=f"Lambda sells {low}–{high} MB in 1 MB steps (1,769 MB = 1 vCPU)",
        )
    return shape.memory_mib


def cloud_run_limits(shape: Shape) -> dict[str, str]:
    """Cloud Run's ``resources.limits`` for a shape, refused here as Cloud Run would refuse it."""
    max_gib = CLOUD_RUN_MAX_MEMORY_GIB.get(shape.vcpus)
    memory_gib = shape.memory_mib / 1024
    if max_gib is None or not 0.125 <= memory_gib <= max_gib:
        raise ConfigError(
            f"Cloud Run does not offer {shape.vcpus:g} vCPU with {memory_gib:g} GiB",
            hint="Cloud Run sells 1, 2, 4, 6 or 8 vCPUs with up to 4 GiB of memory per vCPU",
        )
    return {"cpu": f"{shape.vcpus:g}", "memory": f"{shape.memory_mib}Mi"}


def container_apps_resources(shape: Shape) -> dict[str, object]:
    memory_gib = shape.memory_mib / 1024
    if (shape.vcpus, memory_gib) not in CONTAINER_APPS_PAIRS:
        raise ConfigError(
            f"Container Apps does not offer {shape.vcpus:g} vCPU with {memory_gib:g} GiB",
            hint="the Consumption profile sells 0.25–4 vCPU in 0.25 steps with 2 GiB per vCPU",
        )
    return {"cpu": shape.vcpus, "memory": f"{memory_gib:g}Gi"}


def runtime_env(spec: DeploySpec, boot: BootConfig, shape: Shape) -> dict[str, str]:
    """The runtime container's environment on a serverless platform (no secret in it): the VM's,
    plus the CPU limit the container sizes its threads from."""
    return container_env(spec, boot) | {"THRIFTY_CPU_LIMIT": f"{shape.vcpus:g}"}


# -- the package size check ----------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    name: str
    size_bytes: int


def tree_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (what it takes unzipped)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def package_parts(roots: Iterable[Path]) -> list[Part]:
    """One part per top-level entry of each root (a site-packages folder: one per package)."""
    parts: list[Part] = []
    for root in roots:
        entries = sorted(root.iterdir()) if root.is_dir() else [root]
        parts += [Part(entry.name, tree_bytes(entry)) for entry in entries]
    return parts


def check_package(parts: list[Part], limit_bytes: int, what: str) -> int:
    """Total bytes of ``parts``; over ``limit_bytes`` it is refused, naming the three largest parts."""
    total = sum(p.size_bytes for p in parts)
    if total <= limit_bytes:
        return total
    largest = sorted(parts, key=lambda p: p.size_bytes, reverse=True)[:3]
    named = ", ".join(f"{p.name} {p.size_bytes / 2**20:.0f} MiB" for p in largest)
    raise ConfigError(
        f"{what} is {total / 2**20:.0f} MiB unzipped, over the {limit_bytes / 2**20:.0f} MiB limit; "
        f"largest parts: {named}",
        hint="deploy the container image instead (package='image'), or slim the largest parts",
    )
