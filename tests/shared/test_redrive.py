"""Re-driving a dead-letter queue puts its messages back where they failed, fresh."""

import uuid

import aio_pika

from shared.messaging import declare_consumer_queue
from shared.redrive import redrive
from tests.shared.support import next_message


async def test_dead_letters_go_back_to_their_queue_with_their_retries_reset(amqp, amqp_url):
    name = f"redrive-{uuid.uuid4().hex[:8]}"
    channel = await amqp.channel()
    queue = await declare_consumer_queue(channel, name, [])
    for i in range(3):
        await channel.default_exchange.publish(
            aio_pika.Message(f"event {i}".encode(), message_id=f"id-{i}", headers={"x-attempt": 5}),
            routing_key=f"{name}.dlq",
        )

    moved = await redrive(amqp_url, name, limit=2, dry_run=False)

    assert moved == 2
    first = await next_message(queue)
    assert (first.body, first.message_id, first.headers.get("x-attempt")) == (
        b"event 0",
        "id-0",
        None,
    )
    dlq = await channel.declare_queue(f"{name}.dlq", passive=True)
    assert dlq.declaration_result.message_count == 1
    for leftover in (name, f"{name}.dlq", f"{name}.retry"):
        await channel.queue_delete(leftover)
