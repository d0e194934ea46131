"""Event handlers of the session service: the trial moves on as the other services report."""

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.config import Settings
from session_service.models import Result, Session, Trial, Video
from session_service.processing import queue_job, requeue
from session_service.sessions import as_trial, emit, n_calibrated_cameras
from shared.db import utcnow
from shared.events import (
    CamerasFinal,
    DeviceJoined,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingHeartbeat,
    ProcessingStarted,
    ResultsRecorded,
    ResultsRemoved,
    UploadTimedOut,
    VideosReceived,
    VideoUploaded,
)

NO_CAMERAS = (
    "No cameras were connected when this trial was recorded. Make sure the phones show "
    "the session's QR code page and have a stable internet connection."
)
ONE_CAMERA = (
    "Calibration needs at least two cameras, but only {n} recorded it. Connect two or more "
    "phones and calibrate again."
)
FEWER_CAMERAS = (
    "Only {n} of the {calibrated} calibrated cameras recorded this trial. Connect every "
    "calibrated phone (the session page shows how many are connected) and record it again."
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
    connected, a calibration seen by fewer than two cameras, or another trial seen by
    fewer cameras than the session was calibrated with (known-failures 4, 5)."""
    trial = await _trial(tx, event.trial_id)
    if trial is None or trial.status != "stopped":
        return
    if reason := await _unprocessable(tx, trial, len(event.cameras)):
        message, for_developers = reason
        emit(tx, trial.fail(message, utcnow(), for_developers))


async def _unprocessable(tx: AsyncSession, trial: Trial, n: int) -> tuple[str, str] | None:
    """Why a trial seen by `n` cameras cannot be processed (message, message for devs)."""
    if n == 0:
        return NO_CAMERAS, "No video slots were registered."
    if trial.name == "calibration":
        return (ONE_CAMERA.format(n=n), "calibration with fewer than 2 cameras") if n < 2 else None
    calibrated = await n_calibrated_cameras(tx, await tx.get(Session, trial.session_id))
    if n < calibrated:
        message = FEWER_CAMERAS.format(n=n, calibrated=calibrated)
        return message, f"{n} of {calibrated} calibrated cameras"
    return None


async def on_upload_timed_out(tx: AsyncSession, event: UploadTimedOut) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is None or trial.status != "stopped":
        return
    devices = ", ".join(f"phone {str(d).upper()}" for d in event.missing_device_ids)
    message = MISSING.format(devices=devices or "some phones")
    with as_trial(trial):
        emit(tx, trial.fail(message, utcnow(), f"upload deadline passed; missing: {devices}"))


async def on_videos_received(tx: AsyncSession, event: VideosReceived) -> None:
    """Every video is in: the trial's job goes on the queue (once)."""
    trial = await _trial(tx, event.trial_id)
    if trial is not None and trial.status == "stopped" and trial.queued_at is None:
        with as_trial(trial):  # (not the last phone's upload: the trial's own id)
            await queue_job(tx, trial, event.videos)


def make_on_heartbeat(settings: Settings):
    lease = timedelta(seconds=settings.processing_lease_seconds)

    async def on_processing_heartbeat(tx: AsyncSession, event: ProcessingHeartbeat) -> None:
        """The worker holding the trial is alive: its lease runs on."""
        trial = await _trial(tx, event.trial_id)
        if trial is not None and trial.job_id == event.job_id:
            trial.renew(event.worker, utcnow(), lease)

    return on_processing_heartbeat


def make_on_completed(settings: Settings):
    wait = timedelta(seconds=settings.results_lease_seconds)

    async def on_processing_completed(tx: AsyncSession, event: ProcessingCompleted) -> None:
        """The worker is done and sends no more heartbeats; the results service records its
        results, which finish the trial. Until then the lease holds, so a results service
        that lags is not taken for a dead worker (and the trial processed again)."""
        trial = await _trial(tx, event.trial_id)
        if trial is not None and trial.job_id == event.job_id:
            trial.renew(event.worker, utcnow(), wait)

    return on_processing_completed


async def on_processing_started(tx: AsyncSession, event: ProcessingStarted) -> None:
    trial = await _trial(tx, event.trial_id)
    if trial is not None:
        trial.hostname = event.worker[:64]


def make_on_failed(settings: Settings):
    async def on_processing_failed(tx: AsyncSession, event: ProcessingFailed) -> None:
        """A failure in the trial ends it in `error`; one that was not (`retry`: storage
        out of reach) puts it back on the queue, within the attempts allowed."""
        trial = await _trial(tx, event.trial_id)
        current = trial is not None and trial.job_id in (event.job_id, None)
        if not current or trial.status != "processing":
            return
        if event.retry and trial.attempts < settings.processing_max_attempts:
            with as_trial(trial):
                await requeue(tx, trial)
        else:
            emit(tx, trial.fail(event.error_msg, utcnow(), event.error_msg_dev))

    return on_processing_failed


async def on_results_recorded(tx: AsyncSession, event: ResultsRecorded) -> None:
    """Keep the trial view's results; a job's complete results finish its trial."""
    trial = await _trial(tx, event.trial_id)
    if trial is None:
        return
    now = utcnow()
    if event.replace:
        await tx.execute(delete(Result).where(Result.trial_id == trial.id))
    for result in event.results:
        values = {
            "tag": result.tag,
            "device_id": result.device_id,
            "key": result.key,
            "meta": result.meta,
            "updated_at": now,
        }
        stmt = insert(Result).values(
            id=result.result_id, trial_id=trial.id, created_at=now, **values
        )
        await tx.execute(stmt.on_conflict_do_update(index_elements=[Result.id], set_=values))
    if event.complete and trial.job_id in (event.job_id, None):
        emit(tx, trial.finish(now))


async def on_results_removed(tx: AsyncSession, event: ResultsRemoved) -> None:
    await tx.execute(delete(Result).where(Result.id.in_(event.result_ids)))


def make_handlers(settings: Settings) -> dict:
    return {
        DeviceJoined: on_device_joined,
        VideoUploaded: on_video_uploaded,
        CamerasFinal: on_cameras_final,
        UploadTimedOut: on_upload_timed_out,
        VideosReceived: on_videos_received,
        ProcessingStarted: on_processing_started,
        ProcessingHeartbeat: make_on_heartbeat(settings),
        ProcessingCompleted: make_on_completed(settings),
        ProcessingFailed: make_on_failed(settings),
        ResultsRecorded: on_results_recorded,
        ResultsRemoved: on_results_removed,
    }
