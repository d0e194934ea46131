"""The worker forgets upload keys issued long ago (7 days) that nothing was ever uploaded
under, phones' and the stock pipeline's alike; keys that were used stay."""

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.db import utcnow
from tests.upload.conftest import in_savepoints, joined_trial, patch, presign, uploaded_key
from upload_service.janitor import forget_unused_keys, unused_keys_job
from upload_service.models import UploadKey

WEEK_AND_A_DAY = timedelta(days=8)


async def result_key(client) -> str:
    response = await client.request(
        "GET", "/sessions/null/get_presigned_url/", data={"fileName": "walk.mot"}
    )
    return response.json()["fields"]["key"]


async def test_old_keys_never_used_are_forgotten_and_used_ones_stay(client, tx, settings):
    trial = await joined_trial(tx)
    unused = (await presign(client, trial.session_id))["fields"]["key"]
    unused_result = await result_key(client)
    used = await uploaded_key(client, trial.session_id)

    forgotten = await forget_unused_keys(in_savepoints(tx), settings, utcnow() + WEEK_AND_A_DAY)

    assert forgotten == 2
    tx.expire_all()
    assert [await tx.get(UploadKey, key) is None for key in (unused, unused_result, used)] == [
        True,
        True,
        False,
    ]


async def test_recent_unused_keys_stay(client, tx, settings):
    trial = await joined_trial(tx)
    key = (await presign(client, trial.session_id))["fields"]["key"]

    forgotten = await forget_unused_keys(in_savepoints(tx), settings, utcnow() + timedelta(days=6))

    assert forgotten == 0
    assert await tx.get(UploadKey, key) is not None


async def test_a_direct_upload_attached_to_its_video_counts_as_used(client, tx, settings):
    trial = await joined_trial(tx)
    video_id = trial.cameras[0].video_id
    issued = (await client.post(f"/videos/{video_id}/upload-url/", json={"size": 5})).json()
    async with httpx.AsyncClient() as s3:
        await s3.put(issued["url"], content=b"12345", headers=issued["headers"])
    assert (await patch(client, video_id, json={"video_url": issued["key"]})).status_code == 200

    forgotten = await forget_unused_keys(in_savepoints(tx), settings, utcnow() + WEEK_AND_A_DAY)

    assert forgotten == 0
    assert (await tx.get(UploadKey, issued["key"])).size == 5


async def test_many_old_keys_go_in_batches(client, tx, settings):
    trial = await joined_trial(tx)
    keys = [(await presign(client, trial.session_id))["fields"]["key"] for _ in range(5)]
    small_batches = settings.model_copy(update={"unused_key_batch_size": 2})

    forgotten = await forget_unused_keys(
        in_savepoints(tx), small_batches, utcnow() + WEEK_AND_A_DAY
    )

    assert forgotten == 5
    tx.expire_all()
    assert [await tx.get(UploadKey, key) for key in keys] == [None] * 5


async def test_the_workers_periodic_job_runs_on_its_own_transactions(engine, settings):
    job = unused_keys_job(settings)

    await job(async_sessionmaker(engine))

    assert job.__name__ == "forget_unused_upload_keys"
