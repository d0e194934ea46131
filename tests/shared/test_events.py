"""The event contract: every event type has a golden JSON, so any change shows up as a diff.

Regenerate the golden files after an intended (additive!) change with
`UPDATE_GOLDEN=1 pytest tests/shared/test_events.py` and review the diff.
"""

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from shared.events import (
    EVENT_TYPES,
    Camera,
    CamerasFinal,
    DeviceJoined,
    Envelope,
    Event,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingHeartbeat,
    ProcessingJob,
    ProcessingStarted,
    RecordedResult,
    ResultFile,
    ResultsRecorded,
    ResultsRemoved,
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
    UploadedVideo,
    UploadTimedOut,
    UserUpdated,
    VideosReceived,
    VideoUploaded,
    decode,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

AT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
ENVELOPE_ID = UUID("e0000000-0000-4000-8000-000000000001")
SESSION = UUID("5e000000-0000-4000-8000-000000000001")
TRIAL = UUID("7a000000-0000-4000-8000-000000000001")
JOB = UUID("10b00000-0000-4000-8000-000000000001")
VIDEO_0 = UUID("71de0000-0000-4000-8000-000000000000")
VIDEO_1 = UUID("71de0000-0000-4000-8000-000000000001")
DEVICE_0 = UUID("de1ce000-0000-4000-8000-000000000000")
DEVICE_1 = UUID("de1ce000-0000-4000-8000-000000000001")
VIDEO_KEY = f"videos/{TRIAL}/{VIDEO_0}.mov"
VIDEOS = [
    UploadedVideo(
        video_id=VIDEO_0,
        device_id=DEVICE_0,
        key=VIDEO_KEY,
        parameters={"model": "iPhone13,3", "fps": 60},
    ),
    UploadedVideo(video_id=VIDEO_1, device_id=DEVICE_1, key=f"videos/{TRIAL}/{VIDEO_1}.mov"),
]
RESULT_KEY = f"results/{TRIAL}/0a000000-0000-4000-8000-000000000000-videoFacts_Cam0.json"

# (producer, sample) per event type, with every optional field set once.
SAMPLES: dict[str, tuple[str, Event]] = {
    "session.created": ("session", SessionCreated(session_id=SESSION, user_id=7, framerate=120)),
    "session.updated": (
        "session",
        SessionUpdated(
            session_id=SESSION,
            framerate=240,
            new_session_id=UUID(int=5),
            calibration_session_id=UUID(int=6),
            public=True,
            subject_id=12,
        ),
    ),
    "session.deleted": ("session", SessionDeleted(session_id=SESSION)),
    "user.updated": (
        "session",
        UserUpdated(user_id=7, groups=["backend"], is_active=True, verified=False),
    ),
    "user.token_issued": ("session", TokenIssued(key_hash="ab" * 32, user_id=7)),
    "user.token_revoked": ("session", TokenRevoked(key_hash="ab" * 32)),
    "trial.started": (
        "session",
        TrialStarted(trial_id=TRIAL, session_id=SESSION, name="walking", created_at=AT),
    ),
    "trial.stopped": ("session", TrialStopped(trial_id=TRIAL, session_id=SESSION)),
    "trial.queued": ("session", TrialQueued(trial_id=TRIAL, session_id=SESSION, job_id=JOB)),
    "trial.renamed": ("session", TrialRenamed(trial_id=TRIAL, session_id=SESSION, name="run")),
    "trial.deleted": ("session", TrialDeleted(trial_id=TRIAL, session_id=SESSION)),
    "trial.meta_updated": (
        "session",
        TrialMetaUpdated(
            trial_id=TRIAL, session_id=SESSION, meta={"calibration": {"Cam0": 0, "Cam1": 1}}
        ),
    ),
    "trial.finished": (
        "session",
        TrialFinished(
            trial_id=TRIAL, session_id=SESSION, status="error", error_msg="No videos uploaded."
        ),
    ),
    "device.joined": (
        "device",
        DeviceJoined(video_id=VIDEO_0, trial_id=TRIAL, session_id=SESSION, device_id=DEVICE_0),
    ),
    "trial.cameras_final": (
        "device",
        CamerasFinal(
            trial_id=TRIAL,
            session_id=SESSION,
            cameras=[
                Camera(video_id=VIDEO_0, device_id=DEVICE_0),
                Camera(video_id=VIDEO_1, device_id=DEVICE_1),
            ],
        ),
    ),
    "video.uploaded": (
        "upload",
        VideoUploaded(
            video_id=VIDEO_0,
            trial_id=TRIAL,
            session_id=SESSION,
            device_id=DEVICE_0,
            key=VIDEO_KEY,
            size=1_234_567,
            parameters={"model": "iPhone13,3", "fps": 60},
        ),
    ),
    "trial.videos_received": (
        "upload",
        VideosReceived(trial_id=TRIAL, session_id=SESSION, videos=VIDEOS),
    ),
    "upload.timed_out": (
        "upload",
        UploadTimedOut(trial_id=TRIAL, session_id=SESSION, missing_device_ids=[DEVICE_1]),
    ),
    "processing.job": (
        "session",
        ProcessingJob(
            job_id=JOB,
            trial_id=TRIAL,
            session_id=SESSION,
            trial_name="walking",
            trial_type="dynamic",
            videos=VIDEOS,
            attempt=2,
            is_mono=True,
        ),
    ),
    "processing.heartbeat": (
        "pipeline",
        ProcessingHeartbeat(job_id=JOB, trial_id=TRIAL, worker="gpu-1"),
    ),
    "processing.started": (
        "pipeline",
        ProcessingStarted(job_id=JOB, trial_id=TRIAL, worker="gpu-1"),
    ),
    "processing.completed": (
        "pipeline",
        ProcessingCompleted(
            job_id=JOB,
            trial_id=TRIAL,
            worker="gpu-1",
            results=[
                ResultFile(
                    tag="video_facts", device_id="Cam0", key=RESULT_KEY, meta={"frame_count": 30}
                ),
                ResultFile(tag="opensim_model", key=f"results/{TRIAL}/model.osim"),
            ],
        ),
    ),
    "processing.failed": (
        "pipeline",
        ProcessingFailed(
            job_id=JOB,
            trial_id=TRIAL,
            worker="gpu-1",
            error_msg="A video could not be read.",
            error_msg_dev="moov atom not found",
        ),
    ),
    "results.recorded": (
        "results",
        ResultsRecorded(
            trial_id=TRIAL,
            results=[
                RecordedResult(
                    result_id=41,
                    tag="video_facts",
                    device_id="Cam0",
                    key=RESULT_KEY,
                    meta={"frame_count": 30},
                ),
                RecordedResult(result_id=42, tag="opensim_model", key="results/x/model.osim"),
            ],
            complete=False,
            job_id=JOB,
            replace=True,
        ),
    ),
    "results.removed": ("results", ResultsRemoved(trial_id=TRIAL, result_ids=[41, 42])),
}


def envelope_of(event: Event, producer: str) -> Envelope:
    envelope = Envelope.wrap(event, producer=producer, occurred_at=AT, correlation_id="corr-1")
    return envelope.model_copy(update={"id": ENVELOPE_ID})


def test_every_event_type_has_a_sample():
    assert set(SAMPLES) == set(EVENT_TYPES)
    for event_type, (_, sample) in SAMPLES.items():
        assert sample.type == event_type


def test_golden_files_are_exactly_the_event_types():
    assert {path.name.removesuffix(".json") for path in GOLDEN.glob("*.json")} == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_event_serializes_to_its_golden_json(event_type):
    producer, sample = SAMPLES[event_type]
    actual = envelope_of(sample, producer).model_dump(mode="json")
    path = GOLDEN / f"{event_type}.json"
    if UPDATE:
        path.write_text(json.dumps(actual, indent=2) + "\n")
    assert path.exists(), f"no golden file {path.name}; run with UPDATE_GOLDEN=1 and review it"

    assert actual == json.loads(path.read_text())


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_golden_json_still_decodes_to_the_same_event(event_type):
    """Messages already on the wire (or in a DLQ) stay readable by the current code."""
    _, sample = SAMPLES[event_type]
    envelope = Envelope.model_validate_json((GOLDEN / f"{event_type}.json").read_text())

    assert decode(envelope) == sample
    assert (envelope.id, envelope.occurred_at) == (ENVELOPE_ID, AT)


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_wrapped_event_survives_the_wire(event_type):
    producer, sample = SAMPLES[event_type]
    envelope = Envelope.wrap(sample, producer=producer, occurred_at=AT, correlation_id=None)

    received = Envelope.model_validate_json(envelope.model_dump_json())

    assert received == envelope
    assert received.type == event_type and received.producer == producer
    assert type(decode(received)) is EVENT_TYPES[event_type]
    assert decode(received) == sample


def test_each_wrap_gets_its_own_envelope_id():
    _, sample = SAMPLES["trial.stopped"]
    first = Envelope.wrap(sample, producer="session", occurred_at=AT, correlation_id=None)
    second = Envelope.wrap(sample, producer="session", occurred_at=AT, correlation_id=None)

    assert first.id != second.id


def test_unknown_event_type_raises_key_error():
    envelope = Envelope(type="trial.teleported", occurred_at=AT, producer="x", data={})

    with pytest.raises(KeyError):
        decode(envelope)


def test_unknown_fields_are_ignored_in_envelope_and_event():
    """Additive changes: a newer producer's extra fields don't break an older consumer."""
    producer, sample = SAMPLES["processing.completed"]
    wire = envelope_of(sample, producer).model_dump(mode="json")
    wire["priority"] = "high"
    wire["data"]["gpu_seconds"] = 12.5
    wire["data"]["results"][0]["checksum"] = "abc"

    envelope = Envelope.model_validate(wire)

    assert decode(envelope) == sample


def test_missing_required_field_is_rejected():
    _, sample = SAMPLES["trial.stopped"]
    wire = envelope_of(sample, "session").model_dump(mode="json")
    del wire["data"]["trial_id"]

    with pytest.raises(ValueError, match="trial_id"):
        decode(Envelope.model_validate(wire))


def test_events_are_frozen():
    _, sample = SAMPLES["trial.stopped"]

    with pytest.raises(ValueError):
        sample.trial_id = SESSION
