"""Deleted sessions and trials (`session.deleted`, `trial.deleted`): what this service keeps
of them goes (results, the trial and session projections, archives) and so do their stored
objects (results and archives; the videos are the upload service's). The deletion is
remembered (`Forgotten`): events about a deleted session or trial that arrive afterwards (a
retry, a job that finished after the deletion) change nothing."""

import asyncio
from datetime import datetime, timedelta
from uuid import UUID

import structlog
from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.models import Archive, Forgotten, KnownSession, KnownTrial, KnownVideo, Result
from results_service.service import lock_trial
from shared.db import utcnow
from shared.events import SessionDeleted, TrialDeleted
from shared.storage import Storage

log = structlog.get_logger()
DELETE_BATCH = 1000  # S3's limit per DeleteObjects request
FINISHED = ("ready", "failed")


async def is_forgotten(tx: AsyncSession, *ids: UUID | None) -> bool:
    """Was any of these sessions or trials deleted?"""
    known = [i for i in ids if i is not None]
    return bool(known) and bool(await tx.scalar(select(exists().where(Forgotten.id.in_(known)))))


async def delete_trial(tx: AsyncSession, storage: Storage, event: TrialDeleted) -> None:
    """The trial's results and videos go; so do the built archives that may hold it (its
    session's and its subject's; a pending one is built without it)."""
    await lock_trial(tx, event.trial_id)  # after a completion being recorded, if any
    await _remember(tx, [event.trial_id])
    keys = await _forget_trials(tx, [event.trial_id])
    holding = await _archives_holding(tx, event.session_id)
    keys += await _forget_archives(tx, holding & Archive.status.in_(FINISHED))
    await delete_objects(storage, keys)


async def delete_session(tx: AsyncSession, storage: Storage, event: SessionDeleted) -> None:
    """The session, its trials (their results and videos) and its archives go, and so do
    its subject's built archives, which may hold it."""
    stmt = select(KnownTrial.id).where(KnownTrial.session_id == event.session_id)
    trial_ids = sorted((await tx.scalars(stmt)).all())
    for trial_id in trial_ids:  # in one order: no deadlock with another deletion
        await lock_trial(tx, trial_id)
    await _remember(tx, [event.session_id, *trial_ids])
    keys = await _forget_trials(tx, trial_ids)
    holding = await _archives_holding(tx, event.session_id)
    own = Archive.session_id == event.session_id
    keys += await _forget_archives(tx, own | (holding & Archive.status.in_(FINISHED)))
    await tx.execute(delete(KnownSession).where(KnownSession.id == event.session_id))
    await delete_objects(storage, keys)


async def _archives_holding(tx: AsyncSession, session_id: UUID) -> ColumnElement[bool]:
    """The archives that may hold the session: its own, and its subject's."""
    session = await tx.get(KnownSession, session_id)
    holding = Archive.session_id == session_id
    if session is not None and session.subject_id is not None:
        holding = holding | (Archive.subject_id == session.subject_id)
    return holding


async def _remember(tx: AsyncSession, ids: list[UUID]) -> None:
    rows = [{"id": i, "deleted_at": utcnow()} for i in ids]
    await tx.execute(insert(Forgotten).values(rows).on_conflict_do_nothing())


async def _forget_trials(tx: AsyncSession, trial_ids: list[UUID]) -> list[str]:
    """Drop the trials' results, videos and rows; the keys of the results' objects."""
    if not trial_ids:
        return []
    stmt = delete(Result).where(Result.trial_id.in_(trial_ids)).returning(Result.key)
    keys = list((await tx.scalars(stmt)).all())
    await tx.execute(delete(KnownVideo).where(KnownVideo.trial_id.in_(trial_ids)))
    await tx.execute(delete(KnownTrial).where(KnownTrial.id.in_(trial_ids)))
    return keys


async def _forget_archives(tx: AsyncSession, which: ColumnElement[bool]) -> list[str]:
    stmt = delete(Archive).where(which).returning(Archive.key)
    return [key for key in (await tx.scalars(stmt)).all() if key]


async def delete_objects(storage: Storage, keys: list[str]) -> None:
    """Best effort (the rows are gone either way): failures are logged; missing objects
    are fine."""
    if not keys:
        return
    try:
        failed = await asyncio.to_thread(_delete_keys, storage, keys)
    except Exception as exc:
        log.warning("objects_not_deleted", count=len(keys), error=repr(exc))
        return
    if failed:
        log.warning("objects_not_deleted", count=len(failed), errors=failed[:10])


def _delete_keys(storage: Storage, keys: list[str]) -> list[dict]:
    """Delete the objects (blocking); the errors S3 reported for some of them."""
    failed: list[dict] = []
    for start in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
        answer = storage.client.delete_objects(
            Bucket=storage.bucket, Delete={"Objects": batch, "Quiet": True}
        )
        failed += answer.get("Errors", [])
    return failed


async def prune_forgotten(tx: AsyncSession, now: datetime, keep_days: int) -> None:
    """Deletions older than `keep_days` need not be remembered: no event is that late."""
    await tx.execute(
        delete(Forgotten).where(Forgotten.deleted_at < now - timedelta(days=keep_days))
    )
