"""verified callers, session chain times, unused keys

The e-mail code step in the local copy of users (`api_users.verified`, true for the users
known so far, as `user.updated` said until now); the time of the `session.updated` that
set a session's successor, so that an older event never overwrites a newer one; a partial
index for the worker's removal of old upload keys never used; an index on the videos'
keys (uploads, PATCHes and deletions look videos up by key).

Revision ID: 1ab0207d59a5
Revises: 6466d9446ce9
Create Date: 2026-12-03 15:45:07.687292
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1ab0207d59a5"
down_revision: str | None = "6466d9446ce9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_users", sa.Column("verified", sa.Boolean(), server_default="true", nullable=False)
    )
    op.add_column("sessions", sa.Column("fields_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_upload_keys_unused_created_at",
        "upload_keys",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("stored_at IS NULL"),
    )
    op.create_index(op.f("ix_videos_key"), "videos", ["key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_videos_key"), table_name="videos")
    op.drop_index(
        "ix_upload_keys_unused_created_at",
        table_name="upload_keys",
        postgresql_where=sa.text("stored_at IS NULL"),
    )
    op.drop_column("sessions", "fields_at")
    op.drop_column("api_users", "verified")
