"""What operators watch of the trials and the queues (sampled by the worker).

`trials{status}` counts trials per state, `trial_oldest_seconds{status}` is how long the
oldest trial of an active state has been there (the "stuck" alerts read it), and
`queue_messages{queue}` is the depth of the processing and dead-letter queues.
"""

import asyncio

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_service.models import Trial
from shared.db import utcnow
from shared.events import JOB_QUEUES, JOBS_EXCHANGE

log = structlog.get_logger()
TRIALS = Gauge("trials", "Trials per status", ["status"])
OLDEST = Gauge("trial_oldest_seconds", "Age in its state of the oldest trial", ["status"])
QUEUE_MESSAGES = Gauge("queue_messages", "Messages waiting in a queue", ["queue"])
ACTIVE = ("recording", "stopped", "processing", "reprocess")
WATCHED_QUEUES = (
    *JOB_QUEUES.values(),
    f"{JOBS_EXCHANGE}.dlq",
    "session.dlq",
    "device.dlq",
    "upload.dlq",
    "results.dlq",
)


async def sample_trials(db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as tx:
        counts = dict(
            (await tx.execute(select(Trial.status, func.count()).group_by(Trial.status))).all()
        )
        oldest = dict(
            (
                await tx.execute(
                    select(Trial.status, func.min(Trial.updated_at))
                    .where(Trial.status.in_(ACTIVE))
                    .group_by(Trial.status)
                )
            ).all()
        )
    for status in {*counts, *ACTIVE, "done", "error"}:
        TRIALS.labels(status).set(counts.get(status, 0))
    now = utcnow()
    for status in ACTIVE:
        since = oldest.get(status)
        OLDEST.labels(status).set((now - since).total_seconds() if since else 0)


async def queue_depths(connection: AbstractRobustConnection, names) -> dict[str, int]:
    """Messages waiting in each queue (not those delivered and not yet acknowledged); a
    queue not declared yet (its consumer has not started) is left out."""
    depths = {}
    for name in names:
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            depths[name] = queue.declaration_result.message_count
            await channel.close()
        except aio_pika.exceptions.AMQPError:
            continue
    return depths


async def sample_queues(connection: AbstractRobustConnection, db, every: float = 15.0) -> None:
    """Depth of the processing and dead-letter queues, every `every` seconds."""
    while True:
        for name, depth in (await queue_depths(connection, WATCHED_QUEUES)).items():
            QUEUE_MESSAGES.labels(name).set(depth)
        await asyncio.sleep(every)
