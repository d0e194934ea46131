"""Events produced by the upload service: videos in storage, all of a trial's videos in, or
the phones that never delivered."""

from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.events.base import Event


class VideoUploaded(Event):
    """A phone's video is verified in storage and attached to its slot."""

    type: ClassVar[str] = "video.uploaded"
    video_id: UUID
    trial_id: UUID
    session_id: UUID
    device_id: UUID
    key: str
    size: int
    parameters: dict[str, Any] = {}


class UploadedVideo(BaseModel):
    model_config = ConfigDict(frozen=True)
    video_id: UUID
    device_id: UUID
    key: str
    parameters: dict[str, Any] = {}


class VideosReceived(Event):
    """Every camera of the trial's final set has a verified video (all-videos-received)."""

    type: ClassVar[str] = "trial.videos_received"
    trial_id: UUID
    session_id: UUID
    videos: list[UploadedVideo]


class UploadTimedOut(Event):
    """A stopped trial's deadline passed with phones that never delivered their video."""

    type: ClassVar[str] = "upload.timed_out"
    trial_id: UUID
    session_id: UUID
    missing_device_ids: list[UUID]
