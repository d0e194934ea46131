"""What the results service keeps of other services' facts, from their events: each handler
applied twice leaves one row, and events that arrive out of order lose nothing."""

import contextlib
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import func, select

from results_service.models import KnownSession, KnownTrial, KnownVideo
from shared.events import (
    Envelope,
    SessionCreated,
    SessionUpdated,
    TrialMetaUpdated,
    TrialQueued,
    TrialRenamed,
    TrialStarted,
    VideoUploaded,
)
from shared.messaging import _HANDLING
from tests.results.conftest import deliver

AT = datetime(2026, 5, 1, tzinfo=UTC)


@contextlib.contextmanager
def handling(event, occurred_at: datetime):
    """As inside the worker's consumer: the event's envelope (and its time) at hand."""
    envelope = Envelope.wrap(
        event, producer="session", occurred_at=occurred_at, correlation_id=None
    )
    token = _HANDLING.set(envelope)
    try:
        yield
    finally:
        _HANDLING.reset(token)


async def test_session_owner_public_flag_and_calibration_session_in_any_order(tx, handlers):
    session_id, parent = uuid4(), uuid4()
    updated = SessionUpdated(session_id=session_id, public=True, calibration_session_id=parent)

    await deliver(tx, handlers, updated, SessionCreated(session_id=session_id, user_id=7), updated)

    session = await tx.get(KnownSession, session_id)
    assert (session.user_id, session.public, session.calibration_session_id) == (7, True, parent)


async def test_an_older_session_update_handled_late_changes_nothing(tx, handlers):
    """A consumer retry delivers the update made public (t0) after the one that made it
    private again with another subject (t0 + 5 s): the newer stays."""
    session_id, parent = uuid4(), uuid4()
    older = SessionUpdated(session_id=session_id, public=True, calibration_session_id=parent)
    newer = SessionUpdated(session_id=session_id, public=False, subject_id=8)
    await deliver(tx, handlers, SessionCreated(session_id=session_id, user_id=7))

    with handling(newer, AT + timedelta(seconds=5)):
        await deliver(tx, handlers, newer)
    with handling(older, AT):
        await deliver(tx, handlers, older)

    session = await tx.get(KnownSession, session_id)
    assert (session.public, session.calibration_session_id, session.subject_id) == (False, None, 8)


async def test_the_sessions_subject_follows_its_updates(tx, handlers):
    session_id = uuid4()

    await deliver(tx, handlers, SessionUpdated(session_id=session_id, subject_id=3))
    first = (await tx.get(KnownSession, session_id)).subject_id
    await deliver(tx, handlers, SessionUpdated(session_id=session_id, subject_id=None))

    assert (first, (await tx.get(KnownSession, session_id)).subject_id) == (3, None)


async def test_trial_name_follows_renames_even_one_that_came_first(tx, handlers):
    trial_id, session_id = uuid4(), uuid4()
    started = TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=AT)
    renamed = TrialRenamed(trial_id=trial_id, session_id=session_id, name="run")

    await deliver(tx, handlers, renamed, started, started)

    trial = await tx.get(KnownTrial, trial_id)
    assert (trial.name, trial.created_at, trial.session_id) == ("run", AT, session_id)


async def test_a_trial_queued_before_it_was_seen_started_keeps_its_name_and_job(tx, handlers):
    trial_id, session_id, job_id = uuid4(), uuid4(), uuid4()
    started = TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=AT)

    await deliver(
        tx, handlers, TrialQueued(trial_id=trial_id, session_id=session_id, job_id=job_id)
    )
    await deliver(tx, handlers, started)

    trial = await tx.get(KnownTrial, trial_id)
    assert (trial.name, trial.current_job_id) == ("walk", job_id)


async def test_calibration_choice_is_kept_and_cleared_by_meta_without_one(tx, handlers):
    trial_id, session_id = uuid4(), uuid4()
    chosen = {"calibration": {"Cam0": 1, "Cam1": 0}}

    await deliver(
        tx, handlers, TrialMetaUpdated(trial_id=trial_id, session_id=session_id, meta=chosen)
    )
    kept = (await tx.get(KnownTrial, trial_id)).calibration
    error = {"error_msg": "failed"}
    await deliver(
        tx, handlers, TrialMetaUpdated(trial_id=trial_id, session_id=session_id, meta=error)
    )

    assert kept == {"Cam0": 1, "Cam1": 0}
    assert (await tx.get(KnownTrial, trial_id)).calibration is None


async def test_a_video_announced_twice_is_one_video(tx, handlers):
    event = VideoUploaded(
        video_id=uuid4(),
        trial_id=uuid4(),
        session_id=uuid4(),
        device_id=uuid4(),
        key="a.mov",
        size=1,
    )

    await deliver(tx, handlers, event, event)

    assert await tx.scalar(select(func.count()).select_from(KnownVideo)) == 1
