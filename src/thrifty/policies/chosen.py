"""The hibernation policy chosen for one deployment (issue 15: applying a hibernation-policy
recommendation stores it here), and how the sweep merges it into its block's settings.

    chosen_policy(registry, NAME)          the deployment's own policy, or None (the block's)
    choose_policy(registry, NAME, P, who)  store it (a known policy name only)
    forget_policy(registry, NAME)          back to the block's policy
    with_choice(registry, NAME, config)    the sweep's settings for NAME with the choice applied

A chosen policy replaces the block's policy for that deployment (and its settings, which belong to
the other policy); the block's mode (always-warm, off) and limits still hold.
"""

from __future__ import annotations

from thrifty.policies.sweep import SweepConfig
from thrifty.registry import Registry
from thrifty.registry.applied import HibernationChoice
from thrifty.registry.models import utcnow


def chosen_policy(registry: Registry, name: str) -> str | None:
    with registry.session() as s:
        found = s.get(HibernationChoice, name)
        return None if found is None else found.policy


def choose_policy(registry: Registry, name: str, policy: str, who: str) -> None:
    from thrifty.policies import get_policy

    get_policy(policy)  # a ConfigError naming the known policies, before anything is stored
    with registry.session() as s:
        found = s.get(HibernationChoice, name)
        if found is None:
            s.add(HibernationChoice(deployment_name=name, policy=policy, set_by=who, set_at=utcnow()))
        else:
            found.policy, found.set_by, found.set_at = policy, who, utcnow()


def forget_policy(registry: Registry, name: str) -> None:
    with registry.session() as s:
        found = s.get(HibernationChoice, name)
        if found is not None:
            s.delete(found)


def with_choice(registry: Registry, name: str, config: SweepConfig) -> SweepConfig:
    """``config`` with the deployment's chosen policy, when it has one."""
    policy = chosen_policy(registry, name)
    if policy is None or policy == config.policy:
        return config
    return config.with_overrides({"policy": policy, "settings": {}})
