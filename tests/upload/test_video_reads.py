"""Video reads: the session's owner and the backend (pipeline) and admin groups get the full
video with a download link; anyone else gets 403 (anonymous) or 404 (another user). A token
of a user who has not entered the e-mailed code yet unlocks nothing (403) on any route that
takes one. Callers are known from the session service's identity events (shared.identity)."""

import httpx
import pytest

from shared.events import TokenRevoked, UserUpdated
from shared.identity import token_hash
from tests.upload.conftest import (
    BACKEND_ID,
    CONTENT,
    IDENTITY,
    OTHER_ID,
    OWNER_ID,
    PARAMETERS,
    caller,
    joined_trial,
    owned,
    patch,
    uploaded_key,
)
from upload_service.models import Video


@pytest.fixture
async def trial(client, tx):
    """An owned two-phone trial; the first phone uploaded and attached its video."""
    trial = await joined_trial(tx, phones=2)
    await owned(tx, trial.session_id)
    key = await uploaded_key(client, trial.session_id)
    body = {"video_url": key, "parameters": PARAMETERS}
    assert (await patch(client, trial.cameras[0].video_id, json=body)).status_code == 200
    return trial


async def test_owner_reads_the_video_with_a_link_that_serves_it(client, tx, trial):
    headers = await caller(tx, OWNER_ID)

    response = await client.get(f"/videos/{trial.cameras[0].video_id}/", headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["parameters"]) == (str(trial.cameras[0].video_id), PARAMETERS)
    async with httpx.AsyncClient() as s3:
        assert (await s3.get(body["video"])).content == CONTENT


@pytest.mark.parametrize("group", ["backend", "admin"])
async def test_backend_and_admin_read_any_video(client, tx, trial, group):
    headers = await caller(tx, BACKEND_ID, (group,))

    response = await client.get(f"/video/{trial.cameras[0].video_id}/", headers=headers)

    assert response.status_code == 200
    assert response.json()["video"].startswith("http")


async def test_trial_videos_list_has_every_slot_in_order_with_links(client, tx, trial):
    headers = await caller(tx, OWNER_ID)

    response = await client.get("/videos/", params={"trial": str(trial.trial_id)}, headers=headers)

    assert response.status_code == 200
    listed = response.json()
    assert [v["id"] for v in listed] == [str(c.video_id) for c in trial.cameras]
    assert listed[0]["video"].startswith("http") and listed[1]["video"] is None


async def test_another_user_gets_404_for_the_video_and_the_list(client, tx, trial):
    headers = await caller(tx, OTHER_ID)

    video = await client.get(f"/videos/{trial.cameras[0].video_id}/", headers=headers)
    listing = await client.get("/videos/", params={"trial": str(trial.trial_id)}, headers=headers)

    assert (video.status_code, listing.status_code) == (404, 404)
    assert video.json() == {"detail": "Not found."}


async def test_anonymous_reads_are_403(client, trial):
    video = await client.get(f"/videos/{trial.cameras[0].video_id}/")
    listing = await client.get("/videos/", params={"trial": str(trial.trial_id)})

    assert (video.status_code, listing.status_code) == (403, 403)
    assert "credentials" in video.json()["detail"]


async def test_revoked_token_is_403(client, tx, trial):
    headers = await caller(tx, OWNER_ID)
    revoked = TokenRevoked(key_hash=token_hash(headers["Authorization"].split()[1]))
    await IDENTITY[TokenRevoked](tx, revoked)

    response = await client.get(f"/videos/{trial.cameras[0].video_id}/", headers=headers)

    assert response.status_code == 403


async def test_deactivated_user_is_403(client, tx, trial):
    headers = await caller(tx, OWNER_ID)
    await IDENTITY[UserUpdated](tx, UserUpdated(user_id=OWNER_ID, is_active=False))

    response = await client.get(f"/videos/{trial.cameras[0].video_id}/", headers=headers)

    assert response.status_code == 403


@pytest.mark.parametrize("header", ["Token", "Bearer abc", "Token a b"])
async def test_malformed_authorization_header_is_403(client, trial, header):
    response = await client.get(
        f"/videos/{trial.cameras[0].video_id}/", headers={"Authorization": header}
    )

    assert response.status_code == 403


async def test_list_without_a_trial_is_400_and_with_a_bad_one_404(client, tx):
    headers = await caller(tx, OWNER_ID)

    missing = await client.get("/videos/", headers=headers)
    bad = await client.get("/videos/", params={"trial": "nope"}, headers=headers)

    assert (missing.status_code, list(missing.json())) == (400, ["trial"])
    assert bad.status_code == 404


async def test_unknown_video_is_404_for_a_known_caller_and_403_for_anonymous(client, tx):
    headers = await caller(tx, OWNER_ID)
    unknown = "00000000-0000-4000-8000-000000000000"

    assert (await client.get(f"/videos/{unknown}/", headers=headers)).status_code == 404
    assert (await client.get(f"/videos/{unknown}/")).status_code == 403


# ── the e-mail code step ────────────────────────────────────────────────────────────

NO_PERMISSION = {"detail": "You do not have permission to perform this action."}


async def test_owner_who_has_not_entered_the_emailed_code_is_refused(client, tx, trial):
    headers = await caller(tx, OWNER_ID, verified=False)

    video = await client.get(f"/videos/{trial.cameras[0].video_id}/", headers=headers)
    listing = await client.get("/videos/", params={"trial": str(trial.trial_id)}, headers=headers)
    unknown = await client.get("/videos/00000000-0000-4000-8000-000000000000/", headers=headers)

    assert [r.status_code for r in (video, listing, unknown)] == [403, 403, 403]
    assert video.json() == listing.json() == unknown.json() == NO_PERMISSION


async def test_owner_reads_again_once_the_code_is_entered(client, tx, trial):
    headers = await caller(tx, OWNER_ID, verified=False)
    await IDENTITY[UserUpdated](tx, UserUpdated(user_id=OWNER_ID, verified=True))

    response = await client.get(f"/videos/{trial.cameras[0].video_id}/", headers=headers)

    assert response.status_code == 200


async def test_pipeline_token_never_needs_the_emailed_code(client, tx, trial):
    headers = await caller(tx, BACKEND_ID, ("backend",), verified=False)

    response = await client.get("/videos/", params={"trial": str(trial.trial_id)}, headers=headers)

    assert response.status_code == 200


async def test_patch_with_the_token_of_an_unverified_owner_is_refused_and_attaches_nothing(
    client, tx, trial
):
    headers = await caller(tx, OWNER_ID, verified=False)
    key = await uploaded_key(client, trial.session_id)
    video_id = trial.cameras[1].video_id

    response = await patch(client, video_id, json={"video_url": key}, headers=headers)

    assert (response.status_code, response.json()) == (403, NO_PERMISSION)
    assert (await tx.get(Video, video_id)).key is None


@pytest.mark.parametrize("action", ["", "complete/", "abort/"])
async def test_direct_upload_urls_with_the_token_of_an_unverified_owner_are_refused(
    client, tx, trial, action
):
    headers = await caller(tx, OWNER_ID, verified=False)
    body = {"size": 1000} if not action else {"key": "k.mov", "upload_id": "u"}

    response = await client.post(
        f"/videos/{trial.cameras[1].video_id}/upload-url/{action}", json=body, headers=headers
    )

    assert (response.status_code, response.json()) == (403, NO_PERMISSION)
