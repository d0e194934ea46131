"""deletions: tombstones for deleted sessions and trials

A deleted session or trial keeps its row with `deleted_at` set (its slots, and a session's
trials, are dropped), so a late or redelivered event about it changes nothing.

Revision ID: 9b41d7c2e5f0
Revises: 5d2c9e41b7a3
Create Date: 2026-12-17 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b41d7c2e5f0"
down_revision: str | None = "5d2c9e41b7a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("trials", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("trials", "deleted_at")
    op.drop_column("sessions", "deleted_at")
