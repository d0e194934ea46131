"""Event handlers of the results service: record what the pipeline produced, and keep what
it needs to know of sessions, trials, videos and callers. Each is idempotent: the same
event applied twice leaves the same rows."""

import asyncio

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service import service
from results_service.models import ApiToken, ApiUser, KnownSession, KnownTrial, KnownVideo
from shared.events import (
    ProcessingCompleted,
    SessionCreated,
    SessionUpdated,
    TrialMetaUpdated,
    TrialQueued,
    TrialRenamed,
    TrialStarted,
    VideoUploaded,
)
from shared.identity import identity_handlers
from shared.storage import Storage


class MissingResultObject(Exception):
    pass


def make_handlers(storage: Storage) -> dict:
    async def on_processing_completed(tx: AsyncSession, event: ProcessingCompleted) -> None:
        """The job's results, once every object they name is verified in storage, replace
        the trial's earlier results (a job that is no longer the trial's current is ignored)."""
        if not await service.accepts(tx, event):
            return
        for item in event.results:
            if await asyncio.to_thread(storage.size, item.key) is None:
                raise MissingResultObject(f"result object {item.key!r} is not in storage")
        await service.record_completion(tx, event)

    return {
        ProcessingCompleted: on_processing_completed,
        SessionCreated: on_session_created,
        SessionUpdated: on_session_updated,
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


async def on_session_created(tx: AsyncSession, event: SessionCreated) -> None:
    await _upsert(tx, KnownSession, {"id": event.session_id}, {"user_id": event.user_id})


async def on_session_updated(tx: AsyncSession, event: SessionUpdated) -> None:
    values = {"public": event.public, "calibration_session_id": event.calibration_session_id}
    await _upsert(tx, KnownSession, {"id": event.session_id}, values)


async def on_trial_started(tx: AsyncSession, event: TrialStarted) -> None:
    values = {"session_id": event.session_id, "created_at": event.created_at}
    stmt = insert(KnownTrial).values(id=event.trial_id, name=event.name, **values)
    name = func.coalesce(KnownTrial.name, stmt.excluded.name)  # a rename that came first stays
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "name": name})
    )


async def on_trial_renamed(tx: AsyncSession, event: TrialRenamed) -> None:
    values = {"session_id": event.session_id, "name": event.name}
    await _upsert(tx, KnownTrial, {"id": event.trial_id}, values)


async def on_trial_queued(tx: AsyncSession, event: TrialQueued) -> None:
    """The trial's current job: only its completion records results (no job id: any)."""
    values = {"session_id": event.session_id, "current_job_id": event.job_id}
    await _upsert(tx, KnownTrial, {"id": event.trial_id}, values)


async def on_video_uploaded(tx: AsyncSession, event: VideoUploaded) -> None:
    stmt = insert(KnownVideo).values(
        video_id=event.video_id, trial_id=event.trial_id, device_id=event.device_id, key=event.key
    )
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=["video_id"], set_={"key": event.key})
    )


async def on_trial_meta_updated(tx: AsyncSession, event: TrialMetaUpdated) -> None:
    """Only the calibration choice matters here (`meta.calibration`, camera -> solution)."""
    choice = (event.meta or {}).get("calibration")
    valid = isinstance(choice, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in choice.values()
    )
    values = {"session_id": event.session_id, "calibration": choice if valid else None}
    await _upsert(tx, KnownTrial, {"id": event.trial_id}, values)
