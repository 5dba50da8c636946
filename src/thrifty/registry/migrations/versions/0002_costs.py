"""fleet metrics, spend ledger and anomaly alerts (issue 16)

Revision ID: 0002_costs
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_costs"
down_revision = "0001"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        _when("bucket_start"),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("cold_starts", sa.Integer(), nullable=False),
        sa.Column("latency_ms_p50", sa.Float(), nullable=True),
        sa.Column("latency_ms_p95", sa.Float(), nullable=True),
        sa.Column("latency_ms_p99", sa.Float(), nullable=True),
        sa.Column("busy_s", sa.Float(), nullable=False),
        sa.Column("replica_s", sa.Float(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.UniqueConstraint("deployment", "resolution_s", "bucket_start"),
    )
    op.create_table(
        "rollup_cursors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        _when("done_until"),
        sa.UniqueConstraint("deployment", "resolution_s"),
    )
    op.create_table(
        "spend_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        _when("hour_start"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("usd_saved", sa.Float(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.UniqueConstraint("deployment", "hour_start", "kind"),
    )
    op.create_table(
        "anomaly_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        _when("at"),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("deviation_rel", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        _when("created_at"),
        sa.UniqueConstraint("deployment", "kind", "at"),
    )


def downgrade() -> None:
    for table in ("anomaly_alerts", "spend_ledger", "rollup_cursors", "metric_rollups"):
        op.drop_table(table)
