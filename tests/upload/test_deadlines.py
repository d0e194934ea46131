"""Upload deadlines: a phone that never uploads cannot leave a trial waiting forever
(known-failures 2, 3, 4 and 17). The clock is the janitor's `now` argument."""

from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import select

from shared.db import utcnow
from shared.events import TrialFinished, TrialStarted
from tests.upload.conftest import (
    PARAMETERS,
    client_for,
    in_savepoints,
    joined_trial,
    patch,
    post_upload,
    presign,
    uploaded_key,
)
from upload_service import consumers
from upload_service.janitor import time_out_overdue
from upload_service.main import create_app
from upload_service.models import Outbox, UploadTrial

MINUTE = timedelta(minutes=1)


async def announced(tx, routing_key: str) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == routing_key))
    return [row.body["data"] for row in rows]


async def named_trial(tx, name: str, phones: int = 2):
    trial = await joined_trial(tx, phones=phones)
    started = TrialStarted(
        trial_id=trial.trial_id, session_id=trial.session_id, name=name, created_at=utcnow()
    )
    await consumers.on_trial_started(tx, started)
    return trial


async def upload_one(client, trial, camera) -> str:
    key = await uploaded_key(client, trial.session_id)
    body = {"video_url": key, "parameters": PARAMETERS}
    assert (await patch(client, camera.video_id, json=body)).status_code == 200
    return key


async def janitor(tx, settings, after: timedelta) -> int:
    return await time_out_overdue(in_savepoints(tx), settings, utcnow() + after)


async def backdate(tx, trial_id: UUID, by: timedelta, active: bool = False) -> None:
    """The camera set became final (and, with `active`, the last presign was) `by` ago."""
    row = await tx.get(UploadTrial, trial_id)
    row.final_at -= by
    if active:
        row.active_at -= by
    await tx.flush()


async def test_missing_phone_is_named_once_after_the_deadline(client, tx, settings):
    trial = await named_trial(tx, "walk")
    uploaded, silent = trial.cameras
    await consumers.on_cameras_final(tx, trial.final)
    await upload_one(client, trial, uploaded)

    assert await janitor(tx, settings, 9 * MINUTE) == 0
    assert await announced(tx, "upload.timed_out") == []

    for _ in range(3):
        await janitor(tx, settings, 10 * MINUTE + timedelta(seconds=1))

    assert await announced(tx, "upload.timed_out") == [
        {
            "trial_id": str(trial.trial_id),
            "session_id": str(trial.session_id),
            "missing_device_ids": [str(silent.device_id)],
        }
    ]
    assert await announced(tx, "trial.videos_received") == []


@pytest.mark.parametrize("name", ["calibration", "neutral"])
async def test_calibration_and_neutral_time_out_after_two_minutes(tx, settings, name):
    short = await named_trial(tx, name)
    movement = await named_trial(tx, "squat")
    await consumers.on_cameras_final(tx, short.final)
    await consumers.on_cameras_final(tx, movement.final)

    await janitor(tx, settings, 2 * MINUTE + timedelta(seconds=1))

    [event] = await announced(tx, "upload.timed_out")
    assert event["trial_id"] == str(short.trial_id)
    assert set(event["missing_device_ids"]) == {str(c.device_id) for c in short.cameras}


async def test_trial_name_learned_after_the_final_set_still_sets_the_deadline(tx, settings):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    started = TrialStarted(
        trial_id=trial.trial_id,
        session_id=trial.session_id,
        name="calibration",
        created_at=utcnow(),
    )
    await consumers.on_trial_started(tx, started)

    await janitor(tx, settings, 3 * MINUTE)

    assert len(await announced(tx, "upload.timed_out")) == 1


async def test_presign_pushes_the_deadline_out(client, tx, settings):
    trial = await named_trial(tx, "walk", phones=1)
    await consumers.on_cameras_final(tx, trial.final)
    await backdate(tx, trial.trial_id, 9 * MINUTE)

    await presign(client, trial.session_id)

    assert await janitor(tx, settings, 2 * MINUTE) == 0
    assert await janitor(tx, settings, 10 * MINUTE + timedelta(seconds=1)) == 1


async def test_upload_progress_pushes_the_deadline_out(tx, settings):
    touching = settings.model_copy(update={"upload_progress_touch_seconds": 0})
    trial = await named_trial(tx, "walk", phones=1)
    await consumers.on_cameras_final(tx, trial.final)
    async with client_for(create_app(touching), tx) as client:
        presigned = await presign(client, trial.session_id)
        await backdate(tx, trial.trial_id, 30 * MINUTE, active=True)

        assert (await post_upload(client, presigned, b"x" * 1000)).status_code == 204

    assert await janitor(tx, settings, 5 * MINUTE) == 0
    assert await janitor(tx, settings, 11 * MINUTE) == 1


async def test_process_available_option_sends_the_videos_that_came(client, tx, settings):
    allowing = settings.model_copy(update={"upload_timeout_process_available": True})
    trial = await named_trial(tx, "walk", phones=3)
    await consumers.on_cameras_final(tx, trial.final)
    key = await upload_one(client, trial, trial.cameras[0])

    await janitor(tx, allowing, 11 * MINUTE)
    await janitor(tx, allowing, 12 * MINUTE)

    [event] = await announced(tx, "trial.videos_received")
    assert [(v["video_id"], v["key"]) for v in event["videos"]] == [
        (str(trial.cameras[0].video_id), key)
    ]
    assert await announced(tx, "upload.timed_out") == []


async def test_process_available_option_never_sends_zero_videos(tx, settings):
    allowing = settings.model_copy(update={"upload_timeout_process_available": True})
    trial = await named_trial(tx, "walk", phones=2)
    await consumers.on_cameras_final(tx, trial.final)

    await janitor(tx, allowing, 11 * MINUTE)

    assert await announced(tx, "trial.videos_received") == []
    [event] = await announced(tx, "upload.timed_out")
    assert len(event["missing_device_ids"]) == 2


async def test_process_available_option_never_sends_a_calibration_one_video(client, tx, settings):
    """Calibration pairs cameras: one video of it cannot be processed, so the deadline
    names the phones that did not upload, as without the option."""
    allowing = settings.model_copy(update={"upload_timeout_process_available": True})
    trial = await named_trial(tx, "calibration", phones=2)
    await consumers.on_cameras_final(tx, trial.final)
    await upload_one(client, trial, trial.cameras[0])

    await janitor(tx, allowing, 3 * MINUTE)

    assert await announced(tx, "trial.videos_received") == []
    [event] = await announced(tx, "upload.timed_out")
    assert event["missing_device_ids"] == [str(trial.cameras[1].device_id)]


async def test_zero_cameras_never_times_out_and_announces_nothing(tx, settings):
    trial = await named_trial(tx, "walk", phones=0)
    await consumers.on_cameras_final(tx, trial.final)

    await janitor(tx, settings, 60 * MINUTE)

    assert await announced(tx, "upload.timed_out") == []
    assert await announced(tx, "trial.videos_received") == []
    assert (await tx.get(UploadTrial, trial.trial_id)).closed_at is not None


async def test_trial_that_finished_elsewhere_does_not_time_out(tx, settings):
    trial = await named_trial(tx, "walk")
    await consumers.on_cameras_final(tx, trial.final)
    cancelled = TrialFinished(
        trial_id=trial.trial_id, session_id=trial.session_id, status="error", error_msg="x"
    )
    await consumers.on_trial_finished(tx, cancelled)

    await janitor(tx, settings, 60 * MINUTE)

    assert await announced(tx, "upload.timed_out") == []


async def test_trial_whose_videos_all_came_does_not_time_out(client, tx, settings):
    trial = await named_trial(tx, "walk", phones=1)
    await consumers.on_cameras_final(tx, trial.final)
    await upload_one(client, trial, trial.cameras[0])

    await janitor(tx, settings, 60 * MINUTE)

    assert await announced(tx, "upload.timed_out") == []
    assert len(await announced(tx, "trial.videos_received")) == 1


async def test_trial_still_recording_does_not_time_out(tx, settings):
    await named_trial(tx, "walk")

    await janitor(tx, settings, 24 * 60 * MINUTE)

    assert await announced(tx, "upload.timed_out") == []
