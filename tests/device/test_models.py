"""The device-visible status and framerate rules (reference: opencap-api §5.2), no database."""

from datetime import timedelta
from uuid import uuid4

import pytest

from device_service.models import (
    KnownTrial,
    VideoSlot,
    phone_status,
    status_framerate,
)
from shared.db import utcnow

NOW = utcnow()


def trial(status: str = "recording", name: str = "walk", has_results: bool = False) -> KnownTrial:
    return KnownTrial(
        id=uuid4(),
        session_id=uuid4(),
        name=name,
        status=status,
        has_results=has_results,
        started_at=NOW,
        updated_at=NOW,
    )


def slot(uploaded: bool = False) -> VideoSlot:
    return VideoSlot(
        id=uuid4(),
        trial_id=uuid4(),
        session_id=uuid4(),
        device_id=uuid4(),
        uploaded=uploaded,
        created_at=NOW,
    )


def test_session_without_a_trial_is_ready():
    assert phone_status(None, [], polling_phone=True) == "ready"
    assert phone_status(None, [], polling_phone=False) == "ready"


def test_recording_trial_shows_recording_to_a_polling_phone():
    assert phone_status(trial("recording"), [slot()], polling_phone=True) == "recording"


def test_recording_trial_shows_ready_to_a_caller_without_device_id():
    assert phone_status(trial("recording"), [slot()], polling_phone=False) == "ready"


@pytest.mark.parametrize("status", ["stopped", "processing"])
def test_trial_with_a_video_not_yet_uploaded_is_uploading(status):
    slots = [slot(uploaded=True), slot(uploaded=False)]
    assert phone_status(trial(status), slots, polling_phone=True) == "uploading"


@pytest.mark.parametrize("status", ["stopped", "processing"])
def test_all_videos_uploaded_and_no_results_is_processing(status):
    slots = [slot(uploaded=True), slot(uploaded=True)]
    assert phone_status(trial(status), slots, polling_phone=True) == "processing"


def test_all_videos_uploaded_with_results_is_ready():
    slots = [slot(uploaded=True)]
    assert phone_status(trial("processing", has_results=True), slots, True) == "ready"


@pytest.mark.parametrize("status", ["done", "error"])
def test_finished_trial_is_ready_even_with_missing_uploads(status):
    assert phone_status(trial(status), [slot(uploaded=False)], polling_phone=True) == "ready"


@pytest.mark.parametrize("status", ["stopped", "processing"])
def test_trial_without_any_camera_is_ready_never_processing(status):
    assert phone_status(trial(status), [], polling_phone=True) == "ready"
    assert phone_status(trial(status), [], polling_phone=False) == "ready"


@pytest.mark.parametrize("name", ["calibration", "neutral"])
def test_calibration_and_neutral_record_at_30_fps(name):
    assert status_framerate(240, trial(name=name)) == 30


def test_other_trials_record_at_the_session_framerate():
    assert status_framerate(120, trial(name="walk")) == 120
    assert status_framerate(240, None) == 240


def test_trial_advances_forward():
    t = trial("recording")
    later = NOW + timedelta(seconds=5)

    assert t.advance("stopped", later) is True
    assert (t.status, t.updated_at) == ("stopped", later)
    assert t.advance("processing", later) is True
    assert t.advance("done", later) is True
    assert t.status == "done"


@pytest.mark.parametrize(
    ("current", "late"),
    [
        ("stopped", "stopped"),
        ("processing", "stopped"),
        ("done", "stopped"),
        ("done", "processing"),
        ("error", "stopped"),
        ("done", "error"),
        ("error", "done"),
    ],
)
def test_trial_never_moves_backwards_or_sideways(current, late):
    t = trial(current)
    before = t.updated_at

    assert t.advance(late, NOW + timedelta(seconds=5)) is False
    assert (t.status, t.updated_at) == (current, before)


def test_a_deleted_trial_never_advances():
    deleted = trial("recording")
    deleted.deleted_at = NOW

    assert deleted.advance("stopped", NOW) is False
    assert deleted.status == "recording"
