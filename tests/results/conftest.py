"""Fixtures of the results service's tests: its migrated database and a rolled-back `tx`."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.conftest import migrated_engine, rolled_back


@pytest.fixture(scope="session")
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(postgres_url, "results")
    yield engine
    await engine.dispose()


@pytest.fixture
async def tx(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with rolled_back(engine) as tx:
        yield tx
