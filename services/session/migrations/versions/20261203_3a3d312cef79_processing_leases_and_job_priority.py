"""processing leases and job priority

Revision ID: 3a3d312cef79
Revises: c13e84097b58
Create Date: 2026-12-03 14:35:30.584853
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a3d312cef79"
down_revision: str | None = "c13e84097b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("priority", sa.Integer(), nullable=True))
    op.add_column("trials", sa.Column("job_id", sa.Uuid(), nullable=True))
    op.add_column("trials", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("trials", sa.Column("lease_holder", sa.String(length=128), nullable=True))
    op.add_column(
        "trials", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("trials", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.create_index(
        "ix_trials_leased",
        "trials",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'processing'"),
    )
    op.create_index(
        "ix_trials_queued",
        "trials",
        ["queued_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('stopped', 'reprocess')"),
    )


def downgrade() -> None:
    op.drop_index("ix_trials_queued", table_name="trials")
    op.drop_index("ix_trials_leased", table_name="trials")
    op.drop_column("trials", "attempts")
    op.drop_column("trials", "lease_expires_at")
    op.drop_column("trials", "lease_holder")
    op.drop_column("trials", "queued_at")
    op.drop_column("trials", "job_id")
    op.drop_column("outbox", "priority")
