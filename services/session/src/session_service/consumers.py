"""Event handlers of the session service: the trial moves on as the other services report."""

from uuid import uuid4

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.models import Outbox, Result, Trial, Video
from session_service.sessions import PRODUCER, emit
from shared.db import utcnow
from shared.events import (
    JOB_ROUTING_KEY,
    JOBS_EXCHANGE,
    CamerasFinal,
    DeviceJoined,
    ProcessingFailed,
    ProcessingJob,
    ProcessingStarted,
    ResultsRecorded,
    UploadTimedOut,
    VideosReceived,
    VideoUploaded,
)
from shared.outbox import record

NO_CAMERAS = (
    "No cameras were connected when this trial was recorded. Make sure the phones show "
    "the session's QR code page and have a stable internet connection."
)
ONE_CAMERA = (
    "Calibration needs at least two cameras, but only {n} recorded it. Connect two or more "
    "phones and calibrate again."
)
MISSING = "No video arrived from {devices} before the upload deadline. Record the trial again."


async def _trial(tx: AsyncSession, trial_id) -> Trial | None:
    return await tx.get(Trial, trial_id, with_for_update=True)


async def on_device_joined(tx: AsyncSession, event: DeviceJoined) -> None:
    now = utcnow()
    stmt = insert(Video).values(
        id=event.video_id,
        trial_id=event.trial_id,
        device_id=event.device_id,
        key=None,
        parameters=None,
        created_at=now,
        updated_at=now,
    )
    await tx.execute(stmt.on_conflict_do_nothing())


async def on_video_uploaded(tx: AsyncSession, event: VideoUploaded) -> None:
    """Attach the upload; creates the projection too if the slot's own event is late."""
    now = utcnow()
    stmt = insert(Video).values(
        id=event.video_id,
        trial_id=event.trial_id,
        device_id=event.device_id,
        key=event.key,
        parameters=event.parameters,
        created_at=now,
        updated_at=now,
    )
    update = {"key": event.key, "parameters": event.parameters, "updated_at": now}
    await tx.execute(stmt.on_conflict_do_update(index_elements=[Video.id], set_=update))


async def on_cameras_final(tx: AsyncSession, event: CamerasFinal) -> None:
    """A trial that can never be processed is an error now, with the reason: no phone
    connected, or a calibration seen by fewer than two cameras."""
    trial = await _trial(tx, event.trial_id)
    if trial is None or trial.status != "stopped":
        return
    if not event.cameras:
        emit(tx, trial.fail(NO_CAMERAS, utcnow(), "No video slots were registered."))
    elif trial.name == "calibration" and len(event.cameras) < 2:
        message = ONE_CAMERA.format(n=len(event.cameras))
        emit(tx, trial.fail(message, utcnow(), "calibration with fewer than 2 cameras"))


async def on_upload_timed_out(tx: AsyncSession, event: UploadTimedOut) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is None or trial.status != "stopped":
        return
    devices = ", ".join(f"phone {str(d).upper()}" for d in event.missing_device_ids)
    message = MISSING.format(devices=devices or "some phones")
    emit(tx, trial.fail(message, utcnow(), f"upload deadline passed; missing: {devices}"))


async def on_videos_received(tx: AsyncSession, event: VideosReceived) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is None:
        return
    queued = trial.queue(utcnow())
    if queued is None:
        return
    emit(tx, queued)
    job = ProcessingJob(
        job_id=uuid4(),
        trial_id=trial.id,
        session_id=trial.session_id,
        trial_name=trial.name or "",
        trial_type=trial.trial_type,
        videos=event.videos,
    )
    record(tx, Outbox, job, producer=PRODUCER, exchange=JOBS_EXCHANGE, routing_key=JOB_ROUTING_KEY)


async def on_processing_started(tx: AsyncSession, event: ProcessingStarted) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is not None:
        trial.hostname = event.worker[:64]


async def on_processing_failed(tx: AsyncSession, event: ProcessingFailed) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is not None and trial.status == "processing":
        emit(tx, trial.fail(event.error_msg, utcnow(), event.error_msg_dev))


async def on_results_recorded(tx: AsyncSession, event: ResultsRecorded) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is None:
        return
    now = utcnow()
    for result in event.results:
        stmt = insert(Result).values(
            id=result.result_id,
            trial_id=trial.id,
            tag=result.tag,
            device_id=result.device_id,
            key=result.key,
            meta=result.meta,
            created_at=now,
            updated_at=now,
        )
        await tx.execute(stmt.on_conflict_do_nothing())
    if event.complete:
        emit(tx, trial.finish(now))


HANDLERS = {
    DeviceJoined: on_device_joined,
    VideoUploaded: on_video_uploaded,
    CamerasFinal: on_cameras_final,
    UploadTimedOut: on_upload_timed_out,
    VideosReceived: on_videos_received,
    ProcessingStarted: on_processing_started,
    ProcessingFailed: on_processing_failed,
    ResultsRecorded: on_results_recorded,
}
