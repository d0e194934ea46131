"""Processing jobs, their claims, and the events the processing pipeline reports."""

from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.events.base import Event
from shared.events.upload import UploadedVideo

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
    """The job failed. `retry`: not for anything in the trial (the object store could not
    be reached): the trial is worth another attempt, within the attempts allowed."""

    type: ClassVar[str] = "processing.failed"
    job_id: UUID
    trial_id: UUID
    worker: str
    error_msg: str
    error_msg_dev: str = ""
    retry: bool = False
