"""Fixtures of the device service's tests: its migrated database, its app, seeded sessions."""

from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from device_service import consumers
from device_service.config import Settings
from device_service.main import create_app
from shared.config import S3Settings
from shared.db import utcnow
from shared.events import SessionCreated, TrialStarted
from tests.conftest import api_client, migrated_engine, rolled_back

PUBLIC_URL = "https://api.example.org"


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
        database_url=f"{postgres_url}/pytest_device",
        public_url=PUBLIC_URL,
        log_json=False,
    )


@pytest.fixture
async def client(settings: Settings, tx: AsyncSession):
    async with api_client(create_app(settings), tx) as client:
        yield client


async def create_session(tx: AsyncSession, framerate: int = 60) -> UUID:
    """A session as the device service learns it: from `session.created`."""
    session_id = uuid4()
    event = SessionCreated(session_id=session_id, user_id=1, framerate=framerate)
    await consumers.on_session_created(tx, event)
    return session_id


async def start_trial(tx: AsyncSession, session_id: UUID, name: str = "walk", age: int = 0) -> UUID:
    """A trial that began recording `age` seconds ago (older trials are not the latest)."""
    return await start_trial_with_id(tx, session_id, uuid4(), name, age)


async def start_trial_with_id(
    tx: AsyncSession, session_id: UUID, trial_id: UUID, name: str = "walk", age: int = 0
) -> UUID:
    started = utcnow() - timedelta(seconds=age)
    event = TrialStarted(trial_id=trial_id, session_id=session_id, name=name, created_at=started)
    await consumers.on_trial_started(tx, event)
    return trial_id
