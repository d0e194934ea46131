"""The upload worker's periodic jobs: announce every trial whose upload deadline passed,
and forget upload keys issued long ago that were never used.

The deadline job pages through the overdue trials in batches, each locked `FOR UPDATE SKIP
LOCKED`, so several workers share the work without doing any trial twice; each trial is
announced exactly once, in the transaction that clears its deadline: `upload.timed_out`
naming the missing phones or, if the settings allow it, `trial.videos_received` with the
videos that did arrive. Old unused keys go in batches locked the same way. `now` is a
parameter so that tests need no sleeping.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from prometheus_client import Counter
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import Units, transactions, utcnow
from upload_service.config import Settings
from upload_service.deadlines import overdue_trials
from upload_service.models import UploadKey, UploadTrial
from upload_service.service import emit, trial_videos

log = structlog.get_logger()
DEADLINES_PASSED = Counter(
    "upload_deadlines_passed_total", "Trials whose upload deadline passed, by outcome", ["event"]
)
UNUSED_KEYS_FORGOTTEN = Counter(
    "upload_unused_keys_forgotten_total", "Old upload keys never used, forgotten"
)
Job = Callable[[async_sessionmaker[AsyncSession]], Awaitable[None]]


async def time_out_overdue(units: Units, settings: Settings, now: datetime | None = None) -> int:
    """Announce every trial whose deadline passed, batch by batch; how many were."""
    now = now or utcnow()
    total = 0
    while True:
        async with units() as tx:
            count = await _time_out_batch(tx, settings, now)
        total += count
        if count < settings.deadline_batch_size:
            if total:
                log.info("upload_deadlines_passed", trials=total)
            return total


async def _time_out_batch(tx: AsyncSession, settings: Settings, now: datetime) -> int:
    stmt = (
        select(UploadTrial)
        .where(overdue_trials(now, settings))
        .order_by(UploadTrial.final_at)
        .limit(settings.deadline_batch_size)
        .with_for_update(skip_locked=True)
    )
    trials = (await tx.scalars(stmt)).all()
    for trial in trials:
        videos = await trial_videos(tx, trial.id)
        event = trial.time_out(videos, now, settings.upload_timeout_process_available)
        emit(tx, event)
        DEADLINES_PASSED.labels(event.type if event else "none").inc()
    return len(trials)


def deadline_job(settings: Settings) -> Job:
    """The worker's periodic deadline check."""

    async def time_out_overdue_trials(db: async_sessionmaker[AsyncSession]) -> None:
        await time_out_overdue(transactions(db), settings)

    return time_out_overdue_trials


async def forget_unused_keys(units: Units, settings: Settings, now: datetime | None = None) -> int:
    """Delete, batch by batch, the upload keys issued before the retention period that no
    upload was ever stored under (their policies expired long ago); how many."""
    issued_before = (now or utcnow()) - timedelta(days=settings.unused_key_retention_days)
    total = 0
    while True:
        unused = (
            select(UploadKey.key)
            .where(UploadKey.stored_at.is_(None), UploadKey.created_at < issued_before)
            .limit(settings.unused_key_batch_size)
            .with_for_update(skip_locked=True)
        )
        async with units() as tx:
            count = (await tx.execute(delete(UploadKey).where(UploadKey.key.in_(unused)))).rowcount
        total += count
        if count < settings.unused_key_batch_size:
            if total:
                UNUSED_KEYS_FORGOTTEN.inc(total)
                log.info("unused_upload_keys_forgotten", keys=total)
            return total


def unused_keys_job(settings: Settings) -> Job:
    """The worker's periodic removal of old, never used upload keys."""

    async def forget_unused_upload_keys(db: async_sessionmaker[AsyncSession]) -> None:
        await forget_unused_keys(transactions(db), settings)

    return forget_unused_upload_keys
