"""Test-only tables in the database `pytest_shared` (an outbox, a dedupe record, an
effect, copies of users and tokens) and a helper to read a queue. The shared library has
no tables of its own; these stand in for a service's, built with the same mixins and the
NOTIFY trigger its migrations use.
"""

import asyncio
from uuid import UUID

import aio_pika
import pytest
from sqlalchemy import BigInteger, Identity, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.identity import ApiTokenMixin, ApiUserMixin
from shared.messaging import ProcessedEventMixin
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox"


class ProcessedEvent(ProcessedEventMixin, Base):
    __tablename__ = "processed_events"


class ApiToken(ApiTokenMixin, Base):
    __tablename__ = "api_tokens"


class ApiUser(ApiUserMixin, Base):
    __tablename__ = "api_users"


class Effect(Base):
    """What a test handler writes about the trial of the event it handles."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    trial_id: Mapped[UUID]
    note: Mapped[str] = mapped_column(String(64))


async def next_message(
    queue: aio_pika.abc.AbstractQueue, timeout: float = 20.0
) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of `queue`, acknowledged; fails the test if none comes in `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    pytest.fail(f"no message arrived on {queue.name!r} within {timeout} s")
