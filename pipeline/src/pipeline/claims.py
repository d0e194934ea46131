"""Claiming a job: a request/reply call to the session service over RabbitMQ.

A `ClaimRequest` goes to the default exchange with routing key `CLAIMS_QUEUE`, the
worker's own exclusive reply queue in `reply_to` and a correlation id; the session service
answers a `ClaimReply` to that queue with the same correlation id. One claim keeps its
correlation id across its retries, so a late answer to an earlier try still counts. Each
request expires from the claims queue when its try times out: a session service that comes
back after a restart does not grant leases to workers that stopped waiting.
"""

import asyncio
import contextlib
from uuid import uuid4

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from shared.events import CLAIMS_QUEUE, ClaimReply, ClaimRequest

log = structlog.get_logger()


class Claims:
    """Asks for job leases; `request` returns the reply, or None if nobody answered."""

    def __init__(self, channel: AbstractChannel, timeout: float, attempts: int):
        self.channel, self.timeout, self.attempts = channel, timeout, max(1, attempts)
        self.pending: dict[str, asyncio.Future[ClaimReply]] = {}
        self.reply_queue: AbstractQueue | None = None

    async def open(self, worker: str) -> "Claims":
        """Declare the reply queue (named, so a reconnecting channel can declare it again)."""
        name = f"{CLAIMS_QUEUE}.reply.{worker[:100]}.{uuid4().hex[:8]}"
        self.reply_queue = await self.channel.declare_queue(name, exclusive=True, auto_delete=True)
        await self.reply_queue.consume(self._on_reply, no_ack=True)
        return self

    async def request(self, request: ClaimRequest) -> ClaimReply | None:
        correlation_id = str(uuid4())
        answered = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = answered
        try:
            for attempt in range(1, self.attempts + 1):
                await self._send(request, correlation_id)
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(answered), self.timeout)
                log.warning("job_claim_unanswered", attempt=attempt, timeout=self.timeout)
            return None
        finally:
            del self.pending[correlation_id]
            answered.cancel()

    async def _send(self, request: ClaimRequest, correlation_id: str) -> None:
        assert self.reply_queue is not None, "Claims.open() first"
        message = aio_pika.Message(
            request.model_dump_json().encode(),
            content_type="application/json",
            correlation_id=correlation_id,
            reply_to=self.reply_queue.name,
            expiration=self.timeout,
        )
        await self.channel.default_exchange.publish(message, routing_key=CLAIMS_QUEUE)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        answered = self.pending.get(message.correlation_id or "")
        if answered is None or answered.done():
            log.info("claim_reply_ignored", correlation_id=message.correlation_id)
            return
        try:
            answered.set_result(ClaimReply.model_validate_json(message.body))
        except ValidationError as exc:
            log.error("claim_reply_undecodable", error=str(exc))
