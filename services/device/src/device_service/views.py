"""What an API replica holds in memory about one session, and how two views of it merge.

Every change is a merge that never goes backwards (a trial's status only advances, slots
and flags are only ever added, session fields keep the latest event's values), so events,
the startup load and the periodic re-read can be applied in any order, any number of
times, and every replica ends in the same state as the database. Deletion is the one
change that removes: views read from a tombstone say `deleted`, and the read model keeps
the ids of what was deleted so that nothing merged or heard later brings it back.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from device_service.models import STATUS_RANK, phone_status, status_framerate

DEFAULT_FRAMERATE = 60


@dataclass(slots=True)
class SlotView:
    video_id: UUID
    device_id: UUID
    uploaded: bool = False
    model: str | None = None

    @property
    def path(self) -> str:
        return f"/videos/{self.video_id}/"

    def merge(self, other: "SlotView") -> None:
        self.uploaded = self.uploaded or other.uploaded
        self.model = other.model or self.model


@dataclass(slots=True)
class TrialView:
    id: UUID
    session_id: UUID
    name: str  # "" until `trial.started` is known
    status: str
    started_at: datetime
    has_results: bool = False
    slots: dict[UUID, SlotView] = field(default_factory=dict)  # by device id
    deleted: bool = False  # read from the trial's tombstone

    @property
    def path(self) -> str:
        return f"/trials/{self.id}/"

    def advance(self, status: str) -> None:
        if STATUS_RANK[status] > STATUS_RANK[self.status]:
            self.status = status

    def named(self, name: str, started_at: datetime) -> None:
        """What `trial.started` says: the name and the real start time."""
        self.name, self.started_at = name, started_at

    def add_slot(self, slot: SlotView) -> SlotView:
        known = self.slots.setdefault(slot.device_id, slot)
        if known is not slot:
            known.merge(slot)
        return known

    def merge(self, other: "TrialView") -> None:
        if not self.name and other.name:
            self.named(other.name, other.started_at)
        self.advance(other.status)
        self.has_results = self.has_results or other.has_results
        for slot in other.slots.values():
            self.add_slot(slot)


@dataclass(eq=False, slots=True)
class SessionView:
    id: UUID
    framerate: int | None = None  # None until the session itself is known
    new_session_id: UUID | None = None
    fields_at: datetime | None = None
    # Every trial of the session is here (it was loaded, or created while we listened).
    complete: bool = False
    trials: dict[UUID, TrialView] = field(default_factory=dict)
    latest: TrialView | None = None
    seen: dict[UUID, float] = field(default_factory=dict)  # device id -> last poll (epoch s)
    first_seen: dict[UUID, float] = field(default_factory=dict)  # device id -> first poll
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Poll answers rendered since the last change, by the caller's raw `device_id` text.
    answers: dict[str | None, Any] = field(default_factory=dict)
    deleted: bool = False  # read from the session's tombstone, or forgotten since

    @property
    def known(self) -> bool:
        return self.framerate is not None

    def set_fields(self, framerate: int, new_session_id: UUID | None, at: datetime | None) -> None:
        """Take the session service's fields unless newer ones are already here."""
        if self.fields_at is not None and (at is None or at < self.fields_at):
            return
        self.framerate, self.new_session_id, self.fields_at = framerate, new_session_id, at

    def trial(self, trial: TrialView) -> TrialView:
        """The session's view of `trial` after merging it in."""
        known = self.trials.setdefault(trial.id, trial)
        if known is not trial:
            known.merge(trial)
        self.pick_latest()
        return known

    def forget_trial(self, trial_id: UUID) -> bool:
        """Drop a deleted trial; whether it was here."""
        if self.trials.pop(trial_id, None) is None:
            return False
        self.pick_latest()
        return True

    def pick_latest(self) -> None:
        self.latest = max(self.trials.values(), key=lambda t: (t.started_at, t.id), default=None)

    def merge(self, other: "SessionView") -> None:
        if other.framerate is not None:
            self.set_fields(other.framerate, other.new_session_id, other.fields_at)
        for trial in other.trials.values():
            self.trial(trial)
        self.complete = self.complete or other.complete

    def touch(self) -> None:
        """Forget rendered answers and wake everyone waiting for this session to change."""
        self.answers = {}
        self.changed.set()
        self.changed = asyncio.Event()

    async def until_changed(self, timeout: float) -> None:
        """Return at the next change, or after `timeout` seconds."""
        await until_set(self.changed, timeout)


async def until_set(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout, 0.0))


def status_of(view: SessionView, device_id: UUID | None, public_base: str) -> dict:
    """The status poll's answer, derived as the original does (reference §5.2)."""
    trial = view.latest
    slots = trial.slots if trial is not None else {}
    recording_phone = device_id is not None and trial is not None and trial.status == "recording"
    mine = slots.get(device_id) if recording_phone else None
    status = phone_status(trial, slots.values(), device_id is not None)
    if recording_phone and mine is None:
        status = "ready"  # no slot (yet): a phone told `recording` must get its video
    new_session = view.new_session_id
    return {
        "status": status,
        "trial": trial.path if trial is not None else None,
        "video": mine.path if mine is not None else None,
        "framerate": status_framerate(view.framerate or DEFAULT_FRAMERATE, trial),
        "newSessionURL": f"{public_base}/sessions/{new_session}/status/" if new_session else None,
        "n_cameras_connected": len(slots),
        "n_videos_uploaded": sum(1 for s in slots.values() if s.uploaded),
    }
