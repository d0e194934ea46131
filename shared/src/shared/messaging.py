"""RabbitMQ topology, publishing with confirms, and the idempotent consumer loop.

Topology: one durable topic exchange `events` (routing key = event type) and, per
consuming service, a durable queue `<name>` bound to the types it handles, a retry queue
`<name>.retry` (messages wait out a per-message TTL there, then return to `<name>`) and a
dead-letter queue `<name>.dlq` behind the `events.dlx` exchange. A handler runs in one
database transaction together with the claim of the event id, so a redelivered event is
acknowledged and skipped. A failing handler is retried with back-off, then dead-lettered;
while the database or the object store is unreachable, an event waits for it (with back-off,
as long as the outage lasts) without using up its attempts.
"""

import errno
import socket
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import aio_pika
import asyncpg
import botocore.exceptions
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from sqlalchemy import DateTime
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import utcnow
from shared.events import (
    CLAIMS_QUEUE,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    JOB_QUEUES,
    JOBS_EXCHANGE,
    MAX_JOB_PRIORITY,
    Envelope,
    Event,
    decode,
)
from shared.metrics import EVENTS_CONSUMED

log = structlog.get_logger()

# The longest an event waits between two tries while what its handler needs is away.
MAX_OUTAGE_DELAY = 30.0
_UNREACHABLE = (
    ConnectionError,  # refused, reset, broken pipe
    TimeoutError,
    socket.gaierror,  # a name that does not resolve (yet)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, not accepting yet
    botocore.exceptions.ConnectionError,
)


_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database (or the object store) could not be reached: no
    fault of the event, which must wait rather than be dead-lettered."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = getattr(exc.orig, "__cause__", None) or exc.orig
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    return isinstance(exc, _UNREACHABLE)


Handler = Callable[[AsyncSession, Any], Awaitable[None]]

# The envelope of the event a handler is running for (handlers are called with the event
# alone; one that needs e.g. `occurred_at` reads `handling_envelope()`).
_HANDLING: ContextVar[Envelope | None] = ContextVar("handling_envelope", default=None)


def handling_envelope() -> Envelope | None:
    return _HANDLING.get()


class ProcessedEventMixin:
    """Columns of a service's `processed_events` table (the consumer's dedupe record)."""

    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def claim(tx: AsyncSession, processed: type[ProcessedEventMixin], event_id: UUID) -> bool:
    """Record that `event_id` is being handled; False if it was handled before."""
    stmt = (
        insert(processed)
        .values(event_id=event_id, processed_at=utcnow())
        .on_conflict_do_nothing()
        .returning(processed.event_id)
    )
    return (await tx.execute(stmt)).first() is not None


async def forget_processed(
    db: async_sessionmaker[AsyncSession], processed: type[ProcessedEventMixin], days: int = 14
) -> int:
    """Drop dedupe records older than the broker could still redeliver (the table would
    otherwise grow without bound: every heartbeat leaves one)."""
    async with db() as tx, tx.begin():
        stmt = sa_delete(processed).where(processed.processed_at < utcnow() - timedelta(days=days))
        return (await tx.execute(stmt)).rowcount or 0


async def connect(url: str) -> aio_pika.abc.AbstractRobustConnection:
    return await aio_pika.connect_robust(url, reconnect_interval=1)


async def declare_events(channel: AbstractChannel) -> AbstractExchange:
    await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    return await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_consumer_queue(
    channel: AbstractChannel, name: str, routing_keys: Iterable[str]
) -> aio_pika.abc.AbstractQueue:
    """The service's durable queue with its retry and dead-letter queues."""
    events = await declare_events(channel)
    dlx = await channel.get_exchange(DEAD_LETTER_EXCHANGE)
    dlq = await channel.declare_queue(f"{name}.dlq", durable=True)
    await dlq.bind(dlx, routing_key=name)
    await channel.declare_queue(
        f"{name}.retry",
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
    )
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": name,
        },
    )
    for key in routing_keys:
        await queue.bind(events, routing_key=key)
    return queue


async def declare_jobs(channel: AbstractChannel) -> dict[str, aio_pika.abc.AbstractQueue]:
    """The processing exchange, a priority queue per kind of job (with a shared dead-letter
    queue for jobs no worker can read) and the claims queue; returns the job queues."""
    await declare_events(channel)
    dlx = await channel.get_exchange(DEAD_LETTER_EXCHANGE)
    jobs = await channel.declare_exchange(JOBS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    dlq = await channel.declare_queue(f"{JOBS_EXCHANGE}.dlq", durable=True)
    await dlq.bind(dlx, routing_key=JOBS_EXCHANGE)
    arguments = {
        "x-max-priority": MAX_JOB_PRIORITY,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": JOBS_EXCHANGE,
    }
    queues = {}
    for kind, name in JOB_QUEUES.items():
        queues[kind] = await channel.declare_queue(name, durable=True, arguments=arguments)
        await queues[kind].bind(jobs, routing_key=kind)
    await channel.declare_queue(CLAIMS_QUEUE, durable=True)
    return queues


async def publish(
    exchange: AbstractExchange,
    body: bytes,
    routing_key: str,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    headers: dict[str, Any] | None = None,
    expiration: float | None = None,
    priority: int | None = None,
) -> None:
    """Publish a persistent JSON message and wait for the broker's confirm."""
    message = aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        correlation_id=correlation_id,
        headers=headers or {},
        expiration=expiration,
        priority=priority,
    )
    await exchange.publish(message, routing_key=routing_key)


async def publish_envelope(
    exchange: AbstractExchange, envelope: Envelope, routing_key: str | None = None
) -> None:
    await publish(
        exchange,
        envelope.model_dump_json().encode(),
        routing_key or envelope.type,
        message_id=str(envelope.id),
        correlation_id=envelope.correlation_id,
    )


class Consumer:
    """Runs `handlers[event.type](tx, event)` for each message of one service queue."""

    def __init__(
        self,
        channel: AbstractChannel,
        queue_name: str,
        db: async_sessionmaker[AsyncSession],
        handlers: dict[type[Event], Handler],
        processed: type[ProcessedEventMixin],
        *,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
    ):
        self.channel, self.queue_name, self.db = channel, queue_name, db
        self.handlers = {cls.type: handler for cls, handler in handlers.items()}
        self.processed, self.max_attempts, self.retry_delay = processed, max_attempts, retry_delay

    async def run(self) -> None:
        await self.channel.set_qos(prefetch_count=20)
        queue = await declare_consumer_queue(self.channel, self.queue_name, self.handlers)
        async with queue.iterator() as messages:
            async for message in messages:
                await self.handle(message)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate_json(message.body)
            event = decode(envelope)
        except Exception as exc:
            log.error("event_undecodable", queue=self.queue_name, error=repr(exc))
            EVENTS_CONSUMED.labels(self.queue_name, "unknown", "dead_lettered").inc()
            await message.reject(requeue=False)
            return
        with structlog.contextvars.bound_contextvars(
            event_id=str(envelope.id),
            event_type=envelope.type,
            correlation_id=envelope.correlation_id,
        ):
            outcome = await self._apply(envelope, event)
            if outcome in ("failed", "unreachable"):
                outcome = await self._retry_or_dead_letter(message, outcome == "unreachable")
            else:
                await message.ack()
            EVENTS_CONSUMED.labels(self.queue_name, envelope.type, outcome).inc()

    async def _apply(self, envelope: Envelope, event: Event) -> str:
        try:
            async with self.db() as tx, tx.begin():
                if not await claim(tx, self.processed, envelope.id):
                    log.info("event_duplicate_skipped")
                    return "duplicate"
                token = _HANDLING.set(envelope)
                try:
                    await self.handlers[envelope.type](tx, event)
                finally:
                    _HANDLING.reset(token)
        except Exception as exc:
            if is_outage(exc):
                log.warning("event_handler_unreachable", error=repr(exc))
                return "unreachable"
            log.exception("event_handler_failed")
            return "failed"
        log.info("event_handled")
        return "handled"

    async def _retry_or_dead_letter(self, message: AbstractIncomingMessage, outage: bool) -> str:
        headers = message.headers or {}
        attempt, waits = int(headers.get("x-attempt", 1)), int(headers.get("x-waits", 0))
        if outage:
            waits += 1
            delay = min(self.retry_delay * 2 ** min(waits - 1, 20), MAX_OUTAGE_DELAY)
        elif attempt >= self.max_attempts:
            log.error("event_dead_lettered", attempts=attempt)
            await message.reject(requeue=False)
            return "dead_lettered"
        else:
            delay, attempt = self.retry_delay * 2 ** (attempt - 1), attempt + 1
        await publish(
            self.channel.default_exchange,
            message.body,
            f"{self.queue_name}.retry",
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            headers={"x-attempt": attempt, "x-waits": waits},
            expiration=delay,
        )
        await message.ack()
        return "waiting" if outage else "retried"
