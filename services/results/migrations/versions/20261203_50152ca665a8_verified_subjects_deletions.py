"""verified callers, subjects, deletions, newest session update

Callers' e-mail code step (`api_users.verified`, true for the users known so far, as the
session service's `user.updated` assumes); a session's subject and the event time of its
last applied `session.updated` (older ones arriving late are ignored); subject archives
(`archives.session_id` becomes optional: an archive is of one session or of one subject,
never both); deleted sessions and trials (`forgotten`), so late events do not bring them
back.

Revision ID: 50152ca665a8
Revises: 03432a1274b5
Create Date: 2026-12-03 15:45:06.418842
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "50152ca665a8"
down_revision: str | None = "03432a1274b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_users", sa.Column("verified", sa.Boolean(), server_default="true", nullable=False)
    )
    op.add_column("sessions", sa.Column("subject_id", sa.Integer(), nullable=True))
    op.add_column("sessions", sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_sessions_subject_id"), "sessions", ["subject_id"], unique=False)
    op.add_column("archives", sa.Column("subject_id", sa.Integer(), nullable=True))
    op.add_column("archives", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.alter_column("archives", "session_id", existing_type=sa.UUID(), nullable=True)
    op.create_index(op.f("ix_archives_session_id"), "archives", ["session_id"], unique=False)
    op.create_check_constraint(
        op.f("ck_archives_one_target"),
        "archives",
        "(session_id IS NULL) <> (subject_id IS NULL)",
    )
    op.create_table(
        "forgotten",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forgotten")),
    )
    op.create_index(op.f("ix_forgotten_deleted_at"), "forgotten", ["deleted_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_forgotten_deleted_at"), table_name="forgotten")
    op.drop_table("forgotten")
    op.execute("DELETE FROM archives WHERE session_id IS NULL")  # subject archives
    op.drop_constraint(op.f("ck_archives_one_target"), "archives", type_="check")
    op.drop_index(op.f("ix_archives_session_id"), table_name="archives")
    op.alter_column("archives", "session_id", existing_type=sa.UUID(), nullable=False)
    op.drop_column("archives", "owner_id")
    op.drop_column("archives", "subject_id")
    op.drop_index(op.f("ix_sessions_subject_id"), table_name="sessions")
    op.drop_column("sessions", "changed_at")
    op.drop_column("sessions", "subject_id")
    op.drop_column("api_users", "verified")
