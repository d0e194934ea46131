"""Event handlers of the device service: keep its copy of sessions and trials current.

Deletions leave tombstones (`models.py`): an event about a deleted session or trial,
however late it comes (a retry, a re-driven dead letter), changes nothing and emits
nothing; an event about a trial never heard of in a deleted session is ignored too.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from device_service.models import (
    ApiToken,
    ApiUser,
    KnownSession,
    KnownTrial,
    Outbox,
    VideoSlot,
    phone_model,
)
from device_service.service import PRODUCER, session_deleted, trial_slots
from shared.db import utcnow
from shared.events import (
    Camera,
    CamerasFinal,
    ResultsRecorded,
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TrialDeleted,
    TrialFinished,
    TrialQueued,
    TrialStarted,
    TrialStopped,
    VideoUploaded,
)
from shared.identity import identity_handlers
from shared.messaging import handling_envelope
from shared.outbox import record


def event_time() -> datetime:
    """When the event being handled happened (its envelope's time; now outside a consumer)."""
    envelope = handling_envelope()
    return envelope.occurred_at if envelope is not None else utcnow()


async def on_session_created(tx: AsyncSession, event: SessionCreated) -> None:
    """A new session, or the owner of one a `session.updated` told about first."""
    stmt = insert(KnownSession).values(
        id=event.session_id,
        framerate=event.framerate,
        new_session_id=None,
        owner_id=event.user_id,
        created_at=utcnow(),
        fields_at=event_time(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[KnownSession.id],
        set_={"owner_id": event.user_id},
        where=KnownSession.owner_id.is_(None) & KnownSession.deleted_at.is_(None),
    )
    await tx.execute(stmt)


async def on_session_updated(tx: AsyncSession, event: SessionUpdated) -> None:
    """Frame rate, successor session and public flag follow the session service; the latest
    event wins. The rest of it (calibration session, subject) is not this service's concern."""
    fields = {
        "framerate": event.framerate,
        "new_session_id": event.new_session_id,
        "public": event.public,
        "fields_at": event_time(),
    }
    stmt = insert(KnownSession).values(id=event.session_id, created_at=utcnow(), **fields)
    newer = KnownSession.fields_at.is_(None) | (KnownSession.fields_at <= stmt.excluded.fields_at)
    newer &= KnownSession.deleted_at.is_(None)
    stmt = stmt.on_conflict_do_update(
        index_elements=[KnownSession.id], set_={**fields, "updated_at": func.now()}, where=newer
    )
    await tx.execute(stmt)


async def on_session_deleted(tx: AsyncSession, event: SessionDeleted) -> None:
    """Forget the session: its trials and slots go, its row stays as the tombstone. The
    tombstone is written first: a registration holding the session row's share lock
    commits its slot before that, and the deletes after it then see the slot."""
    now = utcnow()
    tombstone = {"new_session_id": None, "deleted_at": now, "updated_at": func.now()}
    stmt = insert(KnownSession).values(
        id=event.session_id, framerate=60, created_at=now, fields_at=None, **tombstone
    )
    await tx.execute(
        stmt.on_conflict_do_update(
            index_elements=[KnownSession.id],
            set_=tombstone,
            where=KnownSession.deleted_at.is_(None),
        )
    )
    await tx.execute(delete(KnownTrial).where(KnownTrial.session_id == event.session_id))
    await tx.execute(delete(VideoSlot).where(VideoSlot.session_id == event.session_id))


async def on_trial_deleted(tx: AsyncSession, event: TrialDeleted) -> None:
    """Forget the trial: its slots go, its row stays as the tombstone (made if the trial
    was never heard of, so its `trial.started` coming late changes nothing)."""
    if await session_deleted(tx, event.session_id):
        return  # the session's tombstone stands for its trials
    now = utcnow()
    tombstone = {"name": "", "deleted_at": now, "updated_at": now}
    stmt = insert(KnownTrial).values(
        id=event.trial_id,
        session_id=event.session_id,
        status="done",
        has_results=False,
        started_at=now,
        **tombstone,
    )
    await tx.execute(
        stmt.on_conflict_do_update(
            index_elements=[KnownTrial.id], set_=tombstone, where=KnownTrial.deleted_at.is_(None)
        )
    )
    await tx.execute(delete(VideoSlot).where(VideoSlot.trial_id == event.trial_id))


async def on_trial_started(tx: AsyncSession, event: TrialStarted) -> None:
    if await session_deleted(tx, event.session_id):
        return
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
    # A later event may have arrived first (retries, several workers): it made the row and
    # its status stands; this one only supplies the name and start time.
    filled = {"name": event.name, "started_at": event.created_at, "updated_at": now}
    stmt = stmt.on_conflict_do_update(
        index_elements=[KnownTrial.id], set_=filled, where=KnownTrial.deleted_at.is_(None)
    )
    await tx.execute(stmt)


async def _advance(
    tx: AsyncSession, trial_id: UUID, session_id: UUID, status: str
) -> KnownTrial | None:
    """The trial if this event moved it to `status`. An event about a trial whose
    `trial.started` is not in yet creates it at `status`, so it can never show `recording`.
    None for a deleted trial, or one of a deleted session."""
    if await session_deleted(tx, session_id):
        return None
    now = utcnow()
    stmt = insert(KnownTrial).values(
        id=trial_id,
        session_id=session_id,
        name="",
        status=status,
        has_results=False,
        started_at=now,
        updated_at=now,
    )
    if (await tx.execute(stmt.on_conflict_do_nothing().returning(KnownTrial.id))).first():
        return await tx.get(KnownTrial, trial_id)
    trial = await tx.get(KnownTrial, trial_id, with_for_update=True, populate_existing=True)
    return trial if trial.advance(status, now) else None


async def on_trial_stopped(tx: AsyncSession, event: TrialStopped) -> None:
    """Recording is over: the trial's set of cameras is final; tell the upload service."""
    trial = await _advance(tx, event.trial_id, event.session_id, "stopped")
    if trial is None:
        return
    cameras = [
        Camera(video_id=s.id, device_id=s.device_id) for s in await trial_slots(tx, trial.id)
    ]
    final = CamerasFinal(trial_id=trial.id, session_id=trial.session_id, cameras=cameras)
    record(tx, Outbox, final, producer=PRODUCER)


async def on_trial_queued(tx: AsyncSession, event: TrialQueued) -> None:
    await _advance(tx, event.trial_id, event.session_id, "processing")


async def on_trial_finished(tx: AsyncSession, event: TrialFinished) -> None:
    await _advance(tx, event.trial_id, event.session_id, event.status)


async def on_video_uploaded(tx: AsyncSession, event: VideoUploaded) -> None:
    changes = {"uploaded": True, "updated_at": func.now()}
    if (model := phone_model(event.parameters)) is not None:
        changes["model"] = model
    await tx.execute(update(VideoSlot).where(VideoSlot.id == event.video_id).values(**changes))


async def on_results_recorded(tx: AsyncSession, event: ResultsRecorded) -> None:
    stmt = (
        update(KnownTrial)
        .where(KnownTrial.id == event.trial_id, KnownTrial.deleted_at.is_(None))
        .values(has_results=True, updated_at=utcnow())
    )
    await tx.execute(stmt)


HANDLERS = {
    **identity_handlers(ApiToken, ApiUser),
    SessionCreated: on_session_created,
    SessionUpdated: on_session_updated,
    SessionDeleted: on_session_deleted,
    TrialStarted: on_trial_started,
    TrialStopped: on_trial_stopped,
    TrialQueued: on_trial_queued,
    TrialFinished: on_trial_finished,
    VideoUploaded: on_video_uploaded,
    ResultsRecorded: on_results_recorded,
    TrialDeleted: on_trial_deleted,
}
