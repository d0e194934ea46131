"""watchers: who may watch a session's phones

A session's owner and public flag (from `session.created` and `session.updated`), and the
callers (`api_tokens`, `api_users`, from the session service's `user.*` events), so the
devices list and the session stream answer only the owner, or anyone for a public session.
Sessions known before this have no owner here: only admins may watch them.

Revision ID: c3f8a61d2b94
Revises: 9b41d7c2e5f0
Create Date: 2026-12-18 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3f8a61d2b94"
down_revision: str | None = "9b41d7c2e5f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.add_column(
        "sessions",
        sa.Column("public", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
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
        sa.Column("verified", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_api_users")),
    )


def downgrade() -> None:
    op.drop_table("api_users")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_column("sessions", "public")
    op.drop_column("sessions", "owner_id")
