"""Event handlers of the upload service: the video slots, when a camera set is final, when a
trial ends elsewhere, who owns each session, deleted trials and sessions, and the callers'
identities."""

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import utcnow
from shared.events import (
    CamerasFinal,
    DeviceJoined,
    Event,
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TrialDeleted,
    TrialFinished,
    TrialStarted,
)
from shared.identity import identity_handlers
from shared.messaging import Handler, handling_envelope
from shared.storage import Storage
from upload_service.deletions import delete_objects, forget_session, forget_trial
from upload_service.models import ApiToken, ApiUser, KnownSession, UploadTrial, Video
from upload_service.service import emit, trial_videos


def event_time() -> datetime:
    """When the event being handled happened (its envelope's time; now outside a consumer)."""
    envelope = handling_envelope()
    return envelope.occurred_at if envelope is not None else utcnow()


async def _ensure_trial(tx: AsyncSession, trial_id, session_id) -> None:
    stmt = insert(UploadTrial).values(id=trial_id, session_id=session_id)
    await tx.execute(stmt.on_conflict_do_nothing())


async def _ensure_video(tx: AsyncSession, video_id, trial_id, session_id, device_id) -> None:
    now = utcnow()
    stmt = insert(Video).values(
        id=video_id,
        trial_id=trial_id,
        session_id=session_id,
        device_id=device_id,
        in_final_set=False,
        created_at=now,
        updated_at=now,
    )
    await tx.execute(stmt.on_conflict_do_nothing())


async def on_trial_started(tx: AsyncSession, event: TrialStarted) -> None:
    """The trial's name decides its upload deadline (calibration and neutral are short)."""
    stmt = insert(UploadTrial).values(
        id=event.trial_id, session_id=event.session_id, name=event.name[:64]
    )
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={"name": stmt.excluded.name})
    )


async def on_device_joined(tx: AsyncSession, event: DeviceJoined) -> None:
    await _ensure_trial(tx, event.trial_id, event.session_id)
    await _ensure_video(tx, event.video_id, event.trial_id, event.session_id, event.device_id)


async def on_cameras_final(tx: AsyncSession, event: CamerasFinal) -> None:
    """Fix the trial's camera set (its deadline starts now); if every video is in, say so.

    A trial with no camera waits for nothing: the session service fails it itself."""
    await _ensure_trial(tx, event.trial_id, event.session_id)
    trial = await tx.get(UploadTrial, event.trial_id, with_for_update=True)
    if trial.final_at is not None:
        return
    for camera in event.cameras:
        await _ensure_video(tx, camera.video_id, event.trial_id, event.session_id, camera.device_id)
    ids = [camera.video_id for camera in event.cameras]
    await tx.execute(update(Video).where(Video.id.in_(ids)).values(in_final_set=True))
    now = utcnow()
    trial.final_at = now
    if not event.cameras and trial.waiting:
        trial.closed_at = now
    emit(tx, trial.all_received(await trial_videos(tx, trial.id), now))


async def on_trial_finished(tx: AsyncSession, event: TrialFinished) -> None:
    """Done, failed or cancelled elsewhere: stop waiting for (and accepting) uploads."""
    await _ensure_trial(tx, event.trial_id, event.session_id)
    trial = await tx.get(UploadTrial, event.trial_id, with_for_update=True)
    if trial.closed_at is None:
        trial.closed_at = utcnow()


async def on_session_created(tx: AsyncSession, event: SessionCreated) -> None:
    stmt = insert(KnownSession).values(id=event.session_id, user_id=event.user_id)
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={"user_id": event.user_id})
    )


async def on_session_updated(tx: AsyncSession, event: SessionUpdated) -> None:
    """Phones of this session move on to `new_session_id`, keeping their presign address.
    The latest event wins: one that a retry delivers after a newer one changes nothing."""
    values = {"next_session_id": event.new_session_id, "fields_at": event_time()}
    stmt = insert(KnownSession).values(id=event.session_id, **values)
    newer = KnownSession.fields_at.is_(None) | (KnownSession.fields_at <= stmt.excluded.fields_at)
    await tx.execute(
        stmt.on_conflict_do_update(index_elements=[KnownSession.id], set_=values, where=newer)
    )


def deletion_handlers(storage: Storage) -> dict[type[Event], Handler]:
    """A deleted trial or session: forget its rows, then delete its objects from storage."""

    async def on_trial_deleted(tx: AsyncSession, event: TrialDeleted) -> None:
        await delete_objects(storage, await forget_trial(tx, event.trial_id))

    async def on_session_deleted(tx: AsyncSession, event: SessionDeleted) -> None:
        await delete_objects(storage, await forget_session(tx, event.session_id))

    return {TrialDeleted: on_trial_deleted, SessionDeleted: on_session_deleted}


def handlers(storage: Storage) -> dict[type[Event], Handler]:
    """Every event the upload worker consumes, and its handler."""
    return {
        TrialStarted: on_trial_started,
        DeviceJoined: on_device_joined,
        CamerasFinal: on_cameras_final,
        TrialFinished: on_trial_finished,
        SessionCreated: on_session_created,
        SessionUpdated: on_session_updated,
        **deletion_handlers(storage),
        **identity_handlers(ApiToken, ApiUser),
    }
