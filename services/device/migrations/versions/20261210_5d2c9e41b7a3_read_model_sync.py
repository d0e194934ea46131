"""read model sync: change times, session field stamps, device models

Every row the API replicas mirror in memory gets an `updated_at` (database clock) so a
replica can re-read what changed lately and catch up on any event it missed. Session
fields carry the time of the event that set them (`fields_at`), so the last write wins
whatever order events arrive in. Video slots remember the phone model from its upload.

Revision ID: 5d2c9e41b7a3
Revises: ae20500eafa0
Create Date: 2026-12-10 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2c9e41b7a3"
down_revision: str | None = "ae20500eafa0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column("sessions", sa.Column("fields_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "sessions",
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.execute("UPDATE sessions SET fields_at = created_at")
    op.add_column(
        "video_slots",
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.add_column("video_slots", sa.Column("model", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_sessions_updated_at"), "sessions", ["updated_at"])
    op.create_index(op.f("ix_trials_updated_at"), "trials", ["updated_at"])
    op.create_index(op.f("ix_video_slots_updated_at"), "video_slots", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_video_slots_updated_at"), table_name="video_slots")
    op.drop_index(op.f("ix_trials_updated_at"), table_name="trials")
    op.drop_index(op.f("ix_sessions_updated_at"), table_name="sessions")
    op.drop_column("video_slots", "model")
    op.drop_column("video_slots", "updated_at")
    op.drop_column("sessions", "updated_at")
    op.drop_column("sessions", "fields_at")
