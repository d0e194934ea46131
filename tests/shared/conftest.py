"""Fixtures of the shared library's tests: a database `pytest_shared` with test-only
tables (see support.py) and a RabbitMQ connection on the run's own vhost."""

from collections.abc import AsyncIterator

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, create_sessionmaker
from shared.migrations import create_database
from shared.outbox import OUTBOX_TRIGGER_SQL
from tests.conftest import database_for
from tests.shared.support import Base

DATABASE = database_for("shared")


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> str:
    return f"{postgres_url}/{DATABASE}"


@pytest.fixture(scope="session")
async def engine(postgres_url: str, database_url: str) -> AsyncIterator[AsyncEngine]:
    admin = create_engine(f"{postgres_url}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    await admin.dispose()
    await create_database(database_url)
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        for statement in OUTBOX_TRIGGER_SQL:
            await conn.execute(text(statement))
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker on empty tables (these tests commit, so nothing is rolled back)."""
    async with engine.begin() as conn:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables}"))
    return create_sessionmaker(engine)


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()
