"""Event handlers of the results service: record what the pipeline produced, keep what it
needs to know of sessions, trials, videos and callers, and forget deleted sessions and
trials. Each is idempotent: the same event applied twice leaves the same rows; an event
about a deleted session or trial changes nothing."""

import asyncio
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service import deletions, service
from results_service.deletions import is_forgotten
from results_service.models import ApiToken, ApiUser, KnownSession, KnownTrial, KnownVideo
from shared.db import utcnow
from shared.events import (
    ProcessingCompleted,
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TrialDeleted,
    TrialMetaUpdated,
    TrialQueued,
    TrialRenamed,
    TrialStarted,
    VideoUploaded,
)
from shared.identity import identity_handlers
from shared.messaging import handling_envelope
from shared.storage import Storage


class MissingResultObject(Exception):
    pass


def make_handlers(storage: Storage) -> dict:
    async def on_processing_completed(tx: AsyncSession, event: ProcessingCompleted) -> None:
        """The job's results, once every object they name is verified in storage, replace
        the trial's earlier results (a job that is no longer the trial's current is ignored)."""
        if not await service.accepts(tx, event):
            return
        if await is_forgotten(tx, event.trial_id):  # the trial was deleted while processed
            await deletions.delete_objects(storage, [item.key for item in event.results])
            return
        for item in event.results:
            if await asyncio.to_thread(storage.size, item.key) is None:
                raise MissingResultObject(f"result object {item.key!r} is not in storage")
        await service.record_completion(tx, event)

    async def on_session_deleted(tx: AsyncSession, event: SessionDeleted) -> None:
        await deletions.delete_session(tx, storage, event)

    async def on_trial_deleted(tx: AsyncSession, event: TrialDeleted) -> None:
        await deletions.delete_trial(tx, storage, event)

    return {
        ProcessingCompleted: on_processing_completed,
        SessionCreated: on_session_created,
        SessionUpdated: on_session_updated,
        SessionDeleted: on_session_deleted,
        TrialDeleted: on_trial_deleted,
        TrialStarted: on_trial_started,
        TrialRenamed: on_trial_renamed,
        TrialQueued: on_trial_queued,
        TrialMetaUpdated: on_trial_meta_updated,
        VideoUploaded: on_video_uploaded,
        **identity_handlers(ApiToken, ApiUser),
    }


async def _upsert(tx: AsyncSession, model, key: dict, values: dict) -> None:
    stmt = insert(model).values(**key, **values)
    await tx.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))


def event_time() -> datetime:
    """When the event being handled happened (its envelope's time; now outside a consumer)."""
    envelope = handling_envelope()
    return envelope.occurred_at if envelope is not None else utcnow()


async def on_session_created(tx: AsyncSession, event: SessionCreated) -> None:
    if await is_forgotten(tx, event.session_id):
        return
    await _upsert(tx, KnownSession, {"id": event.session_id}, {"user_id": event.user_id})


async def on_session_updated(tx: AsyncSession, event: SessionUpdated) -> None:
    """The newest update (by event time) wins: one handled late (a retry) changes nothing."""
    if await is_forgotten(tx, event.session_id):
        return
    values = {
        "public": event.public,
        "calibration_session_id": event.calibration_session_id,
        "subject_id": event.subject_id,
        "changed_at": event_time(),
    }
    stmt = insert(KnownSession).values(id=event.session_id, **values)
    newer = KnownSession.changed_at.is_(None) | (
        KnownSession.changed_at <= stmt.excluded.changed_at
    )
    await tx.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values, where=newer))


async def on_trial_started(tx: AsyncSession, event: TrialStarted) -> None:
    if await is_forgotten(tx, event.trial_id, event.session_id):
        return
    values = {"session_id": event.session_id, "created_at": event.created_at}
    stmt = insert(KnownTrial).values(id=event.trial_id, name=event.name, **values)
    name = func.coalesce(KnownTrial.name, stmt.excluded.name)  # a rename that came first stays
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "name": name})
    )


async def on_trial_renamed(tx: AsyncSession, event: TrialRenamed) -> None:
    if await is_forgotten(tx, event.trial_id, event.session_id):
        return
    values = {"session_id": event.session_id, "name": event.name}
    await _upsert(tx, KnownTrial, {"id": event.trial_id}, values)


async def on_trial_queued(tx: AsyncSession, event: TrialQueued) -> None:
    """The trial's current job: only its completion records results (no job id: any)."""
    if await is_forgotten(tx, event.trial_id, event.session_id):
        return
    values = {"session_id": event.session_id, "current_job_id": event.job_id}
    await _upsert(tx, KnownTrial, {"id": event.trial_id}, values)


async def on_video_uploaded(tx: AsyncSession, event: VideoUploaded) -> None:
    if await is_forgotten(tx, event.trial_id, event.session_id):
        return
    stmt = insert(KnownVideo).values(
        video_id=event.video_id, trial_id=event.trial_id, device_id=event.device_id, key=event.key
    )
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=["video_id"], set_={"key": event.key})
    )


async def on_trial_meta_updated(tx: AsyncSession, event: TrialMetaUpdated) -> None:
    """Only the calibration choice matters here (`meta.calibration`, camera -> solution)."""
    if await is_forgotten(tx, event.trial_id, event.session_id):
        return
    choice = (event.meta or {}).get("calibration")
    valid = isinstance(choice, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in choice.values()
    )
    values = {"session_id": event.session_id, "calibration": choice if valid else None}
    await _upsert(tx, KnownTrial, {"id": event.trial_id}, values)
