"""Use cases about trials: the recording state machine the web app drives, and its clocks.

Each use case takes the open transaction `tx` and never commits.
"""

from datetime import timedelta
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.config import Settings
from session_service.models import SPECIAL_TRIALS, Result, Session, Trial, TrialTag, User, Video
from session_service.models.sessions import FINISHED
from session_service.sessions import as_trial, can_read, emit, latest_trial, session_trials
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import Event, TrialDeleted
from shared.logging import current_correlation_id

NAME_MAX = 64
STUCK = "The recording was never stopped; it was ended after {seconds} s."
SUPERSEDED = "A newer trial was started before this one was stopped."


def validate_trial_name(name: object) -> str:
    """A name of up to 64 characters; any script is fine, but nothing path-like."""
    if name is not None and not isinstance(name, str):
        raise Invalid("Not a valid string.", field="name")
    name = (name or "").strip()
    if not name:
        raise Invalid("A trial name is required.", field="name")
    if len(name) > NAME_MAX:
        raise Invalid(f"Ensure this field has no more than {NAME_MAX} characters.", field="name")
    if any(c in name for c in "/\\") or ".." in name or not name.isprintable():
        raise Invalid(
            "A trial name cannot contain '/', '\\\\', '..' or control characters.", field="name"
        )
    return name


async def record_trial(
    tx: AsyncSession, session: Session, name: str | None, settings: Settings
) -> Trial:
    """Start a trial. The same `record` repeated within seconds returns the same trial; a
    trial still recording is ended first. Calibration and neutral stop themselves."""
    name = validate_trial_name(name)
    current = await latest_trial(tx, session.id, lock=True)
    now = utcnow()  # after the lock: trials are made in the order of their times
    window = timedelta(seconds=settings.record_dedupe_seconds)
    if (
        current
        and current.status == "recording"
        and _requested(current, name)
        and (now - current.created_at <= window)
    ):
        return current
    trials = await session_trials(tx, session.id)
    for forgotten in (t for t in trials if t.status == "recording"):
        emit(tx, forgotten.fail(SUPERSEDED, now, "superseded"))
    stop_at = (
        now + timedelta(seconds=settings.capture_window_seconds)
        if (name in SPECIAL_TRIALS)
        else None
    )
    trial = session.start_trial(name, [t.name or "" for t in trials], now, stop_at)
    if len(trial.name or "") > NAME_MAX:
        raise Invalid(f"The trial would be named {trial.name!r}: too long.", field="name")
    trial.correlation_id = current_correlation_id()
    tx.add(trial)
    emit(tx, trial.started())
    return trial


def _requested(trial: Trial, name: str) -> bool:
    """Whether `trial` is what a `record?name=<name>` made (its name, maybe suffixed)."""
    given = trial.name or ""
    return given == name or (given.startswith(f"{name}_") and given[len(name) + 1 :].isdigit())


async def stop_trial(tx: AsyncSession, session: Session) -> Trial:
    """Stop the latest trial. Stopping it again is harmless; a finished one is a 409."""
    trial = await latest_trial(tx, session.id, lock=True)
    if trial is None:
        raise Conflict("This session has no trial to stop.")
    if trial.status in ("done", "error", "reprocess"):
        raise Conflict(f"The latest trial is already {trial.status}.")
    emit(tx, trial.stop(utcnow()))
    return trial


async def cancel_trial(tx: AsyncSession, session: Session) -> dict:
    """Cancel the latest trial while it records or waits for uploads; later, a 409.

    A stopped trial waits for uploads until the upload service says every video is in
    (the trial is then queued), also when no phone joined at all: the web app's stop +
    cancel when cameras are missing."""
    trial = await latest_trial(tx, session.id, lock=True)
    if trial is None:
        return {"status": "noTrials"}
    if cancelled := trial.cancel(utcnow(), uploads_outstanding=trial.queued_at is None):
        emit(tx, cancelled)
    return {"status": "error"}


def check_reprocess(trial: Trial) -> None:
    """Only a finished trial (done or error) is processed again."""
    if trial.status not in FINISHED:
        raise Conflict(f"A {trial.status} trial cannot be reprocessed.")


def set_status(trial: Trial, status: str, user: User) -> Event | None:
    """A status written through PATCH by the pipeline: `done`, or `error` with the message
    it put in `meta` (`reprocess` goes through processing.reprocess)."""
    if status == trial.status:
        return None
    if not user.in_group("admin", "backend"):
        raise Forbidden("Only the processing pipeline sets this status.")
    if status == "done":
        finished = trial.finish(utcnow())
        if finished is None:
            raise Conflict(f"A {trial.status} trial cannot become done.")
        return finished
    if status == "error":
        meta = trial.meta or {}
        message = meta.get("error_msg") or "Processing failed."
        return trial.fail(message, utcnow(), meta.get("error_msg_dev") or message)
    raise Invalid(f'"{status}" cannot be set here.', field="status")


async def delete_trial(tx: AsyncSession, trial: Trial) -> None:
    """The trial goes with its videos and results; the other services are told."""
    emit(tx, TrialDeleted(trial_id=trial.id, session_id=trial.session_id))
    await tx.delete(trial)


async def get_trial(tx: AsyncSession, trial_id: UUID, user: User | None) -> Trial:
    trial = await tx.get(Trial, trial_id)
    if trial is None:
        raise NotFound()
    session = await tx.get(Session, trial.session_id)
    if session is None or not can_read(session, user):
        raise NotFound()
    return trial


async def trial_media(tx: AsyncSession, trial_id: UUID) -> tuple[list[Video], list[Result]]:
    videos = await tx.scalars(
        select(Video).where(Video.trial_id == trial_id).order_by(Video.created_at)
    )
    results = await tx.scalars(
        select(Result).where(Result.trial_id == trial_id).order_by(Result.id)
    )
    return list(videos.all()), list(results.all())


async def session_trials_with_media(
    tx: AsyncSession, session_id: UUID
) -> list[tuple[Trial, list[Video], list[Result]]]:
    """Every trial of the session (by creation) with its videos and results, in 3 queries."""
    trials = await session_trials(tx, session_id)
    ids = [trial.id for trial in trials]
    videos = (
        await tx.scalars(select(Video).where(Video.trial_id.in_(ids)).order_by(Video.created_at))
    ).all()
    results = (
        await tx.scalars(select(Result).where(Result.trial_id.in_(ids)).order_by(Result.id))
    ).all()
    return [
        (t, [v for v in videos if v.trial_id == t.id], [r for r in results if r.trial_id == t.id])
        for t in trials
    ]


async def set_tags(tx: AsyncSession, trial: Trial, tags: object) -> None:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise Invalid("Expected a list of strings.", field="trialNewTags")
    await tx.execute(delete(TrialTag).where(TrialTag.trial_id == trial.id))
    for tag in dict.fromkeys(t.strip() for t in tags if t.strip()):
        tx.add(TrialTag(trial_id=trial.id, tag=tag[:256]))


async def trial_tags(tx: AsyncSession, trial_id: UUID) -> list[TrialTag]:
    stmt = select(TrialTag).where(TrialTag.trial_id == trial_id).order_by(TrialTag.tag)
    return list((await tx.scalars(stmt)).all())


async def stop_due_captures(tx: AsyncSession, limit: int = 100) -> int:
    """Stop the calibration and neutral captures whose window is over (the scheduler)."""
    stmt = (
        select(Trial)
        .where(Trial.status == "recording", Trial.stop_at <= utcnow())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due = (await tx.scalars(stmt)).all()
    for trial in due:
        with as_trial(trial):
            emit(tx, trial.stop(utcnow()))
    return len(due)


async def end_stuck_recordings(tx: AsyncSession, timeout_seconds: int, limit: int = 500) -> int:
    """Error the trials left recording longer than any real recording lasts (the janitor)."""
    cutoff = utcnow() - timedelta(seconds=timeout_seconds)
    stmt = (
        select(Trial)
        .where(Trial.status == "recording", Trial.created_at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stuck = (await tx.scalars(stmt)).all()
    for trial in stuck:
        message = STUCK.format(seconds=timeout_seconds)
        with as_trial(trial):
            emit(tx, trial.fail(message, utcnow(), "recording timeout"))
    return len(stuck)


def phone_status(trial: Trial | None, videos: list[Video], results: list[Result]) -> str:
    """What the phones' status shows for this trial, derived as the original does (§5.2);
    the web app reads it here through `status/?ret_session=true` and the capture polls."""
    if trial is None or trial.status not in ("stopped", "processing") or not videos:
        return "ready"
    if any(video.key is None for video in videos):
        return "uploading"
    return "ready" if results else "processing"


async def phone_view(tx: AsyncSession, session: Session, public_base: str) -> dict:
    """The status response without a phone: the web app's view of the latest trial."""
    trial = await latest_trial(tx, session.id)
    videos, results = await trial_media(tx, trial.id) if trial else ([], [])
    framerate = 30 if trial and trial.name in SPECIAL_TRIALS else session.framerate()
    moved_to = session.linked("startNewSession")
    return {
        "status": phone_status(trial, videos, results),
        "trial": f"/trials/{trial.id}/" if trial else None,
        "video": None,
        "framerate": framerate,
        "newSessionURL": f"{public_base}/sessions/{moved_to}/status/" if moved_to else None,
        "n_cameras_connected": len(videos),
        "n_videos_uploaded": sum(1 for video in videos if video.key),
    }
