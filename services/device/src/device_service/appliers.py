"""How each event changes a replica's read model (`read_model.ReadModel.apply`).

Each applier merges the event into the session's view and returns the view it changed
(or None): merges never go backwards, so events may come in any order, more than once.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from device_service.models import STATUS_RANK, phone_model
from device_service.views import SessionView, SlotView, TrialView
from shared.events import (
    DeviceJoined,
    Event,
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

if TYPE_CHECKING:
    from device_service.read_model import ReadModel


def _session_created(rm: "ReadModel", event: SessionCreated, at: datetime) -> SessionView:
    view = rm.view(event.session_id)
    view.set_fields(event.framerate, None, at)
    view.complete = True  # a new session: nothing about it happened before we listened
    return view


def _session_updated(rm: "ReadModel", event: SessionUpdated, at: datetime) -> SessionView:
    view = rm.view(event.session_id)
    view.set_fields(event.framerate, event.new_session_id, at)
    return view


def _trial_started(rm: "ReadModel", event: TrialStarted, at: datetime) -> SessionView:
    view = rm.view(event.session_id)
    trial = TrialView(event.trial_id, event.session_id, event.name, "recording", event.created_at)
    rm.trial(view, trial)
    return view


def _trial_moved(status: str) -> Callable[["ReadModel", Event, datetime], SessionView]:
    def apply(rm: "ReadModel", event: TrialStopped | TrialQueued, at: datetime) -> SessionView:
        view = rm.view(event.session_id)
        rm.trial(view, TrialView(event.trial_id, event.session_id, "", status, at))
        return view

    return apply


def _trial_finished(rm: "ReadModel", event: TrialFinished, at: datetime) -> SessionView | None:
    if event.status not in STATUS_RANK:
        return None
    return _trial_moved(event.status)(rm, event, at)


def _slot_event(rm: "ReadModel", event: DeviceJoined | VideoUploaded, at: datetime) -> SessionView:
    view = rm.view(event.session_id)
    trial = rm.trial(view, TrialView(event.trial_id, event.session_id, "", "recording", at))
    slot = SlotView(event.video_id, event.device_id)
    if isinstance(event, VideoUploaded):
        slot.uploaded, slot.model = True, phone_model(event.parameters)
    trial.add_slot(slot)
    return view


def _session_deleted(rm: "ReadModel", event: SessionDeleted, at: datetime) -> SessionView | None:
    return rm.forget_session(event.session_id)


def _trial_deleted(rm: "ReadModel", event: TrialDeleted, at: datetime) -> SessionView | None:
    return rm.forget_trial(event.session_id, event.trial_id)


def _results_recorded(rm: "ReadModel", event: ResultsRecorded, at: datetime) -> SessionView | None:
    session_id = rm.trial_sessions.get(event.trial_id)
    view = rm.sessions.get(session_id) if session_id else None
    trial = view.trials.get(event.trial_id) if view else None
    if trial is None:
        return None
    trial.has_results = True
    return view


APPLIERS: dict[type[Event], Callable] = {
    SessionCreated: _session_created,
    SessionUpdated: _session_updated,
    SessionDeleted: _session_deleted,
    TrialStarted: _trial_started,
    TrialStopped: _trial_moved("stopped"),
    TrialQueued: _trial_moved("processing"),
    TrialFinished: _trial_finished,
    DeviceJoined: _slot_event,
    VideoUploaded: _slot_event,
    ResultsRecorded: _results_recorded,
    TrialDeleted: _trial_deleted,
}
EVENT_KEYS = tuple(cls.type for cls in APPLIERS)
