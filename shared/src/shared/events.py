"""The event contract: one envelope, and every event that crosses a service boundary.

An event is a flat, frozen Pydantic model whose class names its routing key (`type`),
`<aggregate>.<past-tense verb>`. On the wire it travels inside an `Envelope` that adds
the id consumers deduplicate on, the producer and the correlation id of the user action.
Changes are additive only: a breaking change is a new event type.
"""

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

EVENTS_EXCHANGE = "events"
DEAD_LETTER_EXCHANGE = "events.dlx"
# Processing jobs: one direct exchange, one durable priority queue per kind of work.
# A worker takes jobs from the queues of its type, in order (calibration and neutral
# first), and claims each job before working on it (a request on CLAIMS_QUEUE answered
# with a `ClaimReply`), so one trial is processed by one worker at a time.
JOBS_EXCHANGE = "processing"
JOB_QUEUES = {
    "setup": "processing.setup",
    "dynamic": "processing.dynamic",
    "mono": "processing.mono",
}
WORKER_TYPES = {
    "all": ("setup", "dynamic"),
    "calibration": ("setup",),
    "dynamic": ("dynamic",),
    "mono": ("mono",),
}
CLAIMS_QUEUE = "processing.claims"
MAX_JOB_PRIORITY = 9


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: ClassVar[str]


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID = Field(default_factory=uuid4)
    type: str
    version: int = 1
    occurred_at: datetime
    producer: str
    correlation_id: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls, event: Event, *, producer: str, occurred_at: datetime, correlation_id: str | None
    ) -> "Envelope":
        return cls(
            type=event.type,
            occurred_at=occurred_at,
            producer=producer,
            correlation_id=correlation_id,
            data=event.model_dump(mode="json"),
        )


# ── produced by session ─────────────────────────────────────────────────────────────


class SessionCreated(Event):
    type: ClassVar[str] = "session.created"
    session_id: UUID
    user_id: int
    framerate: int = 60


class SessionUpdated(Event):
    """What other services see of a session changed: its frame rate, the session to move to
    ("new subject, same setup": phones polling this one follow `new_session_id`), the
    session holding its calibration, whether it is public."""

    type: ClassVar[str] = "session.updated"
    session_id: UUID
    framerate: int = 60
    new_session_id: UUID | None = None
    calibration_session_id: UUID | None = None
    public: bool = False
    subject_id: int | None = None


class SessionDeleted(Event):
    """The session and all its trials are gone: forget them, and their stored objects."""

    type: ClassVar[str] = "session.deleted"
    session_id: UUID


class UserUpdated(Event):
    """A user's groups, active flag or e-mail code step changed (or the user was created).
    `verified`: past the e-mail code step, as the session service requires for owners."""

    type: ClassVar[str] = "user.updated"
    user_id: int
    groups: list[str] = []
    is_active: bool = True
    verified: bool = True


class TokenIssued(Event):
    """An API token was minted; only its SHA-256 travels."""

    type: ClassVar[str] = "user.token_issued"
    key_hash: str
    user_id: int


class TokenRevoked(Event):
    type: ClassVar[str] = "user.token_revoked"
    key_hash: str


class TrialStarted(Event):
    """A trial began recording: phones polling the session now get a video slot."""

    type: ClassVar[str] = "trial.started"
    trial_id: UUID
    session_id: UUID
    name: str
    created_at: datetime


class TrialStopped(Event):
    type: ClassVar[str] = "trial.stopped"
    trial_id: UUID
    session_id: UUID


class TrialQueued(Event):
    """Every video is in and a processing job was queued for the trial."""

    type: ClassVar[str] = "trial.queued"
    trial_id: UUID
    session_id: UUID
    job_id: UUID | None = None


class TrialDeleted(Event):
    """The trial is gone (with its videos and results): forget it and its stored objects."""

    type: ClassVar[str] = "trial.deleted"
    trial_id: UUID
    session_id: UUID


class TrialRenamed(Event):
    type: ClassVar[str] = "trial.renamed"
    trial_id: UUID
    session_id: UUID
    name: str


class TrialMetaUpdated(Event):
    """A trial's `meta` was replaced (the pipeline PATCHes it). On the calibration trial,
    `{"calibration": {"Cam0": 0, "Cam1": 1}}` names each camera's chosen solution."""

    type: ClassVar[str] = "trial.meta_updated"
    trial_id: UUID
    session_id: UUID
    meta: dict[str, Any] | None = None


class TrialFinished(Event):
    """The trial reached a final status: `done` or `error` (with the message users see)."""

    type: ClassVar[str] = "trial.finished"
    trial_id: UUID
    session_id: UUID
    status: str
    error_msg: str | None = None


# ── produced by device ──────────────────────────────────────────────────────────────


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


# ── produced by upload ──────────────────────────────────────────────────────────────


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


# ── produced by the processing pipeline ─────────────────────────────────────────────


class ProcessingJob(Event):
    """A unit of work on the processing queue (published by session, consumed by workers)."""

    type: ClassVar[str] = "processing.job"
    job_id: UUID
    trial_id: UUID
    session_id: UUID
    trial_name: str
    trial_type: str  # calibration | static | dynamic
    videos: list[UploadedVideo]
    attempt: int = 1
    is_mono: bool = False


class ClaimRequest(BaseModel):
    """A worker asks to work on a job (sent to CLAIMS_QUEUE with reply_to)."""

    job_id: UUID
    trial_id: UUID
    worker: str


class ClaimReply(BaseModel):
    """Granted: the worker holds the trial's lease for `lease_seconds`, renewed by its
    `processing.heartbeat` events. Refused: drop the job (stale, or held by another)."""

    granted: bool
    lease_seconds: int = 0
    reason: str = ""


class ProcessingStarted(Event):
    type: ClassVar[str] = "processing.started"
    job_id: UUID
    trial_id: UUID
    worker: str


class ResultFile(BaseModel):
    model_config = ConfigDict(frozen=True)
    tag: str
    device_id: str | None = None
    key: str
    meta: dict[str, Any] | None = None


class ProcessingHeartbeat(Event):
    """The worker holding a job's claim is alive: its lease is renewed."""

    type: ClassVar[str] = "processing.heartbeat"
    job_id: UUID
    trial_id: UUID
    worker: str


class ProcessingCompleted(Event):
    type: ClassVar[str] = "processing.completed"
    job_id: UUID
    trial_id: UUID
    worker: str
    results: list[ResultFile]


class ProcessingFailed(Event):
    type: ClassVar[str] = "processing.failed"
    job_id: UUID
    trial_id: UUID
    worker: str
    error_msg: str
    error_msg_dev: str = ""


# ── produced by results ─────────────────────────────────────────────────────────────


class RecordedResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    result_id: int
    tag: str
    device_id: str | None = None
    key: str
    meta: dict[str, Any] | None = None


class ResultsRecorded(Event):
    """Results of a trial were stored; `complete` means processing of the trial finished."""

    type: ClassVar[str] = "results.recorded"
    trial_id: UUID
    results: list[RecordedResult]
    complete: bool = True
    job_id: UUID | None = None
    # The results replace every earlier result of the trial (a job's whole output).
    replace: bool = False


class ResultsRemoved(Event):
    type: ClassVar[str] = "results.removed"
    trial_id: UUID
    result_ids: list[int]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        SessionCreated,
        SessionUpdated,
        SessionDeleted,
        UserUpdated,
        TokenIssued,
        TokenRevoked,
        TrialStarted,
        TrialStopped,
        TrialQueued,
        TrialRenamed,
        TrialDeleted,
        TrialMetaUpdated,
        TrialFinished,
        DeviceJoined,
        CamerasFinal,
        VideoUploaded,
        VideosReceived,
        UploadTimedOut,
        ProcessingJob,
        ProcessingStarted,
        ProcessingHeartbeat,
        ProcessingCompleted,
        ProcessingFailed,
        ResultsRecorded,
        ResultsRemoved,
    )
}


def decode(envelope: Envelope) -> Event:
    """The typed event inside an envelope (raises KeyError for an unknown type)."""
    return EVENT_TYPES[envelope.type].model_validate(envelope.data)
