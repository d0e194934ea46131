"""The API replica's in-memory read model: events applied to memory, in any order and any
number of times, merged with what the database says, and seen by the very next poll."""

from datetime import timedelta
from uuid import uuid4

from device_service.feed import _decode_presence
from device_service.read_model import ReadModel
from device_service.views import SessionView, SlotView, TrialView, status_of
from shared.db import utcnow
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
from tests.device.conftest import PUBLIC_URL, envelope_of

NOW = utcnow()
HOUR = timedelta(hours=1)


def hear(read_model: ReadModel, *events: Event, at=None) -> None:
    for event in events:
        read_model.apply(envelope_of(event, at), event)


def web_status(read_model: ReadModel, session_id) -> dict:
    return status_of(read_model.sessions[session_id], None, PUBLIC_URL)


def phone_status(read_model: ReadModel, session_id, device_id) -> dict:
    return status_of(read_model.sessions[session_id], device_id, PUBLIC_URL)


def recording_session(read_model: ReadModel, phones: int = 1, name: str = "walk"):
    session_id, trial_id = uuid4(), uuid4()
    devices = [uuid4() for _ in range(phones)]
    hear(
        read_model,
        SessionCreated(session_id=session_id, user_id=1, framerate=120),
        TrialStarted(trial_id=trial_id, session_id=session_id, name=name, created_at=NOW),
        *(
            DeviceJoined(video_id=uuid4(), trial_id=trial_id, session_id=session_id, device_id=d)
            for d in devices
        ),
    )
    return session_id, trial_id, devices


def uploaded(session_id, trial_id, device_id, model="iPhone14,2") -> VideoUploaded:
    return VideoUploaded(
        video_id=uuid4(),
        trial_id=trial_id,
        session_id=session_id,
        device_id=device_id,
        key="k.mov",
        size=1,
        parameters={"model": model, "fov": "68", "max_framerate": 240},
    )


def test_a_recording_trial_shows_each_joined_phone_its_own_video():
    read_model = ReadModel()
    session_id, trial_id, (one, two) = recording_session(read_model, phones=2)

    first, second = (phone_status(read_model, session_id, d) for d in (one, two))

    assert first["status"] == second["status"] == "recording"
    assert first["video"] != second["video"] and first["video"].startswith("/videos/")
    assert first["trial"] == f"/trials/{trial_id}/"
    assert (first["framerate"], first["n_cameras_connected"]) == (120, 2)


def test_a_phone_without_its_slot_is_never_told_recording():
    read_model = ReadModel()
    session_id, _, _ = recording_session(read_model, phones=1)

    stranger = phone_status(read_model, session_id, uuid4())

    assert (stranger["status"], stranger["video"]) == ("ready", None)


def test_stop_uploads_and_results_move_the_status_along():
    read_model = ReadModel()
    session_id, trial_id, (phone,) = recording_session(read_model)

    hear(read_model, TrialStopped(trial_id=trial_id, session_id=session_id))
    stopped = web_status(read_model, session_id)
    hear(read_model, uploaded(session_id, trial_id, phone))
    processing = web_status(read_model, session_id)
    hear(read_model, ResultsRecorded(trial_id=trial_id, results=[]))
    done = web_status(read_model, session_id)

    assert (stopped["status"], stopped["n_videos_uploaded"]) == ("uploading", 0)
    assert (processing["status"], processing["n_videos_uploaded"]) == ("processing", 1)
    assert done["status"] == "ready"


def test_every_event_twice_changes_nothing_more():
    once, twice = ReadModel(), ReadModel()
    session_id, trial_id = uuid4(), uuid4()
    events = [
        SessionCreated(session_id=session_id, user_id=1, framerate=240),
        TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=NOW),
        DeviceJoined(video_id=uuid4(), trial_id=trial_id, session_id=session_id, device_id=uuid4()),
        TrialStopped(trial_id=trial_id, session_id=session_id),
    ]

    hear(once, *events)
    hear(twice, *events, *events)

    assert web_status(once, session_id) == web_status(twice, session_id)
    assert web_status(twice, session_id)["n_cameras_connected"] == 1


def test_events_in_any_order_end_in_the_same_state():
    session_id, trial_id, device_id = uuid4(), uuid4(), uuid4()
    events = [
        SessionCreated(session_id=session_id, user_id=1, framerate=60),
        TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=NOW),
        DeviceJoined(
            video_id=uuid4(), trial_id=trial_id, session_id=session_id, device_id=device_id
        ),
        TrialStopped(trial_id=trial_id, session_id=session_id),
        TrialQueued(trial_id=trial_id, session_id=session_id),
    ]
    in_order, reversed_order = ReadModel(), ReadModel()

    hear(in_order, *events)
    hear(reversed_order, *reversed(events))

    assert web_status(in_order, session_id) == web_status(reversed_order, session_id)
    assert reversed_order.sessions[session_id].latest.name == "walk"


def test_a_late_start_never_brings_a_finished_trial_back_to_recording():
    read_model = ReadModel()
    session_id, trial_id = uuid4(), uuid4()

    hear(
        read_model,
        SessionCreated(session_id=session_id, user_id=1),
        TrialFinished(trial_id=trial_id, session_id=session_id, status="error"),
        TrialStarted(trial_id=trial_id, session_id=session_id, name="neutral", created_at=NOW),
    )

    trial = read_model.sessions[session_id].latest
    assert (trial.status, trial.name) == ("error", "neutral")
    assert phone_status(read_model, session_id, uuid4())["status"] == "ready"


def test_the_latest_trial_is_the_last_started_whatever_the_arrival_order():
    read_model = ReadModel()
    session_id, older, newer = uuid4(), uuid4(), uuid4()
    earlier = NOW - timedelta(minutes=5)

    hear(
        read_model,
        SessionCreated(session_id=session_id, user_id=1),
        TrialStarted(trial_id=newer, session_id=session_id, name="walk", created_at=NOW),
        TrialStarted(trial_id=older, session_id=session_id, name="calibration", created_at=earlier),
        TrialFinished(trial_id=older, session_id=session_id, status="done"),
    )

    assert web_status(read_model, session_id)["trial"] == f"/trials/{newer}/"


def test_session_updated_sets_framerate_and_the_new_session_url():
    read_model = ReadModel()
    session_id, _, (phone,) = recording_session(read_model)
    successor = uuid4()

    hear(read_model, SessionUpdated(session_id=session_id, framerate=240, new_session_id=successor))

    body = phone_status(read_model, session_id, phone)
    assert body["framerate"] == 240
    assert body["newSessionURL"] == f"{PUBLIC_URL}/sessions/{successor}/status/"


def test_an_older_session_update_arriving_late_is_ignored():
    read_model = ReadModel()
    session_id = uuid4()
    newer = SessionUpdated(session_id=session_id, framerate=120, new_session_id=uuid4())
    older = SessionUpdated(session_id=session_id, framerate=60)

    hear(read_model, newer, at=NOW)
    hear(read_model, older, at=NOW - timedelta(seconds=1))
    hear(read_model, SessionCreated(session_id=session_id, user_id=1), at=NOW - timedelta(hours=1))

    view = read_model.sessions[session_id]
    assert (view.framerate, view.new_session_id) == (120, newer.new_session_id)


def test_calibration_records_at_30_fps_whatever_the_session_says():
    read_model = ReadModel()
    session_id, _, (phone,) = recording_session(read_model, name="calibration")

    assert phone_status(read_model, session_id, phone)["framerate"] == 30


def test_results_for_a_trial_never_heard_of_are_ignored():
    read_model = ReadModel()

    hear(read_model, ResultsRecorded(trial_id=uuid4(), results=[]))

    assert read_model.sessions == {}


def test_the_database_view_merges_without_undoing_newer_events():
    read_model = ReadModel()
    session_id, trial_id, (phone,) = recording_session(read_model)
    hear(read_model, TrialStopped(trial_id=trial_id, session_id=session_id))
    other_phone = uuid4()
    # What the database said a moment earlier: still recording, one more phone registered.
    stale = SessionView(id=session_id, framerate=120, fields_at=NOW, complete=True)
    trial = TrialView(trial_id, session_id, "walk", "recording", NOW)
    trial.add_slot(SlotView(uuid4(), other_phone))
    stale.trials[trial_id] = trial

    read_model.merge([stale])

    body = web_status(read_model, session_id)
    assert (body["status"], body["n_cameras_connected"]) == ("uploading", 2)
    assert read_model.sessions[session_id].complete


def test_any_change_wakes_those_waiting_for_the_session():
    read_model = ReadModel()
    session_id, trial_id, _ = recording_session(read_model)
    waiting = read_model.sessions[session_id].changed

    hear(read_model, TrialStopped(trial_id=trial_id, session_id=session_id))

    assert waiting.is_set()
    assert not read_model.sessions[session_id].changed.is_set()


def test_presence_of_other_replicas_keeps_the_latest_and_the_first_poll():
    read_model = ReadModel()
    session_id, _, (phone,) = recording_session(read_model)

    read_model.merge_seen([(session_id, phone, 100.0, 40.0), (session_id, phone, 50.0, 45.0)])
    read_model.merge_seen([(uuid4(), phone, 10.0, 10.0)])  # a session this replica does not hold

    view = read_model.sessions[session_id]
    assert (view.seen, view.first_seen) == ({phone: 100.0}, {phone: 40.0})


def test_presence_from_a_replica_of_the_earlier_version_is_still_understood():
    session_id, phone = uuid4(), uuid4()
    earlier = f'[["{session_id.hex}", "{phone.hex}", 12.5]]'.encode()
    current = f'[["{session_id.hex}", "{phone.hex}", 12.5, 3.0]]'.encode()

    assert _decode_presence(earlier) == [(session_id, phone, 12.5, 12.5)]
    assert _decode_presence(current) == [(session_id, phone, 12.5, 3.0)]
    assert _decode_presence(b'[["x"]]') == []


def test_the_connected_phones_gauge_counts_recent_pollers_only():
    read_model = ReadModel()
    view = read_model.view(uuid4())
    recent, earlier = uuid4(), uuid4()

    read_model.saw(view, recent)
    view.seen[earlier] = view.seen[recent] - 60

    assert read_model.connected_phones() == 1


# ── deletions ──


def test_a_deleted_trial_no_longer_shows_and_the_one_before_is_the_latest_again():
    read_model = ReadModel()
    session_id, trial_id, (phone,) = recording_session(read_model)
    earlier = uuid4()
    hear(
        read_model,
        TrialStarted(
            trial_id=earlier, session_id=session_id, name="calibration", created_at=NOW - HOUR
        ),
        TrialFinished(trial_id=earlier, session_id=session_id, status="done"),
    )

    hear(read_model, TrialDeleted(trial_id=trial_id, session_id=session_id))

    web, mine = web_status(read_model, session_id), phone_status(read_model, session_id, phone)
    assert web["trial"] == mine["trial"] == f"/trials/{earlier}/"
    assert (mine["status"], mine["video"], mine["n_cameras_connected"]) == ("ready", None, 0)
    assert trial_id not in read_model.trial_sessions


def test_a_deleted_session_is_forgotten():
    read_model = ReadModel()
    session_id, trial_id, _ = recording_session(read_model)
    view = read_model.sessions[session_id]

    hear(read_model, SessionDeleted(session_id=session_id))
    hear(read_model, SessionDeleted(session_id=session_id))

    assert session_id not in read_model.sessions and view.deleted
    assert trial_id not in read_model.trial_sessions


def test_late_events_about_a_deleted_trial_change_nothing():
    read_model = ReadModel()
    session_id, trial_id, (phone,) = recording_session(read_model)
    hear(read_model, TrialDeleted(trial_id=trial_id, session_id=session_id))

    hear(
        read_model,
        TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=NOW),
        DeviceJoined(video_id=uuid4(), trial_id=trial_id, session_id=session_id, device_id=phone),
        TrialStopped(trial_id=trial_id, session_id=session_id),
        uploaded(session_id, trial_id, phone),
        ResultsRecorded(trial_id=trial_id, results=[]),
    )

    assert read_model.sessions[session_id].trials == {}
    assert web_status(read_model, session_id)["trial"] is None


def test_late_events_about_a_deleted_session_do_not_bring_it_back():
    read_model = ReadModel()
    session_id, trial_id, (phone,) = recording_session(read_model)
    hear(read_model, SessionDeleted(session_id=session_id))

    hear(
        read_model,
        SessionCreated(session_id=session_id, user_id=1),
        SessionUpdated(session_id=session_id, framerate=240, subject_id=3),
        TrialStarted(trial_id=uuid4(), session_id=session_id, name="walk", created_at=NOW),
        DeviceJoined(video_id=uuid4(), trial_id=trial_id, session_id=session_id, device_id=phone),
        ResultsRecorded(trial_id=trial_id, results=[]),
    )

    assert read_model.sessions == {}


def test_a_reread_begun_before_the_deletion_does_not_bring_it_back():
    read_model = ReadModel()
    session_id, trial_id, _ = recording_session(read_model)
    other_id, other_trial, _ = recording_session(read_model)
    stale_session = SessionView(id=session_id, framerate=120, fields_at=NOW, complete=True)
    stale_session.trials[trial_id] = TrialView(trial_id, session_id, "walk", "recording", NOW)
    stale_trial = SessionView(id=other_id, framerate=120, fields_at=NOW, complete=True)
    stale_trial.trials[other_trial] = TrialView(other_trial, other_id, "walk", "recording", NOW)
    hear(
        read_model,
        SessionDeleted(session_id=session_id),
        TrialDeleted(trial_id=other_trial, session_id=other_id),
    )

    read_model.merge([stale_session, stale_trial])

    assert list(read_model.sessions) == [other_id]
    assert read_model.sessions[other_id].trials == {}


def test_tombstones_read_from_the_database_forget_what_a_replica_missed():
    read_model = ReadModel()
    session_id, _, _ = recording_session(read_model)
    other_id, other_trial, _ = recording_session(read_model)
    waiting = read_model.sessions[other_id].changed
    gone_session = SessionView(id=session_id, deleted=True)
    gone_trial = SessionView(id=other_id)
    gone_trial.trials[other_trial] = TrialView(other_trial, other_id, "", "done", NOW, deleted=True)

    read_model.merge([gone_session, gone_trial])

    assert list(read_model.sessions) == [other_id]
    assert read_model.sessions[other_id].trials == {} and waiting.is_set()
    assert read_model.deleted.keys() == {session_id, other_trial}


def test_a_deletion_wakes_those_waiting_for_the_session():
    read_model = ReadModel()
    session_id, trial_id, _ = recording_session(read_model)
    other_id, _, _ = recording_session(read_model)
    waiting = [read_model.sessions[s].changed for s in (session_id, other_id)]

    hear(read_model, TrialDeleted(trial_id=trial_id, session_id=session_id))
    hear(read_model, SessionDeleted(session_id=other_id))

    assert all(event.is_set() for event in waiting)


def test_a_session_update_with_only_a_new_subject_changes_no_answer():
    read_model = ReadModel()
    session_id, _, (phone,) = recording_session(read_model)
    before = phone_status(read_model, session_id, phone)

    hear(read_model, SessionUpdated(session_id=session_id, framerate=120, subject_id=7))

    assert phone_status(read_model, session_id, phone) == before
