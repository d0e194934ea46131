"""What a session's (or a subject's) archive is made of, read from this service's tables
(see `archive.py`).

The calibration is the session's latest trial named `calibration`, else the one of the
session it was calibrated in (`sessionWithCalibration`, followed as far as it goes, but only
to sessions of the same owner: the link is the owner's to set, and must not hand them
another user's calibration); the neutral is the session's latest `neutral` trial.
"""

from collections import defaultdict
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.archive import ResultRef, SessionData, TrialData, VideoRef
from results_service.models import KnownSession, KnownTrial, KnownVideo, Result
from shared.storage import Storage

MAX_CHAIN = 50


async def session_data(tx: AsyncSession, session_id: UUID) -> SessionData:
    trials = await session_trials(tx, session_id)
    others = [t for t in trials if t.name != "calibration"]
    calibration = await calibration_trial(tx, session_id)
    neutral = latest(trials, "neutral")
    with_results = [*others, *([calibration] if calibration else [])]
    results = await results_of(tx, [t.id for t in with_results])
    videos = await videos_of(tx, [t.id for t in others])

    def data(trial: KnownTrial) -> TrialData:
        return TrialData(trial.name, results[trial.id], videos[trial.id])

    return SessionData(
        session_id=session_id,
        trials=[data(t) for t in others],
        calibration=data(calibration) if calibration else None,
        calibration_choice=calibration.calibration if calibration else None,
        neutral=data(neutral) if neutral else None,
    )


async def session_trials(tx: AsyncSession, session_id: UUID) -> list[KnownTrial]:
    stmt = (
        select(KnownTrial)
        .where(KnownTrial.session_id == session_id)
        .order_by(KnownTrial.created_at.asc().nulls_last(), KnownTrial.id)
    )
    return list((await tx.scalars(stmt)).all())


def latest(trials: list[KnownTrial], name: str) -> KnownTrial | None:
    named = [t for t in trials if t.name == name]
    return named[-1] if named else None


async def calibration_trial(tx: AsyncSession, session_id: UUID) -> KnownTrial | None:
    """The calibration of the session, or of the same owner's session it was calibrated in."""
    session = await tx.get(KnownSession, session_id)
    owner = session.user_id if session else None
    seen: set[UUID] = set()
    current: UUID | None = session_id
    while current is not None and current not in seen and len(seen) < MAX_CHAIN:
        seen.add(current)
        found = latest(await session_trials(tx, current), "calibration")
        if found is not None:
            return found
        linked = session.calibration_session_id if session else None
        session = await tx.get(KnownSession, linked) if linked else None
        same_owner = session is not None and owner is not None and session.user_id == owner
        current = session.id if same_owner else None
    return None


async def subject_sessions(tx: AsyncSession, subject_id: int, owner_id: int | None) -> list[UUID]:
    """The subject's sessions (those of `owner_id` only, unless None), oldest id first."""
    stmt = select(KnownSession.id).where(KnownSession.subject_id == subject_id)
    if owner_id is not None:
        stmt = stmt.where(KnownSession.user_id == owner_id)
    return list((await tx.scalars(stmt.order_by(KnownSession.id))).all())


async def results_of(tx: AsyncSession, trial_ids: list[UUID]) -> dict[UUID, list[ResultRef]]:
    stmt = select(Result).where(Result.trial_id.in_(trial_ids)).order_by(Result.id)
    found: dict[UUID, list[ResultRef]] = defaultdict(list)
    for row in (await tx.scalars(stmt)).all():
        found[row.trial_id].append(ResultRef(row.tag, row.device_id, row.key))
    return found


async def videos_of(tx: AsyncSession, trial_ids: list[UUID]) -> dict[UUID, list[VideoRef]]:
    stmt = select(KnownVideo).where(KnownVideo.trial_id.in_(trial_ids)).order_by(KnownVideo.id)
    found: dict[UUID, list[VideoRef]] = defaultdict(list)
    for row in (await tx.scalars(stmt)).all():
        found[row.trial_id].append(VideoRef(row.device_id, row.key))
    return found


def object_keys(storage: Storage, prefix: str) -> list[str]:
    """Every key under `prefix` (blocking)."""
    pages = storage.client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket, Prefix=prefix
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
