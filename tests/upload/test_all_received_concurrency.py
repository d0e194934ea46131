"""All-videos-received exactly once when the last uploads and the final camera set race.
These tests commit (each request and each event in its own transaction, as in
production) and delete their rows at the end."""

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, create_sessionmaker
from tests.conftest import api_client, until_a_query_waits_on_a_lock
from tests.upload.conftest import PARAMETERS, Trial, joined_trial, patch, uploaded_key
from upload_service import consumers, service
from upload_service.config import Settings
from upload_service.main import create_app
from upload_service.models import Outbox, UploadKey, UploadTrial, Video
from upload_service.schemas import VideoPatch


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator:
    """The app with its own engine on the test database (ASGITransport skips the lifespan)."""
    app = create_app(settings)
    app.state.engine = create_engine(settings.database_url)
    app.state.db = create_sessionmaker(app.state.engine)
    app.state.session_ids = []
    yield app
    async with app.state.db() as tx, tx.begin():
        for session_id in app.state.session_ids:
            await _delete_session(tx, session_id)
    await app.state.engine.dispose()


async def _delete_session(tx, session_id: UUID) -> None:
    await tx.execute(delete(Video).where(Video.session_id == session_id))
    await tx.execute(delete(UploadTrial).where(UploadTrial.session_id == session_id))
    await tx.execute(delete(UploadKey).where(UploadKey.session_id == session_id))
    of_session = Outbox.body["data"]["session_id"].astext == str(session_id)
    await tx.execute(delete(Outbox).where(of_session))


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as client:
        yield client


@pytest.fixture
async def uploaded(app, client) -> tuple[Trial, dict[UUID, str]]:
    """A committed trial two phones joined, each with its video uploaded but not PATCHed."""
    async with app.state.db() as tx, tx.begin():
        trial = await joined_trial(tx, phones=2)
    app.state.session_ids.append(trial.session_id)
    keys = {c.video_id: await uploaded_key(client, trial.session_id) for c in trial.cameras}
    return trial, keys


async def announcements(app, trial: Trial) -> list[dict]:
    async with app.state.db() as tx:
        stmt = select(Outbox.body).where(
            Outbox.routing_key == "trial.videos_received",
            Outbox.body["data"]["trial_id"].astext == str(trial.trial_id),
        )
        return [body["data"] for body in (await tx.scalars(stmt)).all()]


def every_video(trial: Trial, keys: dict[UUID, str]) -> set[tuple[str, str]]:
    return {(str(video_id), key) for video_id, key in keys.items()}


def listed(event: dict) -> set[tuple[str, str]]:
    return {(v["video_id"], v["key"]) for v in event["videos"]}


async def final_set(app, trial: Trial) -> None:
    async with app.state.db() as tx, tx.begin():
        await consumers.on_cameras_final(tx, trial.final)


async def attach(app, tx, video_id: UUID, key: str) -> None:
    """The PATCH's use case, in a transaction the test holds open."""
    patch = VideoPatch(video_url=key, parameters=PARAMETERS)
    await service.attach_video(tx, video_id, patch, app.state.storage, app.state.settings)


async def patch_ok(client, video_id: UUID, key: str) -> None:
    response = await patch(client, video_id, json={"video_url": key, "parameters": PARAMETERS})
    assert response.status_code == 200, response.text


async def test_last_two_uploads_at_once_announce_once(app, client, uploaded):
    trial, keys = uploaded
    await final_set(app, trial)

    await asyncio.gather(*(patch_ok(client, video_id, key) for video_id, key in keys.items()))

    [event] = await announcements(app, trial)
    assert listed(event) == every_video(trial, keys)


async def test_upload_waiting_on_another_upload_sees_it_and_announces(app, client, uploaded):
    trial, keys = uploaded
    await final_set(app, trial)
    (first, first_key), (second, second_key) = keys.items()
    async with app.state.db() as tx:
        await tx.begin()
        await attach(app, tx, first, first_key)
        racing = asyncio.create_task(patch_ok(client, second, second_key))
        await until_a_query_waits_on_a_lock(app.state.engine, racing)
        await tx.commit()
    await racing

    [event] = await announcements(app, trial)
    assert listed(event) == every_video(trial, keys)


async def test_final_set_racing_the_last_upload_announces_once(app, client, uploaded):
    trial, keys = uploaded
    (first, first_key), (last, last_key) = keys.items()
    await patch_ok(client, first, first_key)

    await asyncio.gather(final_set(app, trial), patch_ok(client, last, last_key))

    [event] = await announcements(app, trial)
    assert listed(event) == every_video(trial, keys)


async def test_final_set_waiting_on_the_last_upload_announces(app, client, uploaded):
    trial, keys = uploaded
    (first, first_key), (last, last_key) = keys.items()
    await patch_ok(client, first, first_key)
    async with app.state.db() as tx:
        await tx.begin()
        await attach(app, tx, last, last_key)
        racing = asyncio.create_task(final_set(app, trial))
        await until_a_query_waits_on_a_lock(app.state.engine, racing)
        await tx.commit()
    await racing

    [event] = await announcements(app, trial)
    assert listed(event) == every_video(trial, keys)


async def test_last_upload_waiting_on_the_final_set_announces(app, client, uploaded):
    trial, keys = uploaded
    (first, first_key), (last, last_key) = keys.items()
    await patch_ok(client, first, first_key)
    async with app.state.db() as tx:
        await tx.begin()
        await consumers.on_cameras_final(tx, trial.final)
        racing = asyncio.create_task(patch_ok(client, last, last_key))
        await until_a_query_waits_on_a_lock(app.state.engine, racing)
        await tx.commit()
    await racing

    [event] = await announcements(app, trial)
    assert listed(event) == every_video(trial, keys)


async def test_one_key_patched_onto_two_trials_videos_at_once_goes_to_one(app, client, uploaded):
    trial, keys = uploaded
    (first, key), _ = keys.items()
    async with app.state.db() as tx, tx.begin():
        next_trial = await joined_trial(tx, phones=1, session_id=trial.session_id)
    other = next_trial.cameras[0].video_id
    async with app.state.db() as tx:
        await tx.begin()
        await attach(app, tx, first, key)
        racing = asyncio.create_task(patch(client, other, json={"video_url": key}))
        await until_a_query_waits_on_a_lock(app.state.engine, racing)
        await tx.commit()

    assert (await racing).status_code == 409
    async with app.state.db() as tx:
        holders = (await tx.scalars(select(Video.id).where(Video.key == key))).all()
    assert holders == [first]
