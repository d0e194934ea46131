"""Rules of sessions and trials, and the original API's output formats: no database."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from session_service.models import Session, Trial, next_trial_name
from session_service.schemas import duration, iso, session_name, trials_count
from shared.errors import Conflict
from shared.events import TrialFinished, TrialQueued, TrialStopped

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=5)


def a_trial(status: str = "recording", name: str = "walk") -> Trial:
    return Trial(
        id=uuid4(),
        session_id=uuid4(),
        name=name,
        status=status,
        meta=None,
        processed_count=0,
        trashed=False,
        created_at=T0,
        updated_at=T0,
    )


def a_session(meta: dict | None = None) -> Session:
    return Session(id=uuid4(), user_id=1, meta=meta, created_at=T0, updated_at=T0)


# ── trial naming (reference §5.4) ──────────────────────────────────────────────────


def test_a_new_name_is_kept_as_given():
    assert next_trial_name("walk", []) == "walk"
    assert next_trial_name("walk", ["run", "jump"]) == "walk"


def test_a_repeated_name_gets_the_number_of_trials_so_named():
    assert next_trial_name("walk", ["walk"]) == "walk_1"
    assert next_trial_name("walk", ["walk", "walk_1"]) == "walk_2"


def test_a_taken_suffix_gets_a_second_suffix():
    assert next_trial_name("walk", ["walk", "walk_2"]) == "walk_2_1"


def test_names_that_merely_start_with_the_requested_one_count():
    assert next_trial_name("walk", ["walking"]) == "walk_1"
    assert next_trial_name("walk", ["walking", "walk_fast"]) == "walk_2"


@pytest.mark.parametrize("name", ["calibration", "neutral"])
def test_calibration_and_neutral_are_never_suffixed(name):
    assert next_trial_name(name, [name, name, f"{name}_1"]) == name


# ── trial transitions ───────────────────────────────────────────────────────────────


def test_stopping_a_recording_trial_reports_it():
    trial = a_trial("recording")

    event = trial.stop(LATER)

    assert event == TrialStopped(trial_id=trial.id, session_id=trial.session_id)
    assert (trial.status, trial.updated_at) == ("stopped", LATER)


def test_second_stop_leaves_trial_unchanged():
    trial = a_trial("recording")
    trial.stop(LATER)

    assert trial.stop(LATER + timedelta(seconds=1)) is None
    assert (trial.status, trial.updated_at) == ("stopped", LATER)


@pytest.mark.parametrize("status", ["processing", "done", "error"])
def test_stop_after_recording_changes_nothing(status):
    trial = a_trial(status)

    assert trial.stop(LATER) is None
    assert (trial.status, trial.updated_at) == (status, T0)


def test_queueing_gives_the_trial_a_new_job_and_keeps_its_queue_status():
    trial = a_trial("stopped")

    event = trial.queue(LATER)

    assert event == TrialQueued(trial_id=trial.id, session_id=trial.session_id, job_id=trial.job_id)
    assert (trial.status, trial.queued_at, trial.processed_count) == ("stopped", LATER, 0)
    first = trial.job_id
    trial.queue(LATER)
    assert trial.job_id != first


def test_a_claim_gives_one_worker_the_trial_and_clears_an_old_error():
    trial = a_trial("stopped")
    trial.queue(T0)
    trial.meta = {"error_msg": "sync failed", "error_msg_dev": "x", "calibration": {"Cam0": 1}}

    trial.claim("gpu-1", LATER, timedelta(minutes=2))

    assert (trial.status, trial.lease_holder, trial.processed_count, trial.attempts) == (
        "processing",
        "gpu-1",
        1,
        1,
    )
    assert trial.lease_expires_at == LATER + timedelta(minutes=2)
    assert trial.meta == {"calibration": {"Cam0": 1}}
    assert trial.lease_live(LATER) and not trial.claimable(LATER)
    assert not trial.lease_live(LATER + timedelta(minutes=3))


def test_only_the_lease_holder_renews_the_lease():
    trial = a_trial("stopped")
    trial.queue(T0)
    trial.claim("gpu-1", T0, timedelta(minutes=2))

    assert not trial.renew("gpu-2", LATER, timedelta(minutes=2))
    assert trial.renew("gpu-1", LATER, timedelta(minutes=2))
    assert trial.lease_expires_at == LATER + timedelta(minutes=2)


@pytest.mark.parametrize("status", ["recording", "processing", "done", "error"])
def test_only_a_queued_stopped_or_reprocess_trial_can_be_claimed(status):
    trial = a_trial(status)
    trial.queued_at = T0

    assert not trial.claimable(LATER)


def test_a_processing_trial_finishes_done():
    trial = a_trial("processing")

    event = trial.finish(LATER)

    assert event == TrialFinished(trial_id=trial.id, session_id=trial.session_id, status="done")
    assert (trial.status, trial.updated_at) == ("done", LATER)


@pytest.mark.parametrize("status", ["recording", "stopped", "done", "error"])
def test_only_a_processing_trial_can_finish(status):
    trial = a_trial(status)

    assert trial.finish(LATER) is None
    assert trial.status == status


@pytest.mark.parametrize("status", ["recording", "stopped", "processing"])
def test_a_failed_trial_keeps_the_messages_users_and_developers_see(status):
    trial = a_trial(status)

    event = trial.fail("Calibration failed.", LATER, "checkerboard not found")

    assert trial.status == "error"
    assert trial.meta == {
        "error_msg": "Calibration failed.",
        "error_msg_dev": "checkerboard not found",
    }
    assert event == TrialFinished(
        trial_id=trial.id,
        session_id=trial.session_id,
        status="error",
        error_msg="Calibration failed.",
    )


def test_the_developer_message_defaults_to_the_user_message():
    trial = a_trial("processing")

    trial.fail("Out of memory.", LATER)

    assert trial.meta == {"error_msg": "Out of memory.", "error_msg_dev": "Out of memory."}


@pytest.mark.parametrize("status", ["done", "error"])
def test_a_finished_trial_cannot_fail(status):
    trial = a_trial(status)

    with pytest.raises(Conflict):
        trial.fail("late failure", LATER)
    assert (trial.status, trial.meta) == (status, None)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("calibration", "calibration"), ("neutral", "static"), ("walk", "dynamic"), (None, "dynamic")],
)
def test_the_trial_name_decides_how_the_pipeline_processes_it(name, kind):
    assert a_trial(name=name).trial_type == kind


def test_a_session_starts_trials_recording_with_the_naming_rule():
    session = a_session()

    trial = session.start_trial("walk", ["walk"], LATER)

    assert (trial.session_id, trial.name, trial.status) == (session.id, "walk_1", "recording")
    assert session.updated_at == LATER
    assert trial.started().name == "walk_1"


@pytest.mark.parametrize(
    ("meta", "framerate"),
    [
        (None, 60),
        ({"settings": {"framerate": "120"}}, 120),
        ({"settings": {"framerate": 240}}, 240),
        ({"settings": {"framerate": "fast"}}, 60),
        ({"settings": {}}, 60),
    ],
)
def test_session_framerate_comes_from_its_settings(meta, framerate):
    assert a_session(meta).framerate() == framerate


# ── output formats (reference §2) ──────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=3, seconds=12, microseconds=345678), "00:03:12.345678"),
        (timedelta(hours=1), "01:00:00"),
        (timedelta(seconds=59, microseconds=1), "00:00:59.000001"),
        (timedelta(days=2, hours=3, minutes=4, seconds=5), "2 03:04:05"),
        (timedelta(days=1, microseconds=500000), "1 00:00:00.500000"),
        (None, None),
    ],
)
def test_durations_read_as_django_writes_them(value, text):
    assert duration(value) == text


def test_dates_are_utc_with_a_z():
    assert iso(datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=UTC)) == (
        "2024-05-01T12:34:56.123456Z"
    )
    assert iso(datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)) == "2024-05-01T12:34:56Z"
    assert iso(None) is None


def test_trials_count_skips_calibration_and_unfinished_neutral():
    trials = [
        a_trial("done", "calibration"),
        a_trial("processing", "neutral"),
        a_trial("error", "neutral"),
        a_trial("done", "walk"),
        a_trial("recording", "run"),
    ]
    assert trials_count(trials) == 2
    assert trials_count([*trials, a_trial("done", "neutral")]) == 3


def test_trashed_trials_still_count():
    trashed = a_trial("done", "walk")
    trashed.trashed = True

    assert trials_count([trashed]) == 1


def test_session_name_is_the_subject_id_or_the_first_uuid_block():
    session = a_session()
    assert session_name(session) == str(session.id).split("-")[0]

    session.meta = {"subject": {"id": "P01"}}
    assert session_name(session) == "P01"
