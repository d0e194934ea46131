"""Event handlers of the device service: each event applied once, never backwards."""

import contextlib
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import func, select

from device_service import consumers
from device_service.models import KnownSession, KnownTrial, Outbox, VideoSlot
from device_service.service import register
from device_service.views import TrialView
from shared.db import utcnow
from shared.events import (
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
from shared.messaging import _HANDLING
from tests.device.conftest import create_session, envelope_of, start_trial

NOW = utcnow()


@contextlib.contextmanager
def handling(event, occurred_at):
    """As inside the worker's consumer: the event's envelope (and its time) at hand."""
    token = _HANDLING.set(envelope_of(event, occurred_at))
    try:
        yield
    finally:
        _HANDLING.reset(token)


async def cameras_final(tx) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == "trial.cameras_final"))
    return [row.body["data"] for row in rows]


async def trial_with_phones(tx, phones: int = 2):
    session_id = await create_session(tx)
    trial_id = await start_trial(tx, session_id)
    trial = await tx.get(KnownTrial, trial_id)
    slots = [await register(tx, trial, uuid4()) for _ in range(phones)]
    return session_id, trial_id, slots


async def refreshed_trial(tx, trial_id) -> KnownTrial:
    return await tx.get(KnownTrial, trial_id, populate_existing=True)


async def test_stop_emits_the_final_camera_set_with_every_slot(tx):
    session_id, trial_id, slots = await trial_with_phones(tx, phones=2)

    await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))

    [final] = await cameras_final(tx)
    assert final["trial_id"] == str(trial_id) and final["session_id"] == str(session_id)
    cameras = {(c["video_id"], c["device_id"]) for c in final["cameras"]}
    assert cameras == {(str(s.id), str(s.device_id)) for s in slots}
    assert (await refreshed_trial(tx, trial_id)).status == "stopped"


async def test_repeated_stop_emits_nothing_more(tx):
    session_id, trial_id, _ = await trial_with_phones(tx)
    event = TrialStopped(trial_id=trial_id, session_id=session_id)

    await consumers.on_trial_stopped(tx, event)
    await consumers.on_trial_stopped(tx, event)
    await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))

    assert len(await cameras_final(tx)) == 1


async def test_stop_without_any_phone_emits_an_empty_camera_set(tx):
    session_id, trial_id, _ = await trial_with_phones(tx, phones=0)

    await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))

    [final] = await cameras_final(tx)
    assert final["cameras"] == []


async def test_late_stop_after_finish_leaves_trial_finished_and_emits_nothing(tx):
    session_id, trial_id, _ = await trial_with_phones(tx)

    finished = TrialFinished(trial_id=trial_id, session_id=session_id, status="done")
    await consumers.on_trial_finished(tx, finished)
    await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))

    assert (await refreshed_trial(tx, trial_id)).status == "done"
    assert await cameras_final(tx) == []


async def test_late_queue_after_finish_leaves_trial_finished(tx):
    session_id, trial_id, _ = await trial_with_phones(tx)
    stop = TrialStopped(trial_id=trial_id, session_id=session_id)
    await consumers.on_trial_stopped(tx, stop)
    error = TrialFinished(trial_id=trial_id, session_id=session_id, status="error")
    await consumers.on_trial_finished(tx, error)

    await consumers.on_trial_queued(tx, TrialQueued(trial_id=trial_id, session_id=session_id))
    await consumers.on_trial_stopped(tx, stop)

    assert (await refreshed_trial(tx, trial_id)).status == "error"
    assert len(await cameras_final(tx)) == 1


async def test_trial_moves_through_its_statuses_in_order(tx):
    session_id, trial_id, _ = await trial_with_phones(tx)
    seen = []

    for handler, event in [
        (consumers.on_trial_stopped, TrialStopped(trial_id=trial_id, session_id=session_id)),
        (consumers.on_trial_queued, TrialQueued(trial_id=trial_id, session_id=session_id)),
        (
            consumers.on_trial_finished,
            TrialFinished(trial_id=trial_id, session_id=session_id, status="done"),
        ),
    ]:
        await handler(tx, event)
        seen.append((await refreshed_trial(tx, trial_id)).status)

    assert seen == ["stopped", "processing", "done"]


async def test_redelivered_trial_started_does_not_revive_a_stopped_trial(tx):
    session_id = await create_session(tx)
    started = TrialStarted(
        trial_id=uuid4(), session_id=session_id, name="walk", created_at=utcnow()
    )
    await consumers.on_trial_started(tx, started)
    stop = TrialStopped(trial_id=started.trial_id, session_id=session_id)
    await consumers.on_trial_stopped(tx, stop)

    await consumers.on_trial_started(tx, started)

    assert (await refreshed_trial(tx, started.trial_id)).status == "stopped"


async def test_redelivered_session_created_keeps_one_session(tx):
    event = SessionCreated(session_id=uuid4(), user_id=1, framerate=120)

    await consumers.on_session_created(tx, event)
    await consumers.on_session_created(tx, event)

    sessions = (await tx.scalars(select(KnownSession))).all()
    assert [(s.id, s.framerate) for s in sessions] == [(event.session_id, 120)]


async def test_video_uploaded_marks_the_slot_uploaded_once_and_for_all(tx):
    session_id, trial_id, [mine, other] = await trial_with_phones(tx, phones=2)
    event = VideoUploaded(
        video_id=mine.id,
        trial_id=trial_id,
        session_id=session_id,
        device_id=mine.device_id,
        key="a.mov",
        size=3,
    )

    await consumers.on_video_uploaded(tx, event)
    await consumers.on_video_uploaded(tx, event)

    rows = await tx.execute(select(VideoSlot.id, VideoSlot.uploaded))
    assert dict(rows.all()) == {mine.id: True, other.id: False}


async def test_video_uploaded_for_an_unknown_slot_changes_nothing(tx):
    session_id, trial_id, [slot] = await trial_with_phones(tx, phones=1)
    event = VideoUploaded(
        video_id=uuid4(),
        trial_id=trial_id,
        session_id=session_id,
        device_id=uuid4(),
        key="a.mov",
        size=3,
    )

    await consumers.on_video_uploaded(tx, event)

    assert (await tx.scalars(select(VideoSlot.uploaded))).all() == [False]


async def test_results_recorded_marks_the_trial_as_having_results(tx):
    _, trial_id, _ = await trial_with_phones(tx)
    event = ResultsRecorded(trial_id=trial_id, results=[])

    await consumers.on_results_recorded(tx, event)
    await consumers.on_results_recorded(tx, event)

    assert (await refreshed_trial(tx, trial_id)).has_results is True


async def test_slot_registration_after_the_stop_is_refused(tx):
    session_id, trial_id, _ = await trial_with_phones(tx, phones=1)
    await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))
    trial = await tx.get(KnownTrial, trial_id)

    assert await register(tx, trial, uuid4()) is None
    assert len((await tx.scalars(select(VideoSlot))).all()) == 1


async def test_stop_delivered_before_start_never_leaves_the_trial_recording(tx):
    session_id = await create_session(tx)
    started = TrialStarted(
        trial_id=uuid4(), session_id=session_id, name="walk", created_at=utcnow()
    )

    await consumers.on_trial_stopped(
        tx, TrialStopped(trial_id=started.trial_id, session_id=session_id)
    )
    await consumers.on_trial_started(tx, started)

    trial = await refreshed_trial(tx, started.trial_id)
    assert (trial.status, trial.name) == ("stopped", "walk")
    assert await cameras_final(tx) == [
        {"trial_id": str(started.trial_id), "session_id": str(session_id), "cameras": []}
    ]
    assert await register(tx, trial, uuid4()) is None


async def test_finish_delivered_before_start_keeps_the_trial_finished(tx):
    session_id = await create_session(tx)
    started = TrialStarted(
        trial_id=uuid4(), session_id=session_id, name="calibration", created_at=utcnow()
    )
    error = TrialFinished(trial_id=started.trial_id, session_id=session_id, status="error")

    await consumers.on_trial_finished(tx, error)
    await consumers.on_trial_started(tx, started)

    trial = await refreshed_trial(tx, started.trial_id)
    assert (trial.status, trial.name, trial.started_at) == (
        "error",
        "calibration",
        started.created_at,
    )


async def test_session_updated_sets_framerate_and_successor(tx):
    session_id = await create_session(tx)
    successor = uuid4()

    await consumers.on_session_updated(
        tx, SessionUpdated(session_id=session_id, framerate=240, new_session_id=successor)
    )

    session = await tx.get(KnownSession, session_id, populate_existing=True)
    assert (session.framerate, session.new_session_id) == (240, successor)


async def test_an_older_session_update_handled_late_changes_nothing(tx):
    session_id = await create_session(tx)
    newer = SessionUpdated(session_id=session_id, framerate=120, new_session_id=uuid4())
    older = SessionUpdated(session_id=session_id, framerate=60)

    with handling(newer, utcnow()):
        await consumers.on_session_updated(tx, newer)
    with handling(older, utcnow() - timedelta(seconds=5)):
        await consumers.on_session_updated(tx, older)

    session = await tx.get(KnownSession, session_id, populate_existing=True)
    assert (session.framerate, session.new_session_id) == (120, newer.new_session_id)


async def test_session_updated_before_created_keeps_the_update(tx):
    session_id = uuid4()
    update = SessionUpdated(session_id=session_id, framerate=120)
    created = SessionCreated(session_id=session_id, user_id=1, framerate=60)

    with handling(update, utcnow()):
        await consumers.on_session_updated(tx, update)
    with handling(created, utcnow() - timedelta(seconds=5)):
        await consumers.on_session_created(tx, created)

    assert (await tx.get(KnownSession, session_id, populate_existing=True)).framerate == 120


async def test_video_uploaded_remembers_the_phone_model(tx):
    session_id, trial_id, [slot] = await trial_with_phones(tx, phones=1)
    event = VideoUploaded(
        video_id=slot.id,
        trial_id=trial_id,
        session_id=session_id,
        device_id=slot.device_id,
        key="a.mov",
        size=3,
        parameters={"model": "iPhone14,2", "fov": "68.2"},
    )

    await consumers.on_video_uploaded(tx, event)

    stored = await tx.get(VideoSlot, slot.id, populate_existing=True)
    assert (stored.uploaded, stored.model) == (True, "iPhone14,2")


async def test_session_updated_with_a_subject_keeps_framerate_and_successor(tx):
    session_id = await create_session(tx)
    successor = uuid4()
    first = SessionUpdated(session_id=session_id, framerate=120, new_session_id=successor)
    await consumers.on_session_updated(tx, first)

    subject = SessionUpdated(
        session_id=session_id, framerate=120, new_session_id=successor, subject_id=42
    )
    await consumers.on_session_updated(tx, subject)

    session = await tx.get(KnownSession, session_id, populate_existing=True)
    assert (session.framerate, session.new_session_id) == (120, successor)


# ── deletions ──


async def rows(tx, model, *where) -> int:
    return await tx.scalar(select(func.count()).select_from(model).where(*where))


async def test_session_deleted_drops_its_trials_and_slots_once(tx):
    session_id, trial_id, _ = await trial_with_phones(tx, phones=2)
    other_session, other_trial, _ = await trial_with_phones(tx, phones=1)
    event = SessionDeleted(session_id=session_id)

    await consumers.on_session_deleted(tx, event)
    await consumers.on_session_deleted(tx, event)

    assert await rows(tx, KnownTrial, KnownTrial.session_id == session_id) == 0
    assert await rows(tx, VideoSlot, VideoSlot.session_id == session_id) == 0
    tombstone = await tx.get(KnownSession, session_id, populate_existing=True)
    assert tombstone.deleted_at is not None and tombstone.new_session_id is None
    assert await rows(tx, KnownTrial, KnownTrial.session_id == other_session) == 1
    assert await rows(tx, VideoSlot, VideoSlot.trial_id == other_trial) == 1


async def test_trial_deleted_drops_its_slots_and_leaves_the_session_alone(tx):
    session_id, trial_id, _ = await trial_with_phones(tx, phones=2)
    other_trial = await start_trial(tx, session_id, age=60)
    event = TrialDeleted(trial_id=trial_id, session_id=session_id)

    await consumers.on_trial_deleted(tx, event)
    await consumers.on_trial_deleted(tx, event)

    assert await rows(tx, VideoSlot, VideoSlot.session_id == session_id) == 0
    tombstone = await refreshed_trial(tx, trial_id)
    assert tombstone.deleted_at is not None and tombstone.name == ""
    assert (await refreshed_trial(tx, other_trial)).deleted_at is None
    assert (await tx.get(KnownSession, session_id)).deleted_at is None


async def test_late_events_about_a_deleted_trial_change_nothing_and_emit_nothing(tx):
    session_id, trial_id, [slot] = await trial_with_phones(tx, phones=1)
    await consumers.on_trial_deleted(tx, TrialDeleted(trial_id=trial_id, session_id=session_id))

    started = TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=NOW)
    await consumers.on_trial_started(tx, started)
    await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))
    await consumers.on_trial_queued(tx, TrialQueued(trial_id=trial_id, session_id=session_id))
    finished = TrialFinished(trial_id=trial_id, session_id=session_id, status="done")
    await consumers.on_trial_finished(tx, finished)
    await consumers.on_results_recorded(tx, ResultsRecorded(trial_id=trial_id, results=[]))

    trial = await refreshed_trial(tx, trial_id)
    assert (trial.name, trial.has_results) == ("", False) and trial.deleted_at is not None
    assert await cameras_final(tx) == []
    assert await register(tx, trial, slot.device_id) is None
    assert await rows(tx, VideoSlot) == 0


async def test_a_trial_deleted_before_its_start_is_heard_never_records(tx):
    session_id = await create_session(tx)
    started = TrialStarted(trial_id=uuid4(), session_id=session_id, name="walk", created_at=NOW)

    await consumers.on_trial_deleted(
        tx, TrialDeleted(trial_id=started.trial_id, session_id=session_id)
    )
    await consumers.on_trial_started(tx, started)

    trial = await refreshed_trial(tx, started.trial_id)
    assert trial.deleted_at is not None and trial.name == ""
    held = TrialView(started.trial_id, session_id, "walk", "recording", NOW)  # a replica's
    assert await register(tx, held, uuid4()) is None
    assert await rows(tx, VideoSlot) == 0


async def test_late_events_about_a_deleted_session_do_not_bring_it_back(tx):
    session_id, trial_id, _ = await trial_with_phones(tx, phones=1)
    await consumers.on_session_deleted(tx, SessionDeleted(session_id=session_id))
    unheard = uuid4()

    await consumers.on_session_created(
        tx, SessionCreated(session_id=session_id, user_id=1, framerate=120)
    )
    await consumers.on_session_updated(
        tx, SessionUpdated(session_id=session_id, framerate=240, new_session_id=uuid4())
    )
    for trial in (trial_id, unheard):
        started = TrialStarted(trial_id=trial, session_id=session_id, name="walk", created_at=NOW)
        await consumers.on_trial_started(tx, started)
        await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial, session_id=session_id))
        await consumers.on_trial_deleted(tx, TrialDeleted(trial_id=trial, session_id=session_id))

    session = await tx.get(KnownSession, session_id, populate_existing=True)
    assert session.deleted_at is not None and session.new_session_id is None
    assert await rows(tx, KnownTrial, KnownTrial.session_id == session_id) == 0
    assert await cameras_final(tx) == []
    held = TrialView(unheard, session_id, "walk", "recording", NOW)  # a replica's memory
    assert await register(tx, held, uuid4()) is None
    assert await rows(tx, KnownTrial, KnownTrial.session_id == session_id) == 0


async def test_a_session_deleted_before_it_is_heard_of_stays_deleted(tx):
    session_id = uuid4()

    await consumers.on_session_deleted(tx, SessionDeleted(session_id=session_id))
    await consumers.on_session_created(tx, SessionCreated(session_id=session_id, user_id=1))

    assert (await tx.get(KnownSession, session_id)).deleted_at is not None
