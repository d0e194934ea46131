"""Transactional outbox and idempotent-consumer bookkeeping.

A use case calls `record(tx, Outbox, event)`: the event row is written in the same
transaction as the state change, so it exists if and only if the change committed. The
worker's `relay` publishes pending rows with publisher confirms and deletes them; a
PostgreSQL NOTIFY (from a trigger, see `OUTBOX_TRIGGER_SQL`) wakes it within
milliseconds, and a poll catches anything the wake-up missed. Delivery is at least once;
consumers deduplicate on the event id (`shared.messaging`).
"""

import asyncio
import contextlib
import json
from datetime import datetime
from uuid import UUID

import aio_pika
import asyncpg
import structlog
from sqlalchemy import BigInteger, DateTime, Identity, String, delete, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import utcnow
from shared.events import EVENTS_EXCHANGE, Envelope, Event
from shared.logging import current_correlation_id
from shared.messaging import publish
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED

log = structlog.get_logger()

NOTIFY_CHANNEL = "outbox"
# The relay's wake-up: every insert into a service's outbox table notifies the channel.
OUTBOX_TRIGGER_SQL = [
    """
    CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger AS $$
    BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()
    """,
]
DROP_OUTBOX_TRIGGER_SQL = [
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "DROP FUNCTION IF EXISTS outbox_notify()",
]


class OutboxMixin:
    """Columns of a service's `outbox` table."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[UUID]
    exchange: Mapped[str] = mapped_column(String(64))
    routing_key: Mapped[str] = mapped_column(String(128))
    body: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def record(
    tx: AsyncSession,
    outbox: type[OutboxMixin],
    event: Event,
    *,
    producer: str,
    exchange: str = EVENTS_EXCHANGE,
    routing_key: str | None = None,
    priority: int | None = None,
) -> Envelope:
    """Add `event` to the outbox in the caller's transaction; returns its envelope.

    `priority` (an AMQP message priority, for priority queues) needs a `priority` column,
    which only an outbox that publishes such messages has."""
    envelope = Envelope.wrap(
        event, producer=producer, occurred_at=utcnow(), correlation_id=current_correlation_id()
    )
    row = outbox(
        event_id=envelope.id,
        exchange=exchange,
        routing_key=routing_key or event.type,
        body=envelope.model_dump(mode="json"),
        created_at=envelope.occurred_at,
    )
    if priority is not None:
        row.priority = priority
    tx.add(row)
    return envelope


async def publish_pending(
    db: async_sessionmaker[AsyncSession],
    outbox: type[OutboxMixin],
    channel: aio_pika.abc.AbstractChannel,
    batch_size: int = 200,
) -> int:
    """Publish one batch of outbox rows (locked, so relays never double-send); returns count."""
    async with db() as tx, tx.begin():
        rows = (
            await tx.scalars(
                select(outbox)
                .order_by(outbox.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        exchanges = {
            name: await channel.get_exchange(name, ensure=False)
            for name in {row.exchange for row in rows}
        }
        await asyncio.gather(
            *(
                publish(
                    exchanges[row.exchange],
                    json.dumps(row.body).encode(),
                    row.routing_key,
                    message_id=str(row.event_id),
                    correlation_id=row.body.get("correlation_id"),
                    priority=getattr(row, "priority", None),
                )
                for row in rows
            )
        )
        await tx.execute(delete(outbox).where(outbox.id.in_([row.id for row in rows])))
    OUTBOX_PUBLISHED.inc(len(rows))
    log.info("outbox_published", count=len(rows))
    return len(rows)


async def backlog(db: async_sessionmaker[AsyncSession], outbox: type[OutboxMixin]) -> int:
    async with db() as tx:
        return await tx.scalar(select(func.count()).select_from(outbox)) or 0


async def relay(
    db: async_sessionmaker[AsyncSession],
    outbox: type[OutboxMixin],
    channel: aio_pika.abc.AbstractChannel,
    *,
    database_url: str,
    poll_seconds: float = 1.0,
) -> None:
    """Publish outbox rows forever: on every NOTIFY, and at least every `poll_seconds`."""
    wake = asyncio.Event()
    listener = asyncio.create_task(_listen(database_url, wake))
    try:
        while True:
            wake.clear()
            try:
                published = await publish_pending(db, outbox, channel)
            except Exception as exc:  # broker or database away: keep the rows, retry
                log.warning("outbox_publish_failed", error=repr(exc))
                published = None
            # What waits, after every pass: a growing backlog (broker away, a relay that
            # cannot keep up) is what operators are alerted on.
            with contextlib.suppress(Exception):  # (the database may be away too)
                OUTBOX_BACKLOG.set(await backlog(db, outbox))
            if published is None:
                await asyncio.sleep(poll_seconds)
                continue
            if published:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_seconds)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def _listen(database_url: str, wake: asyncio.Event) -> None:
    """Set `wake` on every outbox NOTIFY; reconnect if the database goes away."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    while True:
        try:
            await _listen_once(dsn, wake)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("outbox_listen_failed", error=repr(exc))
        await asyncio.sleep(2)


async def _listen_once(dsn: str, wake: asyncio.Event) -> None:
    conn = await asyncpg.connect(dsn)
    lost = asyncio.Event()
    try:
        conn.add_termination_listener(lambda *_: lost.set())
        await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
        wake.set()
        await lost.wait()
    finally:
        await conn.close()
