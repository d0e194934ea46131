"""The worker's checks that look at queue depths, over real RabbitMQ. Known-failures 15: a
trial whose job nobody claimed while its queue holds nothing gets its job again. Known-
failures 12: a lease is taken for lapsed only once the service's own events (where its
worker's heartbeats wait) are caught up."""

import json
from datetime import timedelta
from uuid import uuid4

import aio_pika
import pytest
from sqlalchemy import select

from session_service import processing
from session_service.models import Outbox, Trial
from session_service.worker import check_lapsed_leases, check_lost_jobs, drop_stale_jobs
from shared.db import utcnow
from shared.events import JOB_QUEUES
from shared.messaging import connect, declare_jobs
from tests.session.conftest import make_user
from tests.session.test_processing import request_for, stopped_trial


@pytest.fixture
async def broker(amqp_url):
    """A connection, with the job queues declared and empty."""
    connection = await connect(amqp_url)
    channel = await connection.channel()
    await declare_jobs(channel)
    for name in JOB_QUEUES.values():
        await (await channel.declare_queue(name, passive=True)).purge()
    yield connection, channel
    for name in JOB_QUEUES.values():
        await (await channel.declare_queue(name, passive=True)).purge()
    await connection.close()


async def lost_trial(committed, settings) -> Trial:
    """A trial queued half an hour ago whose job message is in no queue."""
    async with committed() as tx, tx.begin():
        trial = await stopped_trial(tx, await make_user(tx, f"race-{uuid4().hex[:6]}"))
        trial.job_sent_at = utcnow() - timedelta(seconds=settings.resend_unclaimed_seconds + 1)
        await tx.execute(Outbox.__table__.delete())  # as if published, then lost
    return trial


async def sent_jobs(committed, trial: Trial) -> list[str]:
    async with committed() as tx:
        rows = await tx.scalars(select(Outbox).where(Outbox.exchange == "processing"))
        return [
            r.body["data"]["job_id"] for r in rows if r.body["data"]["trial_id"] == str(trial.id)
        ]


async def test_a_job_its_empty_queue_lost_is_sent_again(broker, committed, settings):
    connection, _ = broker
    trial = await lost_trial(committed, settings)

    assert await check_lost_jobs(connection, committed, settings) == 1

    assert await sent_jobs(committed, trial) == [str(trial.job_id)]


async def test_a_queue_holding_jobs_is_trusted_to_hold_this_one_too(broker, committed, settings):
    connection, channel = broker
    trial = await lost_trial(committed, settings)
    async with committed() as tx, tx.begin():  # another trial's job, still to do
        other = await stopped_trial(tx, await make_user(tx, f"race-{uuid4().hex[:6]}"))
    await publish_job(committed, channel, other)

    assert await check_lost_jobs(connection, committed, settings) == 0

    assert await sent_jobs(committed, trial) == []


async def lapsed_trial(committed, settings) -> Trial:
    """A trial whose worker's lease ran out a second ago."""
    async with committed() as tx, tx.begin():
        trial = await stopped_trial(tx, await make_user(tx, f"race-{uuid4().hex[:6]}"))
        assert (await processing.claim(tx, request_for(trial), settings)).granted
        trial.lease_expires_at = utcnow() - timedelta(seconds=1)
    return trial


async def status_of(committed, trial: Trial) -> str:
    async with committed() as tx:
        return (await tx.get(Trial, trial.id)).status


async def test_a_lease_is_not_judged_while_events_wait_in_the_services_queue(
    broker, committed, settings
):
    """After a restart (or during a backlog) the heartbeat renewing this lease may be one
    of the waiting events: the trial stays with its worker until they are handled."""
    connection, channel = broker
    own = settings.model_copy(update={"service_name": f"pytest-{uuid4().hex[:8]}"})
    queue = await channel.declare_queue(own.service_name, auto_delete=False)
    trial = await lapsed_trial(committed, own)
    try:
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=queue.name)

        assert await check_lapsed_leases(connection, committed, own, settle=0.1) == 0
        assert await status_of(committed, trial) == "processing"

        await queue.purge()
        assert await check_lapsed_leases(connection, committed, own, settle=0.1) == 1
        assert await status_of(committed, trial) == "stopped"  # queued again
    finally:
        await queue.delete(if_unused=False, if_empty=False)


async def test_no_lease_is_judged_without_knowing_the_services_queue(broker, committed, settings):
    """(The queue could not be measured: the broker away, the consumer not started.)"""
    connection, _ = broker
    unknown = settings.model_copy(update={"service_name": f"pytest-{uuid4().hex[:8]}"})
    trial = await lapsed_trial(committed, unknown)

    assert await check_lapsed_leases(connection, committed, unknown, settle=0.1) == 0
    assert await status_of(committed, trial) == "processing"


async def publish_job(committed, channel, trial: Trial) -> None:
    """The job message the outbox would have sent for the trial's current job."""
    async with committed() as tx:
        [row] = [
            r
            for r in await tx.scalars(select(Outbox).where(Outbox.exchange == "processing"))
            if r.body["data"]["job_id"] == str(trial.job_id)
        ]
    body = json.dumps(row.body).encode()
    await channel.default_exchange.publish(
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=JOB_QUEUES["dynamic"],
    )


async def test_jobs_the_stock_pipeline_took_over_http_are_dropped_from_the_queue(
    broker, committed, settings
):
    """With only the stock pipeline (HTTP dequeue) and no queue worker, every trial's job
    message would stay in the queue for ever; the ones still to do stay."""
    connection, channel = broker
    async with committed() as tx, tx.begin():
        owner = await make_user(tx, f"race-{uuid4().hex[:6]}")
        taken = await stopped_trial(tx, owner)
        waiting = await stopped_trial(tx, owner)
    await publish_job(committed, channel, taken)
    await publish_job(committed, channel, waiting)
    async with committed() as tx, tx.begin():
        legacy = settings.model_copy(update={"legacy_lease_seconds": 3600})
        trial = await tx.get(Trial, taken.id)
        assert (await processing.claim(tx, request_for(trial, "http-pipeline"), legacy)).granted
    garbage = aio_pika.Message(b"not a job", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await channel.default_exchange.publish(garbage, routing_key=JOB_QUEUES["dynamic"])

    assert await drop_stale_jobs(connection, committed) == 1

    queue = await channel.declare_queue(JOB_QUEUES["dynamic"], passive=True)
    left = await queue.get(no_ack=True)
    assert json.loads(left.body)["data"]["job_id"] == str(waiting.job_id)
    assert await queue.get(fail=False) is not None  # (the unreadable one, behind it)
