"""identities, deadlines, direct uploads

Local copies of users and token hashes (shared.identity) and of session owners and
session chains; trial names and the facts upload deadlines derive from (a partial index
over the trials still waiting); direct-to-S3 keys bound to a slot; the newer phones'
isLidar / saved_local flags.

Revision ID: 6466d9446ce9
Revises: 2ffd5c838b9c
Create Date: 2026-12-03 14:20:34.200824
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6466d9446ce9"
down_revision: str | None = "2ffd5c838b9c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_api_tokens")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "api_users",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("groups", sa.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_api_users")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("next_session_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.add_column("trials", sa.Column("name", sa.String(length=64), nullable=True))
    op.add_column("trials", sa.Column("active_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("trials", sa.Column("timed_out_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("trials", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_trials_waiting_final_at",
        "trials",
        ["final_at"],
        unique=False,
        postgresql_where=sa.text(
            "videos_received_at IS NULL AND timed_out_at IS NULL AND closed_at IS NULL"
        ),
    )
    op.add_column("upload_keys", sa.Column("video_id", sa.Uuid(), nullable=True))
    op.add_column("upload_keys", sa.Column("upload_id", sa.String(length=1024), nullable=True))
    op.add_column("videos", sa.Column("is_lidar", sa.Boolean(), nullable=True))
    op.add_column("videos", sa.Column("saved_local", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("videos", "saved_local")
    op.drop_column("videos", "is_lidar")
    op.drop_column("upload_keys", "upload_id")
    op.drop_column("upload_keys", "video_id")
    op.drop_index(
        "ix_trials_waiting_final_at",
        table_name="trials",
        postgresql_where=sa.text(
            "videos_received_at IS NULL AND timed_out_at IS NULL AND closed_at IS NULL"
        ),
    )
    op.drop_column("trials", "closed_at")
    op.drop_column("trials", "timed_out_at")
    op.drop_column("trials", "active_at")
    op.drop_column("trials", "name")
    op.drop_table("sessions")
    op.drop_table("api_users")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
