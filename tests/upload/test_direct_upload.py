"""Direct-to-S3 uploads for new clients: a presigned PUT, or a multipart upload with a
presigned URL per part, for one video slot; the PATCH then attaches the key as usual.
(The local S3 endpoint does not check signatures; these tests check the flow.)"""

import os

import httpx
import pytest
from sqlalchemy import select

from shared.events import TrialFinished
from tests.upload.conftest import client_for, joined_trial, patch
from upload_service import consumers
from upload_service.main import create_app
from upload_service.models import Outbox

MiB = 1024**2


@pytest.fixture
async def small_parts(settings, tx):
    """A client whose direct uploads above 6 MiB are multipart, in 5 MiB parts."""
    tuned = settings.model_copy(
        update={"direct_put_max_bytes": 6 * MiB, "direct_part_bytes": 5 * MiB}
    )
    async with client_for(create_app(tuned), tx) as client:
        yield client


async def upload_url(client, video_id, size: int, **extra) -> httpx.Response:
    return await client.post(f"/videos/{video_id}/upload-url/", json={"size": size, **extra})


async def uploaded(tx) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == "video.uploaded"))
    return [row.body["data"] for row in rows]


async def test_small_video_goes_up_with_one_presigned_put(client, tx, storage):
    trial = await joined_trial(tx)
    video_id = trial.cameras[0].video_id
    video = os.urandom(1000)

    issued = (await upload_url(client, video_id, len(video))).json()
    async with httpx.AsyncClient() as s3:
        put = await s3.put(issued["url"], content=video, headers=issued["headers"])
    attached = await patch(client, video_id, json={"video_url": issued["key"]})

    assert (issued["method"], put.status_code, attached.status_code) == ("PUT", 200, 200)
    assert "X-Amz-Signature=" in issued["url"] and "content-length" in issued["url"]
    assert issued["headers"] == {"Content-Type": "video/quicktime", "Content-Length": "1000"}
    assert [e["size"] for e in await uploaded(tx)] == [len(video)]
    assert storage.client.get_object(Bucket=storage.bucket, Key=issued["key"])["Body"].read() == (
        video
    )


async def test_large_video_goes_up_in_presigned_parts_then_completes(small_parts, tx, storage):
    trial = await joined_trial(tx)
    video_id = trial.cameras[0].video_id
    video = os.urandom(11 * MiB)

    issued = (await upload_url(small_parts, video_id, len(video))).json()
    etags = []
    async with httpx.AsyncClient() as s3:
        for part in issued["parts"]:
            start = (part["part_number"] - 1) * issued["part_size"]
            put = await s3.put(part["url"], content=video[start : start + part["size"]])
            etags.append({"part_number": part["part_number"], "etag": put.headers["etag"]})
    done = {"key": issued["key"], "upload_id": issued["upload_id"], "parts": etags}
    completed = await small_parts.post(issued["complete_url"], json=done)
    attached = await patch(small_parts, video_id, json={"video_url": issued["key"]})

    assert issued["method"] == "multipart"
    assert [p["size"] for p in issued["parts"]] == [5 * MiB, 5 * MiB, 1 * MiB]
    assert completed.json() == {"key": issued["key"], "size": len(video)}
    assert attached.status_code == 200
    assert storage.client.get_object(Bucket=storage.bucket, Key=issued["key"])["Body"].read() == (
        video
    )


async def test_aborted_multipart_upload_leaves_nothing(small_parts, tx, storage):
    trial = await joined_trial(tx)
    issued = (await upload_url(small_parts, trial.cameras[0].video_id, 11 * MiB)).json()
    done = {"key": issued["key"], "upload_id": issued["upload_id"]}

    response = await small_parts.post(issued["abort_url"], json=done)

    assert response.status_code == 204
    listing = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=issued["key"])
    assert listing.get("Uploads", []) == []


@pytest.mark.parametrize("count", [1, 5000])  # the list of a large upload is read whole
async def test_completing_with_parts_s3_never_got_is_400(small_parts, tx, count):
    trial = await joined_trial(tx)
    issued = (await upload_url(small_parts, trial.cameras[0].video_id, 11 * MiB)).json()
    etag = '"0123456789abcdef0123456789abcdef"'
    parts = [{"part_number": n, "etag": etag} for n in range(1, count + 1)]
    done = {"key": issued["key"], "upload_id": issued["upload_id"], "parts": parts}

    response = await small_parts.post(issued["complete_url"], json=done)

    assert response.status_code == 400
    assert "refused" in response.json()["detail"]


async def test_completing_another_videos_upload_is_404(small_parts, tx):
    trial = await joined_trial(tx, phones=2)
    mine, other = (c.video_id for c in trial.cameras)
    issued = (await upload_url(small_parts, mine, 11 * MiB)).json()
    done = {"key": issued["key"], "upload_id": issued["upload_id"], "parts": []}

    response = await small_parts.post(f"/videos/{other}/upload-url/complete/", json=done)

    assert response.status_code == 404


async def test_key_issued_for_one_slot_cannot_be_attached_to_another(client, tx):
    trial = await joined_trial(tx, phones=2)
    mine, other = (c.video_id for c in trial.cameras)
    issued = (await upload_url(client, mine, 4)).json()
    async with httpx.AsyncClient() as s3:
        await s3.put(issued["url"], content=b"abcd", headers=issued["headers"])

    response = await patch(client, other, json={"video_url": issued["key"]})

    assert response.status_code == 400
    assert list(response.json()) == ["video_url"]


async def test_presigned_put_never_uploaded_cannot_be_attached(client, tx):
    trial = await joined_trial(tx)
    issued = (await upload_url(client, trial.cameras[0].video_id, 10)).json()

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": issued["key"]})

    assert response.status_code == 400
    assert await uploaded(tx) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"size": 0}, 400),
        ({}, 400),
        ({"size": "big"}, 400),
        ({"size": 10, "content_type": "not a type"}, 400),
        ({"size": 10, "content_type": "text/html"}, 400),  # served as a page from S3
        ({"size": 6 * 1024**3}, 413),
        ({"size": 10, "padding": "x" * 100_000}, 413),  # not read whole into memory
    ],
)
async def test_bad_upload_url_requests_are_refused(client, tx, body, status):
    trial = await joined_trial(tx)

    response = await client.post(f"/videos/{trial.cameras[0].video_id}/upload-url/", json=body)

    assert response.status_code == status
    assert isinstance(response.json(), dict)


async def test_upload_url_for_a_trial_no_longer_waiting_is_409(client, tx):
    trial = await joined_trial(tx)
    await consumers.on_cameras_final(tx, trial.final)
    done = TrialFinished(trial_id=trial.trial_id, session_id=trial.session_id, status="done")
    await consumers.on_trial_finished(tx, done)

    response = await upload_url(client, trial.cameras[0].video_id, 10)

    assert response.status_code == 409


async def test_upload_url_for_an_unknown_video_is_404(client):
    response = await upload_url(client, "00000000-0000-4000-8000-000000000000", 10)

    assert response.status_code == 404
