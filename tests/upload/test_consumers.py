"""Event handlers of the upload service, and all-videos-received: exactly one
`trial.videos_received` once the camera set is final and every one of its videos is in,
whatever the order of the final set and the uploads."""

from uuid import uuid4

from sqlalchemy import select

from shared.db import utcnow
from shared.events import (
    Camera,
    CamerasFinal,
    DeviceJoined,
    SessionCreated,
    SessionUpdated,
    TrialFinished,
    TrialStarted,
)
from tests.upload.conftest import CONTENT, PARAMETERS, joined_trial, patch, uploaded_key
from upload_service import consumers
from upload_service.models import KnownSession, Outbox, UploadTrial, Video


async def videos_received(tx) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == "trial.videos_received"))
    return [row.body["data"] for row in rows]


async def upload_all(client, tx, trial, cameras=None) -> dict:
    """Every phone of `cameras` (default: all) uploads and PATCHes: {video_id: key}."""
    keys = {}
    for camera in cameras if cameras is not None else trial.cameras:
        key = await uploaded_key(client, trial.session_id)
        body = {"video_url": key, "parameters": PARAMETERS}
        response = await patch(client, camera.video_id, json=body)
        assert response.status_code == 200, response.text
        keys[str(camera.video_id)] = key
    return keys


def listed(event: dict) -> dict:
    return {v["video_id"]: (v["device_id"], v["key"], v["parameters"]) for v in event["videos"]}


def expected(trial, keys: dict) -> dict:
    return {
        str(c.video_id): (str(c.device_id), keys[str(c.video_id)], PARAMETERS)
        for c in trial.cameras
    }


async def test_device_joined_creates_the_video_once(tx):
    trial = await joined_trial(tx)
    camera = trial.cameras[0]
    again = DeviceJoined(
        video_id=camera.video_id,
        trial_id=trial.trial_id,
        session_id=trial.session_id,
        device_id=camera.device_id,
    )

    await consumers.on_device_joined(tx, again)

    [video] = (await tx.scalars(select(Video))).all()
    assert (video.id, video.trial_id, video.session_id, video.device_id) == (
        camera.video_id,
        trial.trial_id,
        trial.session_id,
        camera.device_id,
    )
    assert (video.key, video.in_final_set) == (None, False)
    assert (await tx.get(UploadTrial, trial.trial_id)).final_at is None


async def test_final_set_then_the_last_upload_announces_every_video_once(client, tx):
    trial = await joined_trial(tx, phones=3)
    await consumers.on_cameras_final(tx, trial.final)
    first_two = await upload_all(client, tx, trial, trial.cameras[:2])

    assert await videos_received(tx) == []

    last = await upload_all(client, tx, trial, trial.cameras[2:])
    [event] = await videos_received(tx)
    assert (event["trial_id"], event["session_id"]) == (str(trial.trial_id), str(trial.session_id))
    assert listed(event) == expected(trial, {**first_two, **last})


async def test_uploads_first_then_the_final_set_announces_once(client, tx):
    trial = await joined_trial(tx, phones=2)
    keys = await upload_all(client, tx, trial)

    assert await videos_received(tx) == []

    await consumers.on_cameras_final(tx, trial.final)
    [event] = await videos_received(tx)
    assert listed(event) == expected(trial, keys)


async def test_final_set_delivered_twice_still_announces_once(client, tx):
    trial = await joined_trial(tx, phones=2)
    keys = await upload_all(client, tx, trial)

    await consumers.on_cameras_final(tx, trial.final)
    await consumers.on_cameras_final(tx, trial.final)

    [event] = await videos_received(tx)
    assert listed(event) == expected(trial, keys)


async def test_repeated_patch_after_the_announcement_does_not_announce_again(client, tx):
    trial = await joined_trial(tx, phones=1)
    await consumers.on_cameras_final(tx, trial.final)
    keys = await upload_all(client, tx, trial)

    video_id = trial.cameras[0].video_id
    body = {"video_url": keys[str(video_id)], "parameters": PARAMETERS}
    assert (await patch(client, video_id, json=body)).status_code == 200
    await consumers.on_cameras_final(tx, trial.final)

    assert len(await videos_received(tx)) == 1


async def test_zero_cameras_announces_nothing(tx):
    trial = await joined_trial(tx, phones=0)

    await consumers.on_cameras_final(tx, trial.final)

    assert await videos_received(tx) == []
    assert (await tx.get(UploadTrial, trial.trial_id)).final_at is not None


async def test_missing_upload_keeps_the_trial_waiting(client, tx):
    trial = await joined_trial(tx, phones=2)
    await upload_all(client, tx, trial, trial.cameras[:1])

    await consumers.on_cameras_final(tx, trial.final)

    assert await videos_received(tx) == []


async def test_final_set_arriving_before_a_join_creates_that_video(client, tx):
    trial = await joined_trial(tx, phones=1)
    late = Camera(video_id=uuid4(), device_id=uuid4())
    final = CamerasFinal(
        trial_id=trial.trial_id, session_id=trial.session_id, cameras=[*trial.cameras, late]
    )

    await consumers.on_cameras_final(tx, final)
    joined = DeviceJoined(
        video_id=late.video_id,
        trial_id=trial.trial_id,
        session_id=trial.session_id,
        device_id=late.device_id,
    )
    await consumers.on_device_joined(tx, joined)

    videos = (await tx.scalars(select(Video).where(Video.trial_id == trial.trial_id))).all()
    assert {(v.id, v.in_final_set) for v in videos} == {
        (trial.cameras[0].video_id, True),
        (late.video_id, True),
    }
    key = await uploaded_key(client, trial.session_id, CONTENT)
    response = await patch(client, late.video_id, json={"video_url": key})
    assert response.status_code == 200


async def test_video_outside_the_final_set_is_not_waited_for(client, tx):
    trial = await joined_trial(tx, phones=2)
    kept, dropped = trial.cameras
    final = CamerasFinal(trial_id=trial.trial_id, session_id=trial.session_id, cameras=[kept])
    await consumers.on_cameras_final(tx, final)

    keys = await upload_all(client, tx, trial, [kept])

    [event] = await videos_received(tx)
    assert list(listed(event)) == list(keys) == [str(kept.video_id)]
    assert (await tx.get(Video, dropped.video_id)).in_final_set is False


async def test_trial_started_before_or_after_a_join_names_the_trial_once(tx):
    trial = await joined_trial(tx)
    started = TrialStarted(
        trial_id=trial.trial_id, session_id=trial.session_id, name="neutral", created_at=utcnow()
    )

    await consumers.on_trial_started(tx, started)
    await consumers.on_trial_started(tx, started)

    rows = (await tx.scalars(select(UploadTrial).where(UploadTrial.id == trial.trial_id))).all()
    assert [row.name for row in rows] == ["neutral"]


async def test_sessions_owner_and_next_session_are_remembered(tx):
    session_id, next_id = uuid4(), uuid4()

    await consumers.on_session_updated(
        tx, SessionUpdated(session_id=session_id, new_session_id=next_id)
    )
    await consumers.on_session_created(tx, SessionCreated(session_id=session_id, user_id=7))

    known = await tx.get(KnownSession, session_id)
    assert (known.user_id, known.next_session_id) == (7, next_id)


async def test_finished_trial_stops_waiting_for_uploads(tx):
    trial = await joined_trial(tx)
    finished = TrialFinished(
        trial_id=trial.trial_id, session_id=trial.session_id, status="error", error_msg="x"
    )

    await consumers.on_trial_finished(tx, finished)
    await consumers.on_trial_finished(tx, finished)

    assert (await tx.get(UploadTrial, trial.trial_id)).waiting is False


def test_worker_consumes_identity_session_and_trial_events(storage):
    assert {cls.type for cls in consumers.handlers(storage)} == {
        "trial.started",
        "device.joined",
        "trial.cameras_final",
        "trial.finished",
        "session.created",
        "session.updated",
        "session.deleted",
        "trial.deleted",
        "user.updated",
        "user.token_issued",
        "user.token_revoked",
    }
