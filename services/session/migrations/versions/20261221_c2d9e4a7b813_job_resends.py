"""how many times a trial's unclaimed job was sent again

Revision ID: c2d9e4a7b813
Revises: 8b41f3c6d7e2
Create Date: 2026-12-03 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c2d9e4a7b813"
down_revision: str | None = "8b41f3c6d7e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "trials", sa.Column("job_resends", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("trials", "job_resends")
