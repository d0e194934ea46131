"""A service's worker process: the outbox relay, the event consumer and periodic jobs."""

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import structlog
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.config import ServiceSettings
from shared.db import create_engine, create_sessionmaker
from shared.events import Event
from shared.logging import configure_logging
from shared.messaging import (
    Consumer,
    Handler,
    ProcessedEventMixin,
    connect,
    declare_events,
    forget_processed,
)
from shared.outbox import OutboxMixin, relay

log = structlog.get_logger()

Periodic = Callable[[async_sessionmaker[AsyncSession]], Awaitable[None]]
# A long-running task of the worker that needs the broker connection (e.g. an RPC server).
Server = Callable[[AbstractRobustConnection, async_sessionmaker[AsyncSession]], Awaitable[None]]


async def run_worker(
    settings: ServiceSettings,
    *,
    outbox: type[OutboxMixin],
    processed: type[ProcessedEventMixin],
    handlers: dict[type[Event], Handler],
    declare: Callable[[object], Awaitable[None]] | None = None,
    periodic: dict[Periodic, float] | None = None,
    servers: Sequence[Server] = (),
) -> None:
    """Run until SIGTERM/SIGINT. `declare(channel)` adds topology the service publishes to;
    `periodic` jobs run every so many seconds; `servers` run alongside the consumer."""
    configure_logging(settings.log_level, settings.log_json, f"{settings.service_name}-worker")
    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    engine = create_engine(settings.database_url, pool_size=5)
    db = create_sessionmaker(engine)
    connection = await connect(settings.amqp_url)
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        await declare_events(publish_channel)
        if declare:
            await declare(publish_channel)
        consumer = Consumer(
            await connection.channel(),
            settings.service_name,
            db,
            handlers,
            processed,
            max_attempts=settings.consumer_max_attempts,
            retry_delay=settings.consumer_retry_delay_seconds,
        )
        tasks = [
            relay(
                db,
                outbox,
                publish_channel,
                database_url=settings.database_url,
                poll_seconds=settings.outbox_poll_seconds,
            ),
            consumer.run(),
            *(_every(seconds, job, db) for job, seconds in (periodic or {}).items()),
            _every(3600, partial(forget_processed, processed=processed), db),
            *(server(connection, db) for server in servers),
        ]
        log.info("worker_started", queue=settings.service_name)
        await _until_signalled(tasks)
    finally:
        await connection.close()
        await engine.dispose()


async def _every(seconds: float, job: Periodic, db: async_sessionmaker[AsyncSession]) -> None:
    while True:
        try:
            await job(db)
        except Exception:
            log.exception("periodic_job_failed", job=getattr(job, "__name__", repr(job)))
        await asyncio.sleep(seconds)


async def _until_signalled(coroutines: list[Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in [*tasks, stopper]:
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    for task in done:
        if task is not stopper and task.exception():
            raise task.exception()
    log.info("worker_stopped")
