"""The event contract: one envelope, and every event that crosses a service boundary.

An event is a flat, frozen Pydantic model whose class names its routing key (`type`),
`<aggregate>.<past-tense verb>`. On the wire it travels inside an `Envelope` that adds
the id consumers deduplicate on, the producer and the correlation id of the user action.
Changes are additive only: a breaking change is a new event type.

One module per producer (`session`, `device`, `upload`, `processing`, `results`), the
envelope in `base`; every name is importable from `shared.events`.
"""

from shared.events.base import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, Envelope, Event
from shared.events.device import Camera, CamerasFinal, DeviceJoined
from shared.events.processing import (
    CLAIMS_QUEUE,
    JOB_QUEUES,
    JOBS_EXCHANGE,
    MAX_JOB_PRIORITY,
    WORKER_TYPES,
    ClaimReply,
    ClaimRequest,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingHeartbeat,
    ProcessingJob,
    ProcessingStarted,
    ResultFile,
)
from shared.events.results import RecordedResult, ResultsRecorded, ResultsRemoved
from shared.events.session import (
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TokenIssued,
    TokenRevoked,
    TrialDeleted,
    TrialFinished,
    TrialMetaUpdated,
    TrialQueued,
    TrialRenamed,
    TrialStarted,
    TrialStopped,
    UserUpdated,
)
from shared.events.upload import UploadedVideo, UploadTimedOut, VideosReceived, VideoUploaded

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


__all__ = [
    "CLAIMS_QUEUE",
    "Camera",
    "CamerasFinal",
    "ClaimReply",
    "ClaimRequest",
    "DEAD_LETTER_EXCHANGE",
    "DeviceJoined",
    "EVENTS_EXCHANGE",
    "EVENT_TYPES",
    "Envelope",
    "Event",
    "JOBS_EXCHANGE",
    "JOB_QUEUES",
    "MAX_JOB_PRIORITY",
    "ProcessingCompleted",
    "ProcessingFailed",
    "ProcessingHeartbeat",
    "ProcessingJob",
    "ProcessingStarted",
    "RecordedResult",
    "ResultFile",
    "ResultsRecorded",
    "ResultsRemoved",
    "SessionCreated",
    "SessionDeleted",
    "SessionUpdated",
    "TokenIssued",
    "TokenRevoked",
    "TrialDeleted",
    "TrialFinished",
    "TrialMetaUpdated",
    "TrialQueued",
    "TrialRenamed",
    "TrialStarted",
    "TrialStopped",
    "UploadTimedOut",
    "UploadedVideo",
    "UserUpdated",
    "VideoUploaded",
    "VideosReceived",
    "WORKER_TYPES",
    "decode",
]
