"""when a trial's job was last sent to its queue

Revision ID: 8b41f3c6d7e2
Revises: 5d0e7c21a9b4
Create Date: 2026-12-03 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8b41f3c6d7e2"
down_revision: str | None = "5d0e7c21a9b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("job_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE trials SET job_sent_at = queued_at"
        " WHERE queued_at IS NOT NULL AND status IN ('stopped', 'reprocess')"
    )


def downgrade() -> None:
    op.drop_column("trials", "job_sent_at")
