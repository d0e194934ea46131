"""Videos (one per trial and phone), the trials awaiting them, and issued upload keys."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.errors import Conflict, Forbidden
from shared.events import UploadedVideo, UploadTimedOut, VideosReceived, VideoUploaded
from shared.identity import ApiTokenMixin, ApiUserMixin
from shared.messaging import ProcessedEventMixin
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


class UploadTrial(Base):
    """A trial as this service sees it: is its camera set final, are all its videos in, and
    how long has it waited for the missing ones (see `deadlines.py`)?"""

    __tablename__ = "trials"
    __table_args__ = (
        Index(
            "ix_trials_waiting_final_at",
            "final_at",
            postgresql_where=text(
                "videos_received_at IS NULL AND timed_out_at IS NULL AND closed_at IS NULL"
            ),
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[UUID] = mapped_column(index=True)
    name: Mapped[str | None] = mapped_column(String(64))
    final_at: Mapped[datetime | None]
    videos_received_at: Mapped[datetime | None]
    # The latest presign or upload progress in the trial's session (pushes the deadline).
    active_at: Mapped[datetime | None]
    timed_out_at: Mapped[datetime | None]
    # The trial ended elsewhere (cancelled, failed, no cameras): it waits for nothing more.
    closed_at: Mapped[datetime | None]

    @property
    def waiting(self) -> bool:
        """Still accepting uploads: nothing announced, not timed out, not closed."""
        return (self.videos_received_at, self.timed_out_at, self.closed_at) == (None, None, None)

    def require_upload_slot(self, video: "Video") -> None:
        """Uploads go only into a slot of the trial's camera set while the trial waits."""
        if not self.waiting:
            raise Conflict("This trial is no longer waiting for uploads.")
        if self.final_at is not None and not video.in_final_set:
            raise Conflict("This video is not one of the trial's cameras.")

    def all_received(self, videos: list["Video"], now: datetime) -> VideosReceived | None:
        """Once, when the camera set is final and every one of its videos is stored."""
        final = [v for v in videos if v.in_final_set]
        if self.final_at is None or not self.waiting or not final:
            return None
        if not all(v.key for v in final):
            return None
        return self._received(final, now)

    def time_out(
        self, videos: list["Video"], now: datetime, process_available: bool
    ) -> VideosReceived | UploadTimedOut | None:
        """Once, at the deadline: the missing phones, or (if allowed) the videos that came."""
        final = [v for v in videos if v.in_final_set]
        if self.final_at is None or not self.waiting:
            return None
        if not final:  # no camera: the session service fails the trial itself
            self.closed_at = now
            return None
        arrived = [v for v in final if v.key]
        enough = 2 if self.name == "calibration" else 1  # a calibration pairs cameras
        if process_available and len(arrived) >= enough:
            return self._received(arrived, now)
        self.timed_out_at = now
        missing = [v.device_id for v in final if not v.key]
        return UploadTimedOut(
            trial_id=self.id, session_id=self.session_id, missing_device_ids=missing
        )

    def _received(self, videos: list["Video"], now: datetime) -> VideosReceived:
        self.videos_received_at = now
        return VideosReceived(
            trial_id=self.id,
            session_id=self.session_id,
            videos=[
                UploadedVideo(
                    video_id=v.id, device_id=v.device_id, key=v.key, parameters=v.parameters or {}
                )
                for v in videos
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
    key: Mapped[str | None] = mapped_column(String(512), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    parameters: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    uploaded_at: Mapped[datetime | None]
    # Newer phones (2025+): a LiDAR capture, and a video kept on the phone only.
    is_lidar: Mapped[bool | None]
    saved_local: Mapped[bool | None]

    def refuse_moves(self, trial: str | None, device_id: str | None) -> None:
        """A video's trial and phone are fixed when its slot is made (known-failures 21)."""
        if trial not in (None, str(self.trial_id)) or device_id not in (None, str(self.device_id)):
            raise Forbidden("A video's trial and device_id cannot be changed.")

    def set_details(
        self, parameters: Any, is_lidar: bool | None, saved_local: bool | None, now: datetime
    ) -> None:
        """What the phone tells about its recording (hardware, frame rate, LiDAR, local copy)."""
        if isinstance(parameters, dict):
            self.parameters = parameters
        self.is_lidar = self.is_lidar if is_lidar is None else is_lidar
        self.saved_local = self.saved_local if saved_local is None else saved_local
        self.updated_at = now

    def attach(self, key: str, size: int, now: datetime) -> VideoUploaded:
        """The phone's upload is verified in storage: the slot takes it (exactly once)."""
        if self.key is not None:
            raise Conflict("This video already has an uploaded file.")
        self.key, self.size, self.uploaded_at, self.updated_at = key, size, now, now
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
    __table_args__ = (
        # The janitor's search for old keys that were never used.
        Index(
            "ix_upload_keys_unused_created_at",
            "created_at",
            postgresql_where=text("stored_at IS NULL"),
        ),
    )

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    session_id: Mapped[UUID | None] = mapped_column(index=True)
    # Keys for direct-to-S3 uploads are issued for one video slot (and a multipart upload).
    video_id: Mapped[UUID | None]
    upload_id: Mapped[str | None] = mapped_column(String(1024))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    stored_at: Mapped[datetime | None]
    size: Mapped[int | None] = mapped_column(BigInteger)


class KnownSession(Base):
    """What this service knows of a session: its owner, and the session phones move on to
    ("new subject, same setup"), whose uploads may carry keys presigned for this one."""

    __tablename__ = "sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer)
    next_session_id: Mapped[UUID | None]
    # The time of the `session.updated` that set `next_session_id`: an older one never wins.
    fields_at: Mapped[datetime | None]


class ApiToken(ApiTokenMixin, Base):
    __tablename__ = "api_tokens"


class ApiUser(ApiUserMixin, Base):
    __tablename__ = "api_users"


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox"


class ProcessedEvent(ProcessedEventMixin, Base):
    __tablename__ = "processed_events"
