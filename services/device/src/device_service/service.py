"""Use cases of the device service that need the database: a phone's registration while a
trial is recording, the final camera set of a trial, and who may watch a session's phones."""

from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_service.models import KnownSession, KnownTrial, Outbox, VideoSlot
from shared.db import utcnow
from shared.errors import Forbidden, NotAuthenticated, NotFound
from shared.events import DeviceJoined
from shared.identity import Caller
from shared.outbox import record

PRODUCER = "device"


class TrialRef(Protocol):
    id: UUID
    session_id: UUID


class StartedTrial(TrialRef, Protocol):
    name: str
    started_at: datetime


async def session_deleted(tx: AsyncSession, session_id: UUID, lock: bool = False) -> bool:
    """Whether the session is deleted (its tombstone is here). With `lock`, its row is
    share-locked so a deletion handled meanwhile waits for this transaction."""
    stmt = select(KnownSession.deleted_at).where(KnownSession.id == session_id)
    if lock:
        stmt = stmt.with_for_update(read=True)
    return (await tx.execute(stmt)).scalar_one_or_none() is not None


async def require_watcher(tx: AsyncSession, caller: Caller | None, session_id: UUID) -> bool:
    """The phones of a session are for its owner to watch (past the e-mail code step), or
    an admin; anyone's if the session is public. Others learn nothing, not even that the
    session exists. True if the caller watches only because the session is public."""
    stmt = select(KnownSession.owner_id, KnownSession.public).where(
        KnownSession.id == session_id, KnownSession.deleted_at.is_(None)
    )
    session = (await tx.execute(stmt)).first()
    if session is None:
        raise NotFound()
    owns = caller is not None and (caller.privileged or caller.user_id == session.owner_id)
    if owns and caller.may_act:
        return False
    if session.public:
        return True
    if caller is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    if not caller.may_act:
        raise Forbidden("You do not have permission to perform this action.")
    if not (caller.privileged or caller.user_id == session.owner_id):
        raise NotFound()


async def still_public(db: async_sessionmaker[AsyncSession], session_id: UUID) -> bool:
    async with db() as tx:
        stmt = select(KnownSession.public).where(
            KnownSession.id == session_id, KnownSession.deleted_at.is_(None)
        )
        return bool(await tx.scalar(stmt))


async def trial_slots(tx: AsyncSession, trial_id: UUID) -> list[VideoSlot]:
    stmt = select(VideoSlot).where(VideoSlot.trial_id == trial_id).order_by(VideoSlot.created_at)
    return list((await tx.scalars(stmt)).all())


async def ensure_trial(tx: AsyncSession, trial: StartedTrial) -> None:
    """The row of a trial known to have started, if the worker has not written it yet (an
    API replica may hear `trial.started` a moment before the worker): the same row the
    worker writes, so whichever comes second changes nothing."""
    now = utcnow()
    stmt = insert(KnownTrial).values(
        id=trial.id,
        session_id=trial.session_id,
        name=trial.name,
        status="recording",
        has_results=False,
        started_at=trial.started_at,
        updated_at=now,
    )
    await tx.execute(stmt.on_conflict_do_nothing(index_elements=[KnownTrial.id]))


async def register(tx: AsyncSession, trial: StartedTrial, device_id: UUID) -> VideoSlot | None:
    """The phone's slot in a recording trial: exactly one per (trial, phone), even when one
    phone's polls overlap. The session and trial rows are share-locked so a concurrent stop
    or deletion either sees this slot or this poll sees the stop or the deletion. None if
    the trial is no longer recording, or it or its session is deleted."""
    if await session_deleted(tx, trial.session_id, lock=True):
        return None
    if trial.name:  # known to have started (an unnamed one only from a later event)
        await ensure_trial(tx, trial)
    locked = await tx.get(
        KnownTrial, trial.id, with_for_update={"read": True}, populate_existing=True
    )
    if locked is None or locked.status != "recording" or locked.deleted_at is not None:
        return None
    slot_id = uuid4()
    stmt = (
        insert(VideoSlot)
        .values(
            id=slot_id,
            trial_id=trial.id,
            session_id=trial.session_id,
            device_id=device_id,
            uploaded=False,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["trial_id", "device_id"])
        .returning(VideoSlot.id)
    )
    if (await tx.execute(stmt)).first() is not None:
        event = DeviceJoined(
            video_id=slot_id, trial_id=trial.id, session_id=trial.session_id, device_id=device_id
        )
        record(tx, Outbox, event, producer=PRODUCER)
    stmt = select(VideoSlot).where(VideoSlot.trial_id == trial.id, VideoSlot.device_id == device_id)
    return (await tx.scalars(stmt)).one()
