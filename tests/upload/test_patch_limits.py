"""What an anonymous `PATCH /videos/{id}/` may do: only attach an upload issued for that
slot's session, only while the trial waits for it, and only the phone's own fields
(reference: clients.md §2.6 and §2.11, known-failures 21)."""

from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select

from shared.db import utcnow
from shared.events import CamerasFinal, SessionUpdated, TrialFinished
from tests.upload.conftest import (
    OTHER_ID,
    PARAMETERS,
    in_savepoints,
    joined_trial,
    owned,
    patch,
    uploaded_key,
)
from upload_service import consumers
from upload_service.janitor import time_out_overdue
from upload_service.models import Outbox, Video


async def uploaded_events(tx) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == "video.uploaded"))
    return [row.body["data"] for row in rows]


async def test_upload_after_all_videos_were_announced_is_409(client, tx):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    first = await uploaded_key(client, trial.session_id)
    late = await uploaded_key(client, trial.session_id)  # a retry that went through too
    await patch(client, trial.cameras[0].video_id, json={"video_url": first})

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": late})

    assert response.status_code == 409
    assert (await tx.get(Video, trial.cameras[0].video_id)).key == first


async def test_upload_to_a_cancelled_trial_is_409_and_announces_nothing(client, tx):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    key = await uploaded_key(client, trial.session_id)
    cancelled = TrialFinished(
        trial_id=trial.trial_id, session_id=trial.session_id, status="error", error_msg="x"
    )
    await consumers.on_trial_finished(tx, cancelled)

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 409
    assert "no longer waiting" in response.json()["detail"]
    assert await uploaded_events(tx) == []


async def test_upload_after_the_deadline_is_409(client, tx, settings):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    key = await uploaded_key(client, trial.session_id)
    later = utcnow() + timedelta(seconds=settings.upload_deadline_seconds + 1)
    await time_out_overdue(in_savepoints(tx), settings, later)

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 409
    assert await uploaded_events(tx) == []


async def test_upload_into_a_slot_outside_the_final_camera_set_is_409(client, tx):
    trial = await joined_trial(tx, phones=2)
    kept, dropped = trial.cameras
    final = CamerasFinal(trial_id=trial.trial_id, session_id=trial.session_id, cameras=[kept])
    await consumers.on_cameras_final(tx, final)
    key = await uploaded_key(client, trial.session_id)

    response = await patch(client, dropped.video_id, json={"video_url": key})

    assert response.status_code == 409
    assert (await tx.get(Video, dropped.video_id)).key is None


async def test_parameters_alone_after_the_trial_stopped_waiting_are_409(client, tx):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    key = await uploaded_key(client, trial.session_id)
    await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    response = await patch(client, trial.cameras[0].video_id, json={"parameters": {"a": 1}})

    assert response.status_code == 409
    assert (await tx.get(Video, trial.cameras[0].video_id)).parameters is None


async def test_same_key_after_the_announcement_is_still_a_quiet_200(client, tx):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    key = await uploaded_key(client, trial.session_id)
    body = {"video_url": key, "parameters": PARAMETERS}
    await patch(client, trial.cameras[0].video_id, json=body)

    response = await patch(client, trial.cameras[0].video_id, json=body)

    assert response.status_code == 200
    assert len(await uploaded_events(tx)) == 1


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"isLidar": "true", "saved_local": "false"}, (True, False)),
        ({"isLidar": False}, (False, None)),
    ],
)
async def test_newer_phones_flags_are_stored(client, tx, sent, stored):
    trial = await joined_trial(tx)
    key = await uploaded_key(client, trial.session_id)

    response = await patch(client, trial.cameras[0].video_id, data={"video_url": key, **sent})

    assert response.status_code == 200
    video = await tx.get(Video, trial.cameras[0].video_id)
    assert (video.is_lidar, video.saved_local) == stored


async def test_a_flag_that_is_not_a_boolean_is_400(client, tx):
    trial = await joined_trial(tx)

    response = await patch(client, trial.cameras[0].video_id, json={"isLidar": "maybe"})

    assert response.status_code == 400
    assert list(response.json()) == ["isLidar"]


async def test_key_presigned_on_the_first_session_counts_after_new_subject(client, tx):
    """The iOS app keeps presigning with the session it scanned, after "new subject"."""
    first = await joined_trial(tx)
    moved = SessionUpdated(session_id=first.session_id, new_session_id=uuid4())
    await consumers.on_session_updated(tx, moved)
    await owned(tx, first.session_id)
    await owned(tx, moved.new_session_id)
    trial = await joined_trial(tx, session_id=moved.new_session_id)
    key = await uploaded_key(client, first.session_id)

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 200
    assert [e["key"] for e in await uploaded_events(tx)] == [key]


async def test_key_of_the_following_session_does_not_count_for_an_earlier_one(client, tx):
    first = await joined_trial(tx)
    moved = SessionUpdated(session_id=first.session_id, new_session_id=uuid4())
    await consumers.on_session_updated(tx, moved)
    await owned(tx, first.session_id)
    await owned(tx, moved.new_session_id)
    later = await joined_trial(tx, session_id=moved.new_session_id)
    key = await uploaded_key(client, later.session_id)

    response = await patch(client, first.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 400
    assert list(response.json()) == ["video_url"]


async def test_key_of_a_session_linked_to_another_owners_session_does_not_count(client, tx):
    """A session id is in its QR code: linking one's own session to another user's must not
    let one's keys into that user's phones' slots."""
    mine = await joined_trial(tx)
    theirs = await joined_trial(tx)
    await owned(tx, mine.session_id)
    await owned(tx, theirs.session_id, OTHER_ID)
    linked = SessionUpdated(session_id=mine.session_id, new_session_id=theirs.session_id)
    await consumers.on_session_updated(tx, linked)
    key = await uploaded_key(client, mine.session_id)

    response = await patch(client, theirs.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 400
    assert list(response.json()) == ["video_url"]
    assert (await tx.get(Video, theirs.cameras[0].video_id)).key is None


async def test_oversized_json_body_is_413(client, tx):
    trial = await joined_trial(tx)
    body = b'{"parameters": {"x": "' + b"a" * 70_000 + b'"}}'

    response = await patch(
        client,
        trial.cameras[0].video_id,
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert list(response.json()) == ["detail"]
