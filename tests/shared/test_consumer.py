"""The idempotent consumer on real RabbitMQ and PostgreSQL: one effect per event, retries
with back-off, dead-lettering, and a handler's writes undone when it fails."""

import asyncio
import contextlib
import errno
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest
from sqlalchemy import func, select

from shared.db import create_engine, create_sessionmaker, utcnow
from shared.events import EVENTS_EXCHANGE, Envelope, TrialStopped
from shared.messaging import (
    Consumer,
    declare_consumer_queue,
    forget_processed,
    is_outage,
    publish,
    publish_envelope,
)
from tests.shared.support import Effect, ProcessedEvent, next_message


def stopped() -> tuple[TrialStopped, Envelope]:
    event = TrialStopped(trial_id=uuid4(), session_id=uuid4())
    envelope = Envelope.wrap(event, producer="session", occurred_at=utcnow(), correlation_id=None)
    return event, envelope


async def effects(db, trial_id: UUID) -> list[str]:
    async with db() as tx:
        return list(await tx.scalars(select(Effect.note).where(Effect.trial_id == trial_id)))


async def claimed(db, envelope: Envelope) -> bool:
    async with db() as tx:
        query = select(func.count()).where(ProcessedEvent.event_id == envelope.id)
        return await tx.scalar(query) == 1


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


class Running:
    """A Consumer of `trial.stopped` on a queue of its own, run as a task."""

    def __init__(self, amqp, db, handler, **options):
        self.amqp, self.db, self.handler, self.options = amqp, db, handler, options
        self.name = f"pytest-{uuid4().hex[:12]}"

    async def __aenter__(self) -> "Running":
        self.channel = await self.amqp.channel()
        # Declared here as well (idempotent), so nothing published before the task runs is lost.
        await declare_consumer_queue(self.channel, self.name, [TrialStopped.type])
        self.events = await self.channel.get_exchange(EVENTS_EXCHANGE)
        self.dlq = await self.channel.get_queue(f"{self.name}.dlq")
        consumer = Consumer(
            await self.amqp.channel(),
            self.name,
            self.db,
            {TrialStopped: self.handler},
            ProcessedEvent,
            **self.options,
        )
        self.task = asyncio.create_task(consumer.run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        for suffix in ("", ".retry", ".dlq"):
            await self.channel.queue_delete(self.name + suffix)
        await self.channel.close()

    async def deliver(self, envelope: Envelope) -> None:
        await publish_envelope(self.events, envelope)


@pytest.fixture
async def consumer(amqp, db) -> AsyncIterator[Callable[..., Running]]:
    """`async with consumer(handler, **options) as running:` runs a Consumer."""
    yield lambda handler, **options: Running(amqp, db, handler, **options)


async def test_event_delivered_twice_has_one_effect(db, consumer):
    calls = Counter()

    async def handler(tx, event: TrialStopped) -> None:
        calls[event.trial_id] += 1
        tx.add(Effect(trial_id=event.trial_id, note="stopped"))

    (event, envelope), (_, sentinel_envelope) = stopped(), stopped()
    async with consumer(handler) as running:
        await running.deliver(envelope)
        await running.deliver(envelope)
        await running.deliver(sentinel_envelope)
        # One consumer takes the queue in order: when the sentinel is done, so are both copies.
        await wait_until(lambda: claimed(db, sentinel_envelope))

        assert await effects(db, event.trial_id) == ["stopped"]
        assert calls[event.trial_id] == 1
        assert await running.dlq.get(fail=False) is None


async def test_failing_handler_is_retried_then_dead_lettered(db, consumer):
    calls = Counter()

    async def handler(tx, event: TrialStopped) -> None:
        calls[event.trial_id] += 1
        raise RuntimeError("the database said no")

    event, envelope = stopped()
    async with consumer(handler, max_attempts=3, retry_delay=0.05) as running:
        await running.deliver(envelope)

        dead = await next_message(running.dlq)

    assert dead.body == envelope.model_dump_json().encode()
    assert dead.message_id == str(envelope.id)
    assert dead.headers["x-attempt"] == 3
    assert calls[event.trial_id] == 3
    assert not await claimed(db, envelope)


async def test_handler_that_fails_once_succeeds_on_retry(db, consumer):
    calls = Counter()

    async def handler(tx, event: TrialStopped) -> None:
        calls[event.trial_id] += 1
        if calls[event.trial_id] == 1:
            raise RuntimeError("a passing hiccup")
        tx.add(Effect(trial_id=event.trial_id, note="stopped"))

    event, envelope = stopped()
    async with consumer(handler, max_attempts=3, retry_delay=0.05) as running:
        await running.deliver(envelope)
        await wait_until(lambda: claimed(db, envelope))

        assert await effects(db, event.trial_id) == ["stopped"]
        assert calls[event.trial_id] == 2
        assert await running.dlq.get(fail=False) is None


@pytest.mark.parametrize(
    "body",
    [
        b"{this is not json",
        b'{"type": "trial.stopped", "producer": "session"}',
        Envelope(type="trial.teleported", occurred_at=utcnow(), producer="session", data={})
        .model_dump_json()
        .encode(),
    ],
    ids=["not-json", "not-an-envelope", "unknown-type"],
)
async def test_undecodable_message_goes_straight_to_the_dlq(consumer, body):
    calls = []

    async def handler(tx, event: TrialStopped) -> None:
        calls.append(event)

    async with consumer(handler, max_attempts=5, retry_delay=0.05) as running:
        await publish(running.events, body, TrialStopped.type, message_id="m-1")

        dead = await next_message(running.dlq)

    assert dead.body == body
    assert "x-attempt" not in (dead.headers or {})
    assert calls == []


async def test_failed_handler_leaves_no_writes_behind(db, consumer):
    async def handler(tx, event: TrialStopped) -> None:
        tx.add(Effect(trial_id=event.trial_id, note="half done"))
        await tx.flush()
        raise RuntimeError("failed after writing")

    event, envelope = stopped()
    async with consumer(handler, max_attempts=1) as running:
        await running.deliver(envelope)

        await next_message(running.dlq)

    assert await effects(db, event.trial_id) == []
    # The claim is undone too, so the event can be re-driven from the DLQ later.
    assert not await claimed(db, envelope)


async def test_redriven_dead_letter_is_handled(db, consumer):
    """A dead letter moved back to the queue by hand is handled once the cause is fixed."""
    broken = True

    async def handler(tx, event: TrialStopped) -> None:
        if broken:
            raise RuntimeError("bug")
        tx.add(Effect(trial_id=event.trial_id, note="stopped"))

    event, envelope = stopped()
    async with consumer(handler, max_attempts=1) as running:
        await running.deliver(envelope)
        dead = await next_message(running.dlq)
        broken = False
        await publish(running.channel.default_exchange, dead.body, running.name)
        await wait_until(lambda: claimed(db, envelope))

    assert await effects(db, event.trial_id) == ["stopped"]


async def test_old_dedupe_records_are_forgotten_and_recent_ones_kept(db):
    async with db() as tx, tx.begin():
        tx.add_all(
            [
                ProcessedEvent(event_id=uuid4(), processed_at=utcnow() - timedelta(days=30)),
                ProcessedEvent(event_id=uuid4(), processed_at=utcnow()),
            ]
        )

    assert await forget_processed(db, ProcessedEvent) == 1
    async with db() as tx:
        assert await tx.scalar(select(func.count()).select_from(ProcessedEvent)) == 1


async def test_an_event_waits_out_a_database_outage_without_using_up_its_attempts(db, consumer):
    """A database away for longer than the retries last (here 8 tries against 2 attempts)
    must not send the events that arrive meanwhile to the dead-letter queue."""
    unreachable = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/away", pool_size=1)
    tries = Counter()

    def sessions():
        tries["all"] += 1
        return create_sessionmaker(unreachable)() if tries["all"] <= 8 else db()

    async def handler(tx, event: TrialStopped) -> None:
        tx.add(Effect(trial_id=event.trial_id, note="stopped"))

    event, envelope = stopped()
    running = consumer(handler, max_attempts=2, retry_delay=0.01)
    running.db = sessions
    try:
        async with running:
            await running.deliver(envelope)
            await wait_until(lambda: claimed(db, envelope))

            assert await effects(db, event.trial_id) == ["stopped"]
            assert await running.dlq.get(fail=False) is None
    finally:
        await unreachable.dispose()
    assert tries["all"] == 9


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), True),
        (socket.gaierror(-3, "Temporary failure in name resolution"), True),
        (RuntimeError("a bug"), False),
        (ValueError("bad data"), False),
        (FileNotFoundError(2, "No such file"), False),
        (PermissionError(13, "Permission denied"), False),
    ],
)
def test_only_an_unreachable_database_or_store_counts_as_an_outage(error, outage):
    assert is_outage(error) is outage
