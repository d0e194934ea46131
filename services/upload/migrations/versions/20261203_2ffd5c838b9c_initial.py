"""initial

Revision ID: 2ffd5c838b9c
Revises:
Create Date: 2026-12-03 13:39:27.778421
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.outbox import DROP_OUTBOX_TRIGGER_SQL, OUTBOX_TRIGGER_SQL

revision: str = "2ffd5c838b9c"
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
        "trials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("final_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("videos_received_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
    )
    op.create_index(op.f("ix_trials_session_id"), "trials", ["session_id"], unique=False)
    op.create_table(
        "upload_keys",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_upload_keys")),
    )
    op.create_index(op.f("ix_upload_keys_session_id"), "upload_keys", ["session_id"], unique=False)
    op.create_table(
        "videos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("in_final_set", sa.Boolean(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.UniqueConstraint("trial_id", "device_id", name=op.f("uq_videos_trial_id")),
    )
    op.create_index(op.f("ix_videos_session_id"), "videos", ["session_id"], unique=False)
    op.create_index(op.f("ix_videos_trial_id"), "videos", ["trial_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_videos_trial_id"), table_name="videos")
    op.drop_index(op.f("ix_videos_session_id"), table_name="videos")
    op.drop_table("videos")
    op.drop_index(op.f("ix_upload_keys_session_id"), table_name="upload_keys")
    op.drop_table("upload_keys")
    op.drop_index(op.f("ix_trials_session_id"), table_name="trials")
    op.drop_table("trials")
    op.drop_table("processed_events")
    for statement in DROP_OUTBOX_TRIGGER_SQL:
        op.execute(statement)
    op.drop_table("outbox")
