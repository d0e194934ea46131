"""Results of processing (one stored object each), the session and subject archives built
from them, and what this service knows of sessions, trials, videos and callers (kept by
events), including which sessions and trials were deleted."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
)
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.identity import ApiTokenMixin, ApiUserMixin
from shared.messaging import ProcessedEventMixin
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


class Result(Base):
    """One result object of a trial: `key` is its S3 key (`<uuid4>-<fileName>`)."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    trial_id: Mapped[UUID] = mapped_column(index=True)
    tag: Mapped[str | None] = mapped_column(String(32))
    device_id: Mapped[str | None] = mapped_column(String(36))
    key: Mapped[str] = mapped_column(String(512), unique=True)
    meta: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KnownSession(Base):
    """A session as this service sees it: owner (`session.created`); public flag, the
    session holding its calibration and its subject (`session.updated`, the newest by event
    time: `changed_at`). Either event may arrive first."""

    __tablename__ = "sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    public: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))
    calibration_session_id: Mapped[UUID | None]
    subject_id: Mapped[int | None] = mapped_column(Integer, index=True)
    changed_at: Mapped[datetime | None]


class KnownTrial(Base):
    """A trial: its session and name (`trial.started`, `trial.renamed`), the processing job
    whose results count (`trial.queued`), and the pipeline's calibration choice
    (`meta.calibration`, e.g. `{"Cam0": 0, "Cam1": 1}`, from `trial.meta_updated`)."""

    __tablename__ = "trials"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[UUID] = mapped_column(index=True)
    name: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None]
    current_job_id: Mapped[UUID | None]
    calibration: Mapped[dict[str, Any] | None]


class KnownVideo(Base):
    """A phone's uploaded video of a trial (`video.uploaded`); `id` orders them by arrival."""

    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    video_id: Mapped[UUID] = mapped_column(unique=True)
    trial_id: Mapped[UUID] = mapped_column(index=True)
    device_id: Mapped[UUID]
    key: Mapped[str] = mapped_column(String(512))


class Archive(Base):
    """A requested archive, built by the worker (`archives.py`): of one session, or of a
    subject (`subject_id`: its sessions; those of `owner_id` only, unless None). `user_id`
    asked for it (None: anonymous).

    `pending` -> `building` (claimed; `claimed_at` is its lease) -> `ready` (`key`) or
    `failed` (`error`) after `attempts` tries."""

    __tablename__ = "archives"
    __table_args__ = (
        Index(
            "ix_archives_unfinished",
            "created_at",
            postgresql_where=sql("status IN ('pending', 'building')"),
        ),
        CheckConstraint("(session_id IS NULL) <> (subject_id IS NULL)", name="one_target"),
    )

    task_id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[UUID | None] = mapped_column(index=True)
    subject_id: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    key: Mapped[str | None] = mapped_column(String(512))
    error: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)


class Forgotten(Base):
    """A deleted session or trial (`session.deleted`, `trial.deleted`): events about it that
    arrive late (retries reorder them, a job may finish after the deletion) are ignored."""

    __tablename__ = "forgotten"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(ApiTokenMixin, Base):
    __tablename__ = "api_tokens"


class ApiUser(ApiUserMixin, Base):
    __tablename__ = "api_users"


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox"


class ProcessedEvent(ProcessedEventMixin, Base):
    __tablename__ = "processed_events"
