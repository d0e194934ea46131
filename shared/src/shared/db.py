"""Database plumbing: engines, the per-request transaction, naming conventions, the clock.

One HTTP request or one consumed message is one transaction. Use cases receive the open
`AsyncSession` as `tx` and never commit; whoever opened the transaction commits it.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(url: str, **kwargs) -> AsyncEngine:
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_async_engine(url, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's transaction, committed before the response is sent."""
    db: async_sessionmaker[AsyncSession] = request.app.state.db
    async with db() as tx, tx.begin():
        yield tx


Tx = Annotated[AsyncSession, Depends(transaction, scope="function")]

# Short transactions, one per `async with units() as tx:`, for work that must not hold one
# open for long (a streaming upload, a periodic job's batches, an archive being built).
Units = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def transactions(db: async_sessionmaker[AsyncSession]) -> Units:
    @asynccontextmanager
    async def unit() -> AsyncIterator[AsyncSession]:
        async with db() as tx, tx.begin():
            yield tx

    return unit


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
