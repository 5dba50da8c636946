"""What ``thrifty status`` shows: the registry's local deployments joined with the live gateway."""

from __future__ import annotations

from typing import Any

from thrifty.serving import daemon
from thrifty.settings import Settings, get_settings


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)


def local_status(settings: Settings | None = None, registry: Any = None) -> dict[str, Any]:
    from thrifty import runtime
    from thrifty.policies.sweep import policy_state

    settings = settings or get_settings()
    registry = registry or runtime.registry(settings)
    live: dict[str, Any] = dict((daemon.gateway_state(settings) or {}).get("models") or {})  # type: ignore[call-overload]
    rows = registry.list_deployments("local")
    stats = registry.request_stats([r.name for r in rows])
    deployments = []
    for row in rows:
        replicas = live.get(row.name, {}).get("replicas", [])
        count, last_at = stats.get(row.name, (0, None))
        policy = policy_state(registry.list_events(row.name)) or {}
        deployments.append(
            {
                "name": row.name,
                "state": row.state,
                "replicas_desired": row.replicas,
                "replicas_ready": len(replicas),
                "ports": [r["port"] for r in replicas],
                "requests": count,
                "last_request_at": last_at.isoformat(timespec="seconds") if last_at else None,
                "endpoint_url": row.endpoint_url,
                "policy": policy.get("policy"),
                "policy_action": policy.get("action") or policy.get("do"),
                "warm_until": _iso(policy.get("warm_until")),
                "next_prewarm_at": _iso(policy.get("next_prewarm_at")),
            }
        )
    gateway = {"url": daemon.gateway_url(settings), "pid": daemon.daemon_pid(settings)}
    return {"gateway": gateway, "deployments": deployments}
