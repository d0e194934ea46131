"""Events produced by the device service: phones joining trials, a trial's final cameras."""

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.events.base import Event


class DeviceJoined(Event):
    """A phone polled during recording and got its video slot for the trial."""

    type: ClassVar[str] = "device.joined"
    video_id: UUID
    trial_id: UUID
    session_id: UUID
    device_id: UUID


class Camera(BaseModel):
    model_config = ConfigDict(frozen=True)
    video_id: UUID
    device_id: UUID


class CamerasFinal(Event):
    """After a stop, the set of phones (video slots) of the trial can no longer change."""

    type: ClassVar[str] = "trial.cameras_final"
    trial_id: UUID
    session_id: UUID
    cameras: list[Camera]
