"""Session archives: requested over HTTP, built by the worker, polled by the web app.

`GET /sessions/{id}/async-download/` adds a `pending` row to `archives` (the task) in the
request's transaction and answers its id. The worker's periodic job (`build_archives`)
claims pending tasks one at a time (`FOR UPDATE SKIP LOCKED`, so workers share them and
never build one twice at once), commits the claim, streams the zip into S3 outside any
transaction, and marks the task `ready`. A running build renews its claim (its lease); a
build whose worker died is claimed again once the lease lapses. A failed build is retried;
after `archive_max_attempts` tries the task is `failed`. Archives are deleted (object and
row) `archive_keep_days` after they were built, as the original's daily cleanup does.

`GET /logs/{task_id}/on-ready/` answers 202 (empty) while a task is unfinished, 200
`{"url"}` when ready, and 410 `{"detail"}` once it failed: the web app's poll stops on any
error status (axios rejects), where the original answered 202 forever.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import structlog
from prometheus_client import Counter
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from results_service import archive, loading, zipstream
from results_service.config import Settings
from results_service.models import Archive, KnownSession
from shared.db import utcnow
from shared.errors import Gone, NotFound, Unauthorized
from shared.identity import Caller
from shared.storage import Storage

log = structlog.get_logger()
ARCHIVES_BUILT = Counter(
    "results_archives_total", "Session archives built, by outcome", ["outcome"]
)
FAILED = "The archive could not be built. Please try again later."
DIED = "The build did not finish (its worker stopped)."
LOG_IN = "Sorry, you have to log in to access to this session."
# Opens one transaction: `async with units() as tx:` (savepoints in tests).
Units = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def transactions(db: async_sessionmaker[AsyncSession]) -> Units:
    @asynccontextmanager
    async def unit() -> AsyncIterator[AsyncSession]:
        async with db() as tx, tx.begin():
            yield tx

    return unit


# ── HTTP: request and poll ──────────────────────────────────────────────────────────


async def downloadable_session(tx: AsyncSession, caller: Caller | None, session_id: UUID):
    """The session, if the caller may download it: its owner, admins and the backend, or
    anyone if it is public. 404 if unknown or another user's, 401 for anonymous callers."""
    session = await tx.get(KnownSession, session_id)
    if session is None or session.user_id is None:
        raise NotFound()
    if session.public or (caller and (caller.privileged or caller.user_id == session.user_id)):
        return session
    if caller is None:
        raise Unauthorized(LOG_IN)
    raise NotFound()


async def request_archive(tx: AsyncSession, caller: Caller | None, session_id: UUID) -> UUID:
    """A new archive task for the session; the worker builds it."""
    await downloadable_session(tx, caller, session_id)
    task = Archive(
        task_id=uuid4(),
        session_id=session_id,
        user_id=caller.user_id if caller else None,
        status="pending",
        attempts=0,
        created_at=utcnow(),
    )
    tx.add(task)
    return task.task_id


async def archive_url(tx: AsyncSession, task_id: UUID, storage: Storage) -> str | None:
    """The ready archive's download URL; None while it is being built."""
    task = await tx.get(Archive, task_id)
    if task is None:
        raise NotFound()
    if task.status == "failed":
        raise Gone(FAILED)
    if task.status != "ready" or task.key is None:
        return None
    return storage.presigned_get(task.key)


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
    """Stream the session's archive into S3 (no transaction stays open meanwhile); its key."""
    async with units() as tx:
        data = await loading.session_data(tx, task.session_id)
    key = f"archives/{archive.root_of(task.session_id)}_{uuid4()}.zip"
    await asyncio.to_thread(_write, storage, settings, data, key)
    return key


def _write(storage: Storage, settings: Settings, data: archive.SessionData, key: str) -> None:
    geometry = []
    if archive.needs_geometry(data):
        geometry = loading.object_keys(storage, settings.archive_geometry_prefix)
    entries = archive.layout(data, geometry)
    zipstream.write_zip(storage, key, entries, settings.archive_part_bytes)


async def finish(
    units: Units, task: Archive, settings: Settings, key: str | None, error: str | None
):
    """Record the build's outcome, unless another worker has claimed the task since."""
    async with units() as tx:
        current = await tx.get(Archive, task.task_id, with_for_update=True)
        if current is None or current.attempts != task.attempts or current.status != "building":
            return
        if key is not None:
            current.status, current.key, current.finished_at = "ready", key, utcnow()
        elif current.attempts >= settings.archive_max_attempts:
            current.status, current.error, current.finished_at = "failed", error, utcnow()
        else:
            current.status = "pending"


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
    await finish(units, task, settings, key, error)
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
    async def remove_expired_archives(db: async_sessionmaker[AsyncSession]) -> None:
        await remove_old_archives(transactions(db), storage, settings, utcnow())

    return remove_expired_archives
