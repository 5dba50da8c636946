"""Apply a recommendation and undo it (issue 15): the dashboard, the API and ``thrifty recommend``
all come here, so each apply and undo is recorded and audited the same way.

    apply(registry, rec, who, start)   a redeploy (``deploy-model`` run through ``start``): the
                                       revision live before it is recorded; a hibernation policy:
                                       stored for the deployment at once (the sweep reads it), the
                                       policy it had before recorded
    undo(registry, NAME, who, start)   the deployment's latest apply, undone: a rollback-deployment
                                       run to the revision live before it, or the previous policy
                                       restored

``start(flow, parameters)`` starts a Prefect run (the API through its operations, the dashboard
through its launcher, the CLI over Prefect's REST API) and returns its id. Undo claims the record
before it starts anything (two undos of one apply cannot both run) and gives it back if the start
is refused, so a refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update

from thrifty import access
from thrifty.errors import ConfigError, NotFoundError
from thrifty.registry import Registry
from thrifty.registry.applied import AppliedRecommendation, list_applied
from thrifty.registry.models import Revision, utcnow

#: the recommendation kind that changes a hibernation policy (every other kind redeploys)
HIBERNATION = "hibernation"
ROLLBACK_FLOW = "rollback-deployment/rollback-deployment"
#: (flow "FLOW/DEPLOYMENT", parameters) → the run's (or operation's) id
Start = Callable[[str, dict[str, Any]], str]


@dataclass(frozen=True)
class Applying:
    """What ``apply`` needs of a recommendation (``read.RecommendationView`` has these fields)."""

    deployment: str
    kind: str
    title: str
    flow: str | None
    parameters: dict[str, Any]
    command: str


def apply(
    registry: Registry, rec: Any, who: str, start: Start, *, audit_as: str = ""
) -> AppliedRecommendation:
    """Carry out ``rec`` (a ``RecommendationView``), record what it changed, audit it (action
    ``{audit_as}recommendations.apply``: the dashboard prefixes ``dashboard.``)."""
    rec = Applying(**{k: getattr(rec, k) for k in Applying.__dataclass_fields__})
    if rec.kind == HIBERNATION:
        return _apply_policy(registry, rec, who, audit_as)
    if rec.flow is None:
        raise ConfigError(
            f"no flow applies the {rec.kind!r} recommendation of {rec.deployment!r}",
            hint=f"run: {rec.command}",
        )
    before = _live_number(registry, rec.deployment)  # what undo rolls back to (None: see _before)
    run_id = start(rec.flow, rec.parameters)
    row = _record(registry, rec, who, revision_before=before, run_id=run_id)
    after = {"run_id": run_id, "flow": rec.flow, "parameters": rec.parameters}
    _audit(registry, who, f"{audit_as}recommendations.apply", row, {"revision": before}, after)
    return row


def _live_number(registry: Registry, name: str) -> int | None:
    """The live revision's number; None for a deployment made before revisions existed (the update
    the apply starts records that one as ``adopted``, and undo finds it then). Read only: a refused
    start changes nothing."""
    from thrifty.lifecycle.core import LIVE

    registry.get_deployment(name)
    live = [r.number for r in registry.list_revisions(name) if r.state == LIVE]
    return live[-1] if live else None


def _apply_policy(registry: Registry, rec: Applying, who: str, audit_as: str) -> AppliedRecommendation:
    from thrifty.policies.chosen import choose_policy, chosen_policy

    policy = str(rec.parameters.get("policy") or "")
    before = chosen_policy(registry, rec.deployment)
    choose_policy(registry, rec.deployment, policy, who)  # refuses an unknown policy, storing nothing
    row = _record(registry, rec, who, policy_before=before, policy_after=policy)
    registry.add_event(rec.deployment, "hibernation-policy", f"policy {policy} chosen ({rec.title}) by {who}")
    _audit(registry, who, f"{audit_as}recommendations.apply", row, {"policy": before}, {"policy": policy})
    return row


def _record(registry: Registry, rec: Applying, who: str, **fields: Any) -> AppliedRecommendation:
    row = AppliedRecommendation(
        deployment_name=rec.deployment, kind=rec.kind, title=rec.title, applied_by=who,
        applied_at=utcnow(), parameters=dict(rec.parameters), **fields,
    )  # fmt: skip
    with registry.session() as s:
        s.add(row)
        s.flush()
    return row


def _audit(
    registry: Registry, who: str, action: str, row: AppliedRecommendation, before: Any, after: Any
) -> None:
    context = {"applied": row.id, "kind": row.kind}
    access.audit(registry, who, action, row.deployment_name, before=context | before, after=context | after)


# -- undo -----------------------------------------------------------------------------------------
def applied(registry: Registry, name: str | None = None, limit: int = 20) -> list[AppliedRecommendation]:
    """Applied recommendations, newest first (of ``name``, or of every deployment)."""
    return list_applied(registry, name, limit)


def undo(
    registry: Registry,
    name: str,
    who: str,
    start: Start,
    applied_id: int | None = None,
    *,
    audit_as: str = "",
) -> AppliedRecommendation:
    """Undo ``name``'s latest applied recommendation (``applied_id``, when given, must be it)."""
    last = _undoable(registry, name, applied_id)
    if last.kind == HIBERNATION:
        return _restore_policy(registry, last, who, audit_as)
    number = _check_rollback(registry, last)
    _claim(registry, last, who)
    try:
        run_id = start(ROLLBACK_FLOW, {"name": name, "to": number})
    except Exception:
        _unclaim(registry, last)
        raise
    row = _set(registry, last.id, undo_run_id=run_id, revision_before=number)
    before, after = {"run_id": row.run_id}, {"rollback_to": number, "run_id": run_id}
    _audit(registry, who, f"{audit_as}recommendations.undo", row, before, after)
    return row


def _undoable(registry: Registry, name: str, applied_id: int | None) -> AppliedRecommendation:
    registry.get_deployment(name)  # NotFoundError for an unknown name
    found = applied(registry, name, limit=1)
    if not found:
        raise NotFoundError(
            f"no recommendation was applied to {name!r}: there is nothing to undo",
            hint=f"`thrifty recommend {name}` lists what could be applied",
        )
    last = found[0]
    if applied_id is not None and applied_id != last.id:
        raise ConfigError(
            f"apply #{applied_id} of {name!r} is not its latest (#{last.id}, {last.kind}): only the latest is undone",
            hint=f"undo #{last.id} first (reload the page to see it), or roll back by hand: `thrifty rollback {name} --to N`",
        )
    if last.undone_at is not None:
        raise ConfigError(
            f"the {last.kind} recommendation applied to {name!r} ({_when(last.applied_at)}) was already "
            f"undone ({_when(last.undone_at)} by {last.undone_by})",
            hint=f"nothing is left to undo; `thrifty revisions {name}` and `thrifty events {name}` show the history",
        )
    return last


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "?"


def _check_rollback(registry: Registry, last: AppliedRecommendation) -> int:
    """The number of the revision live before the apply, once it can be made live again."""
    from thrifty.lifecycle.core import DELETED, LIVE, RETIRED
    from thrifty.states import state_of

    name = last.deployment_name
    if not state_of(registry.get_deployment(name).state).exists:
        raise ConfigError(
            f"deployment {name!r} was deleted: the {last.kind} recommendation cannot be undone",
            hint=f"deploy it again (`thrifty deploy … --name {name}`)",
        )
    revisions = registry.list_revisions(name)
    revision = _before(last, revisions)
    if revision is not None and revision.state == LIVE:
        raise ConfigError(
            f"r{revision.number} of {name!r} is still live: the apply (run {last.run_id}) has not replaced it yet",
            hint="wait for that run to end and undo then; if it failed, nothing changed and nothing needs undoing",
        )
    if revision is None or revision.state not in (RETIRED, DELETED):
        which = f"r{last.revision_before}" if last.revision_before else "the revision"
        state = "is gone" if revision is None else f"is {revision.state}"
        raise NotFoundError(
            f"{which} of {name!r}, live before the {last.kind} recommendation was applied, {state}",
            hint=f"roll back to another revision by hand: `thrifty revisions {name}`, then `thrifty rollback {name} --to N`",
        )
    return revision.number


def _before(last: AppliedRecommendation, revisions: list[Revision]) -> Revision | None:
    """The revision live before the apply: the recorded one, or (a deployment that had none) the one
    the apply's update adopted after it started."""
    if last.revision_before is not None:
        return next((r for r in revisions if r.number == last.revision_before), None)
    adopted = [r for r in revisions if r.reason == "adopted" and r.created_at >= last.applied_at]
    return adopted[0] if adopted else None


def _claim(registry: Registry, last: AppliedRecommendation, who: str) -> None:
    """Mark it undone, only if nobody else did in the meantime (one UPDATE: no race)."""
    table = AppliedRecommendation
    with registry.session() as s:
        claimed = s.execute(
            update(table)
            .where(table.id == last.id, table.undone_at.is_(None))
            .values(undone_at=utcnow(), undone_by=who)
        ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        raise ConfigError(
            f"the {last.kind} recommendation applied to {last.deployment_name!r} is being undone already",
            hint=f"see `thrifty events {last.deployment_name}`",
        )


def _unclaim(registry: Registry, last: AppliedRecommendation) -> None:
    _set(registry, last.id, undone_at=None, undone_by=None)


def _set(registry: Registry, applied_id: int, **fields: Any) -> AppliedRecommendation:
    with registry.session() as s:
        row = s.get(AppliedRecommendation, applied_id)
        if row is None:
            raise NotFoundError(f"no applied recommendation #{applied_id}")
        for key, value in fields.items():
            setattr(row, key, value)
        return row


def _restore_policy(
    registry: Registry, last: AppliedRecommendation, who: str, audit_as: str
) -> AppliedRecommendation:
    from thrifty.policies.chosen import choose_policy, forget_policy

    _claim(registry, last, who)
    name = last.deployment_name
    if last.policy_before is None:
        forget_policy(registry, name)
        reason = f"policy {last.policy_after} undone by {who}: back to the sweep's block policy"
    else:
        choose_policy(registry, name, last.policy_before, who)
        reason = f"policy {last.policy_after} undone by {who}: back to {last.policy_before}"
    registry.add_event(name, "hibernation-policy", reason)
    row = _set(registry, last.id)
    _audit(registry, who, f"{audit_as}recommendations.undo", row, {"policy": last.policy_after},
           {"policy": last.policy_before})  # fmt: skip
    return row
