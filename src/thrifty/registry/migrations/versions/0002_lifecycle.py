"""revisions: one row per deploy of a deployment name (issue 13, lifecycle)

Revision ID: 0002_lifecycle
Revises: 0002_dashboard
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lifecycle"
down_revision = "0002_dashboard"  # chained after the branches merged before it (lead: re-chain as needed)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_name", sa.String(length=200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("serving_name", sa.String(length=200), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("image_digest", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_name", "number"),
    )
    op.create_index("ix_revisions_deployment_name", "revisions", ["deployment_name"])


def downgrade() -> None:
    op.drop_index("ix_revisions_deployment_name", table_name="revisions")
    op.drop_table("revisions")
