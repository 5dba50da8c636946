"""The network rule of a deployment: who may reach its serving port.

Every VM deployment gets its own rule, created with it and deleted with it: an AWS security group,
a GCP firewall rule on a network tag its instances carry, an Azure network security group on its
NICs. The rule lets in one TCP port (the boot config's ``port``) from a source range that is never
open by default. The range is, first found wins:

1. ``spec.serving["allowed_cidrs"]`` (one deployment),
2. the target's ``allowed_cidrs`` (``BootConfig.allowed_cidrs``; the target block's field),
3. the control plane's own egress range, ``THRIFTY_CONTROL_PLANE_CIDRS``,

and nothing else: with none of them set, deploy refuses before it creates anything. ``0.0.0.0/0``
is accepted only when a user writes it in one of those places.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime

from thrifty.errors import ConfigError
from thrifty.providers.base import DeploySpec

#: tag holding a rule's creation time (security groups and NSGs report none themselves)
CREATED_KEY = "thrifty:created-at"
OPEN_HINT = (
    "set allowed_cidrs on the target block (e.g. allowed_cidrs=['203.0.113.0/24']), or "
    "THRIFTY_CONTROL_PLANE_CIDRS to the control plane's egress range; to open the port to everyone, "
    "write allowed_cidrs=['0.0.0.0/0'] yourself"
)


def rule_name(name: str) -> str:
    """The name of deployment ``name``'s rule (security group, firewall rule, NSG)."""
    return f"thrifty-{name}"


def source_ranges(spec: DeploySpec, configured: Sequence[str]) -> tuple[str, ...]:
    """The CIDRs the deployment's serving port is open to (normalized); refuses none."""
    from thrifty.settings import get_settings

    chosen = spec.serving.get("allowed_cidrs") or list(configured) or get_settings().control_plane_cidrs
    if not chosen:
        raise ConfigError(
            f"deployment {spec.name!r} has no source range for its network rule (never open by default)",
            hint=OPEN_HINT,
        )
    return tuple(dict.fromkeys(_cidr(str(c)) for c in chosen))


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as exc:
        raise ConfigError(
            f"allowed_cidrs entry {text!r} is not a CIDR range",
            hint="write e.g. 203.0.113.0/24 or 2001:db8::/32",
        ) from exc


def split_families(cidrs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(IPv4 ranges, IPv6 ranges)."""
    v4 = [c for c in cidrs if ipaddress.ip_network(c).version == 4]
    return v4, [c for c in cidrs if c not in v4]


def now_tag() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_created(value: str | None) -> datetime | None:
    """A ``CREATED_KEY`` value as an aware UTC time (None when missing or unreadable)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
