"""Archive tasks: who may ask, what the web app's poll sees while the worker builds, retries,
fails (the poll must not spin forever) and cleans up; the zip is streamed to S3 in parts."""

import os
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select

from results_service import archives, downloads
from results_service.models import Archive
from results_service.zipstream import MultipartUpload
from shared.config import S3Settings
from shared.db import utcnow
from shared.events import SessionUpdated
from shared.storage import Storage
from tests.results.conftest import (
    BACKEND_ID,
    OTHER_ID,
    OWNER_ID,
    caller,
    deliver,
    in_savepoints,
    session_of,
)


async def ask(client, session_id, headers=None):
    return await client.get(f"/sessions/{session_id}/async-download/", headers=headers or {})


@pytest.mark.parametrize(
    ("who", "public", "status"),
    [
        ("owner", False, 200),
        ("backend", False, 200),
        ("other", False, 404),
        ("anonymous", False, 401),
        ("other", True, 200),
        ("anonymous", True, 200),
    ],
)
async def test_who_may_download_a_session(client, tx, handlers, who, public, status):
    session_id = await session_of(tx, handlers, OWNER_ID, public=public)
    users = {
        "owner": (OWNER_ID, ()),
        "backend": (BACKEND_ID, ("backend",)),
        "other": (OTHER_ID, ()),
    }
    headers = await caller(tx, handlers, *users[who]) if who in users else {}

    response = await ask(client, session_id, headers)

    assert response.status_code == status
    if status == 200:
        task = await tx.get(Archive, response.json()["task_id"])
        assert (task.session_id, task.status) == (session_id, "pending")
    elif status == 401:
        assert response.json() == {"detail": "Sorry, you have to log in to access to this session."}


@pytest.mark.parametrize("session_id", ["undefined", "5e000000-0000-4000-8000-0000000000ff"])
async def test_unknown_sessions_are_404(client, tx, handlers, session_id):
    owner = await caller(tx, handlers, OWNER_ID)

    assert (await ask(client, session_id, owner)).status_code == 404


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 202), ("backend", 202), ("other", 404), ("anonymous", 404)],
)
async def test_a_users_archive_is_polled_by_that_user_only(client, tx, handlers, who, status):
    """The task id alone is no key to someone's archive (it also stands in access logs)."""
    session_id = await session_of(tx, handlers, OWNER_ID)
    owner = await caller(tx, handlers, OWNER_ID)
    users = {"owner": owner, "backend": await caller(tx, handlers, BACKEND_ID, ("backend",))}
    users["other"] = await caller(tx, handlers, OTHER_ID)
    task_id = (await ask(client, session_id, owner)).json()["task_id"]

    response = await client.get(f"/logs/{task_id}/on-ready/", headers=users.get(who, {}))

    assert response.status_code == status


async def test_an_archive_of_a_public_session_closes_when_the_session_does(client, tx, handlers):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    owner = await caller(tx, handlers, OWNER_ID)
    other = await caller(tx, handlers, OTHER_ID)
    anonymous_task = (await ask(client, session_id)).json()["task_id"]
    others_task = (await ask(client, session_id, other)).json()["task_id"]
    polls = {"anonymous": (anonymous_task, {}), "other": (others_task, other)}
    for task_id, headers in polls.values():
        assert (await client.get(f"/logs/{task_id}/on-ready/", headers=headers)).status_code == 202

    await deliver(tx, handlers, SessionUpdated(session_id=session_id, public=False))

    closed = {
        who: (await client.get(f"/logs/{task_id}/on-ready/", headers=headers)).status_code
        for who, (task_id, headers) in polls.items()
    }
    assert closed == {"anonymous": 401, "other": 404}
    owners_poll = await client.get(f"/logs/{anonymous_task}/on-ready/", headers=owner)
    assert owners_poll.status_code == 202


@pytest.mark.parametrize("task_id", ["not-a-task", "7a5c0000-0000-4000-8000-000000000000"])
async def test_polling_an_unknown_task_is_404(client, task_id):
    response = await client.get(f"/logs/{task_id}/on-ready/")

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


async def test_poll_answers_202_with_no_body_until_the_archive_is_ready(
    client, tx, handlers, storage, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    task_id = (await ask(client, session_id)).json()["task_id"]

    waiting = await client.get(f"/logs/{task_id}/on-ready/")
    await archives.build_next(in_savepoints(tx), storage, settings)
    ready = await client.get(f"/logs/{task_id}/on-ready/")

    assert (waiting.status_code, waiting.content) == (202, b"")
    assert ready.status_code == 200
    assert list(ready.json()) == ["url"] and "Signature=" in ready.json()["url"]


async def test_a_failing_build_is_retried_then_reported_so_the_poll_stops(
    client, tx, handlers, s3_settings, settings
):
    broken = Storage(S3Settings(**{**s3_settings.model_dump(), "s3_bucket": "no-such-bucket"}))
    settings = settings.model_copy(update={"archive_max_attempts": 2})
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    task_id = (await ask(client, session_id)).json()["task_id"]
    units = in_savepoints(tx)

    assert await archives.build_next(units, broken, settings)
    after_first = await client.get(f"/logs/{task_id}/on-ready/")
    assert await archives.build_next(units, broken, settings)
    after_second = await client.get(f"/logs/{task_id}/on-ready/")

    assert after_first.status_code == 202
    assert after_second.status_code == 410
    assert after_second.json() == {"detail": downloads.FAILED}
    assert not await archives.build_next(units, broken, settings)  # nothing left to build


async def test_a_build_whose_worker_died_is_claimed_again_after_its_lease(
    client, tx, handlers, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    task_id = (await ask(client, session_id)).json()["task_id"]
    units = in_savepoints(tx)
    dead = await archives.claim(units, settings)
    assert await archives.claim(units, settings) is None  # claimed, lease running

    task = await tx.get(Archive, dead.task_id)
    task.claimed_at = utcnow() - timedelta(seconds=settings.archive_lease_seconds + 1)
    again = await archives.claim(units, settings)

    assert (str(again.task_id), again.attempts, again.status) == (task_id, 2, "building")


async def test_a_build_whose_worker_died_on_every_attempt_is_reported_failed(
    client, tx, handlers, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    task_id = (await ask(client, session_id)).json()["task_id"]
    units = in_savepoints(tx)
    for _ in range(settings.archive_max_attempts):
        dead = await archives.claim(units, settings)
        task = await tx.get(Archive, dead.task_id)
        task.claimed_at = utcnow() - timedelta(seconds=settings.archive_lease_seconds + 1)

    assert await archives.claim(units, settings) is None
    response = await client.get(f"/logs/{task_id}/on-ready/")

    assert (response.status_code, response.json()) == (410, {"detail": downloads.FAILED})


async def test_archives_older_than_the_keep_time_are_deleted_with_their_objects(
    tx, handlers, storage, settings
):
    now, units = utcnow(), in_savepoints(tx)
    keys = [f"archives/OpenCapData_{uuid4()}.zip" for _ in range(2)]
    for key, age in zip(keys, (settings.archive_keep_days + 1, 0), strict=True):
        storage.put_bytes(key, b"PK", "application/zip")
        finished = now - timedelta(days=age)
        tx.add(Archive(task_id=uuid4(), session_id=uuid4(), status="ready", key=key,
                       attempts=1, created_at=finished, finished_at=finished))  # fmt: skip
    await tx.flush()

    assert await archives.remove_old_archives(units, storage, settings, now) == 1

    assert [t.key for t in (await tx.scalars(select(Archive))).all()] == [keys[1]]
    assert (storage.size(keys[0]), storage.size(keys[1])) == (None, 2)


def test_the_zip_is_uploaded_in_parts_as_it_is_written(storage):
    key, part = f"archives/parts-{uuid4()}.zip", 5 * 1024**2
    data = os.urandom(2 * part + 1000)
    sink = MultipartUpload(storage, key, part)

    for start in range(0, len(data), 1024**2):
        sink.write(data[start : start + 1024**2])
        assert len(sink.buffer) < part  # never more than one part held
    sink.complete()

    assert len(sink.parts) == 3
    assert storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read() == data


async def test_anyone_asking_again_gets_the_same_archive_task(
    client, tx, handlers, storage, settings
):
    """A public session's page reloaded, or a script: one build, not one per request."""
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)

    first = (await ask(client, session_id)).json()["task_id"]
    while_waiting = (await ask(client, session_id)).json()["task_id"]
    await archives.build_next(in_savepoints(tx), storage, settings)
    once_built = (await ask(client, session_id)).json()["task_id"]

    assert first == while_waiting == once_built
    assert len((await tx.scalars(select(Archive))).all()) == 1


async def test_anyone_gets_a_new_archive_once_the_last_one_is_old(
    client, tx, handlers, storage, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    first = (await ask(client, session_id)).json()["task_id"]
    await archives.build_next(in_savepoints(tx), storage, settings)
    task = await tx.get(Archive, first)
    task.finished_at = utcnow() - timedelta(seconds=settings.archive_reuse_seconds + 1)

    again = (await ask(client, session_id)).json()["task_id"]

    assert again != first


async def test_a_signed_in_caller_never_gets_an_anonymous_task(client, tx, handlers):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    anonymous = (await ask(client, session_id)).json()["task_id"]
    other = await caller(tx, handlers, OTHER_ID)

    signed_in = (await ask(client, session_id, other)).json()["task_id"]

    assert signed_in != anonymous
    assert (await tx.get(Archive, signed_in)).user_id == OTHER_ID


async def test_the_owner_asking_again_before_the_build_starts_gets_the_same_task(
    client, tx, handlers, storage, settings
):
    """Once built, the owner asks for what the session holds now: a new archive."""
    session_id = await session_of(tx, handlers, OWNER_ID)
    owner = await caller(tx, handlers, OWNER_ID)

    first = (await ask(client, session_id, owner)).json()["task_id"]
    again = (await ask(client, session_id, owner)).json()["task_id"]
    await archives.build_next(in_savepoints(tx), storage, settings)
    after_build = (await ask(client, session_id, owner)).json()["task_id"]

    assert first == again != after_build
