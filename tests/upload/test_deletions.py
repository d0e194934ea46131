"""A deleted trial or session (`trial.deleted`, `session.deleted`): its rows, videos and
upload keys are forgotten and its objects deleted from storage (best effort), once."""

from uuid import uuid4

import httpx
from sqlalchemy import select

from shared.config import S3Settings
from shared.events import SessionDeleted, SessionUpdated, TrialDeleted
from shared.storage import Storage
from tests.upload.conftest import (
    CONTENT,
    Trial,
    consumer_in,
    joined_trial,
    owned,
    patch,
    uploaded_key,
)
from upload_service.models import KnownSession, UploadKey, UploadTrial, Video


async def attached(client, trial: Trial, camera: int, issued_on=None) -> str:
    """The phone of `camera` presigns (on `issued_on`, default its own session), uploads and
    PATCHes; the key."""
    key = await uploaded_key(client, issued_on or trial.session_id)
    response = await patch(client, trial.cameras[camera].video_id, json={"video_url": key})
    assert response.status_code == 200, response.text
    return key


async def inline(client, tx, trial: Trial, camera: int) -> str:
    """The old app's PATCH with the video file in it; the key it was stored under."""
    video_id = trial.cameras[camera].video_id
    files = {"video": ("clip.mov", CONTENT, "video/quicktime")}
    response = await patch(client, video_id, files=files)
    assert response.status_code == 200, response.text
    return (await tx.get(Video, video_id)).key


async def direct_put(client, trial: Trial, camera: int) -> str:
    """A new client's direct upload into a slot, stored in S3 but never PATCHed; the key."""
    video_id = trial.cameras[camera].video_id
    issued = (await client.post(f"/videos/{video_id}/upload-url/", json={"size": 5})).json()
    async with httpx.AsyncClient() as s3:
        put = await s3.put(issued["url"], content=b"12345", headers=issued["headers"])
    assert put.status_code == 200
    return issued["key"]


def stored(storage: Storage, *keys: str) -> list[bool]:
    return [storage.size(key) is not None for key in keys]


async def count(tx, model, *conditions) -> int:
    return len((await tx.scalars(select(model).where(*conditions))).all())


async def test_deleted_trial_goes_with_its_videos_keys_and_objects(client, tx, storage, deliver):
    trial = await joined_trial(tx, phones=3)
    other = await joined_trial(tx, session_id=trial.session_id)
    presigned = await attached(client, trial, 0)
    old_app = await inline(client, tx, trial, 1)
    direct = await direct_put(client, trial, 2)
    kept = await attached(client, other, 0)

    await deliver(TrialDeleted(trial_id=trial.trial_id, session_id=trial.session_id))

    assert stored(storage, presigned, old_app, direct, kept) == [False, False, False, True]
    assert await count(tx, UploadTrial, UploadTrial.id == trial.trial_id) == 0
    assert await count(tx, Video, Video.trial_id == trial.trial_id) == 0
    assert await count(tx, UploadKey, UploadKey.key.in_([presigned, direct])) == 0
    assert (await tx.get(Video, other.cameras[0].video_id)).key == kept
    assert await tx.get(UploadKey, kept) is not None


async def test_deleted_trial_delivered_twice_is_forgotten_once(client, tx, storage, deliver):
    trial = await joined_trial(tx)
    key = await attached(client, trial, 0)
    envelope = await deliver(TrialDeleted(trial_id=trial.trial_id, session_id=trial.session_id))

    await deliver(envelope)
    await deliver(TrialDeleted(trial_id=trial.trial_id, session_id=trial.session_id))

    assert stored(storage, key) == [False]
    assert await count(tx, Video, Video.trial_id == trial.trial_id) == 0


async def test_deleted_session_goes_with_every_trial_and_every_upload(client, tx, storage, deliver):
    first = await joined_trial(tx)
    second = await joined_trial(tx, session_id=first.session_id)
    await owned(tx, first.session_id)
    elsewhere = await joined_trial(tx)
    keys = [await attached(client, first, 0), await attached(client, second, 0)]
    never_patched = await uploaded_key(client, first.session_id)
    kept = await attached(client, elsewhere, 0)

    await deliver(SessionDeleted(session_id=first.session_id))

    assert stored(storage, *keys, never_patched, kept) == [False, False, False, True]
    assert await count(tx, UploadTrial, UploadTrial.session_id == first.session_id) == 0
    assert await count(tx, Video, Video.session_id == first.session_id) == 0
    assert await count(tx, UploadKey, UploadKey.session_id == first.session_id) == 0
    assert await tx.get(KnownSession, first.session_id) is None
    assert (await tx.get(Video, elsewhere.cameras[0].video_id)).key == kept


async def test_a_key_issued_on_a_deleted_session_stays_with_the_next_sessions_video(
    client, tx, storage, deliver
):
    """After "new subject" the iOS app presigns on the session it scanned: deleting that
    session leaves the next session's video, and its object, alone."""
    scanned = await joined_trial(tx)
    moved = SessionUpdated(session_id=scanned.session_id, new_session_id=uuid4())
    await deliver(moved)
    await owned(tx, scanned.session_id)
    await owned(tx, moved.new_session_id)
    following = await joined_trial(tx, session_id=moved.new_session_id)
    key = await attached(client, following, 0, issued_on=scanned.session_id)

    await deliver(SessionDeleted(session_id=scanned.session_id))

    assert stored(storage, key) == [True]
    assert (await tx.get(Video, following.cameras[0].video_id)).key == key

    await deliver(SessionDeleted(session_id=following.session_id))

    assert stored(storage, key) == [False]
    assert await tx.get(UploadKey, key) is None


async def test_an_object_already_gone_from_storage_is_fine(client, tx, storage, deliver):
    trial = await joined_trial(tx)
    key = await attached(client, trial, 0)
    storage.client.delete_object(Bucket=storage.bucket, Key=key)

    await deliver(TrialDeleted(trial_id=trial.trial_id, session_id=trial.session_id))

    assert await count(tx, Video, Video.trial_id == trial.trial_id) == 0


async def test_rows_are_forgotten_even_when_storage_does_not_answer(client, tx, storage):
    trial = await joined_trial(tx)
    key = await attached(client, trial, 0)
    unreachable = Storage(S3Settings(s3_endpoint_url="http://127.0.0.1:9", s3_bucket="pytest"))
    deliver = consumer_in(tx, unreachable)

    await deliver(SessionDeleted(session_id=trial.session_id))

    assert await count(tx, Video, Video.session_id == trial.session_id) == 0
    assert stored(storage, key) == [True]  # left for the bucket's owner: best effort


async def test_a_deleted_session_that_was_never_seen_is_fine(tx, deliver):
    await deliver(SessionDeleted(session_id=uuid4()))
    await deliver(TrialDeleted(trial_id=uuid4(), session_id=uuid4()))
