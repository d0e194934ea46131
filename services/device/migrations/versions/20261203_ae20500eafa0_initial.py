"""initial

Revision ID: ae20500eafa0
Revises:
Create Date: 2026-12-03 13:39:25.704596
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.outbox import DROP_OUTBOX_TRIGGER_SQL, OUTBOX_TRIGGER_SQL

revision: str = "ae20500eafa0"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=64), nullable=False),
        sa.Column("routing_key", sa.String(length=128), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    for statement in OUTBOX_TRIGGER_SQL:
        op.execute(statement)
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("framerate", sa.Integer(), nullable=False),
        sa.Column("new_session_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("has_results", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
    )
    op.create_index(op.f("ix_trials_session_id"), "trials", ["session_id"], unique=False)
    op.create_table(
        "video_slots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_slots")),
        sa.UniqueConstraint("trial_id", "device_id", name=op.f("uq_video_slots_trial_id")),
    )
    op.create_index(op.f("ix_video_slots_trial_id"), "video_slots", ["trial_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_video_slots_trial_id"), table_name="video_slots")
    op.drop_table("video_slots")
    op.drop_index(op.f("ix_trials_session_id"), table_name="trials")
    op.drop_table("trials")
    op.drop_table("sessions")
    op.drop_table("processed_events")
    for statement in DROP_OUTBOX_TRIGGER_SQL:
        op.execute(statement)
    op.drop_table("outbox")
