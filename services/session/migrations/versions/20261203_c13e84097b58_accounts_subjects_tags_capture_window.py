"""accounts subjects tags capture window

Revision ID: c13e84097b58
Revises: 4068bc678a02
Create Date: 2026-12-03 14:15:56.117626
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c13e84097b58"
down_revision: str | None = "4068bc678a02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "password_resets",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_password_resets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_password_resets")),
    )
    op.create_index(
        op.f("ix_password_resets_user_id"), "password_resets", ["user_id"], unique=False
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("height", sa.Float(), nullable=True),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("gender", sa.String(length=20), nullable=True),
        sa.Column("sex_at_birth", sa.String(length=20), nullable=True),
        sa.Column("characteristics", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trashed", sa.Boolean(), nullable=False),
        sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subjects_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
    )
    op.create_index(op.f("ix_subjects_user_id"), "subjects", ["user_id"], unique=False)
    op.create_table(
        "subject_tags",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_subject_tags_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_tags")),
    )
    op.create_index(
        op.f("ix_subject_tags_subject_id"), "subject_tags", ["subject_id"], unique=False
    )
    op.create_table(
        "trial_tags",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trials.id"],
            name=op.f("fk_trial_tags_trial_id_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_tags")),
    )
    op.create_index(op.f("ix_trial_tags_trial_id"), "trial_tags", ["trial_id"], unique=False)
    op.add_column(
        "sessions", sa.Column("status_changed", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("sessions", sa.Column("subject_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_sessions_subject_id"), "sessions", ["subject_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_sessions_subject_id_subjects"),
        "sessions",
        "subjects",
        ["subject_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("trials", sa.Column("stop_at", sa.DateTime(timezone=True), nullable=True))
    # The scheduler and the janitor look only at recording trials.
    op.create_index(
        "ix_trials_recording",
        "trials",
        ["created_at"],
        postgresql_where=sa.text("status = 'recording'"),
    )
    op.add_column("users", sa.Column("institution", sa.String(length=128), nullable=True))
    op.add_column("users", sa.Column("profession", sa.String(length=128), nullable=True))
    op.add_column("users", sa.Column("country", sa.String(length=128), nullable=True))
    op.add_column("users", sa.Column("reason", sa.String(length=256), nullable=True))
    op.add_column("users", sa.Column("website", sa.String(length=256), nullable=True))
    op.add_column(
        "users", sa.Column("newsletter", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column("users", sa.Column("profile_picture_key", sa.String(length=512), nullable=True))
    op.add_column(
        "users", sa.Column("otp_verified", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("users", sa.Column("otp_skip_till", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("otp_code_hash", sa.String(length=64), nullable=True))
    op.add_column(
        "users", sa.Column("otp_code_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "users", sa.Column("otp_failures", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_index(op.f("ix_users_email"), "users", ["email"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_email"), table_name="users")
    op.drop_column("users", "otp_failures")
    op.drop_column("users", "otp_code_expires_at")
    op.drop_column("users", "otp_code_hash")
    op.drop_column("users", "otp_skip_till")
    op.drop_column("users", "otp_verified")
    op.drop_column("users", "profile_picture_key")
    op.drop_column("users", "newsletter")
    op.drop_column("users", "website")
    op.drop_column("users", "reason")
    op.drop_column("users", "country")
    op.drop_column("users", "profession")
    op.drop_column("users", "institution")
    op.drop_index("ix_trials_recording", table_name="trials")
    op.drop_column("trials", "stop_at")
    op.drop_constraint(op.f("fk_sessions_subject_id_subjects"), "sessions", type_="foreignkey")
    op.drop_index(op.f("ix_sessions_subject_id"), table_name="sessions")
    op.drop_column("sessions", "subject_id")
    op.drop_column("sessions", "status_changed")
    op.drop_index(op.f("ix_trial_tags_trial_id"), table_name="trial_tags")
    op.drop_table("trial_tags")
    op.drop_index(op.f("ix_subject_tags_subject_id"), table_name="subject_tags")
    op.drop_table("subject_tags")
    op.drop_index(op.f("ix_subjects_user_id"), table_name="subjects")
    op.drop_table("subjects")
    op.drop_index(op.f("ix_password_resets_user_id"), table_name="password_resets")
    op.drop_table("password_resets")
