"""Videos (one per trial and phone), the trials awaiting them, and issued upload keys."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, DateTime, MetaData, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.errors import Conflict
from shared.events import UploadedVideo, VideosReceived, VideoUploaded
from shared.messaging import ProcessedEventMixin
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


class UploadTrial(Base):
    """A trial as this service sees it: is its camera set final, are all its videos in?"""

    __tablename__ = "trials"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[UUID] = mapped_column(index=True)
    final_at: Mapped[datetime | None]
    videos_received_at: Mapped[datetime | None]

    def all_received(self, videos: list["Video"], now: datetime) -> VideosReceived | None:
        """Once, when the camera set is final and every one of its videos is stored."""
        final = [v for v in videos if v.in_final_set]
        if self.final_at is None or self.videos_received_at is not None or not final:
            return None
        if not all(v.key for v in final):
            return None
        self.videos_received_at = now
        return VideosReceived(
            trial_id=self.id,
            session_id=self.session_id,
            videos=[
                UploadedVideo(
                    video_id=v.id, device_id=v.device_id, key=v.key, parameters=v.parameters or {}
                )
                for v in final
            ],
        )


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("trial_id", "device_id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    trial_id: Mapped[UUID] = mapped_column(index=True)
    session_id: Mapped[UUID] = mapped_column(index=True)
    device_id: Mapped[UUID]
    in_final_set: Mapped[bool] = mapped_column(Boolean, default=False)
    key: Mapped[str | None] = mapped_column(String(512))
    size: Mapped[int | None] = mapped_column(BigInteger)
    parameters: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    uploaded_at: Mapped[datetime | None]

    def attach(self, key: str, size: int, parameters: Any, now: datetime) -> VideoUploaded | None:
        """The phone's upload is stored: the same key again is a no-op, another one a 409."""
        if self.key == key:
            return None
        if self.key is not None:
            raise Conflict("This video already has an uploaded file.")
        self.key, self.size, self.uploaded_at, self.updated_at = key, size, now, now
        self.parameters = parameters if isinstance(parameters, dict) else self.parameters
        return VideoUploaded(
            video_id=self.id,
            trial_id=self.trial_id,
            session_id=self.session_id,
            device_id=self.device_id,
            key=key,
            size=size,
            parameters=self.parameters or {},
        )


class UploadKey(Base):
    """An object key this service issued an upload policy for, and for which session."""

    __tablename__ = "upload_keys"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    session_id: Mapped[UUID | None] = mapped_column(index=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    stored_at: Mapped[datetime | None]
    size: Mapped[int | None] = mapped_column(BigInteger)


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox"


class ProcessedEvent(ProcessedEventMixin, Base):
    __tablename__ = "processed_events"
