"""Phones uploading at the same time, more of them than the process has part buffers: every
video arrives whole, each in its own object. These tests commit (each request in its own
transactions, as in production) and delete their rows at the end."""

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, create_sessionmaker
from tests.conftest import api_client
from tests.upload.conftest import joined_trial, post_upload, presign
from upload_service.config import Settings
from upload_service.main import create_app
from upload_service.models import Outbox, UploadKey, UploadTrial, Video

MiB = 1024**2
PHONES = 5


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator:
    """The app with two 5 MiB part buffers, on its own engine (ASGITransport skips the
    lifespan)."""
    lean = settings.model_copy(
        update={"upload_part_bytes": 5 * MiB, "upload_buffers": 2, "upload_parts_in_flight": 2}
    )
    app = create_app(lean)
    app.state.engine = create_engine(lean.database_url)
    app.state.db = create_sessionmaker(app.state.engine)
    yield app
    app.state.streamer.shutdown()
    await app.state.engine.dispose()


@pytest.fixture
async def phones(app) -> AsyncIterator[tuple[httpx.AsyncClient, list]]:
    """A client and a committed trial with PHONES phones; its rows are deleted afterwards."""
    async with app.state.db() as tx, tx.begin():
        trial = await joined_trial(tx, phones=PHONES)
    async with api_client(app) as client:
        yield client, trial
    async with app.state.db() as tx, tx.begin():
        await tx.execute(delete(Video).where(Video.session_id == trial.session_id))
        await tx.execute(delete(UploadTrial).where(UploadTrial.session_id == trial.session_id))
        await tx.execute(delete(UploadKey).where(UploadKey.session_id == trial.session_id))
        of_session = Outbox.body["data"]["session_id"].astext == str(trial.session_id)
        await tx.execute(delete(Outbox).where(of_session))


async def test_more_phones_than_buffers_all_upload_their_whole_video(app, phones, storage):
    client, trial = phones
    presigned = [await presign(client, trial.session_id) for _ in range(PHONES)]
    videos = [os.urandom(11 * MiB + n) for n in range(PHONES)]

    responses = await asyncio.gather(
        *(post_upload(client, p, video) for p, video in zip(presigned, videos, strict=True))
    )

    assert [r.status_code for r in responses] == [204] * PHONES
    for p, video in zip(presigned, videos, strict=True):
        body = storage.client.get_object(Bucket=storage.bucket, Key=p["fields"]["key"])["Body"]
        assert body.read() == video
    assert app.state.streamer.buffers.lent == 0  # every buffer went back to the pool


async def test_one_oversized_upload_among_good_ones_fails_alone(app, phones, storage):
    client, trial = phones
    app.state.settings.max_video_bytes = 12 * MiB
    presigned = [await presign(client, trial.session_id) for _ in range(3)]
    sizes = [11 * MiB, 12 * MiB + 100_000, 11 * MiB]  # the limit is found while streaming

    responses = await asyncio.gather(
        *(post_upload(client, p, b"v" * n) for p, n in zip(presigned, sizes, strict=True))
    )

    assert [r.status_code for r in responses] == [204, 413, 204]
    keys = [p["fields"]["key"] for p in presigned]
    assert [storage.size(key) for key in keys] == [11 * MiB, None, 11 * MiB]
    assert app.state.streamer.buffers.lent == 0
