"""One name per accelerator across clouds, and GCP's rules for attaching GPUs to N1 hosts.

The same chip reaches thrifty under many spellings: AWS labels (``t4``, ``a10g``, ``a100`` with
40960 or 81920 MiB), the GCP/Azure snapshot (``T4``, ``A100``, ``H100-MEGA``), the GCP billing
catalog ("Nvidia Tesla T4"), GCP's API (``nvidia-tesla-t4``), nvidia-smi ("Tesla T4",
"NVIDIA A100-SXM4-40GB"). :func:`canonical_accelerator` maps each to one name of
:data:`CANONICAL`, so a price row and a benchmark on the same chip agree whatever their source.
Different chips keep different names even when they are close (A10 ≠ A10G, T4 ≠ T4G, A100-40GB ≠
A100-80GB): a benchmark on one never stands in for the other. Names we do not know are kept,
upper-cased, so they still compare case-insensitively.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: canonical names, with the spellings matched (lower case, words joined by "-", vendor prefix
#: removed); first match wins, so longer names come before their prefixes
_RULES: tuple[tuple[str, str], ...] = (
    (r"t4g\b", "T4G"),
    (r"t4\b", "T4"),
    (r"a10g\b", "A10G"),
    (r"a10\b", "A10"),
    (r"a100\b.*\b80gb\b", "A100-80GB"),
    (r"a100\b", "A100-40GB"),
    (r"gb200\b", "GB200"),
    (r"h100\b", "H100"),  # SXM/PCIe/NVL and GCP's "Mega" variant: the same chip for inference
    (r"h200\b", "H200"),
    (r"b200\b", "B200"),
    (r"b300\b", "B300"),
    (r"l40s\b", "L40S"),
    (r"l40\b", "L40"),
    (r"l4\b", "L4"),
    (r"v100\b.*\b32gb\b", "V100-32GB"),
    (r"v100\b", "V100"),
    (r"k80\b", "K80"),
    (r"m60\b", "M60"),
    (r"p100\b", "P100"),
    (r"p40\b", "P40"),
    (r"p4\b", "P4"),
    (r"mi25\b", "MI25"),
    (r"mi300x\b", "MI300X"),
    (r"rtx-pro-(?:server-)?6000\b", "RTX-PRO-6000"),
    (r"rtx-pro-4500\b", "RTX-PRO-4500"),
    (r"radeon-pro-v520\b", "Radeon-Pro-V520"),
    (r"inferentia2\b", "Inferentia2"),
    (r"inferentia\b", "Inferentia"),
    (r"trainium2\b", "Trainium2"),
    (r"trainium\b", "Trainium"),
    (r"qualcomm-ai100\b", "Qualcomm-AI100"),
)
CANONICAL = tuple(dict.fromkeys(name for _, name in _RULES))
_PREFIXES = ("nvidia-", "tesla-", "amd-", "instinct-", "aws-")
#: spellings of "no accelerator" (the benchmark harness records "cpu")
_NONE = {"", "cpu", "none", "nan"}
#: a chip that comes with two memory sizes: (smaller name, larger name, MiB above which it is larger)
_BY_MEMORY = {"A100-40GB": ("A100-80GB", 41 * 1024), "V100": ("V100-32GB", 17 * 1024)}


def canonical_accelerator(name: object, memory_mib: float | None = None) -> str:
    """The canonical accelerator name of any spelling; ``""`` for none (``""``, ``cpu``, NaN).

    ``memory_mib`` (per accelerator) tells apart chips sold in two sizes when the name does not
    (AWS labels ``a100`` for both p4d's 40 GiB and p4de's 80 GiB).
    """
    name = _canonical_name(str(name) if name is not None else "")
    if memory_mib is not None and memory_mib == memory_mib and name in _BY_MEMORY:
        larger, threshold_mib = _BY_MEMORY[name]
        return larger if memory_mib > threshold_mib else name
    return name


@lru_cache(maxsize=512)
def _canonical_name(raw: str) -> str:
    cleaned = re.sub(r"[\s_]+", "-", raw.strip().lower())
    if cleaned in _NONE:
        return ""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if cleaned.startswith(prefix):
                cleaned, stripped = cleaned.removeprefix(prefix), True
    for pattern, canonical in _RULES:
        if re.match(pattern, cleaned):
            return canonical
    return cleaned.upper()


# -- AWS: the accelerator of each instance family (the Price List API does not name it) ----------

#: EC2 instance family → canonical accelerator (checked against the snapshot's labels in the tests)
AWS_FAMILIES = {
    "p2": "K80",
    "g3": "M60",
    "g3s": "M60",
    "p3": "V100",
    "p3dn": "V100-32GB",
    "g4dn": "T4",
    "g4ad": "Radeon-Pro-V520",
    "g5": "A10G",
    "g5g": "T4G",
    "g6": "L4",
    "g6f": "L4",
    "gr6": "L4",
    "gr6f": "L4",
    "g6e": "L40S",
    "g7": "RTX-PRO-4500",
    "g7e": "RTX-PRO-6000",
    "p4d": "A100-40GB",
    "p4de": "A100-80GB",
    "p5": "H100",
    "p5e": "H200",
    "p5en": "H200",
    "p6-b200": "B200",
    "p6-b300": "B300",
    "inf1": "Inferentia",
    "inf2": "Inferentia2",
    "trn1": "Trainium",
    "trn1n": "Trainium",
    "trn2": "Trainium2",
    "dl2q": "Qualcomm-AI100",
}


def aws_accelerator(instance_type: str) -> str:
    """The canonical accelerator of an EC2 type (``g4dn.xlarge`` → ``T4``), ``""`` for CPU types."""
    return AWS_FAMILIES.get(instance_type.split(".")[0], "")


# -- GCP: GPUs attached to N1 hosts --------------------------------------------------------------

#: canonical name → GCP accelerator type, for the GPUs that attach to N1 machine types
GCP_ATTACHABLE = {
    "T4": "nvidia-tesla-t4",
    "P4": "nvidia-tesla-p4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "K80": "nvidia-tesla-k80",
}
#: GCP's limits for N1 + GPU: GPU count → (max vCPUs, max memory GiB) of the host
N1_GPU_LIMITS: dict[str, dict[int, tuple[float, float]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (64, 208)},
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 416)},
}
#: the N1 machine types a GPU attaches to (not shared-core f1/g1, not mega/ultramem, not TPU hosts)
N1_GPU_HOST = re.compile(r"^n1-(?:standard|highmem|highcpu)-\d+$")
#: machine families that come with GPUs attached (no guestAccelerators needed, no live migration)
GCP_BUNDLED_GPU_FAMILIES = ("a2", "a3", "a4", "g2", "g4")
_PAIRED = re.compile(r"^(?P<machine>[a-z0-9-]+)\+(?P<accelerator>[A-Za-z0-9-]+)x(?P<count>\d+)$")


def gcp_paired_type(machine_type: str, accelerator: str, count: int) -> str:
    """The catalog's name for an N1 host with GPUs attached: ``n1-highmem-4+T4x1``."""
    return f"{machine_type}+{accelerator}x{count}"


def split_gcp_type(instance_type: str) -> tuple[str, str, int]:
    """``n1-highmem-4+T4x1`` → (``n1-highmem-4``, ``T4``, 1); a plain machine type → (type, "", 0)."""
    match = _PAIRED.fullmatch(instance_type)
    if match is None:
        return instance_type, "", 0
    accelerator = canonical_accelerator(match.group("accelerator"))
    return match.group("machine"), accelerator, int(match.group("count"))


def n1_pairing_allowed(accelerator: str, count: int, vcpus: float, memory_gib: float) -> bool:
    """Whether GCP sells ``count`` × ``accelerator`` on an N1 host of this shape."""
    limit = N1_GPU_LIMITS.get(accelerator, {}).get(count)
    return limit is not None and vcpus <= limit[0] and memory_gib <= limit[1]
