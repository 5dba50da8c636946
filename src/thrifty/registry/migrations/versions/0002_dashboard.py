"""dashboard: the plan's chosen cloud and naive-baseline cost as columns

The cost page sums plan vs baseline $/month by cloud over every deployment; reading both out of
each plan's JSON record took ~1.2 s at 1,000 deployments (bench/api.py). Two plain columns, filled
from the record for existing plans, make it one small aggregate.

Revision ID: 0002_dashboard
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_dashboard"
down_revision = "0002_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("chosen_provider", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("baseline_usd_per_month", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE plans SET chosen_provider = json_extract(record, '$.chosen.provider'), "
            "baseline_usd_per_month = json_extract(record, '$.baseline.usd_per_month')"
        )
    else:
        op.execute(
            "UPDATE plans SET chosen_provider = record->'chosen'->>'provider', "
            "baseline_usd_per_month = (record->'baseline'->>'usd_per_month')::float"
        )


def downgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("baseline_usd_per_month")
        batch.drop_column("chosen_provider")
