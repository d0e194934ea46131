"""Event handlers of the device service: keep its copy of sessions and trials current."""

from uuid import UUID

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from device_service.models import KnownSession, KnownTrial, Outbox, VideoSlot
from device_service.service import PRODUCER, trial_slots
from shared.db import utcnow
from shared.events import (
    Camera,
    CamerasFinal,
    ResultsRecorded,
    SessionCreated,
    TrialFinished,
    TrialQueued,
    TrialStarted,
    TrialStopped,
    VideoUploaded,
)
from shared.outbox import record


async def on_session_created(tx: AsyncSession, event: SessionCreated) -> None:
    stmt = insert(KnownSession).values(
        id=event.session_id, framerate=event.framerate, new_session_id=None, created_at=utcnow()
    )
    await tx.execute(stmt.on_conflict_do_nothing())


async def on_trial_started(tx: AsyncSession, event: TrialStarted) -> None:
    now = utcnow()
    stmt = insert(KnownTrial).values(
        id=event.trial_id,
        session_id=event.session_id,
        name=event.name,
        status="recording",
        has_results=False,
        started_at=event.created_at,
        updated_at=now,
    )
    await tx.execute(stmt.on_conflict_do_nothing())


async def _advance(tx: AsyncSession, trial_id: UUID, status: str) -> KnownTrial | None:
    trial = await tx.get(KnownTrial, trial_id, with_for_update=True)
    if trial is not None and trial.advance(status, utcnow()):
        return trial
    return None


async def on_trial_stopped(tx: AsyncSession, event: TrialStopped) -> None:
    """Recording is over: the trial's set of cameras is final; tell the upload service."""
    trial = await _advance(tx, event.trial_id, "stopped")
    if trial is None:
        return
    cameras = [
        Camera(video_id=s.id, device_id=s.device_id) for s in await trial_slots(tx, trial.id)
    ]
    final = CamerasFinal(trial_id=trial.id, session_id=trial.session_id, cameras=cameras)
    record(tx, Outbox, final, producer=PRODUCER)


async def on_trial_queued(tx: AsyncSession, event: TrialQueued) -> None:
    await _advance(tx, event.trial_id, "processing")


async def on_trial_finished(tx: AsyncSession, event: TrialFinished) -> None:
    await _advance(tx, event.trial_id, event.status)


async def on_video_uploaded(tx: AsyncSession, event: VideoUploaded) -> None:
    await tx.execute(update(VideoSlot).where(VideoSlot.id == event.video_id).values(uploaded=True))


async def on_results_recorded(tx: AsyncSession, event: ResultsRecorded) -> None:
    stmt = update(KnownTrial).where(KnownTrial.id == event.trial_id).values(has_results=True)
    await tx.execute(stmt)


HANDLERS = {
    SessionCreated: on_session_created,
    TrialStarted: on_trial_started,
    TrialStopped: on_trial_stopped,
    TrialQueued: on_trial_queued,
    TrialFinished: on_trial_finished,
    VideoUploaded: on_video_uploaded,
    ResultsRecorded: on_results_recorded,
}
