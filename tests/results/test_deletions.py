"""Deleted sessions and trials (`session.deleted`, `trial.deleted`): their results, what this
service knew of them and their archives go, with the stored objects; a deleted session is no
longer downloadable; events about them that arrive late change nothing."""

from uuid import UUID, uuid4

from sqlalchemy import func, select

from results_service import archives
from results_service.consumers import make_handlers
from results_service.models import Archive, KnownSession, KnownTrial, KnownVideo, Result
from shared.config import S3Settings
from shared.events import (
    ProcessingCompleted,
    ResultFile,
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TrialDeleted,
    TrialStarted,
)
from shared.storage import Storage
from tests.results.conftest import (
    OWNER_ID,
    T0,
    caller,
    deliver,
    in_savepoints,
    session_of,
    stored,
    trial_in,
    uploaded_video,
)


async def processed_trial(tx, handlers, storage, session_id: UUID, name: str) -> list[str]:
    """A trial with a video and two results; the results' object keys."""
    trial_id = await trial_in(tx, handlers, session_id, name)
    await uploaded_video(tx, handlers, storage, session_id, trial_id)
    keys = [stored(storage, f"{name}.trc"), stored(storage, f"{name}.mot")]
    files = [ResultFile(tag="marker_data", key=keys[0]), ResultFile(tag="ik_results", key=keys[1])]
    await deliver(tx, handlers, completion(trial_id, files))
    return keys


def completion(trial_id: UUID, files: list[ResultFile]) -> ProcessingCompleted:
    return ProcessingCompleted(job_id=uuid4(), trial_id=trial_id, worker="w", results=files)


async def built_archive(client, tx, storage, settings, session_id, headers) -> str:
    asked = await client.get(f"/sessions/{session_id}/async-download/", headers=headers)
    await archives.build_next(in_savepoints(tx), storage, settings)
    return (await tx.get(Archive, asked.json()["task_id"])).key


async def count(tx, model, *where) -> int:
    return await tx.scalar(select(func.count()).select_from(model).where(*where))


async def trial_of(tx, session_id: UUID) -> UUID:
    return await tx.scalar(select(KnownTrial.id).where(KnownTrial.session_id == session_id))


async def test_a_deleted_session_leaves_nothing_behind_here_or_in_storage(
    client, tx, handlers, storage, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID)
    keys = await processed_trial(tx, handlers, storage, session_id, "walk")
    owner = await caller(tx, handlers, OWNER_ID)
    archive_key = await built_archive(client, tx, storage, settings, session_id, owner)
    trial_id = await trial_of(tx, session_id)

    deleted = SessionDeleted(session_id=session_id)
    await deliver(tx, handlers, deleted, deleted)

    assert await tx.get(KnownSession, session_id) is None
    assert await count(tx, KnownTrial, KnownTrial.session_id == session_id) == 0
    assert await count(tx, KnownVideo, KnownVideo.trial_id == trial_id) == 0
    assert await count(tx, Result, Result.trial_id == trial_id) == 0
    assert await count(tx, Archive, Archive.session_id == session_id) == 0
    assert [storage.size(key) for key in [*keys, archive_key]] == [None, None, None]


async def test_a_deleted_sessions_download_is_404(client, tx, handlers):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    owner = await caller(tx, handlers, OWNER_ID)

    await deliver(tx, handlers, SessionDeleted(session_id=session_id))

    for headers in (owner, {}):
        response = await client.get(f"/sessions/{session_id}/async-download/", headers=headers)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


async def test_a_deleted_trial_takes_its_results_and_the_sessions_built_archives(
    client, tx, handlers, storage, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID)
    gone = await processed_trial(tx, handlers, storage, session_id, "walk")
    trial_id = await trial_of(tx, session_id)
    kept = await processed_trial(tx, handlers, storage, session_id, "run")
    owner = await caller(tx, handlers, OWNER_ID)
    archive_key = await built_archive(client, tx, storage, settings, session_id, owner)

    await deliver(tx, handlers, TrialDeleted(trial_id=trial_id, session_id=session_id))

    assert await tx.get(KnownTrial, trial_id) is None
    assert await count(tx, KnownVideo, KnownVideo.trial_id == trial_id) == 0
    remaining = (await tx.scalars(select(Result.key).order_by(Result.id))).all()
    assert remaining == kept
    assert [storage.size(key) for key in [*gone, archive_key]] == [None, None, None]
    assert [storage.size(key) for key in kept] == [4, 4]
    assert await tx.get(KnownSession, session_id) is not None


async def test_a_job_finishing_after_its_trial_was_deleted_records_nothing(tx, handlers, storage):
    session_id = await session_of(tx, handlers, OWNER_ID)
    trial_id = await trial_in(tx, handlers, session_id, "walk")
    await deliver(tx, handlers, TrialDeleted(trial_id=trial_id, session_id=session_id))
    key = stored(storage, "walk.trc")

    await deliver(tx, handlers, completion(trial_id, [ResultFile(tag="marker_data", key=key)]))

    assert await count(tx, Result) == 0
    assert storage.size(key) is None  # nobody would ever delete it otherwise


async def test_late_events_do_not_bring_a_deleted_session_back(client, tx, handlers):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    trial_id = await trial_in(tx, handlers, session_id, "walk")
    await deliver(tx, handlers, SessionDeleted(session_id=session_id))

    await deliver(
        tx,
        handlers,
        SessionCreated(session_id=session_id, user_id=OWNER_ID),
        SessionUpdated(session_id=session_id, public=True),
        TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=T0),
    )

    assert await tx.get(KnownSession, session_id) is None
    assert await tx.get(KnownTrial, trial_id) is None
    response = await client.get(f"/sessions/{session_id}/async-download/")
    assert response.status_code == 404


async def test_an_archive_built_while_its_session_was_deleted_is_not_kept(
    client, tx, handlers, storage, settings
):
    session_id = await session_of(tx, handlers, OWNER_ID, public=True)
    await client.get(f"/sessions/{session_id}/async-download/")
    units = in_savepoints(tx)
    task = await archives.claim(units, settings)

    await deliver(tx, handlers, SessionDeleted(session_id=session_id))
    key = await archives.build_archive(units, storage, settings, task)
    await archives.finish(units, storage, task, settings, key, None)

    assert storage.size(key) is None
    assert await count(tx, Archive) == 0


async def test_storage_failing_does_not_keep_a_deleted_session(tx, handlers, storage, s3_settings):
    session_id = await session_of(tx, handlers, OWNER_ID)
    await processed_trial(tx, handlers, storage, session_id, "walk")
    broken = Storage(S3Settings(**{**s3_settings.model_dump(), "s3_bucket": "no-such-bucket"}))
    on_deleted = make_handlers(broken)[SessionDeleted]

    await on_deleted(tx, SessionDeleted(session_id=session_id))

    assert await tx.get(KnownSession, session_id) is None
    assert await count(tx, Result) == 0
