"""The claim server: RabbitMQ workers ask for a job's trial and get a lease, or a no.

Requests come on CLAIMS_QUEUE with `reply_to`; each is decided in its own transaction
(`processing.claim`) and answered after the commit. A worker that gets no answer asks
again: the same worker asking for the same job gets the same yes.
"""

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_service.config import Settings
from session_service.processing import claim
from shared.events import CLAIMS_QUEUE, ClaimReply, ClaimRequest

log = structlog.get_logger()


def claim_server(settings: Settings):
    async def serve(connection: AbstractRobustConnection, db: async_sessionmaker[AsyncSession]):
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=20)
        queue = await channel.declare_queue(CLAIMS_QUEUE, durable=True)
        async with queue.iterator() as requests:
            async for message in requests:
                await answer(channel, message, db, settings)

    return serve


async def answer(channel, message: AbstractIncomingMessage, db, settings: Settings) -> None:
    try:
        request = ClaimRequest.model_validate_json(message.body)
    except ValidationError:
        log.warning("claim_undecodable")
        await message.ack()
        return
    async with db() as tx, tx.begin():
        reply: ClaimReply = await claim(tx, request, settings)
    log.info(
        "claim_answered",
        trial_id=str(request.trial_id),
        worker=request.worker,
        granted=reply.granted,
        reason=reply.reason,
    )
    if message.reply_to:
        await channel.default_exchange.publish(
            aio_pika.Message(
                reply.model_dump_json().encode(),
                content_type="application/json",
                correlation_id=message.correlation_id,
            ),
            routing_key=message.reply_to,
        )
    await message.ack()
