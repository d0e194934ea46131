"""The phones' upload path: presign and the upload target the presign points to
(reference: clients.md §2.3 and §2.6, opencap-api §7.1, known-failures 17 and 18).
`PATCH /videos/{id}/` is in test_video_patch.py."""

import base64
import re
from datetime import datetime, timedelta
from ipaddress import IPv4Network
from uuid import uuid4

import pytest

from shared.db import utcnow
from shared.events import SessionUpdated, TrialFinished, TrialStarted
from tests.upload.conftest import (
    CONTENT,
    OTHER_ID,
    PUBLIC_URL,
    SECRET,
    caller,
    client_for,
    form,
    in_savepoints,
    joined_trial,
    owned,
    patch,
    post_upload,
    presign,
    uploaded_key,
)
from upload_service import consumers, policy
from upload_service.janitor import time_out_overdue
from upload_service.main import create_app

UUID4_MOV = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.mov$"
)


# ── presign ─────────────────────────────────────────────────────────────────────────


async def test_presign_for_a_session_nobody_joined_is_404(client):
    response = await client.get(f"/sessions/{uuid4()}/get_presigned_url/")

    assert response.status_code == 404
    assert list(response.json()) == ["detail"]


NOT_WAITING = "No trial of this session is waiting for uploads."


async def test_presign_while_recording_before_the_camera_set_is_final_works(client, tx):
    """The stock phones presign as soon as they see `uploading`, at times just before the
    device service has fixed the camera set."""
    trial = await joined_trial(tx)
    started = TrialStarted(
        trial_id=trial.trial_id, session_id=trial.session_id, name="walk", created_at=utcnow()
    )
    await consumers.on_trial_started(tx, started)

    assert UUID4_MOV.match((await presign(client, trial.session_id))["fields"]["key"])


async def test_presign_for_a_trial_no_phone_joined_is_404(client, tx):
    trial_id, session_id = uuid4(), uuid4()
    started = TrialStarted(
        trial_id=trial_id, session_id=session_id, name="walk", created_at=utcnow()
    )
    await consumers.on_trial_started(tx, started)

    response = await client.get(f"/sessions/{session_id}/get_presigned_url/")

    assert (response.status_code, response.json()) == (404, {"detail": NOT_WAITING})


async def ended_by_every_video(client, tx, trial) -> None:
    await consumers.on_cameras_final(tx, trial.final)
    key = await uploaded_key(client, trial.session_id)
    assert (await patch(client, trial.cameras[0].video_id, json={"video_url": key})).is_success


async def ended_elsewhere(client, tx, trial) -> None:
    finished = TrialFinished(trial_id=trial.trial_id, session_id=trial.session_id, status="done")
    await consumers.on_trial_finished(tx, finished)


async def ended_by_the_deadline(client, tx, trial, settings) -> None:
    await consumers.on_cameras_final(tx, trial.final)
    later = utcnow() + timedelta(seconds=settings.upload_deadline_seconds + 1)
    assert await time_out_overdue(in_savepoints(tx), settings, later) == 1


@pytest.mark.parametrize("ending", ["every video is in", "ended elsewhere", "deadline passed"])
async def test_presign_once_the_trial_waits_for_nothing_is_404(client, tx, settings, ending):
    trial = await joined_trial(tx)
    if ending == "every video is in":
        await ended_by_every_video(client, tx, trial)
    elif ending == "ended elsewhere":
        await ended_elsewhere(client, tx, trial)
    else:
        await ended_by_the_deadline(client, tx, trial, settings)

    response = await client.get(f"/sessions/{trial.session_id}/get_presigned_url/")

    assert (response.status_code, response.json()) == (404, {"detail": NOT_WAITING})


async def test_upload_started_after_the_trial_ended_is_409_and_stores_nothing(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    await ended_elsewhere(client, tx, trial)

    response = await post_upload(client, presigned)

    assert response.status_code == 409
    assert "waiting for uploads" in response.json()["detail"]
    assert storage.size(presigned["fields"]["key"]) is None


async def test_presign_on_the_scanned_session_works_after_new_subject(client, tx):
    """The iOS app keeps the address of the session it scanned; its owner moved on."""
    first = await joined_trial(tx)
    await ended_elsewhere(client, tx, first)
    moved = SessionUpdated(session_id=first.session_id, new_session_id=uuid4())
    await consumers.on_session_updated(tx, moved)
    await owned(tx, first.session_id)
    await owned(tx, moved.new_session_id)
    await joined_trial(tx, session_id=moved.new_session_id)

    assert UUID4_MOV.match((await presign(client, first.session_id))["fields"]["key"])


async def test_presign_through_a_link_to_another_owners_session_is_404(client, tx):
    theirs = await joined_trial(tx)
    mine = uuid4()
    await owned(tx, mine)
    await owned(tx, theirs.session_id, OTHER_ID)
    linked = SessionUpdated(session_id=mine, new_session_id=theirs.session_id)
    await consumers.on_session_updated(tx, linked)

    response = await client.get(f"/sessions/{mine}/get_presigned_url/")

    assert (response.status_code, response.json()) == (404, {"detail": NOT_WAITING})


async def test_presign_for_a_session_id_that_is_not_a_uuid_is_404(client):
    response = await client.get("/sessions/nonsense/get_presigned_url/")

    assert response.status_code == 404


async def test_the_stock_pipeline_presigns_and_uploads_a_result_file(client, storage):
    # opencap-core: GET sessions/null/get_presigned_url/ with a form body, no token
    response = await client.request(
        "GET", "/sessions/null/get_presigned_url/", data={"fileName": "ab-c/../Settings_1.yaml"}
    )

    assert response.status_code == 200, response.text
    presigned = response.json()
    key = presigned["fields"]["key"]
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-abc..Settings_1.yaml", key)
    assert key[key.rfind("-") + 1 :] == "abc..Settings_1.yaml"  # the name the pipeline reads
    stored = await post_upload(client, presigned, b"settings: 1\n")
    assert stored.status_code == 204
    assert storage.size(key) == len(b"settings: 1\n")


async def test_only_the_pipeline_presigns_result_files_when_a_token_is_sent(client, tx):
    phone_owner = await caller(tx, 7)
    pipeline = await caller(tx, 2, ("backend",))

    refused = await client.get("/sessions/null/get_presigned_url/", headers=phone_owner)
    allowed = await client.get("/sessions/null/get_presigned_url/", headers=pipeline)

    assert (refused.status_code, allowed.status_code) == (403, 200)
    assert allowed.json()["fields"]["key"].endswith("-result")


async def test_anonymous_result_presigns_can_be_turned_off(settings, tx):
    closed = settings.model_copy(update={"anonymous_result_presign": False})
    async with client_for(create_app(closed), tx) as client:
        response = await client.get("/sessions/null/get_presigned_url/")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("forwarded", "status"),
    [
        ("10.1.2.3", 200),
        ("192.0.2.7, 10.1.2.3", 200),  # the gateway's entry is the last one
        ("10.1.2.3, 192.0.2.7", 403),  # a client claiming to be inside
        ("", 403),  # straight from this machine (127.0.0.1)
        ("not-an-address", 403),
    ],
)
async def test_anonymous_result_presigns_can_be_kept_to_the_pipelines_network(
    settings, tx, forwarded, status
):
    inside = settings.model_copy(update={"result_presign_networks": [IPv4Network("10.0.0.0/8")]})
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with client_for(create_app(inside), tx) as client:
        response = await client.get("/sessions/null/get_presigned_url/", headers=headers)

    assert response.status_code == status


async def test_presign_has_exactly_the_fields_the_phones_decode(client, tx):
    trial = await joined_trial(tx)

    body = await presign(client, trial.session_id)

    assert list(body) == ["url", "fields", "expires_at"]
    assert set(body["fields"]) == {"key", "AWSAccessKeyId", "policy", "signature"}
    assert body["url"] == f"{PUBLIC_URL}/uploads/"
    assert UUID4_MOV.match(body["fields"]["key"])
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires_at > utcnow() + timedelta(minutes=20)


async def test_presign_ignores_a_caller_supplied_file_name(client, tx):
    trial = await joined_trial(tx)

    response = await client.request(
        "GET",
        f"/sessions/{trial.session_id}/get_presigned_url/",
        data={"fileName": "../../x.mov"},
    )

    assert response.status_code == 200
    assert UUID4_MOV.match(response.json()["fields"]["key"])


async def test_each_presign_gets_a_fresh_key(client, tx):
    trial = await joined_trial(tx)

    first = await presign(client, trial.session_id)
    second = await presign(client, trial.session_id)

    assert first["fields"]["key"] != second["fields"]["key"]


# ── the upload target ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize("reverse", [True, False])
@pytest.mark.parametrize("content_type", ["video/mp4", "video/quicktime"])
async def test_upload_with_the_policy_fields_in_any_order_stores_the_object(
    client, tx, storage, reverse, content_type
):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    items = list(presigned["fields"].items())
    fields = dict(reversed(items) if reverse else items)

    response = await client.post("/uploads/", files=form(fields, content_type=content_type))

    assert response.status_code == 204
    assert response.content == b""
    key = presigned["fields"]["key"]
    assert storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read() == CONTENT


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("video/quicktime", "video/quicktime"),
        ("image/jpeg", "image/jpeg"),
        ("application/json", "application/json"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/xhtml+xml", "application/octet-stream"),
    ],
)
async def test_an_object_is_never_stored_as_a_page_or_a_script(client, tx, storage, sent, stored):
    """What the bucket serves an upload as: a page would run from the bucket's address."""
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await client.post("/uploads/", files=form(presigned["fields"], content_type=sent))

    assert response.status_code == 204
    head = storage.client.head_object(Bucket=storage.bucket, Key=presigned["fields"]["key"])
    assert head["ContentType"] == stored


async def test_upload_with_the_file_before_the_policy_is_400_and_stores_nothing(
    client, tx, storage
):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await client.post("/uploads/", files=form(presigned["fields"], file_first=True))

    assert response.status_code == 400
    assert "before the file" in next(iter(response.json().values()))[0]
    assert storage.size(presigned["fields"]["key"]) is None


async def test_upload_with_a_forged_signature_is_403_and_stores_nothing(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    forged = base64.b64encode(b"f" * 20).decode()

    response = await post_upload(client, presigned, signature=forged)

    assert response.status_code == 403
    assert list(response.json()) == ["detail"]
    assert storage.size(presigned["fields"]["key"]) is None


async def test_upload_with_another_access_key_id_is_403(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await post_upload(client, presigned, AWSAccessKeyId="AKIAOTHER")

    assert response.status_code == 403
    assert "access key id" in response.json()["detail"]
    assert storage.size(presigned["fields"]["key"]) is None


async def test_upload_with_a_non_ascii_signature_is_403(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await post_upload(client, presigned, signature="sïgnature")

    assert response.status_code == 403
    assert storage.size(presigned["fields"]["key"]) is None


async def test_upload_with_another_keys_policy_is_403(client, tx, storage):
    trial = await joined_trial(tx)
    mine = await presign(client, trial.session_id)
    other = await presign(client, trial.session_id)

    response = await post_upload(client, mine, key=other["fields"]["key"])

    assert response.status_code == 403
    assert storage.size(other["fields"]["key"]) is None


async def test_upload_after_the_policy_expired_is_403(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    key = presigned["fields"]["key"]
    an_hour_ago = utcnow() - timedelta(hours=2)
    expired, signature = policy.issue(key, an_hour_ago, timedelta(hours=1), 10**6, SECRET)

    response = await post_upload(client, presigned, policy=expired, signature=signature)

    assert response.status_code == 403
    assert "expired" in response.json()["detail"]
    assert storage.size(key) is None


async def test_phone_whose_policy_expired_presigns_again_and_uploads(client, tx, storage):
    trial = await joined_trial(tx)
    stale = await presign(client, trial.session_id)
    expired, signature = policy.issue(
        stale["fields"]["key"], utcnow() - timedelta(hours=2), timedelta(hours=1), 10**6, SECRET
    )
    refused = await post_upload(client, stale, policy=expired, signature=signature)

    fresh = await presign(client, trial.session_id)
    accepted = await post_upload(client, fresh)

    assert (refused.status_code, accepted.status_code) == (403, 204)
    assert storage.size(fresh["fields"]["key"]) == len(CONTENT)


async def test_upload_without_a_file_is_400(client, tx):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await client.post("/uploads/", files=form(presigned["fields"], content=None))

    assert response.status_code == 400
    assert list(response.json()) == ["file"]


async def test_upload_that_is_not_multipart_is_400(client, tx):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await client.post("/uploads/", data=presigned["fields"])

    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["detail"]


async def test_upload_of_an_empty_file_is_400_and_stores_nothing(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)

    response = await post_upload(client, presigned, content=b"")

    assert response.status_code == 400
    assert list(response.json()) == ["file"]
    assert storage.size(presigned["fields"]["key"]) is None


async def test_upload_without_a_policy_is_400(client, tx, storage):
    trial = await joined_trial(tx)
    presigned = await presign(client, trial.session_id)
    fields = {k: v for k, v in presigned["fields"].items() if k != "policy"}

    response = await client.post("/uploads/", files=form(fields))

    assert response.status_code == 400
    assert list(response.json()) == ["policy"]


async def test_upload_larger_than_the_policy_allows_is_413(settings, tx, storage):
    small = settings.model_copy(update={"max_video_bytes": 8})
    trial = await joined_trial(tx)
    async with client_for(create_app(small), tx) as client:
        presigned = await presign(client, trial.session_id)

        response = await post_upload(client, presigned, content=b"x" * 9)

    assert response.status_code == 413
    assert storage.size(presigned["fields"]["key"]) is None
