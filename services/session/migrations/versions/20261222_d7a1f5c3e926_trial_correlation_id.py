"""the correlation id of the request that started a trial

Revision ID: d7a1f5c3e926
Revises: c2d9e4a7b813
Create Date: 2026-12-04 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7a1f5c3e926"
down_revision: str | None = "c2d9e4a7b813"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("correlation_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("trials", "correlation_id")
