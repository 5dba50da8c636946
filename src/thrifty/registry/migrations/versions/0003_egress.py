"""request and response sizes in the request log, bytes in the rollups (issue 16: transfer in the ledger)

Revision ID: 0003_egress
Revises: 0003_login

Columns only, all nullable: rows logged before this migration have no sizes (the ledger counts them
as 0 bytes and says so), and a request log written by an older gateway still inserts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_egress"
down_revision = "0003_login"  # chained after main's 0003_login (rebased onto it); lead: re-chain as needed
branch_labels = None
depends_on = None

COLUMNS = {
    "request_log": ("request_bytes", "response_bytes"),
    "metric_rollups": ("bytes_in", "bytes_out"),
}


def upgrade() -> None:
    for table, names in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in names:
                batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for table, names in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in reversed(names):
                batch.drop_column(name)
