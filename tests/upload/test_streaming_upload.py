"""The upload target streams a phone's file into S3 (a multipart upload for anything over
one part) and answers 204 only once the object is complete; every refused or broken
upload leaves neither an object nor an unfinished multipart upload behind."""

import asyncio
import os

import pytest

from tests.upload.conftest import (
    PUBLIC_URL,
    client_for,
    form,
    joined_trial,
    patch,
    post_upload,
    presign,
)
from upload_service.main import create_app

MiB = 1024**2


def stored(storage, key: str) -> bytes | None:
    if storage.size(key) is None:
        return None
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def unfinished(storage, key: str) -> list:
    listing = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=key)
    return listing.get("Uploads", [])


def raw_form(fields: dict, head: bytes, boundary: str = "phoneboundary") -> bytes:
    """A multipart body whose file part starts with `head` and is never closed."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    file = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{fields["key"]}"'
        "\r\nContent-Type: video/quicktime\r\n\r\n"
    )
    return "".join([*parts, file]).encode() + head


async def test_video_larger_than_a_part_is_stored_byte_for_byte_in_parts(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    video = os.urandom(13 * MiB + 12345)

    response = await post_upload(client, presigned, video)

    assert response.status_code == 204
    key = presigned["fields"]["key"]
    assert stored(storage, key) == video
    etag = storage.client.head_object(Bucket=storage.bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith("-3")  # 6 + 6 + 1 MiB parts
    assert unfinished(storage, key) == []


async def test_file_growing_past_the_limit_while_streaming_is_413_and_aborted(
    settings, tx, storage
):
    small = settings.model_copy(update={"max_video_bytes": 13 * MiB})
    trial = await joined_trial(tx)
    async with client_for(create_app(small), tx) as client:
        presigned = await presign(client, trial.session_id)
        response = await post_upload(client, presigned, b"v" * (13 * MiB + 1))

    assert response.status_code == 413
    assert list(response.json()) == ["detail"]
    key = presigned["fields"]["key"]
    assert stored(storage, key) is None
    assert unfinished(storage, key) == []


async def test_body_declared_larger_than_any_video_is_413_before_it_is_read(settings, tx):
    small = settings.model_copy(update={"max_video_bytes": 100})
    trial = await joined_trial(tx)
    async with client_for(create_app(small), tx) as client:
        presigned = await presign(client, trial.session_id)
        body = raw_form(presigned["fields"], b"x" * 10)
        headers = {
            "Content-Type": "multipart/form-data; boundary=phoneboundary",
            "Content-Length": str(10 * MiB),
        }
        response = await client.post("/uploads/", content=body[:50], headers=headers)

    assert response.status_code == 413


async def test_body_cut_off_inside_the_file_is_400_and_stores_nothing(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    body = raw_form(presigned["fields"], os.urandom(9 * MiB))
    headers = {"Content-Type": "multipart/form-data; boundary=phoneboundary"}

    response = await client.post("/uploads/", content=body, headers=headers)

    assert response.status_code == 400
    assert "ended before the end of the file" in response.json()["file"][0]
    key = presigned["fields"]["key"]
    assert stored(storage, key) is None
    assert unfinished(storage, key) == []


async def test_empty_file_is_400_and_leaves_nothing_unfinished(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await post_upload(client, presigned, b"")

    assert response.status_code == 400
    key = presigned["fields"]["key"]
    assert (stored(storage, key), unfinished(storage, key)) == (None, [])


async def test_phone_retrying_the_same_upload_before_its_patch_replaces_it(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    await post_upload(client, presigned, b"first attempt, cut short")

    response = await post_upload(client, presigned, b"second attempt, whole")

    assert response.status_code == 204
    assert stored(storage, presigned["fields"]["key"]) == b"second attempt, whole"


async def test_upload_to_a_key_already_attached_to_a_video_is_409(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    key = presigned["fields"]["key"]
    await post_upload(client, presigned, b"the accepted video")
    await patch(client, trial.cameras[0].video_id, json={"video_url": key})

    response = await post_upload(client, presigned, b"something else")

    assert response.status_code == 409
    assert stored(storage, key) == b"the accepted video"


async def test_policy_field_longer_than_a_policy_can_be_is_400(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await post_upload(client, presigned, policy="p" * 20_000)

    assert response.status_code == 400
    assert list(response.json()) == ["policy"]
    assert stored(storage, presigned["fields"]["key"]) is None


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "text/plain", "application/json"],
)
async def test_body_that_is_not_a_multipart_form_is_400(client, tx, content_type):
    trial = await joined_trial(tx)
    await presign(client, trial.session_id)

    response = await client.post(
        "/uploads/", content=b"garbage", headers={"Content-Type": content_type}
    )

    assert response.status_code == 400
    assert list(response.json()) == ["detail"]


async def test_second_file_after_the_video_is_400_and_stores_nothing(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    parts = [*form(presigned["fields"]), ("file", ("again.mov", b"more", "video/mp4"))]

    response = await client.post(presigned["url"].removeprefix(PUBLIC_URL), files=parts)

    assert response.status_code == 400
    assert stored(storage, presigned["fields"]["key"]) is None


async def test_phone_that_stops_sending_mid_file_is_cut_off_with_408(settings, tx, storage):
    impatient = settings.model_copy(update={"upload_read_timeout_seconds": 0.2})
    app = create_app(impatient)
    trial = await joined_trial(tx)
    async with client_for(app, tx) as client:
        presigned = await presign(client, trial.session_id)
    body = raw_form(presigned["fields"], os.urandom(6 * MiB))
    sent: list[dict] = []

    await app(stalled_post("/uploads/", body), stalling_after(body), sent_to(sent))

    assert sent[0]["status"] == 408
    key = presigned["fields"]["key"]
    assert (stored(storage, key), unfinished(storage, key)) == (None, [])


def stalled_post(path: str, body: bytes) -> dict:
    """The ASGI scope of a phone's POST whose body is longer than what it will send."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"multipart/form-data; boundary=phoneboundary"),
            (b"content-length", str(len(body) + MiB).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }


def stalling_after(body: bytes):
    """An ASGI `receive` that delivers `body`, then waits forever for the rest."""
    pending = [{"type": "http.request", "body": body, "more_body": True}]

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


def sent_to(messages: list):
    async def send(message: dict) -> None:
        messages.append(message)

    return send
