"""Fixtures of the device service's tests: its migrated database, its app, seeded sessions.

Events are delivered the way production does it: to the database through the worker's
handlers and, when a read model is given, to an API replica's memory.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from device_service import consumers
from device_service.config import Settings
from device_service.main import create_app
from device_service.read_model import ReadModel
from shared.config import S3Settings
from shared.db import utcnow
from shared.events import (
    Envelope,
    Event,
    SessionCreated,
    TokenIssued,
    TrialStarted,
    TrialStopped,
    UserUpdated,
)
from shared.identity import token_hash
from tests.conftest import api_client, database_for, migrated_engine, rolled_back

PUBLIC_URL = "https://api.example.org"
OWNER_ID = 1  # of the sessions `create_session` makes


@pytest.fixture(scope="session")
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(postgres_url, "device")
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
        database_url=f"{postgres_url}/{database_for('device')}",
        public_url=PUBLIC_URL,
        log_json=False,
    )


@asynccontextmanager
async def savepoint(tx: AsyncSession) -> AsyncIterator[AsyncSession]:
    async with tx.begin_nested():
        yield tx


@pytest.fixture
def app(settings: Settings, tx: AsyncSession) -> FastAPI:
    """The app, its read model's database work done inside the test's transaction."""
    app = create_app(settings)
    app.state.read_model.transaction = lambda: savepoint(tx)
    return app


@pytest.fixture
def read_model(app: FastAPI) -> ReadModel:
    return app.state.read_model


@pytest.fixture
async def client(app: FastAPI, tx: AsyncSession):
    async with api_client(app, tx) as client:
        yield client


def envelope_of(event: Event, occurred_at=None) -> Envelope:
    return Envelope.wrap(
        event, producer="test", occurred_at=occurred_at or utcnow(), correlation_id=None
    )


async def deliver(tx: AsyncSession, event: Event, read_model: ReadModel | None = None) -> None:
    """`event` as the worker handles it and, with `read_model`, as a replica hears it."""
    await consumers.HANDLERS[type(event)](tx, event)
    if read_model is not None:
        read_model.apply(envelope_of(event), event)


def identity_events(
    user_id: int, groups: tuple[str, ...] = (), verified: bool = True
) -> tuple[list[Event], dict[str, str]]:
    """What the session service tells of a user who logged in; their auth header.
    `verified=False`: logged in, the e-mailed code not entered yet."""
    token = f"token-of-user-{user_id}"
    events = [
        UserUpdated(user_id=user_id, groups=list(groups), verified=verified),
        TokenIssued(key_hash=token_hash(token), user_id=user_id),
    ]
    return events, {"Authorization": f"Token {token}"}


async def signed_in(tx: AsyncSession, user_id: int = OWNER_ID, **kwargs) -> dict[str, str]:
    """A caller this service learned of from the session service's events; their header."""
    events, header = identity_events(user_id, **kwargs)
    for event in events:
        await deliver(tx, event)
    return header


@pytest.fixture
async def as_owner(tx: AsyncSession) -> dict[str, str]:
    return await signed_in(tx)


async def create_session(
    tx: AsyncSession, framerate: int = 60, read_model: ReadModel | None = None
) -> UUID:
    """A session as the device service learns it: from `session.created`."""
    session_id = uuid4()
    event = SessionCreated(session_id=session_id, user_id=OWNER_ID, framerate=framerate)
    await deliver(tx, event, read_model)
    return session_id


async def start_trial(
    tx: AsyncSession,
    session_id: UUID,
    name: str = "walk",
    age: int = 0,
    read_model: ReadModel | None = None,
) -> UUID:
    """A trial that began recording `age` seconds ago (older trials are not the latest)."""
    return await start_trial_with_id(tx, session_id, uuid4(), name, age, read_model)


async def start_trial_with_id(
    tx: AsyncSession,
    session_id: UUID,
    trial_id: UUID,
    name: str = "walk",
    age: int = 0,
    read_model: ReadModel | None = None,
) -> UUID:
    started = utcnow() - timedelta(seconds=age)
    event = TrialStarted(trial_id=trial_id, session_id=session_id, name=name, created_at=started)
    await deliver(tx, event, read_model)
    return trial_id


async def stop_trial(
    tx: AsyncSession, session_id: UUID, trial_id: UUID, read_model: ReadModel | None = None
) -> None:
    await deliver(tx, TrialStopped(trial_id=trial_id, session_id=session_id), read_model)
