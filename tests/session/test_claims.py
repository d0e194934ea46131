"""The claim server over real RabbitMQ: a worker's request gets one answer, after commit."""

import asyncio
import uuid

import aio_pika
import pytest
from sqlalchemy import delete, select

from session_service.claims import claim_server
from session_service.models import Outbox, Session, Trial, User
from shared.db import create_sessionmaker
from shared.events import CLAIMS_QUEUE, ClaimReply, ClaimRequest
from shared.messaging import connect, declare_jobs
from tests.session.conftest import make_user
from tests.session.test_processing import stopped_trial


@pytest.fixture
async def server(engine, amqp_url, settings):
    db = create_sessionmaker(engine)
    connection = await connect(amqp_url)
    await declare_jobs(await connection.channel())
    task = asyncio.create_task(claim_server(settings)(connection, db))
    yield db, connection
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await connection.close()
    async with db() as tx, tx.begin():
        owners = select(User.id).where(User.username.like("claim-%"))
        await tx.execute(delete(Session).where(Session.user_id.in_(owners)))
        await tx.execute(delete(User).where(User.username.like("claim-%")))
        await tx.execute(delete(Outbox))


async def ask(connection, request: ClaimRequest) -> ClaimReply:
    channel = await connection.channel()
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    correlation = uuid.uuid4().hex
    await channel.default_exchange.publish(
        aio_pika.Message(
            request.model_dump_json().encode(), reply_to=replies.name, correlation_id=correlation
        ),
        routing_key=CLAIMS_QUEUE,
    )
    async with replies.iterator(timeout=10) as answers:
        async for message in answers:
            await message.ack()
            assert message.correlation_id == correlation
            return ClaimReply.model_validate_json(message.body)


async def test_a_worker_asking_over_rabbitmq_gets_the_trial_and_a_second_is_refused(server):
    db, connection = server
    async with db() as tx, tx.begin():
        trial = await stopped_trial(tx, await make_user(tx, f"claim-{uuid.uuid4().hex[:6]}"))
    request = ClaimRequest(job_id=trial.job_id, trial_id=trial.id, worker="gpu-1")

    first = await ask(connection, request)
    second = await ask(connection, request.model_copy(update={"worker": "gpu-2"}))

    assert (first.granted, second.granted) == (True, False)
    async with db() as tx:
        stored = await tx.get(Trial, trial.id)
        assert (stored.status, stored.lease_holder) == ("processing", "gpu-1")
