"""applied recommendations (undo) and per-deployment hibernation policies (issue 15, ops)

Revision ID: 0003_ops
Revises: 0003_login
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_ops"
down_revision = "0003_egress"  # chained: 0003_login → 0003_egress → 0003_ops
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applied_recommendations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("applied_by", sa.String(length=200), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision_before", sa.Integer(), nullable=True),
        sa.Column("policy_before", sa.String(length=64), nullable=True),
        sa.Column("policy_after", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(length=200), nullable=True),
        sa.Column("undo_run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_applied_recommendations_deployment", "applied_recommendations", ["deployment_name", "id"]
    )
    op.create_table(
        "hibernation_choices",
        sa.Column("deployment_name", sa.String(length=200), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("deployment_name"),
    )


def downgrade() -> None:
    op.drop_table("hibernation_choices")
    op.drop_index("ix_applied_recommendations_deployment", table_name="applied_recommendations")
    op.drop_table("applied_recommendations")
