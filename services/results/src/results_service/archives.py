"""Archives (of a session, or of a subject's sessions) built by the worker; asked for and
polled over HTTP (`downloads.py`).

A request adds a `pending` row to `archives` (the task). The worker's periodic job
(`build_archives`) claims pending tasks one at a time (`FOR UPDATE SKIP LOCKED`, so workers
share them and never build one twice at once), commits the claim, streams the zip into S3
outside any transaction, and marks the task `ready`. A running build renews its claim (its
lease); a build whose worker died is claimed again once the lease lapses. A failed build is
retried; after `archive_max_attempts` tries the task is `failed`. A build whose task was
claimed again or deleted meanwhile (its session was) deletes what it wrote. Archives are
deleted (object and row) `archive_keep_days` after they were built, as the original's daily
cleanup does.
"""

import asyncio
from datetime import datetime, timedelta
from uuid import uuid4

import structlog
from prometheus_client import Counter
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from results_service import archive, deletions, loading, zipstream
from results_service.config import Settings
from results_service.models import Archive
from shared.db import Units, transactions, utcnow
from shared.storage import Storage

log = structlog.get_logger()
ARCHIVES_BUILT = Counter(
    "results_archives_total", "Session archives built, by outcome", ["outcome"]
)
DIED = "The build did not finish (its worker stopped)."


# ── worker: build ───────────────────────────────────────────────────────────────────


async def claim(units: Units, settings: Settings) -> Archive | None:
    """The oldest task to build (pending, or building with a lapsed lease), now ours. A
    lapsed build that used its last attempt (its worker died every time) is failed."""
    now = utcnow()
    lapsed = (Archive.status == "building") & (
        Archive.claimed_at < now - timedelta(seconds=settings.archive_lease_seconds)
    )
    async with units() as tx:
        exhausted = lapsed & (Archive.attempts >= settings.archive_max_attempts)
        await tx.execute(
            update(Archive).where(exhausted).values(status="failed", error=DIED, finished_at=now)
        )
        stmt = (
            select(Archive)
            .where(or_(Archive.status == "pending", lapsed))
            .order_by(Archive.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        task = await tx.scalar(stmt)
        if task is not None:
            task.status, task.claimed_at, task.attempts = "building", now, task.attempts + 1
        return task


async def keep_claimed(units: Units, task: Archive, settings: Settings) -> None:
    """Renew the build's lease while it runs (so only a dead worker's build lapses)."""
    while True:
        await asyncio.sleep(settings.archive_lease_seconds / 4)
        async with units() as tx:
            mine = (Archive.task_id == task.task_id) & (Archive.attempts == task.attempts)
            await tx.execute(update(Archive).where(mine).values(claimed_at=utcnow()))


async def build_archive(units: Units, storage: Storage, settings: Settings, task: Archive) -> str:
    """Stream the archive into S3 (no transaction stays open meanwhile); its key."""
    async with units() as tx:
        if task.subject_id is not None:
            ids = await loading.subject_sessions(tx, task.subject_id, task.owner_id)
            sessions = [await loading.session_data(tx, session_id) for session_id in ids]
            root = archive.subject_root_of(task.subject_id)
        else:
            sessions = [await loading.session_data(tx, task.session_id)]
            root = archive.root_of(task.session_id)
    key = f"archives/{root}_{uuid4()}.zip"
    await asyncio.to_thread(_write, storage, settings, task.subject_id, sessions, key)
    return key


def _write(
    storage: Storage,
    settings: Settings,
    subject_id: int | None,
    sessions: list[archive.SessionData],
    key: str,
) -> None:
    geometry = []
    if archive.needs_geometry(*sessions):
        geometry = loading.object_keys(storage, settings.archive_geometry_prefix)
    if subject_id is not None:
        entries = archive.subject_layout(subject_id, sessions, geometry)
    else:
        entries = archive.layout(sessions[0], geometry)
    zipstream.write_zip(storage, key, entries, settings.archive_part_bytes)


async def finish(
    units: Units,
    storage: Storage,
    task: Archive,
    settings: Settings,
    key: str | None,
    error: str | None,
) -> None:
    """Record the build's outcome, unless another worker has claimed the task since or it
    was deleted (its session was): then the archive it wrote is deleted, nobody gets it."""
    async with units() as tx:
        current = await tx.get(Archive, task.task_id, with_for_update=True)
        stale = current is None or current.attempts != task.attempts or current.status != "building"
        if not stale:
            _record(current, settings, key, error)
    if stale and key is not None:
        await deletions.delete_objects(storage, [key])


def _record(task: Archive, settings: Settings, key: str | None, error: str | None) -> None:
    """Ready; or failed for good after its last attempt; or waiting for another try."""
    if key is not None:
        task.status, task.key, task.finished_at = "ready", key, utcnow()
    elif task.attempts >= settings.archive_max_attempts:
        task.status, task.error, task.finished_at = "failed", error, utcnow()
    else:
        task.status = "pending"


async def build_next(units: Units, storage: Storage, settings: Settings) -> bool:
    """Claim and build one archive; False if none was waiting."""
    task = await claim(units, settings)
    if task is None:
        return False
    heartbeat = asyncio.create_task(keep_claimed(units, task, settings))
    key, error = None, None
    try:
        key = await build_archive(units, storage, settings, task)
    except Exception as exc:
        log.exception("archive_build_failed", task_id=str(task.task_id))
        error = repr(exc)[:1000]
    finally:
        heartbeat.cancel()
    await finish(units, storage, task, settings, key, error)
    ARCHIVES_BUILT.labels("ready" if key else "failed").inc()
    log.info("archive_build_done", task_id=str(task.task_id), key=key, attempt=task.attempts)
    return True


def archive_job(storage: Storage, settings: Settings):
    """The worker's periodic job: build every waiting archive."""

    async def build_archives(db: async_sessionmaker[AsyncSession]) -> None:
        units = transactions(db)
        while await build_next(units, storage, settings):
            pass

    return build_archives


# ── worker: clean up ────────────────────────────────────────────────────────────────


async def remove_old_archives(units: Units, storage: Storage, settings: Settings, now: datetime):
    """Delete archives finished more than `archive_keep_days` ago: objects, then rows."""
    cutoff = now - timedelta(days=settings.archive_keep_days)
    async with units() as tx:
        stmt = (
            select(Archive)
            .where(Archive.finished_at < cutoff)
            .limit(500)
            .with_for_update(skip_locked=True)
        )
        tasks = (await tx.scalars(stmt)).all()
        for key in [task.key for task in tasks if task.key]:
            await asyncio.to_thread(storage.client.delete_object, Bucket=storage.bucket, Key=key)
        await tx.execute(delete(Archive).where(Archive.task_id.in_([t.task_id for t in tasks])))
    return len(tasks)


def cleanup_job(storage: Storage, settings: Settings):
    async def clean_up(db: async_sessionmaker[AsyncSession]) -> None:
        """Expired archives go; so do deletions too old to matter."""
        now, units = utcnow(), transactions(db)
        await remove_old_archives(units, storage, settings, now)
        async with units() as tx:
            await deletions.prune_forgotten(tx, now, settings.forgotten_keep_days)

    return clean_up
