"""Event handlers of the upload service: learn the video slots and when a camera set is final."""

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import utcnow
from shared.events import CamerasFinal, DeviceJoined
from upload_service.models import UploadTrial, Video
from upload_service.service import emit, trial_videos


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


async def on_device_joined(tx: AsyncSession, event: DeviceJoined) -> None:
    await _ensure_trial(tx, event.trial_id, event.session_id)
    await _ensure_video(tx, event.video_id, event.trial_id, event.session_id, event.device_id)


async def on_cameras_final(tx: AsyncSession, event: CamerasFinal) -> None:
    """Fix the trial's camera set; if every video is already in, say so now."""
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
    emit(tx, trial.all_received(await trial_videos(tx, trial.id), now))


HANDLERS = {DeviceJoined: on_device_joined, CamerasFinal: on_cameras_final}
