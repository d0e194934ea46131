"""The transactional outbox on real PostgreSQL and RabbitMQ: what commits goes out, once
confirmed by the broker; what rolls back never does; a failed publish keeps the rows."""

import asyncio
import contextlib
import json
from uuid import uuid4

import aio_pika
import asyncpg
import pytest
import structlog
from prometheus_client import REGISTRY
from sqlalchemy import select

from shared.events import EVENTS_EXCHANGE, Envelope, TrialStopped, decode
from shared.messaging import declare_events
from shared.metrics import OUTBOX_BACKLOG
from shared.outbox import NOTIFY_CHANNEL, publish_pending, record, relay
from tests.shared.support import Outbox, next_message


def backlog_gauge() -> float | None:
    return REGISTRY.get_sample_value("outbox_backlog")


def stopped() -> TrialStopped:
    return TrialStopped(trial_id=uuid4(), session_id=uuid4())


async def commit_one(db, **options) -> Envelope:
    async with db() as tx, tx.begin():
        return record(tx, Outbox, stopped(), producer="session", **options)


async def outbox_rows(db) -> list[Outbox]:
    async with db() as tx:
        return list((await tx.scalars(select(Outbox).order_by(Outbox.id))).all())


@pytest.fixture
async def channel(amqp):
    channel = await amqp.channel(publisher_confirms=True)
    await declare_events(channel)
    return channel


@pytest.fixture
async def listening(channel):
    """A private queue that receives every `trial.stopped` event published from now on."""
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(EVENTS_EXCHANGE, routing_key=TrialStopped.type)
    return queue


async def test_committed_event_is_stored_as_its_envelope(db):
    envelope = await commit_one(db)

    [row] = await outbox_rows(db)
    assert (row.event_id, row.exchange, row.routing_key) == (
        envelope.id,
        EVENTS_EXCHANGE,
        "trial.stopped",
    )
    assert row.body == envelope.model_dump(mode="json")
    assert row.created_at == envelope.occurred_at


async def test_committed_events_are_published_then_deleted(db, channel, listening):
    events = [stopped(), stopped()]
    async with db() as tx, tx.begin():
        envelopes = [record(tx, Outbox, event, producer="session") for event in events]

    assert await publish_pending(db, Outbox, channel) == 2

    for envelope, event in zip(envelopes, events, strict=True):
        message = await next_message(listening)
        assert message.message_id == str(envelope.id)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/json"
        assert message.routing_key == "trial.stopped"
        assert json.loads(message.body) == envelope.model_dump(mode="json")
        assert decode(Envelope.model_validate_json(message.body)) == event
    assert await outbox_rows(db) == []
    assert await publish_pending(db, Outbox, channel) == 0


async def test_message_carries_the_correlation_id_of_the_request(db, channel, listening):
    with structlog.contextvars.bound_contextvars(correlation_id="req-42"):
        envelope = await commit_one(db)

    await publish_pending(db, Outbox, channel)

    message = await next_message(listening)
    assert message.correlation_id == "req-42"
    received = Envelope.model_validate_json(message.body)
    assert (received.id, received.producer, received.correlation_id) == (
        envelope.id,
        "session",
        "req-42",
    )


async def test_rolled_back_transaction_publishes_nothing(db, channel, listening):
    with pytest.raises(RuntimeError):
        async with db() as tx, tx.begin():
            record(tx, Outbox, stopped(), producer="session")
            await tx.flush()
            raise RuntimeError("the use case failed after recording")

    assert await outbox_rows(db) == []
    assert await publish_pending(db, Outbox, channel) == 0
    assert await listening.get(fail=False) is None


async def test_rows_survive_a_failed_publish_and_go_out_next_time(db, amqp, channel, listening):
    envelope = await commit_one(db)
    broken = await amqp.channel(publisher_confirms=True)
    await broken.close()

    with pytest.raises(Exception):  # noqa: B017 - whatever a closed channel raises
        await publish_pending(db, Outbox, broken)

    assert [row.event_id for row in await outbox_rows(db)] == [envelope.id]
    assert await publish_pending(db, Outbox, channel) == 1
    assert (await next_message(listening)).message_id == str(envelope.id)
    assert await outbox_rows(db) == []


async def test_row_goes_to_the_exchange_and_routing_key_it_names(db, channel):
    """Session records processing jobs this way: another exchange, a fixed routing key."""
    jobs = await channel.declare_exchange(
        f"pytest.jobs.{uuid4().hex[:8]}", aio_pika.ExchangeType.DIRECT, auto_delete=True
    )
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(jobs, routing_key="job")
    envelope = await commit_one(db, exchange=jobs.name, routing_key="job")

    assert await publish_pending(db, Outbox, channel) == 1

    message = await next_message(queue)
    assert (message.message_id, message.exchange) == (str(envelope.id), jobs.name)


async def test_insert_into_the_outbox_notifies_the_relay_channel(db, database_url):
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    woken = asyncio.Event()
    try:
        await conn.add_listener(NOTIFY_CHANNEL, lambda *_: woken.set())
        await commit_one(db)
        await asyncio.wait_for(woken.wait(), 30)
    finally:
        await conn.close()


async def test_relay_delivers_newly_committed_events(db, database_url, channel, listening):
    """The poll is far longer than the test waits: the NOTIFY wake-up does the delivery."""
    task = asyncio.create_task(
        relay(db, Outbox, channel, database_url=database_url, poll_seconds=600)
    )
    try:
        first = await commit_one(db)
        assert (await next_message(listening, timeout=30)).message_id == str(first.id)
        await asyncio.sleep(0.2)  # not an assertion: lets the relay go back to waiting
        second = await commit_one(db)
        assert (await next_message(listening, timeout=30)).message_id == str(second.id)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await outbox_rows(db) == []


async def test_relay_that_cannot_publish_reports_its_backlog(db, database_url, amqp):
    """The OutboxBacklogGrowing alert reads this gauge: it must count the rows waiting
    while the broker is away, not keep the last figure of a good pass."""
    await commit_one(db)
    await commit_one(db)
    broken = await amqp.channel(publisher_confirms=True)
    await broken.close()
    OUTBOX_BACKLOG.set(0)

    task = asyncio.create_task(
        relay(db, Outbox, broken, database_url=database_url, poll_seconds=0.05)
    )
    try:
        for _ in range(200):
            if backlog_gauge() == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert backlog_gauge() == 2
    assert len(await outbox_rows(db)) == 2
