"""initial

Revision ID: 6167c683c99f
Revises:
Create Date: 2026-12-03 13:39:29.856425
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.outbox import DROP_OUTBOX_TRIGGER_SQL, OUTBOX_TRIGGER_SQL

revision: str = "6167c683c99f"
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
        "results",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=True),
        sa.Column("device_id", sa.String(length=36), nullable=True),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint("key", name=op.f("uq_results_key")),
    )
    op.create_index(op.f("ix_results_trial_id"), "results", ["trial_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_results_trial_id"), table_name="results")
    op.drop_table("results")
    op.drop_table("processed_events")
    for statement in DROP_OUTBOX_TRIGGER_SQL:
        op.execute(statement)
    op.drop_table("outbox")
