"""A trial's processing: the job queued once every video is in, the claim that gives one
worker the trial (RabbitMQ workers by a claim request, the stock pipeline by the HTTP
dequeue), the lease its heartbeats keep alive, and what happens when a worker vanishes.

Each use case takes the open transaction `tx` and never commits.
"""

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import Select, and_, any_, case, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.config import Settings
from session_service.models import SPECIAL_TRIALS, Outbox, Session, Trial, User, Video
from session_service.sessions import PRODUCER, as_trial, emit
from shared.db import utcnow
from shared.events import (
    JOB_QUEUES,
    JOBS_EXCHANGE,
    ClaimReply,
    ClaimRequest,
    ProcessingJob,
    UploadedVideo,
)
from shared.outbox import record

EXHAUSTED = "Processing failed {n} times: the processing server stopped responding. Try again."
NEVER_TAKEN = "No processing server took this trial. Try reprocessing it later."
HORIZON = timedelta(days=7)  # the stock dequeue never hands out older trials


def job_kind(session: Session, trial: Trial) -> str:
    """The queue a trial's job goes on (`JOB_QUEUES`)."""
    if session.is_mono:
        return "mono"
    return "setup" if trial.name in SPECIAL_TRIALS else "dynamic"


def job_priority(trial: Trial, owner: User, reprocess: bool) -> int:
    """Higher first: calibration and neutral, then the `priority` group; reprocessing last."""
    if reprocess:
        return 1
    if trial.name in SPECIAL_TRIALS:
        return 7
    return 5 if owner.in_group("priority", "admin") else 3


async def uploaded_videos(tx: AsyncSession, trial: Trial) -> list[UploadedVideo]:
    rows = await tx.scalars(
        select(Video)
        .where(Video.trial_id == trial.id, Video.key.is_not(None))
        .order_by(Video.created_at)
    )
    return [
        UploadedVideo(
            video_id=v.id, device_id=v.device_id, key=v.key, parameters=v.parameters or {}
        )
        for v in rows
    ]


async def queue_job(
    tx: AsyncSession,
    trial: Trial,
    videos: list[UploadedVideo] | None = None,
    *,
    reprocess: bool = False,
) -> None:
    """Put a job for the trial on the queue of its kind. Its videos are the ones given (the
    upload service's final set) or, when processing again, the ones uploaded."""
    emit(tx, trial.queue(utcnow()))
    await _send_job(tx, trial, videos, reprocess=reprocess)


async def _send_job(
    tx: AsyncSession, trial: Trial, videos: list[UploadedVideo] | None, *, reprocess: bool
) -> None:
    session = await tx.get(Session, trial.session_id)
    owner = await tx.get(User, session.user_id)
    job = ProcessingJob(
        job_id=trial.job_id,
        trial_id=trial.id,
        session_id=trial.session_id,
        trial_name=trial.name or "",
        trial_type=trial.trial_type,
        videos=videos if videos is not None else await uploaded_videos(tx, trial),
        attempt=trial.attempts + 1,
        is_mono=session.is_mono,
    )
    kind = job_kind(session, trial)
    priority = job_priority(trial, owner, reprocess)
    record(
        tx,
        Outbox,
        job,
        producer=PRODUCER,
        exchange=JOBS_EXCHANGE,
        routing_key=kind,
        priority=priority,
    )


async def claim(tx: AsyncSession, request: ClaimRequest, settings: Settings) -> ClaimReply:
    """Grant a worker the trial of its job, if that job is current and nobody holds it."""
    trial = await tx.get(Trial, request.trial_id, with_for_update=True)
    now = utcnow()
    lease = timedelta(seconds=settings.processing_lease_seconds)
    if trial is None or trial.job_id != request.job_id:
        return ClaimReply(granted=False, reason="This job is no longer current.")
    if trial.status == "processing" and trial.lease_holder == request.worker[:128]:
        trial.renew(request.worker, now, lease)  # the worker asked again: same answer
    elif not trial.claimable(now):
        return ClaimReply(granted=False, reason=f"The trial is {trial.status}.")
    else:
        trial.claim(request.worker, now, lease)
    return ClaimReply(granted=True, lease_seconds=settings.processing_lease_seconds)


def _dequeue_query(worker_type: str, is_mono: str) -> Select:
    """The stock dequeue's choice (reference §5.9), over trials whose videos are all in."""
    special = Trial.name.in_(SPECIAL_TRIALS)
    mono = Session.is_mono if is_mono != "False" else Session.is_mono.is_(False)
    stmt = (
        select(Trial)
        .join(Session, Session.id == Trial.session_id)
        .join(User, User.id == Session.user_id)
        .where(
            Trial.queued_at.is_not(None),
            Trial.status.in_(("stopped", "reprocess")),
            Trial.updated_at >= utcnow() - HORIZON,
            mono,
        )
    )
    if worker_type == "calibration":
        stmt = stmt.where(special)
    elif worker_type == "dynamic":
        stmt = stmt.where(or_(Trial.name.is_(None), Trial.name.not_in(SPECIAL_TRIALS)))
    first = [case((special, 0), else_=1)] if worker_type != "dynamic" else []
    owner_rank = case(
        (literal("admin") == any_(User.groups), 0),
        (literal("priority") == any_(User.groups), 1),
        else_=2,
    )
    return stmt.order_by(
        *first, case((Trial.status == "stopped", 0), else_=1), owner_rank, Trial.queued_at
    )


async def dequeue(
    tx: AsyncSession, query: Mapping[str, str], worker: str, settings: Settings
) -> Trial | None:
    """The stock pipeline's `GET /trials/dequeue/`: claim the next trial, or None."""
    stmt = _dequeue_query(query.get("workerType", "all"), query.get("isMono", "False"))
    trial = (await tx.scalars(stmt.limit(1).with_for_update(of=Trial, skip_locked=True))).first()
    if trial is None:
        return None
    trial.claim(worker, utcnow(), timedelta(seconds=settings.legacy_lease_seconds))
    trial.server = worker[:64]
    # The session's row is locked by record/stop/cancel, which then lock its latest trial:
    # waiting for it while holding the trial could deadlock, so if it is busy the session
    # keeps no `server` (a note for operators; the trial has its own).
    busy = select(Session).where(Session.id == trial.session_id).with_for_update(skip_locked=True)
    session = (await tx.scalars(busy)).first()
    if session is not None and not session.server:
        session.server = worker[:64]
    return trial


async def reprocess(tx: AsyncSession, trial: Trial) -> None:
    """Process a finished trial again (its new results will replace the old ones)."""
    trial.status, trial.attempts = "reprocess", 0
    await queue_job(tx, trial, reprocess=True)


async def resend_lost_jobs(
    tx: AsyncSession, settings: Settings, empty_queues: set[str], limit: int = 100
) -> int:
    """Jobs nobody claimed long after they were sent, whose queue holds nothing (so the job
    is no longer in it: lost, or dead-lettered): sent again with the same job id (a copy is
    harmless, a job's trial is granted to one claim only), at most `max_job_resends`
    times; then the trial fails with the reason (known-failures 15). Returns how many
    trials were handled."""
    cutoff = utcnow() - timedelta(seconds=settings.resend_unclaimed_seconds)
    empty_kinds = [kind for kind, queue in JOB_QUEUES.items() if queue in empty_queues]
    kind = case(  # job_kind's rule, in SQL
        (Session.is_mono, "mono"), (Trial.name.in_(SPECIAL_TRIALS), "setup"), else_="dynamic"
    )
    stmt = (
        select(Trial)
        .join(Session, Session.id == Trial.session_id)
        .where(
            Trial.status.in_(("stopped", "reprocess")),
            Trial.queued_at.is_not(None),
            Trial.job_sent_at < cutoff,
            kind.in_(empty_kinds),  # elsewhere the job may still be waiting its turn
        )
        .order_by(Trial.job_sent_at)
        .limit(limit)
        .with_for_update(of=Trial, skip_locked=True)
    )
    handled = 0
    for trial in (await tx.scalars(stmt)).all():
        handled += 1
        with as_trial(trial):
            if trial.job_resends >= settings.max_job_resends:
                sent = trial.job_resends + 1
                dev = f"job sent {sent} times, never claimed"
                emit(tx, trial.fail(NEVER_TAKEN, utcnow(), dev))
                continue
            await _send_job(tx, trial, None, reprocess=trial.status == "reprocess")
        trial.job_resends, trial.job_sent_at = trial.job_resends + 1, utcnow()
    return handled


async def requeue_lapsed(tx: AsyncSession, settings: Settings, limit: int = 100) -> int:
    """Trials whose worker stopped renewing its lease: queued again, or failed for good
    after `processing_max_attempts` attempts. Returns how many were handled."""
    stmt = (
        select(Trial)
        .where(and_(Trial.status == "processing", Trial.lease_expires_at < utcnow()))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    lapsed = (await tx.scalars(stmt)).all()
    for trial in lapsed:
        with as_trial(trial):
            if trial.attempts >= settings.processing_max_attempts:
                message = EXHAUSTED.format(n=trial.attempts)
                emit(tx, trial.fail(message, utcnow(), f"lease of {trial.lease_holder} lapsed"))
            else:
                await requeue(tx, trial)
    return len(lapsed)


async def job_still_wanted(tx: AsyncSession, job: ProcessingJob) -> bool:
    """Whether a job message still stands for work to do: its trial waits for this job
    (not taken by the stock pipeline's HTTP dequeue, finished, or given a newer job)."""
    trial = await tx.get(Trial, job.trial_id)
    return trial is not None and trial.job_id == job.job_id and trial.claimable(utcnow())


async def requeue(tx: AsyncSession, trial: Trial) -> None:
    """Another attempt: the trial waits on the queue again, with a new job."""
    trial.status = "stopped"
    await queue_job(tx, trial)
