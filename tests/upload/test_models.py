"""The upload service's model rules, without a database."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from shared.errors import Conflict, Forbidden
from upload_service.models import UploadTrial, Video

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def video(key: str | None = None, in_final_set: bool = True) -> Video:
    return Video(
        id=uuid4(),
        trial_id=uuid4(),
        session_id=uuid4(),
        device_id=uuid4(),
        in_final_set=in_final_set,
        key=key,
        created_at=NOW,
        updated_at=NOW,
    )


def final_trial() -> UploadTrial:
    return UploadTrial(id=uuid4(), session_id=uuid4(), final_at=NOW)


def test_time_out_names_only_the_phones_whose_video_is_missing():
    trial, came, missing = final_trial(), video("a.mov"), video()

    event = trial.time_out([came, missing, video(in_final_set=False)], NOW, False)

    assert event.type == "upload.timed_out"
    assert event.missing_device_ids == [missing.device_id]
    assert trial.time_out([came, missing], NOW, False) is None  # exactly once


def test_time_out_with_process_available_lists_the_videos_that_came():
    trial, came = final_trial(), video("a.mov")

    event = trial.time_out([came, video()], NOW, True)

    assert event.type == "trial.videos_received"
    assert [v.key for v in event.videos] == ["a.mov"]
    assert trial.waiting is False


def test_time_out_of_a_trial_without_cameras_closes_it_silently():
    trial = final_trial()

    assert trial.time_out([], NOW, True) is None
    assert trial.closed_at == NOW


def test_time_out_before_the_camera_set_is_final_does_nothing():
    trial = UploadTrial(id=uuid4(), session_id=uuid4())

    assert trial.time_out([video()], NOW, False) is None
    assert trial.waiting


def test_upload_slot_must_be_waiting_and_in_the_final_set():
    trial = final_trial()
    trial.require_upload_slot(video())

    with pytest.raises(Conflict, match="not one of the trial's cameras"):
        trial.require_upload_slot(video(in_final_set=False))
    trial.timed_out_at = NOW
    with pytest.raises(Conflict, match="no longer waiting"):
        trial.require_upload_slot(video())


def test_video_refuses_a_new_trial_or_phone_but_accepts_its_own():
    slot = video()
    slot.refuse_moves(str(slot.trial_id), str(slot.device_id))

    with pytest.raises(Forbidden):
        slot.refuse_moves(str(uuid4()), None)
    with pytest.raises(Forbidden):
        slot.refuse_moves(None, str(uuid4()))


def test_attaching_a_second_upload_is_a_conflict():
    slot = video("first.mov")

    with pytest.raises(Conflict):
        slot.attach("second.mov", 10, NOW)
    assert slot.key == "first.mov"
