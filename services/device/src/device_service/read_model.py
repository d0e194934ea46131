"""The API replica's in-memory read model: every session's device-visible state.

It is kept current by events (each replica has its own queue, see `feed.py`), filled from
the database at startup and re-read from it every few seconds for what changed lately
(`snapshot.py`). A poll is answered from here; only a phone's registration (one slot per
trial and phone) and the first poll of a session this replica does not hold go to the
database. Every change is a merge that never goes backwards (`views.py`), so the order
in which events, loads and re-reads arrive does not matter.

Deletions (`session.deleted`, `trial.deleted`, or a tombstone read from the database) are
the exception: the session or trial is forgotten, and its id kept in `deleted` so that
no event heard later, nor a re-read that began before the deletion, brings it back. A
deleted session answers 404 without a database trip; a deleted trial no longer shows.
"""

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from uuid import UUID

import structlog
from prometheus_client import Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_service import service
from device_service.appliers import APPLIERS
from device_service.snapshot import load_session
from device_service.views import SessionView, SlotView, TrialView
from shared.db import utcnow
from shared.events import Envelope, Event

log = structlog.get_logger()

EVENT_LAG = Histogram(
    "device_read_model_event_lag_seconds",
    "From an event's occurrence to its arrival in this replica's read model",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30),
)
SESSIONS_HELD = Gauge("device_read_model_sessions", "Sessions held in this replica's memory")
PHONES_CONNECTED = Gauge(
    "phones_connected",
    "Phones that polled in the last 5 s (replicas share presence: take the max, not the sum)",
)
CONNECTED_SECONDS = 5.0

MISSING_SECONDS = 1.0  # an unknown session id is looked up again after this long
MISSING_KEPT = 10_000
SEEN_KEPT = 256  # phones remembered per session
DELETED_KEPT = 100_000  # ids of deleted sessions and trials remembered (the latest ones)

Presence = tuple[UUID, UUID, float, float]  # session id, device id, last poll, first poll


class ReadModel:
    def __init__(self) -> None:
        self.sessions: dict[UUID, SessionView] = {}
        self.trial_sessions: dict[UUID, UUID] = {}
        self.db: async_sessionmaker[AsyncSession] | None = None
        self.by_text: dict[str, SessionView] = {}  # sessions by their id as polled
        self.seen_dirty: set[SessionView] = set()  # polled here since presence was last told
        self.missing: dict[UUID, float] = {}  # unknown session id -> until when it is
        self.deleted: dict[UUID, None] = {}  # deleted session and trial ids, oldest first
        self._registering: dict[tuple[UUID, UUID], asyncio.Future] = {}
        SESSIONS_HELD.set_function(lambda: len(self.sessions))
        PHONES_CONNECTED.set_function(self.connected_phones)

    # ── database access ──

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """One database transaction (tests replace this with their rolled-back one)."""
        return _transaction(self.db)

    # ── merging what is learned ──

    def view(self, session_id: UUID) -> SessionView:
        view = self.sessions.get(session_id)
        if view is None:
            view = self.sessions[session_id] = SessionView(id=session_id)
        return view

    def merge(self, views: Iterable[SessionView]) -> None:
        """Merge views read from the database (at startup, or re-read)."""
        for other in views:
            if other.deleted:
                if (view := self.forget_session(other.id)) is not None:
                    view.touch()
                continue
            self._drop_deleted_trials(other)
            if other.id in self.deleted or not (other.known or other.trials):
                continue
            view = self.view(other.id)
            view.merge(other)
            self.trial_sessions.update((trial_id, view.id) for trial_id in view.trials)
            view.touch()

    def _drop_deleted_trials(self, other: SessionView) -> None:
        for trial in list(other.trials.values()):
            if trial.deleted and (view := self.forget_trial(other.id, trial.id)) is not None:
                view.touch()
            if trial.deleted or trial.id in self.deleted:
                del other.trials[trial.id]

    def forget_session(self, session_id: UUID) -> SessionView | None:
        """The session was deleted: drop it (and its trials); the view if it was held."""
        self._remember_deleted(session_id)
        view = self.sessions.pop(session_id, None)
        if view is None:
            return None
        view.deleted = True
        for trial_id in view.trials:
            self.trial_sessions.pop(trial_id, None)
        self.seen_dirty.discard(view)
        for text in [text for text, held in self.by_text.items() if held is view]:
            del self.by_text[text]
        return view

    def forget_trial(self, session_id: UUID, trial_id: UUID) -> SessionView | None:
        """The trial was deleted: drop it; its session's view if it held the trial."""
        self._remember_deleted(trial_id)
        self.trial_sessions.pop(trial_id, None)
        view = self.sessions.get(session_id)
        return view if view is not None and view.forget_trial(trial_id) else None

    def _remember_deleted(self, deleted_id: UUID) -> None:
        self.deleted[deleted_id] = None
        if len(self.deleted) > DELETED_KEPT:  # forget the oldest half
            for old in list(itertools.islice(self.deleted, DELETED_KEPT // 2)):
                del self.deleted[old]

    def about_deleted(self, event: Event) -> bool:
        """Whether the event names a session or trial deleted since."""
        ids = (getattr(event, "session_id", None), getattr(event, "trial_id", None))
        return any(i in self.deleted for i in ids if i is not None)

    def apply(self, envelope: Envelope, event: Event) -> None:
        """Apply one event (any number of times, in any order)."""
        applier = APPLIERS.get(type(event))
        if applier is None or self.about_deleted(event):
            return
        view = applier(self, event, envelope.occurred_at)
        lag = (utcnow() - envelope.occurred_at).total_seconds()
        EVENT_LAG.labels(envelope.type).observe(max(0.0, lag))
        if view is not None:
            view.touch()

    def trial(self, view: SessionView, trial: TrialView) -> TrialView:
        self.trial_sessions[trial.id] = view.id
        return view.trial(trial)

    def saw(self, view: SessionView, device_id: UUID) -> None:
        """A phone polled this session (presence: told to the other replicas too)."""
        now = time.time()
        view.seen[device_id] = now
        view.first_seen.setdefault(device_id, now)
        self.seen_dirty.add(view)
        _trim_seen(view)

    def connected_phones(self) -> int:
        cutoff = time.time() - CONNECTED_SECONDS
        return sum(1 for v in self.sessions.values() for at in v.seen.values() if at >= cutoff)

    def remember_text(self, text: str, view: SessionView) -> None:
        """`text` (a session id as polled) names `view` from now on."""
        if len(self.by_text) > 2 * len(self.sessions) + 1000:
            self.by_text.clear()  # made-up spellings of session ids
        self.by_text[text] = view

    def seen_since(self, since: float) -> list[Presence]:
        """The phones that polled here since `since` (and forget which sessions they were)."""
        dirty, self.seen_dirty = self.seen_dirty, set()
        return [
            (v.id, d, at, v.first_seen.get(d, at))
            for v in dirty
            for d, at in v.seen.items()
            if at > since
        ]

    def merge_seen(self, seen: Iterable[Presence]) -> None:
        """What other replicas saw: the latest poll and the first one of each phone."""
        for session_id, device_id, at, first in seen:
            view = self.sessions.get(session_id)
            if view is None:
                continue
            view.seen[device_id] = max(at, view.seen.get(device_id, 0.0))
            view.first_seen[device_id] = min(first, view.first_seen.get(device_id, math.inf))
            _trim_seen(view)

    # ── answering polls ──

    async def session_for_poll(self, session_id: UUID) -> SessionView | None:
        """The session from memory; from the database the first time if memory lacks it."""
        view = self.sessions.get(session_id)
        if view is not None and view.known and view.complete:
            return view
        if session_id in self.deleted or time.monotonic() < self.missing.get(session_id, 0.0):
            return None  # deleted, or asked a moment ago: no database trip per poll
        async with self.transaction() as tx:
            loaded = await load_session(tx, session_id)
        if loaded is None:
            if len(self.missing) >= MISSING_KEPT:
                self.missing.clear()
            self.missing[session_id] = time.monotonic() + MISSING_SECONDS
            return view if view is not None and view.known else None
        self.merge([loaded])  # a tombstone: the session is forgotten
        return self.sessions.get(session_id)

    async def register_if_recording(self, view: SessionView, device_id: UUID | None) -> None:
        """Give a phone polling a recording trial its slot (database first, then memory).
        Overlapping polls of one phone share one registration."""
        trial = view.latest
        if device_id is None or trial is None or trial.status != "recording":
            return
        if device_id in trial.slots:
            return
        key = (trial.id, device_id)
        pending = self._registering.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._register(view, trial, device_id))
            self._registering[key] = pending
            pending.add_done_callback(lambda _: self._registering.pop(key, None))
        await asyncio.shield(pending)

    async def _register(self, view: SessionView, trial: TrialView, device_id: UUID) -> None:
        async with self.transaction() as tx:
            slot = await service.register(tx, trial, device_id)
            loaded = None if slot is not None else await load_session(tx, view.id)
        if slot is not None:
            trial.add_slot(SlotView(slot.id, device_id, slot.uploaded, slot.model))
            view.touch()
        elif loaded is not None:  # the database knows the trial is no longer recording
            self.merge([loaded])


def _trim_seen(view: SessionView) -> None:
    if len(view.seen) > SEEN_KEPT:  # made-up device ids: keep the most recent half
        recent = sorted(view.seen.items(), key=lambda item: item[1])[SEEN_KEPT // 2 :]
        view.seen = dict(recent)
        view.first_seen = {d: view.first_seen.get(d, at) for d, at in recent}


@asynccontextmanager
async def _transaction(db: async_sessionmaker[AsyncSession] | None) -> AsyncIterator[AsyncSession]:
    if db is None:
        raise RuntimeError("the read model has no database yet (the app has not started)")
    async with db() as tx, tx.begin():
        yield tx
