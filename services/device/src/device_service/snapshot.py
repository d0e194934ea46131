"""Reading the database into read-model views: at startup, for one unknown session, and
every few seconds for whatever changed lately (so a replica catches up on any event it
missed: its queue lives only as long as its connection, and the worker may lag).
Tombstones are read too, as views that say `deleted`: a replica that missed a deletion's
event learns it here."""

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import structlog
from sqlalchemy import Select, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_service.models import KnownSession, KnownTrial, VideoSlot
from device_service.views import SessionView, SlotView, TrialView

if TYPE_CHECKING:
    from device_service.read_model import ReadModel

log = structlog.get_logger()


def changed_since(since: datetime) -> Select:
    """Ids of sessions with anything (session, trial or slot) changed at or after `since`."""
    return union(
        select(KnownSession.id).where(KnownSession.updated_at >= since),
        select(KnownTrial.session_id).where(KnownTrial.updated_at >= since),
        select(VideoSlot.session_id).where(VideoSlot.updated_at >= since),
    )


async def database_now(tx: AsyncSession) -> datetime:
    return await tx.scalar(select(func.now()))


async def load_sessions_changed_since(tx: AsyncSession, since: datetime) -> list[SessionView]:
    """Every session changed since `since`, whole: its fields, all its trials and slots."""
    ids = select(changed_since(since).subquery().c.id)
    sessions = await tx.scalars(select(KnownSession).where(KnownSession.id.in_(ids)))
    trials = await tx.scalars(select(KnownTrial).where(KnownTrial.session_id.in_(ids)))
    slots = await tx.scalars(select(VideoSlot).where(VideoSlot.session_id.in_(ids)))
    return build_views(sessions, trials, slots, complete=True)


async def load_session(tx: AsyncSession, session_id: UUID) -> SessionView | None:
    """One session, whole (or its tombstone); None if the database does not know it."""
    sessions = await tx.scalars(select(KnownSession).where(KnownSession.id == session_id))
    trials = await tx.scalars(select(KnownTrial).where(KnownTrial.session_id == session_id))
    slots = await tx.scalars(select(VideoSlot).where(VideoSlot.session_id == session_id))
    views = build_views(sessions, trials, slots, complete=True)
    return views[0] if views and (views[0].known or views[0].deleted) else None


async def load_rows_changed_since(tx: AsyncSession, since: datetime) -> list[SessionView]:
    """Only the rows changed since `since` (sessions not held whole stay incomplete)."""
    sessions = (
        await tx.scalars(select(KnownSession).where(KnownSession.updated_at >= since))
    ).all()
    trials = list(await tx.scalars(select(KnownTrial).where(KnownTrial.updated_at >= since)))
    changed_slots = select(VideoSlot, KnownTrial).join(
        KnownTrial, KnownTrial.id == VideoSlot.trial_id
    )
    slots = []
    for slot, trial in await tx.execute(changed_slots.where(VideoSlot.updated_at >= since)):
        slots.append(slot)
        trials.append(trial)
    return build_views(sessions, trials, slots, complete=False)


def build_views(
    sessions: Iterable[KnownSession],
    trials: Iterable[KnownTrial],
    slots: Iterable[VideoSlot],
    complete: bool,
) -> list[SessionView]:
    views: dict[UUID, SessionView] = {}
    for row in sessions:
        view = views[row.id] = SessionView(id=row.id, complete=complete)
        if row.deleted_at is not None:
            view.deleted = True
        else:
            view.set_fields(row.framerate, row.new_session_id, row.fields_at)
    by_id = {row.id: _trial_view(row) for row in trials}
    _attach_slots(by_id, slots)
    for trial in by_id.values():
        view = views.setdefault(trial.session_id, SessionView(trial.session_id, complete=complete))
        view.trials[trial.id] = trial
    for view in views.values():
        view.pick_latest()
    return list(views.values())


def _trial_view(row: KnownTrial) -> TrialView:
    return TrialView(
        id=row.id,
        session_id=row.session_id,
        name=row.name,
        status=row.status,
        started_at=row.started_at,
        has_results=row.has_results,
        deleted=row.deleted_at is not None,
    )


def _attach_slots(trials: dict[UUID, TrialView], slots: Iterable[VideoSlot]) -> None:
    for row in slots:
        trial = trials.get(row.trial_id)
        if trial is not None:
            slot = SlotView(row.id, row.device_id, uploaded=row.uploaded, model=row.model)
            trial.add_slot(slot)


class Resync:
    """Re-reads, every `every` seconds, the sessions changed since the last read (less
    `overlap`, so a transaction that committed late is not skipped) into the read model."""

    def __init__(
        self,
        read_model: "ReadModel",
        db: async_sessionmaker[AsyncSession],
        every: float,
        overlap: float,
    ):
        self.read_model, self.db, self.every = read_model, db, every
        self.overlap = timedelta(seconds=overlap)
        self.since: datetime | None = None

    async def load(self, window: timedelta) -> None:
        """The startup load: every session changed within `window`."""
        async with self.db() as tx:
            now = await database_now(tx)
            self.read_model.merge(await load_sessions_changed_since(tx, now - window))
        self.since = now

    async def once(self) -> None:
        async with self.db() as tx:
            now = await database_now(tx)
            since = (self.since or now) - self.overlap
            self.read_model.merge(await load_rows_changed_since(tx, since))
        self.since = now

    def rewind(self, to: datetime) -> None:
        """Re-read from `to` on next time (events may have been missed since then)."""
        self.since = min(self.since or to, to)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.once()
            except Exception as exc:  # the database is away: read the gap next time
                log.warning("read_model_resync_failed", error=repr(exc))
