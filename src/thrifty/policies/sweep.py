"""What the ``hibernation-sweep`` flow does to one deployment, decided from data (no I/O here).

The flow gathers each deployment's facts (state, when it last changed, the plan's $/hour, its
request timestamps) and asks ``sweep_decision`` what to do now: wake it (keep warm or pre-warm a
hibernated deployment), hibernate it, or leave it. The policy's own answer (``decide``) is kept
with the reason, so the deployment event says why.

A serverless deployment (Lambda, Cloud Run, Container Apps) is never hibernated: the platform
scales it to zero. The sweep only sets its warm floor (provisioned concurrency, min instances, min
replicas) from the same decision: at least 1 while the policy keeps it warm or pre-warms it, 0
otherwise (``do == "floor"`` with ``warm_floor``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from thrifty.errors import ConfigError
from thrifty.policies import get_policy
from thrifty.policies.base import Action
from thrifty.policies.decide import Decision, ModelCosts, decide
from thrifty.states import state_of

Mode = Literal["auto", "always-warm", "off"]
Do = Literal["wake", "hibernate", "floor", "none"]
POLICY_EVENT_KIND = "policy-decision"  # the deployment event the sweep records


@dataclass(frozen=True)
class SweepConfig:
    """One deployment's hibernation settings (the block's defaults merged with its override)."""

    policy: str = "thrifty-cost-aware"
    settings: Mapping[str, Any] = field(default_factory=dict)
    mode: Mode = "auto"
    history_min: int = 7 * 1440
    lead_min: float = 5.0
    min_warm_min: float = 10.0
    idle_usd_per_hour: float = 0.10
    cold_start_s: float = 10.0
    usd_per_cold_start_s: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "always-warm", "off"):
            raise ConfigError(f"mode={self.mode!r}", hint="use 'auto', 'always-warm' or 'off'")
        if self.history_min < 1 or self.lead_min < 0 or self.min_warm_min < 0:
            raise ConfigError(
                f"history_min={self.history_min}, lead_min={self.lead_min}, min_warm_min={self.min_warm_min}",
                hint="history ≥ 1 minute; lead and minimum warm time ≥ 0",
            )

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> SweepConfig:
        fields = {k: v for k, v in dict(overrides or {}).items() if v is not None}
        unknown = set(fields) - set(self.__dataclass_fields__)
        if unknown:
            raise ConfigError(
                f"unknown hibernation settings {sorted(unknown)}",
                hint=f"use any of: {', '.join(sorted(self.__dataclass_fields__))}",
            )
        return SweepConfig(**(self.__dict__ | fields))


@dataclass(frozen=True)
class DeploymentFacts:
    name: str
    state: str
    changed_at: datetime | None = None
    idle_usd_per_hour: float | None = None  # from the deployment's plan, when it has one
    cold_start_s: float | None = None  # measured load time, when known
    serverless: bool = False  # the platform scales it to zero; the sweep sets only its warm floor
    warm_floor: int = 0  # a serverless deployment's current floor (its replicas)


@dataclass(frozen=True)
class SweepDecision:
    name: str
    do: Do
    reason: str
    decision: Decision | None = None
    warm_floor: int | None = None  # serverless only: the floor to set (do == "floor") or kept

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"deployment": self.name, "do": self.do, "reason": self.reason}
        if self.warm_floor is not None:
            row["warm_floor"] = self.warm_floor
        if self.decision is not None:
            d = self.decision
            row |= {
                "policy": d.policy,
                "action": d.action.value,
                "warm_until": d.warm_until.isoformat() if d.warm_until else None,
                "next_prewarm_at": d.next_prewarm_at.isoformat() if d.next_prewarm_at else None,
                "prewarm_min": d.prewarm_min,
                "keepalive_min": d.keepalive_min,
                "idle_usd_per_window": d.idle_usd_per_window,
            }
        return row


def costs_for(facts: DeploymentFacts, config: SweepConfig) -> ModelCosts:
    return ModelCosts(
        idle_usd_per_hour=facts.idle_usd_per_hour
        if facts.idle_usd_per_hour is not None
        else config.idle_usd_per_hour,
        cold_start_s=facts.cold_start_s if facts.cold_start_s is not None else config.cold_start_s,
        usd_per_cold_start_s=config.usd_per_cold_start_s,
    )


def sweep_decision(
    facts: DeploymentFacts, request_times: Sequence[datetime], now: datetime, config: SweepConfig
) -> SweepDecision:
    """Wake, hibernate or leave ``facts.name`` now, with the reason."""
    up = state_of(facts.state).active
    if config.mode == "off":
        return SweepDecision(facts.name, "none", "hibernation sweep is off for this deployment")
    if not state_of(facts.state).exists:
        return SweepDecision(facts.name, "none", f"state {facts.state!r}: nothing to hibernate or wake")
    if config.mode == "always-warm":
        if facts.serverless:
            return _floor(facts, max(1, facts.warm_floor), "kept warm by its override (always-warm)")
        return SweepDecision(facts.name, "none" if up else "wake", "kept warm by its override (always-warm)")
    decision = decide(
        request_times,
        now,
        costs_for(facts, config),
        get_policy(config.policy, config.settings),
        history_min=config.history_min,
        lead_min=config.lead_min,
    )
    return _act(facts, decision, now, config)


def _floor(facts: DeploymentFacts, floor: int, why: str, decision: Decision | None = None) -> SweepDecision:
    """A serverless deployment: set its warm floor to ``floor`` (nothing when it already is)."""
    if floor == facts.warm_floor:
        reason = f"warm floor stays {floor} (the platform scales the rest): {why}"
        return SweepDecision(facts.name, "none", reason, decision, floor)
    reason = f"warm floor {facts.warm_floor} → {floor}: {why}"
    return SweepDecision(facts.name, "floor", reason, decision, floor)


def _serverless_act(facts: DeploymentFacts, decision: Decision) -> SweepDecision:
    """Never hibernated (the platform scales to zero): a floor ≥ 1 while warm or pre-warmed, else 0."""
    verb = {Action.PRE_WARM: "pre-warm", Action.KEEP_WARM: "keep warm"}.get(decision.action)
    if verb is not None:
        return _floor(facts, max(1, facts.warm_floor), f"{verb}: {decision.reason}", decision)
    return _floor(facts, 0, f"scale to zero left to the platform: {decision.reason}", decision)


def _act(facts: DeploymentFacts, decision: Decision, now: datetime, config: SweepConfig) -> SweepDecision:
    if facts.serverless:
        return _serverless_act(facts, decision)
    up = state_of(facts.state).active
    wants_up = decision.action in (Action.KEEP_WARM, Action.PRE_WARM)
    if wants_up and not up:
        verb = "pre-warm" if decision.action is Action.PRE_WARM else "wake"
        return SweepDecision(facts.name, "wake", f"{verb}: {decision.reason}", decision)
    if not wants_up and up:
        recent = facts.changed_at is not None and now - facts.changed_at < timedelta(
            minutes=config.min_warm_min
        )
        if recent:
            reason = f"held warm: changed less than {config.min_warm_min:g} min ago ({decision.reason})"
            return SweepDecision(facts.name, "none", reason, decision)
        return SweepDecision(facts.name, "hibernate", f"hibernate: {decision.reason}", decision)
    state = "warm" if up else "hibernated"
    return SweepDecision(facts.name, "none", f"stays {state}: {decision.reason}", decision)


def policy_state(events: Sequence[Any]) -> dict[str, Any] | None:
    """For ``thrifty status``: the newest ``policy-decision`` event's action, warm-until and next pre-warm.

    ``events`` are a deployment's events in time order (``Registry.list_events``); None when the
    sweep has not decided anything for it yet.
    """
    for event in reversed(events):
        if event.kind == POLICY_EVENT_KIND:
            details = dict(event.details or {})
            keys = ("do", "action", "policy", "warm_until", "next_prewarm_at", "warm_floor")
            return {k: details.get(k) for k in keys} | {"decided_at": event.at, "reason": event.reason}
    return None
