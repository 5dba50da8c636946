"""Hibernation and pre-warming policies learned from traffic, and the trace simulator.

Policies are pure: they see per-minute invocation counts, one minute at a time, and hold windows
(pre-warm, keep-alive) per function. No I/O here except the trace readers in ``trace.py``.

    fixed-<minutes>      fixed keep-alive (the state of practice)
    hybrid-histogram     Shahrad et al., ATC'20, with the paper's settings
    thrifty-cost-aware   thrifty's own: best window per function at a budget-held shadow price

This module stays light (no numpy at import) so that ``thrifty --help`` stays fast; the classes
load on first use.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from thrifty.errors import ConfigError

if TYPE_CHECKING:
    from thrifty.policies.base import Action, Policy
    from thrifty.policies.costaware import CostAware
    from thrifty.policies.fixed import FixedKeepAlive
    from thrifty.policies.histogram import HybridHistogram

__all__ = ["POLICIES", "Action", "CostAware", "FixedKeepAlive", "HybridHistogram", "Policy", "get_policy"]

#: policy name → "module:Class" (the class takes its settings as keyword arguments)
POLICIES: dict[str, str] = {
    "fixed": "thrifty.policies.fixed:FixedKeepAlive",
    "hybrid-histogram": "thrifty.policies.histogram:HybridHistogram",
    "thrifty-cost-aware": "thrifty.policies.costaware:CostAware",
}

_LAZY = {
    "Action": "thrifty.policies.base:Action",
    "Policy": "thrifty.policies.base:Policy",
    "CostAware": POLICIES["thrifty-cost-aware"],
    "FixedKeepAlive": POLICIES["fixed"],
    "HybridHistogram": POLICIES["hybrid-histogram"],
}


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _load(_LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def policy_class(name: str) -> type[Policy]:
    """The class registered as ``name``; a wrong name fails with the list of valid names."""
    try:
        target = POLICIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown policy {name!r}", hint=f"use one of: {', '.join(sorted(POLICIES))}, or fixed-<minutes>"
        ) from None
    cls: type[Policy] = _load(target)
    return cls


def get_policy(name: str, settings: Mapping[str, Any] | None = None) -> Policy:
    """A policy by name (``fixed-60`` is ``fixed`` with ``keepalive_min=60``) with settings overrides."""
    options = dict(settings or {})
    match = re.fullmatch(r"fixed-(\d+(?:\.\d+)?)", name)
    if match:
        name, options = "fixed", {"keepalive_min": float(match.group(1))} | options
    cls = policy_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(
            f"bad settings {options} for policy {name!r}: {exc}",
            hint="see `thrifty policies` for its settings",
        ) from None
