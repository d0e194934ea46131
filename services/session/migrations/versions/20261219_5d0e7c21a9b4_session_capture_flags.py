"""session capture flags (save_local, useLidar)

Revision ID: 5d0e7c21a9b4
Revises: 3a3d312cef79
Create Date: 2026-12-03 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d0e7c21a9b4"
down_revision: str | None = "3a3d312cef79"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ("save_local", "use_lidar"):
        op.add_column(
            "sessions",
            sa.Column(column, sa.Boolean(), server_default=sa.false(), nullable=False),
        )


def downgrade() -> None:
    for column in ("save_local", "use_lidar"):
        op.drop_column("sessions", column)
