"""Move dead-lettered messages back to the queue they came from, once the cause is fixed.

    python -m shared.redrive upload            # all of upload.dlq back to upload
    python -m shared.redrive upload --limit 10 --dry-run

Consumers deduplicate by event id, so a message that was in fact handled is skipped, not
applied twice. Each message starts its retries afresh. AMQP_URL names the broker.
"""

import argparse
import asyncio
import os

import aio_pika

from shared.events import JOB_QUEUES, JOBS_EXCHANGE


async def redrive(amqp_url: str, queue: str, limit: int | None, dry_run: bool) -> int:
    """Move up to `limit` messages from `<queue>.dlq` to `queue`; returns how many."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        source = f"{JOBS_EXCHANGE}.dlq" if queue in JOB_QUEUES.values() else f"{queue}.dlq"
        dlq = await channel.declare_queue(source, durable=True, passive=True)
        moved = 0
        while limit is None or moved < limit:
            message = await dlq.get(fail=False)
            if message is None:
                break
            if dry_run:
                print(f"would move {message.message_id} ({message.type or 'event'})")
                await message.nack(requeue=True)
                break
            headers = {
                k: v
                for k, v in (message.headers or {}).items()
                if k != "x-attempt" and not k.startswith("x-death")
            }
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )
            await message.ack()
            moved += 1
        return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", help="the queue whose dead letters go back (e.g. upload)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--dry-run", action="store_true", help="show the first, move nothing")
    args = parser.parse_args()
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    moved = asyncio.run(redrive(url, args.queue, args.limit, args.dry_run))
    print(f"moved {moved} message(s) back to {args.queue}")


if __name__ == "__main__":
    main()
