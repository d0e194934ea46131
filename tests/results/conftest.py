"""Fixtures of the results service's tests: its migrated database and a rolled-back `tx`, its
app on a real S3 endpoint, and what the service learns from events (callers, sessions,
trials, videos), delivered through its own handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from results_service.config import Settings
from results_service.consumers import make_handlers
from results_service.main import create_app
from results_service.models import Outbox
from shared.config import S3Settings
from shared.events import (
    Envelope,
    Event,
    SessionCreated,
    SessionUpdated,
    TokenIssued,
    TrialStarted,
    UserUpdated,
    VideoUploaded,
    decode,
)
from shared.identity import token_hash
from shared.storage import Storage
from tests.conftest import api_client, database_for, migrated_engine, rolled_back

OWNER_ID, OTHER_ID, BACKEND_ID, ADMIN_ID = 11, 12, 2, 1
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(postgres_url, "results")
    yield engine
    await engine.dispose()


@pytest.fixture
async def tx(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with rolled_back(engine) as tx:
        yield tx


@pytest.fixture
def settings(s3_settings: S3Settings, postgres_url: str) -> Settings:
    return Settings(
        **s3_settings.model_dump(),
        database_url=f"{postgres_url}/{database_for('results')}",
        log_json=False,
    )


@pytest.fixture
def handlers(storage: Storage) -> dict:
    return make_handlers(storage)


@pytest.fixture
async def backend(tx: AsyncSession, handlers: dict) -> dict:
    """The processing pipeline's auth header (a user of the `backend` group)."""
    return await caller(tx, handlers, BACKEND_ID, ("backend",))


@pytest.fixture
async def client(settings: Settings, tx: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(settings), tx) as client:
        yield client


def in_savepoints(tx: AsyncSession):
    """The worker's transactions as savepoints of the test's transaction."""

    @asynccontextmanager
    async def unit() -> AsyncIterator[AsyncSession]:
        async with tx.begin_nested():
            yield tx

    return unit


async def deliver(tx: AsyncSession, handlers: dict, *events: Event) -> None:
    for event in events:
        await handlers[type(event)](tx, event)


async def caller(
    tx: AsyncSession,
    handlers: dict,
    user_id: int,
    groups: tuple[str, ...] = (),
    verified: bool = True,
) -> dict:
    """A user known from the session service's identity events (`verified`: past the
    e-mail code step); their auth header."""
    token = f"token-of-user-{user_id}"
    await deliver(
        tx,
        handlers,
        UserUpdated(user_id=user_id, groups=list(groups), verified=verified),
        TokenIssued(key_hash=token_hash(token), user_id=user_id),
    )
    return {"Authorization": f"Token {token}"}


async def session_of(tx: AsyncSession, handlers: dict, user_id: int = OWNER_ID, **updated) -> UUID:
    """A session `user_id` created (`session.created`, and `session.updated` if given)."""
    session_id = uuid4()
    await deliver(tx, handlers, SessionCreated(session_id=session_id, user_id=user_id))
    if updated:
        await deliver(tx, handlers, SessionUpdated(session_id=session_id, **updated))
    return session_id


async def trial_in(
    tx: AsyncSession, handlers: dict, session_id: UUID, name: str, minute: int = 0
) -> UUID:
    trial_id = uuid4()
    started = TrialStarted(
        trial_id=trial_id,
        session_id=session_id,
        name=name,
        created_at=T0 + timedelta(minutes=minute),
    )
    await deliver(tx, handlers, started)
    return trial_id


def stored(storage: Storage, file_name: str, data: bytes = b"data") -> str:
    """An object as the pipeline uploads it through a presign: key `<uuid4>-<fileName>`."""
    key = f"{uuid4()}-{file_name}"
    storage.put_bytes(key, data, "application/octet-stream")
    return key


async def uploaded_video(
    tx: AsyncSession,
    handlers: dict,
    storage: Storage,
    session_id: UUID,
    trial_id: UUID,
    device_id: UUID | None = None,
) -> VideoUploaded:
    key = f"{uuid4()}.mov"
    storage.put_bytes(key, b"\x00\x00\x00\x14ftypqt  video of " + key.encode(), "video/quicktime")
    event = VideoUploaded(
        video_id=uuid4(),
        trial_id=trial_id,
        session_id=session_id,
        device_id=device_id or uuid4(),
        key=key,
        size=10,
    )
    await deliver(tx, handlers, event)
    return event


async def outbox_events(tx: AsyncSession) -> list[Event]:
    rows = (await tx.scalars(select(Outbox).order_by(Outbox.id))).all()
    return [decode(Envelope.model_validate(row.body)) for row in rows]
