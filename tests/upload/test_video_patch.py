"""`PATCH /videos/{id}/`: the phone attaches its upload to its video slot (reference:
clients.md §2.3 and §2.6, opencap-api §2.1 and §4.3, known-failures 21)."""

import json
import os
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select

from shared.events import TrialFinished
from tests.upload.conftest import (
    CONTENT,
    OWNER_ID,
    PARAMETERS,
    caller,
    joined_trial,
    owned,
    patch,
    presign,
    uploaded_key,
)
from upload_service import consumers
from upload_service.models import Outbox, Video

VIDEO_KEYS = [
    "id",
    "trial",
    "device_id",
    "video",
    "video_thumb",
    "parameters",
    "created_at",
    "updated_at",
]


async def events(tx, routing_key: str) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == routing_key))
    return [row.body["data"] for row in rows]


async def test_patch_with_an_uploaded_key_attaches_it_and_announces_the_video(client, tx):
    trial = await joined_trial(tx)
    camera = trial.cameras[0]
    key = await uploaded_key(client, trial.session_id)

    response = await patch(
        client, camera.video_id, json={"video_url": key, "parameters": PARAMETERS}
    )

    assert response.status_code == 200
    body = response.json()
    assert list(body) == VIDEO_KEYS
    assert body["id"] == str(camera.video_id)
    assert (body["trial"], body["device_id"]) == (str(trial.trial_id), str(camera.device_id))
    assert body["parameters"] == PARAMETERS and body["video_thumb"] is None
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert await events(tx, "video.uploaded") == [
        {
            "video_id": str(camera.video_id),
            "trial_id": str(trial.trial_id),
            "session_id": str(trial.session_id),
            "device_id": str(camera.device_id),
            "key": key,
            "size": len(CONTENT),
            "parameters": PARAMETERS,
        }
    ]


async def test_owner_patching_gets_a_sigv2_link_that_serves_the_upload(client, tx):
    trial = await joined_trial(tx)
    await owned(tx, trial.session_id)
    headers = await caller(tx, OWNER_ID)
    key = await uploaded_key(client, trial.session_id)

    response = await patch(
        client, trial.cameras[0].video_id, json={"video_url": key}, headers=headers
    )

    url = response.json()["video"]
    assert f"/{key}?" in url and "AWSAccessKeyId=" in url and "Signature=" in url
    assert "X-Amz-" not in url
    async with httpx.AsyncClient() as s3:
        assert (await s3.get(url)).content == CONTENT


async def test_anonymous_patch_answers_the_video_without_a_download_link(client, tx):
    trial = await joined_trial(tx)
    await owned(tx, trial.session_id)
    key = await uploaded_key(client, trial.session_id)

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 200
    assert list(response.json()) == VIDEO_KEYS
    assert response.json()["video"] is None
    assert (await tx.get(Video, trial.cameras[0].video_id)).key == key


async def test_repeating_the_same_patch_answers_200_and_announces_once(client, tx):
    trial = await joined_trial(tx)
    video_id = trial.cameras[0].video_id
    key = await uploaded_key(client, trial.session_id)

    first = await patch(client, video_id, json={"video_url": key, "parameters": PARAMETERS})
    again = await patch(client, video_id, json={"video_url": key, "parameters": PARAMETERS})

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert len(await events(tx, "video.uploaded")) == 1


async def test_another_key_after_the_upload_was_accepted_is_409(client, tx):
    trial = await joined_trial(tx)
    video_id = trial.cameras[0].video_id
    key = await uploaded_key(client, trial.session_id)
    other = await uploaded_key(client, trial.session_id)
    await patch(client, video_id, json={"video_url": key})

    response = await patch(client, video_id, json={"video_url": other})

    assert response.status_code == 409
    assert (await tx.get(Video, video_id)).key == key
    assert len(await events(tx, "video.uploaded")) == 1


async def test_key_already_attached_to_another_video_is_409(client, tx):
    trial = await joined_trial(tx, phones=2)
    first, second = (camera.video_id for camera in trial.cameras)
    key = await uploaded_key(client, trial.session_id)
    await patch(client, first, json={"video_url": key})

    response = await patch(client, second, json={"video_url": key})

    assert response.status_code == 409
    assert (await tx.get(Video, second)).key is None
    assert len(await events(tx, "video.uploaded")) == 1


async def test_key_that_was_never_issued_is_400(client, tx, storage):
    trial = await joined_trial(tx)
    key = f"{uuid4()}.mov"
    storage.put_bytes(key, CONTENT, "video/mp4")

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 400
    assert list(response.json()) == ["video_url"]
    assert await events(tx, "video.uploaded") == []


async def test_key_issued_for_another_session_is_400(client, tx):
    trial, elsewhere = await joined_trial(tx), await joined_trial(tx)
    key = await uploaded_key(client, elsewhere.session_id)

    response = await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    assert response.status_code == 400
    assert list(response.json()) == ["video_url"]


async def test_issued_key_whose_upload_never_arrived_is_400(client, tx):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await patch(
        client, trial.cameras[0].video_id, json={"video_url": presigned["fields"]["key"]}
    )

    assert response.status_code == 400
    assert list(response.json()) == ["video_url"]
    assert (await tx.get(Video, trial.cameras[0].video_id)).key is None
    assert await events(tx, "video.uploaded") == []


async def test_form_encoded_patch_with_parameters_as_json_text_works(client, tx):
    trial = await joined_trial(tx)
    key = await uploaded_key(client, trial.session_id)
    fields = {"video_url": key, "parameters": json.dumps(PARAMETERS)}

    response = await patch(client, trial.cameras[0].video_id, data=fields)

    assert response.status_code == 200
    assert response.json()["parameters"] == PARAMETERS
    [uploaded] = await events(tx, "video.uploaded")
    assert (uploaded["key"], uploaded["parameters"]) == (key, PARAMETERS)


async def test_multipart_patch_without_a_file_works(client, tx):
    trial = await joined_trial(tx)
    key = await uploaded_key(client, trial.session_id)
    parts = {"video_url": (None, key), "parameters": (None, json.dumps(PARAMETERS))}

    response = await patch(client, trial.cameras[0].video_id, files=parts)

    assert response.status_code == 200
    assert len(await events(tx, "video.uploaded")) == 1


async def test_legacy_multipart_video_file_is_stored_and_attached(client, tx, storage):
    trial = await joined_trial(tx)
    files = {"video": ("my-clip.mov", CONTENT, "video/quicktime")}

    response = await patch(
        client, trial.cameras[0].video_id, files=files, data={"parameters": "{}"}
    )

    assert response.status_code == 200
    [uploaded] = await events(tx, "video.uploaded")
    key = uploaded["key"]
    UUID(key[:36])
    assert key[36:] == "-myclip.mov"  # the pipeline reads the name after the last "-"
    assert storage.size(key) == len(CONTENT)
    assert response.json()["parameters"] == {}


async def test_legacy_multipart_empty_video_file_is_400(client, tx):
    trial = await joined_trial(tx)
    files = {"video": ("clip.mov", b"", "video/quicktime")}

    response = await patch(
        client, trial.cameras[0].video_id, files=files, data={"parameters": "{}"}
    )

    assert response.status_code == 400
    assert (await tx.get(Video, trial.cameras[0].video_id)).key is None
    assert await events(tx, "video.uploaded") == []


async def test_singular_video_route_works(client, tx):
    trial = await joined_trial(tx)
    key = await uploaded_key(client, trial.session_id)

    response = await patch(client, trial.cameras[0].video_id, "video", json={"video_url": key})

    assert response.status_code == 200
    assert len(await events(tx, "video.uploaded")) == 1


async def test_patch_with_only_parameters_stores_them_and_announces_nothing(client, tx):
    trial = await joined_trial(tx)

    response = await patch(client, trial.cameras[0].video_id, json={"parameters": PARAMETERS})

    assert response.status_code == 200
    assert (response.json()["parameters"], response.json()["video"]) == (PARAMETERS, None)
    assert await events(tx, "video.uploaded") == []


@pytest.mark.parametrize("field", ["trial", "device_id"])
async def test_patch_cannot_move_a_video_to_another_trial_or_phone(client, tx, field):
    trial = await joined_trial(tx)
    camera = trial.cameras[0]
    key = await uploaded_key(client, trial.session_id)

    response = await patch(client, camera.video_id, json={"video_url": key, field: str(uuid4())})

    assert response.status_code == 403
    video = await tx.get(Video, camera.video_id)
    assert (video.trial_id, video.device_id, video.key) == (trial.trial_id, camera.device_id, None)
    assert await events(tx, "video.uploaded") == []


async def test_patch_repeating_the_videos_own_trial_and_phone_is_accepted(client, tx):
    trial = await joined_trial(tx)
    camera = trial.cameras[0]
    key = await uploaded_key(client, trial.session_id)
    body = {"video_url": key, "trial": str(trial.trial_id), "device_id": str(camera.device_id)}

    response = await patch(client, camera.video_id, json=body)

    assert response.status_code == 200
    assert len(await events(tx, "video.uploaded")) == 1


@pytest.mark.parametrize("parameters", ["[1, 2]", '"text"', "42"])
async def test_parameters_that_are_not_a_json_object_are_400(client, tx, parameters):
    trial = await joined_trial(tx)
    key = await uploaded_key(client, trial.session_id)
    video_id = trial.cameras[0].video_id

    refused = await patch(client, video_id, data={"parameters": parameters})
    then = await patch(client, video_id, json={"video_url": key})

    assert refused.status_code == 400
    assert list(refused.json()) == ["parameters"]
    assert then.status_code == 200


@pytest.mark.parametrize(
    "parameters", ["{model", '{"fps": NaN}', '{"fps": -Infinity}', "[" * 2000 + "]" * 2000]
)
async def test_parameters_that_are_not_json_are_400(client, tx, parameters):
    trial = await joined_trial(tx)

    response = await patch(client, trial.cameras[0].video_id, data={"parameters": parameters})

    assert response.status_code == 400
    assert list(response.json()) == ["parameters"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"1e400"])
async def test_a_json_body_with_a_number_no_database_stores_is_400(client, tx, number):
    trial = await joined_trial(tx)
    body = b'{"parameters": {"max_framerate": ' + number + b"}}"

    response = await patch(
        client,
        trial.cameras[0].video_id,
        content=body,
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


async def test_body_that_is_not_a_json_object_is_400(client, tx):
    trial = await joined_trial(tx)

    response = await patch(
        client,
        trial.cameras[0].video_id,
        content=b'["video_url"]',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize("video_id", [str(uuid4()), "not-a-uuid"])
async def test_patch_of_an_unknown_video_is_404(client, video_id):
    response = await patch(client, video_id, json={"video_url": "x.mov"})

    assert response.status_code == 404
    assert list(response.json()) == ["detail"]


async def test_legacy_multipart_video_larger_than_a_part_is_streamed_whole(client, tx, storage):
    trial = await joined_trial(tx)
    video = os.urandom(9 * 1024**2 + 3)
    files = {"video": ("big.mov", video, "video/quicktime")}

    response = await patch(client, trial.cameras[0].video_id, files=files)

    assert response.status_code == 200
    [uploaded] = await events(tx, "video.uploaded")
    body = storage.client.get_object(Bucket=storage.bucket, Key=uploaded["key"])["Body"]
    assert (uploaded["size"], body.read()) == (len(video), video)


async def test_legacy_multipart_video_that_cannot_be_attached_is_deleted_again(client, tx, storage):
    trial = await joined_trial(tx)
    video_id = trial.cameras[0].video_id
    await patch(client, video_id, json={"video_url": await uploaded_key(client, trial.session_id)})
    name = f"{uuid4().hex}.mov"

    response = await patch(client, video_id, files={"video": (name, CONTENT, "video/mp4")})

    assert response.status_code == 409
    listing = storage.client.list_objects_v2(Bucket=storage.bucket)
    assert [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(name)] == []


async def test_legacy_multipart_video_for_a_closed_trial_is_refused_before_streaming(
    client, tx, storage
):
    trial = await joined_trial(tx)
    await consumers.on_trial_finished(
        tx, TrialFinished(trial_id=trial.trial_id, session_id=trial.session_id, status="error")
    )
    name = f"{uuid4().hex}.mov"

    response = await patch(
        client, trial.cameras[0].video_id, files={"video": (name, CONTENT, "video/mp4")}
    )

    assert response.status_code == 409
    listing = storage.client.list_objects_v2(Bucket=storage.bucket)
    assert [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(name)] == []
