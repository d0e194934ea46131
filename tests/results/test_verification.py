"""The e-mail code step: a user who has not entered the code (`user.updated` verified=false,
e.g. after a new login) is refused the owner routes with DRF's 403; the pipeline's and
admins' tokens never go through the step; anyone may still download public sessions."""

import pytest
from sqlalchemy import text

from results_service import archives
from results_service.models import ApiUser, Archive
from tests.results.conftest import (
    ADMIN_ID,
    BACKEND_ID,
    OWNER_ID,
    caller,
    in_savepoints,
    session_of,
    stored,
    trial_in,
)

NO_PERMISSION = {"detail": "You do not have permission to perform this action."}


async def owned_result(client, tx, handlers, storage) -> int:
    trial_id = await trial_in(tx, handlers, await session_of(tx, handlers, OWNER_ID), "walk")
    backend = await caller(tx, handlers, BACKEND_ID, ("backend",))
    form = {"trial": str(trial_id), "tag": "x", "media_url": stored(storage, "walk.trc")}
    return (await client.post("/results/", data=form, headers=backend)).json()["id"]


async def test_an_owner_before_the_code_step_reads_no_results(client, tx, handlers, storage):
    result_id = await owned_result(client, tx, handlers, storage)
    owner = await caller(tx, handlers, OWNER_ID, verified=False)

    answers = [
        await client.get("/results/", headers=owner),
        await client.get(f"/results/{result_id}/", headers=owner),
    ]

    assert [(r.status_code, r.json()) for r in answers] == [(403, NO_PERMISSION)] * 2


async def test_the_owner_reads_results_again_once_past_the_code_step(client, tx, handlers, storage):
    result_id = await owned_result(client, tx, handlers, storage)
    await caller(tx, handlers, OWNER_ID, verified=False)
    owner = await caller(tx, handlers, OWNER_ID, verified=True)

    response = await client.get(f"/results/{result_id}/", headers=owner)

    assert response.status_code == 200


@pytest.mark.parametrize(("user_id", "group"), [(BACKEND_ID, "backend"), (ADMIN_ID, "admin")])
async def test_pipeline_and_admin_tokens_never_need_the_code_step(
    client, tx, handlers, storage, user_id, group
):
    result_id = await owned_result(client, tx, handlers, storage)
    private = await session_of(tx, handlers, OWNER_ID)
    headers = await caller(tx, handlers, user_id, (group,), verified=False)

    read = await client.get(f"/results/{result_id}/", headers=headers)
    asked = await client.get(f"/sessions/{private}/async-download/", headers=headers)

    assert (read.status_code, asked.status_code) == (200, 200)


async def test_an_owner_before_the_code_step_cannot_download_a_private_session(
    client, tx, handlers
):
    session_id = await session_of(tx, handlers, OWNER_ID)
    owner = await caller(tx, handlers, OWNER_ID, verified=False)

    response = await client.get(f"/sessions/{session_id}/async-download/", headers=owner)

    assert (response.status_code, response.json()) == (403, NO_PERMISSION)
    assert (await tx.scalars(text("SELECT task_id FROM archives"))).all() == []


async def test_a_public_session_downloads_for_a_user_before_the_code_step_as_for_anyone(
    client, tx, handlers
):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    owner = await caller(tx, handlers, OWNER_ID, verified=False)

    response = await client.get(f"/sessions/{session_id}/async-download/", headers=owner)
    task_id = response.json()["task_id"]
    poll = await client.get(f"/logs/{task_id}/on-ready/", headers=owner)

    assert (response.status_code, poll.status_code) == (200, 202)
    assert (await tx.get(Archive, task_id)).user_id is None  # asked as anyone


async def test_polling_ones_own_archive_needs_the_code_step(
    client, tx, handlers, storage, settings
):
    """The user asked while verified, then logged in again (a new code was sent)."""
    session_id = await session_of(tx, handlers, OWNER_ID)
    owner = await caller(tx, handlers, OWNER_ID)
    task_id = (await client.get(f"/sessions/{session_id}/async-download/", headers=owner)).json()
    await archives.build_next(in_savepoints(tx), storage, settings)
    await caller(tx, handlers, OWNER_ID, verified=False)

    poll = await client.get(f"/logs/{task_id['task_id']}/on-ready/", headers=owner)

    assert (poll.status_code, poll.json()) == (403, NO_PERMISSION)


async def test_users_known_before_the_code_step_was_announced_may_act(tx):
    """The migration's default: rows written before `verified` existed are verified."""
    await tx.execute(
        text(
            "INSERT INTO api_users (user_id, groups, is_active, updated_at) "
            "VALUES (4242, '{}', true, now())"
        )
    )

    assert (await tx.get(ApiUser, 4242)).verified is True
