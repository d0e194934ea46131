"""Who may do what with results: only the pipeline (backend group) and admins create or
delete them (known-failures 22: a result posted to another user's trial is refused and
nothing is stored); owners read their own; anonymous and bad-token callers get DRF's 403."""

import pytest
from sqlalchemy import func, select

from results_service.models import Outbox, Result
from tests.results.conftest import (
    ADMIN_ID,
    BACKEND_ID,
    OTHER_ID,
    OWNER_ID,
    caller,
    session_of,
    stored,
    trial_in,
)


@pytest.fixture
async def trial_id(tx, handlers):
    return await trial_in(tx, handlers, await session_of(tx, handlers, OWNER_ID), "squats")


def result_form(storage, trial_id) -> dict:
    key = stored(storage, "squats.trc")
    return {"trial": str(trial_id), "tag": "x", "device_id": "d", "media_url": key}


async def count(tx, model) -> int:
    return await tx.scalar(select(func.count()).select_from(model))


async def posted_result(client, tx, handlers, storage, trial_id) -> int:
    backend = await caller(tx, handlers, BACKEND_ID, ("backend",))
    response = await client.post("/results/", data=result_form(storage, trial_id), headers=backend)
    return response.json()["id"]


async def test_another_users_result_post_is_403_and_stores_nothing(
    client, tx, handlers, storage, trial_id
):
    other = await caller(tx, handlers, OTHER_ID)

    response = await client.post("/results/", data=result_form(storage, trial_id), headers=other)

    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}
    assert (await count(tx, Result), await count(tx, Outbox)) == (0, 0)


async def test_even_the_owner_cannot_post_results(client, tx, handlers, storage, trial_id):
    owner = await caller(tx, handlers, OWNER_ID)

    response = await client.post("/results/", data=result_form(storage, trial_id), headers=owner)

    assert response.status_code == 403
    assert await count(tx, Result) == 0


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Token not-a-known-token"}, "Invalid token."),
        ({"Authorization": "Bearer x y"}, "Invalid token header. No credentials provided."),
    ],
)
async def test_anonymous_or_bad_token_is_403_for_every_result_route(
    client, tx, handlers, storage, trial_id, headers, detail
):
    result_id = await posted_result(client, tx, handlers, storage, trial_id)

    answers = [
        await client.post("/results/", data=result_form(storage, trial_id), headers=headers),
        await client.get("/results/", headers=headers),
        await client.get(f"/results/{result_id}/", headers=headers),
        await client.delete(f"/results/{result_id}/", headers=headers),
    ]

    assert [(r.status_code, r.json()) for r in answers] == [(403, {"detail": detail})] * 4
    assert await count(tx, Result) == 1


@pytest.mark.parametrize("group", ["backend", "admin"])
async def test_backend_and_admin_create_read_and_delete(
    client, tx, handlers, storage, trial_id, group
):
    headers = await caller(tx, handlers, ADMIN_ID, (group,))

    created = await client.post("/results/", data=result_form(storage, trial_id), headers=headers)
    result_id = created.json()["id"]
    read = await client.get(f"/results/{result_id}/", headers=headers)
    deleted = await client.delete(f"/results/{result_id}/", headers=headers)
    again = await client.delete(f"/results/{result_id}/", headers=headers)

    assert [created.status_code, read.status_code, deleted.status_code] == [201, 200, 204]
    assert (again.status_code, again.json()) == (404, {"detail": "Not found."})


async def test_only_the_pipeline_and_admins_delete(client, tx, handlers, storage, trial_id):
    result_id = await posted_result(client, tx, handlers, storage, trial_id)

    for user_id in (OWNER_ID, OTHER_ID):
        headers = await caller(tx, handlers, user_id)
        response = await client.delete(f"/results/{result_id}/", headers=headers)
        assert response.status_code == 403

    assert await count(tx, Result) == 1


async def test_another_user_neither_lists_nor_reads_the_result(
    client, tx, handlers, storage, trial_id
):
    result_id = await posted_result(client, tx, handlers, storage, trial_id)
    other = await caller(tx, handlers, OTHER_ID)

    listed = await client.get("/results/", headers=other)
    one = await client.get(f"/results/{result_id}/", headers=other)

    assert (listed.status_code, listed.json()) == (200, [])
    assert (one.status_code, one.json()) == (404, {"detail": "Not found."})


@pytest.mark.parametrize("path", ["/results/abc/", "/results/99999999999999999999999/"])
async def test_malformed_result_ids_are_404(client, tx, handlers, path):
    backend = await caller(tx, handlers, BACKEND_ID, ("backend",))

    assert (await client.get(path, headers=backend)).status_code == 404
    assert (await client.delete(path, headers=backend)).status_code == 404


async def test_bad_list_filters_are_400(client, tx, handlers):
    backend = await caller(tx, handlers, BACKEND_ID, ("backend",))

    bad_trial = await client.get("/results/", params={"trial": "x"}, headers=backend)
    bad_tag = await client.get("/results/", params={"tag": "a\x00"}, headers=backend)

    assert (bad_trial.status_code, bad_tag.status_code) == (400, 400)
