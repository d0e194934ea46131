"""Use cases of the device service: answer a phone's poll, registering it while recording."""

from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from device_service.models import (
    KnownSession,
    KnownTrial,
    Outbox,
    VideoSlot,
    phone_status,
    status_framerate,
)
from shared.db import utcnow
from shared.errors import NotFound
from shared.events import DeviceJoined
from shared.outbox import record

PRODUCER = "device"


async def latest_trial(tx: AsyncSession, session_id: UUID) -> KnownTrial | None:
    stmt = (
        select(KnownTrial)
        .where(KnownTrial.session_id == session_id)
        .order_by(KnownTrial.started_at.desc())
        .limit(1)
    )
    return (await tx.scalars(stmt)).first()


async def trial_slots(tx: AsyncSession, trial_id: UUID) -> list[VideoSlot]:
    stmt = select(VideoSlot).where(VideoSlot.trial_id == trial_id).order_by(VideoSlot.created_at)
    return list((await tx.scalars(stmt)).all())


async def register(tx: AsyncSession, trial: KnownTrial, device_id: UUID) -> VideoSlot | None:
    """The phone's slot in a recording trial: exactly one per (trial, phone), even when one
    phone's polls overlap. The trial row is share-locked so a concurrent stop either sees
    this slot or this poll sees the stop. None if the trial is no longer recording."""
    locked = await tx.get(
        KnownTrial, trial.id, with_for_update={"read": True}, populate_existing=True
    )
    if locked is None or locked.status != "recording":
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


async def session_status(
    tx: AsyncSession, session_id: UUID, device_id: UUID | None, public_base: str
) -> dict:
    session = await tx.get(KnownSession, session_id)
    if session is None:
        raise NotFound()
    trial = await latest_trial(tx, session_id)
    slots = await trial_slots(tx, trial.id) if trial else []
    mine = next((s for s in slots if s.device_id == device_id), None)
    if trial is not None and trial.status == "recording" and device_id and mine is None:
        mine = await register(tx, trial, device_id)
        slots = await trial_slots(tx, trial.id)
    recording_phone = device_id is not None and trial is not None and trial.status == "recording"
    new_session = session.new_session_id
    return {
        "status": phone_status(trial, slots, device_id is not None),
        "trial": f"/trials/{trial.id}/" if trial else None,
        "video": f"/videos/{mine.id}/" if recording_phone and mine else None,
        "framerate": status_framerate(session, trial),
        "newSessionURL": f"{public_base}/sessions/{new_session}/status/" if new_session else None,
        "n_cameras_connected": len(slots),
        "n_videos_uploaded": sum(1 for s in slots if s.uploaded),
    }
