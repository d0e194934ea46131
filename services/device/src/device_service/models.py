"""What the device service knows: sessions and trials as the phones see them, and video slots.

Sessions and trials are copies kept from the session service's events, and so are the
callers (`shared.identity`); video slots are this service's own (one per trial and phone,
created when a phone polls during recording).
Every row has an `updated_at` (when it last changed here) so the API replicas' in-memory
read models can re-read what changed lately (`read_model_sync`).

A deleted session or trial keeps its row as a tombstone (`deleted_at` set, nothing else of
it kept): its slots, and a session's trials, are dropped, and a late or redelivered event
about it finds the tombstone and changes nothing, so it can never come back.
"""

from collections.abc import Collection
from datetime import datetime
from typing import Protocol
from uuid import UUID

from sqlalchemy import Boolean, DateTime, Integer, MetaData, String, UniqueConstraint, func
from sqlalchemy import text as sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.identity import ApiTokenMixin, ApiUserMixin
from shared.messaging import ProcessedEventMixin
from shared.outbox import OutboxMixin

# Trial statuses only move forward; a late or repeated event never moves one back.
STATUS_RANK = {"recording": 0, "stopped": 1, "processing": 2, "done": 3, "error": 3}
SHORT_TRIALS = ("calibration", "neutral")
MODEL_LENGTH = 64


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


class KnownSession(Base):
    __tablename__ = "sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    framerate: Mapped[int] = mapped_column(Integer, default=60)
    new_session_id: Mapped[UUID | None]
    created_at: Mapped[datetime]
    # When the session service set `framerate`/`new_session_id` (the event's time): the
    # latest event wins whatever order events are delivered in.
    fields_at: Mapped[datetime | None]
    # Who may watch its phones (`devices/`, `status/stream/`): the owner, or anyone if public.
    owner_id: Mapped[int | None] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sql("false"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    deleted_at: Mapped[datetime | None]


class KnownTrial(Base):
    __tablename__ = "trials"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    has_results: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    deleted_at: Mapped[datetime | None]

    def advance(self, status: str, now: datetime) -> bool:
        """Move to `status` unless the trial is already there or further on, or deleted."""
        if self.deleted_at is not None or STATUS_RANK[status] <= STATUS_RANK[self.status]:
            return False
        self.status, self.updated_at = status, now
        return True


class VideoSlot(Base):
    __tablename__ = "video_slots"
    __table_args__ = (UniqueConstraint("trial_id", "device_id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    trial_id: Mapped[UUID] = mapped_column(index=True)
    session_id: Mapped[UUID]
    device_id: Mapped[UUID]
    uploaded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    model: Mapped[str | None] = mapped_column(String(MODEL_LENGTH))  # the phone's, from its upload


class ApiToken(ApiTokenMixin, Base):
    __tablename__ = "api_tokens"


class ApiUser(ApiUserMixin, Base):
    __tablename__ = "api_users"


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox"


class ProcessedEvent(ProcessedEventMixin, Base):
    __tablename__ = "processed_events"


class TrialState(Protocol):
    name: str
    status: str
    has_results: bool


class SlotState(Protocol):
    uploaded: bool


def phone_status(
    trial: TrialState | None, slots: Collection[SlotState], polling_phone: bool
) -> str:
    """The status a poll shows, derived as the original does (reference §5.2).

    A trial with no camera at all never shows `processing`: it is about to fail.
    """
    if trial is None:
        return "ready"
    if trial.status == "recording":
        return "recording" if polling_phone else "ready"
    if trial.status in ("stopped", "processing") and slots:
        if not all(slot.uploaded for slot in slots):
            return "uploading"
        return "ready" if trial.has_results else "processing"
    return "ready"


def status_framerate(framerate: int, trial: TrialState | None) -> int:
    """The session's frame rate, except 30 fps for calibration and neutral trials."""
    if trial is not None and trial.name in SHORT_TRIALS:
        return 30
    return framerate


def phone_model(parameters: dict) -> str | None:
    """The phone's hardware id from an upload's `parameters` (e.g. "iPhone14,2")."""
    model = parameters.get("model")
    return model[:MODEL_LENGTH] if isinstance(model, str) and model else None
