"""Tables of applied recommendations (issue 15): what an apply changed, so it can be undone, and the
hibernation policy chosen for one deployment (what the sweep applies to it).

Separate from ``models.py`` so the core tables stay as they are; same ``Base``, one Alembic history
(migration ``0003_ops``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from thrifty.registry.models import Base, UtcDateTime, utcnow

if TYPE_CHECKING:
    from thrifty.registry.repository import Registry


class AppliedRecommendation(Base):
    """One applied recommendation: its kind, what was in force before (the live revision, or the
    deployment's hibernation policy) and the run or operation that carried it out; ``undone_*``
    once it was undone."""

    __tablename__ = "applied_recommendations"
    __table_args__ = (Index("ix_applied_recommendations_deployment", "deployment_name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text, default="")
    applied_by: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: the revision live before a redeploy (None for a hibernation-policy change)
    revision_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the deployment's own policy before and after (None before: it followed the sweep's block)
    policy_before: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_after: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: the flow run (or API operation) that applied it; None when it was applied at once
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    undone_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    undo_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class HibernationChoice(Base):
    """The hibernation policy chosen for one deployment (by applying a recommendation); the sweep
    uses it instead of its block's policy for that deployment."""

    __tablename__ = "hibernation_choices"

    deployment_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64))
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def list_applied(registry: Registry, name: str | None = None, limit: int = 20) -> list[AppliedRecommendation]:
    """Applied recommendations, newest first (of ``name``, or of every deployment)."""
    query = select(AppliedRecommendation).order_by(AppliedRecommendation.id.desc()).limit(limit)
    if name is not None:
        query = query.where(AppliedRecommendation.deployment_name == name)
    with registry.session() as s:
        return list(s.scalars(query))
