"""A subject's archive (the web app's Subjects page, "Download"): every session of the
subject, each in its own `OpenCapData_<session>/` folder inside
`OpenCapData_Subject_<id>/`, for the owner of the subject's sessions (admins and the
pipeline too), polled like a session's."""

import io
import zipfile
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import select

from results_service import archives
from results_service.models import Archive
from shared.events import ProcessingCompleted, ResultFile, SessionDeleted
from tests.results.conftest import (
    ADMIN_ID,
    BACKEND_ID,
    OTHER_ID,
    OWNER_ID,
    caller,
    deliver,
    in_savepoints,
    session_of,
    stored,
    trial_in,
)

SUBJECT = 31


async def session_with_trial(tx, handlers, storage, subject_id, user_id=OWNER_ID):
    session_id = await session_of(tx, handlers, user_id, subject_id=subject_id)
    trial_id = await trial_in(tx, handlers, session_id, "walk")
    files = [ResultFile(tag="marker_data", key=stored(storage, "walk.trc", b"markers"))]
    job = ProcessingCompleted(job_id=uuid4(), trial_id=trial_id, worker="w", results=files)
    await deliver(tx, handlers, job)
    return session_id


def ask(client, subject_id, headers=None):
    return client.get(f"/subjects/{subject_id}/async-download/", headers=headers or {})


async def downloaded(client, tx, storage, settings, headers) -> zipfile.ZipFile:
    task_id = (await ask(client, SUBJECT, headers)).json()["task_id"]
    assert await archives.build_next(in_savepoints(tx), storage, settings)
    ready = await client.get(f"/logs/{task_id}/on-ready/", headers=headers)
    assert ready.status_code == 200, ready.text
    async with httpx.AsyncClient() as s3:
        return zipfile.ZipFile(io.BytesIO((await s3.get(ready.json()["url"])).content))


async def test_the_subject_archive_wraps_each_of_its_sessions_archives(
    client, tx, handlers, storage, settings
):
    sessions = [await session_with_trial(tx, handlers, storage, SUBJECT) for _ in range(2)]
    await session_with_trial(tx, handlers, storage, SUBJECT + 1)  # another subject's
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await downloaded(client, tx, storage, settings, owner)

    root = f"OpenCapData_Subject_{SUBJECT}"
    assert sorted(archive.namelist()) == sorted(
        f"{root}/OpenCapData_{session_id}/{path}"
        for session_id in sessions
        for path in ("MarkerData/walk.trc", "Videos/mappingCamDevice.pickle", "README.txt")
    )
    assert archive.read(f"{root}/OpenCapData_{sessions[0]}/MarkerData/walk.trc") == b"markers"
    [task] = (await tx.scalars(select(Archive))).all()
    assert task.key.startswith(f"archives/{root}_") and task.key.endswith(".zip")


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("backend", 200), ("admin", 200), ("other", 404), ("anonymous", 403)],
)
async def test_who_may_download_a_subject(client, tx, handlers, storage, who, status):
    await session_with_trial(tx, handlers, storage, SUBJECT)
    users = {
        "owner": (OWNER_ID, ()),
        "backend": (BACKEND_ID, ("backend",)),
        "admin": (ADMIN_ID, ("admin",)),
        "other": (OTHER_ID, ()),
    }
    headers = await caller(tx, handlers, *users[who]) if who in users else {}

    response = await ask(client, SUBJECT, headers)

    assert response.status_code == status
    if status == 200:
        assert list(response.json()) == ["task_id"]
    if who == "anonymous":
        assert response.json() == {"detail": "Authentication credentials were not provided."}


async def test_an_owner_before_the_code_step_cannot_download_a_subject(
    client, tx, handlers, storage
):
    await session_with_trial(tx, handlers, storage, SUBJECT)
    owner = await caller(tx, handlers, OWNER_ID, verified=False)

    response = await ask(client, SUBJECT, owner)

    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


async def test_an_admin_gets_every_session_of_the_subject(client, tx, handlers, storage, settings):
    first = await session_with_trial(tx, handlers, storage, SUBJECT)
    admin = await caller(tx, handlers, ADMIN_ID, ("admin",))

    archive = await downloaded(client, tx, storage, settings, admin)

    assert {name.split("/")[1] for name in archive.namelist()} == {f"OpenCapData_{first}"}


async def test_only_the_callers_own_sessions_of_a_subject_are_in_their_archive(
    client, tx, handlers, storage, settings
):
    """Should a session of another user ever name the same subject, it stays out."""
    mine = await session_with_trial(tx, handlers, storage, SUBJECT)
    await session_with_trial(tx, handlers, storage, SUBJECT, user_id=OTHER_ID)
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await downloaded(client, tx, storage, settings, owner)

    assert {name.split("/")[1] for name in archive.namelist()} == {f"OpenCapData_{mine}"}


@pytest.mark.parametrize("subject_id", ["999", "abc", "99999999999", "-1"])
async def test_unknown_or_malformed_subjects_are_404(client, tx, handlers, subject_id):
    owner = await caller(tx, handlers, OWNER_ID)

    response = await ask(client, subject_id, owner)

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


async def test_a_built_subject_archive_goes_when_one_of_its_sessions_is_deleted(
    client, tx, handlers, storage, settings
):
    session_id = await session_with_trial(tx, handlers, storage, SUBJECT)
    owner = await caller(tx, handlers, OWNER_ID)
    await downloaded(client, tx, storage, settings, owner)
    [task] = (await tx.scalars(select(Archive))).all()

    await deliver(tx, handlers, SessionDeleted(session_id=session_id))

    assert (await tx.scalars(select(Archive))).all() == []
    assert storage.size(task.key) is None
    assert (await ask(client, SUBJECT, owner)).status_code == 404
