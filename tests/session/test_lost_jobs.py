"""Known-failures 15 over real RabbitMQ: the worker looks at the job queues' depths; a
trial whose job nobody claimed while its queue holds nothing gets its job again."""

from datetime import timedelta
from uuid import uuid4

import aio_pika
import pytest
from sqlalchemy import select

from session_service.models import Outbox, Trial
from session_service.worker import check_lost_jobs
from shared.db import utcnow
from shared.events import JOB_QUEUES
from shared.messaging import connect, declare_jobs
from tests.session.conftest import make_user
from tests.session.test_processing import stopped_trial


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
    waiting = aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await channel.default_exchange.publish(waiting, routing_key=JOB_QUEUES["dynamic"])

    assert await check_lost_jobs(connection, committed, settings) == 0

    assert await sent_jobs(committed, trial) == []
