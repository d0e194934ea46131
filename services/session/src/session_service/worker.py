"""The session service's worker process: `python -m session_service.worker`."""

import asyncio
from datetime import timedelta

import structlog
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_service.claims import claim_server
from session_service.config import Settings
from session_service.consumers import make_handlers
from session_service.gauges import queue_depths, sample_queues, sample_trials
from session_service.models import Outbox, ProcessedEvent
from session_service.processing import job_still_wanted, requeue_lapsed, resend_lost_jobs
from session_service.sessions import remove_unused_sessions
from session_service.trials import end_stuck_recordings, stop_due_captures
from shared.events import JOB_QUEUES, Envelope, ProcessingJob
from shared.messaging import declare_jobs
from shared.worker import run_worker

log = structlog.get_logger()
Db = async_sessionmaker[AsyncSession]


def periodic_jobs(settings: Settings) -> dict:
    """The service's clocks: capture windows, stuck recordings, unused sessions (lapsed
    leases and lost jobs, which look at the broker: `check_lapsed_leases`,
    `check_lost_jobs`)."""

    async def stop_captures(db: Db) -> None:
        async with db() as tx, tx.begin():
            if stopped := await stop_due_captures(tx):
                log.info("captures_stopped", count=stopped)

    async def end_stuck(db: Db) -> None:
        async with db() as tx, tx.begin():
            if ended := await end_stuck_recordings(tx, settings.recording_timeout_seconds):
                log.warning("stuck_recordings_ended", count=ended)

    async def clean_sessions(db: Db) -> None:
        age = timedelta(days=settings.empty_session_retention_days)
        while True:
            async with db() as tx, tx.begin():
                removed = await remove_unused_sessions(tx, age)
            if not removed:
                return
            log.info("unused_sessions_removed", count=removed)

    return {
        stop_captures: 0.25,
        sample_trials: 15.0,
        end_stuck: 30.0,
        clean_sessions: 3600.0,
    }


async def check_lost_jobs(connection: AbstractRobustConnection, db: Db, settings: Settings) -> int:
    """Which job queues hold nothing once the stale messages are gone (`drop_stale_jobs`),
    and the unclaimed jobs of those (`resend_lost_jobs`)."""
    await drop_stale_jobs(connection, db)
    depths = await queue_depths(connection, JOB_QUEUES.values())
    empty = {name for name, depth in depths.items() if depth == 0}
    if not empty:
        return 0
    async with db() as tx, tx.begin():
        handled = await resend_lost_jobs(tx, settings, empty)
    if handled:
        log.warning("unclaimed_jobs_handled", count=handled)
    return handled


async def drop_stale_jobs(connection: AbstractRobustConnection, db: Db, limit: int = 1000) -> int:
    """Job messages at the head of each job queue whose trial no longer wants them
    (`job_still_wanted`) are dropped, up to the first one still wanted. Where the stock
    pipeline takes trials over HTTP and no queue worker reads the queues, their messages
    would otherwise pile up for ever, keeping the queues (which operators watch, and the
    lost-job check reads) from ever being empty. Returns how many were dropped."""
    dropped = 0
    channel = await connection.channel()
    try:
        for name in JOB_QUEUES.values():
            queue = await channel.declare_queue(name, passive=True)
            while dropped < limit and (message := await queue.get(no_ack=False, fail=False)):
                try:
                    envelope = Envelope.model_validate_json(message.body)
                    job = ProcessingJob.model_validate(envelope.data)
                except ValueError:  # (pydantic's errors are ValueErrors)
                    await message.reject(requeue=False)  # to the dead letters: nobody reads it
                    continue
                async with db() as tx:
                    wanted = await job_still_wanted(tx, job)
                if wanted:
                    await message.nack(requeue=True)
                    break
                await message.ack()
                dropped += 1
    finally:
        await channel.close()
    if dropped:
        log.info("stale_jobs_dropped", count=dropped)
    return dropped


async def check_lapsed_leases(
    connection: AbstractRobustConnection, db: Db, settings: Settings, settle: float = 2.0
) -> int:
    """Leases whose worker stopped renewing them (`requeue_lapsed`), judged only while this
    service's events are caught up: after a restart or an outage, the heartbeats waiting in
    its queue must renew the leases of live workers before any is taken for dead. Nothing
    waits in the queue, and still nothing after `settle` seconds, in which the events its
    consumer had already taken (the broker counts only those not yet delivered) are
    handled. (With the broker away nothing is judged: heartbeats cannot arrive.)"""
    own = [settings.service_name, f"{settings.service_name}.retry"]

    async def caught_up() -> bool:
        depths = await queue_depths(connection, own)
        return settings.service_name in depths and not any(depths.values())

    if not await caught_up():
        return 0
    await asyncio.sleep(settle)
    if not await caught_up():
        return 0
    async with db() as tx, tx.begin():
        handled = await requeue_lapsed(tx, settings)
    if handled:
        log.warning("lapsed_leases_handled", count=handled)
    return handled


def every(seconds: float, check, name: str, settings: Settings):
    """A worker server running `check(connection, db, settings)` every `seconds`."""

    async def serve(connection: AbstractRobustConnection, db: Db) -> None:
        while True:
            try:
                await check(connection, db, settings)
            except Exception:  # the broker or the database away: next time
                log.exception(f"{name}_check_failed")
            await asyncio.sleep(seconds)

    return serve


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    asyncio.run(
        run_worker(
            settings,
            outbox=Outbox,
            processed=ProcessedEvent,
            handlers=make_handlers(settings),
            declare=declare_jobs,
            periodic=periodic_jobs(settings),
            servers=[
                claim_server(settings),
                sample_queues,
                every(60.0, check_lost_jobs, "lost_jobs", settings),
                every(5.0, check_lapsed_leases, "lapsed_leases", settings),
            ],
        )
    )


if __name__ == "__main__":
    main()
