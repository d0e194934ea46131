"""The trial moves on as the other services report: handlers run on the test's transaction.

Delivery is at least once, so every handler gets the same event twice where that matters
and must leave one effect.
"""

from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from session_service import consumers
from session_service.models import Outbox, Result, Session, Trial, User, Video
from shared.db import utcnow
from shared.events import (
    Camera,
    CamerasFinal,
    DeviceJoined,
    ProcessingFailed,
    ProcessingStarted,
    RecordedResult,
    ResultsRecorded,
    UploadedVideo,
    VideosReceived,
    VideoUploaded,
)


@pytest.fixture
async def session_row(tx, alice: User) -> Session:
    now = utcnow()
    session = Session(id=uuid4(), user_id=alice.id, meta=None, created_at=now, updated_at=now)
    tx.add(session)
    await tx.flush()
    return session


@pytest.fixture
async def make_trial(tx, session_row: Session):
    async def make(status: str, name: str = "walk") -> Trial:
        now = utcnow()
        trial = Trial(
            id=uuid4(),
            session_id=session_row.id,
            name=name,
            status=status,
            meta=None,
            processed_count=0,
            trashed=False,
            created_at=now,
            updated_at=now,
        )
        tx.add(trial)
        await tx.flush()
        return trial

    return make


async def outbox(tx) -> list[Outbox]:
    return list((await tx.scalars(select(Outbox).order_by(Outbox.id))).all())


async def videos(tx, trial: Trial) -> list[Video]:
    stmt = (
        select(Video)
        .where(Video.trial_id == trial.id)
        .order_by(Video.created_at)
        .execution_options(populate_existing=True)
    )
    return list((await tx.scalars(stmt)).all())


def joined(trial: Trial, video_id: UUID, device_id: UUID) -> DeviceJoined:
    return DeviceJoined(
        video_id=video_id, trial_id=trial.id, session_id=trial.session_id, device_id=device_id
    )


def uploaded(trial: Trial, video_id: UUID, device_id: UUID) -> VideoUploaded:
    return VideoUploaded(
        video_id=video_id,
        trial_id=trial.id,
        session_id=trial.session_id,
        device_id=device_id,
        key=f"{video_id}.mov",
        size=1234,
        parameters={"model": "iPhone13,3", "max_framerate": 120},
    )


def received(trial: Trial, count: int = 2) -> VideosReceived:
    clips = [uuid4() for _ in range(count)]
    return VideosReceived(
        trial_id=trial.id,
        session_id=trial.session_id,
        videos=[
            UploadedVideo(video_id=clip, device_id=uuid4(), key=f"{clip}.mov", parameters={})
            for clip in clips
        ],
    )


def results_of(trial: Trial, *ids: int, complete: bool = True) -> ResultsRecorded:
    return ResultsRecorded(
        trial_id=trial.id,
        results=[
            RecordedResult(
                result_id=i, tag="video_facts", device_id="Cam0", key=f"{uuid4()}-x.json"
            )
            for i in ids
        ],
        complete=complete,
    )


# ── the video projection ────────────────────────────────────────────────────────────


async def test_a_joined_phone_shows_as_a_video_waiting_for_its_upload(tx, make_trial):
    trial = await make_trial("recording")
    video_id, device_id = uuid4(), uuid4()

    await consumers.on_device_joined(tx, joined(trial, video_id, device_id))
    await consumers.on_device_joined(tx, joined(trial, video_id, device_id))

    [video] = await videos(tx, trial)
    assert (video.id, video.device_id, video.key, video.parameters) == (
        video_id,
        device_id,
        None,
        None,
    )


async def test_an_upload_fills_the_joined_phones_video(tx, make_trial):
    trial = await make_trial("stopped")
    video_id, device_id = uuid4(), uuid4()
    await consumers.on_device_joined(tx, joined(trial, video_id, device_id))

    await consumers.on_video_uploaded(tx, uploaded(trial, video_id, device_id))
    await consumers.on_video_uploaded(tx, uploaded(trial, video_id, device_id))

    [video] = await videos(tx, trial)
    assert (video.id, video.key) == (video_id, f"{video_id}.mov")
    assert video.parameters == {"model": "iPhone13,3", "max_framerate": 120}


async def test_an_upload_arriving_before_the_join_still_shows(tx, make_trial):
    trial = await make_trial("stopped")
    video_id, device_id = uuid4(), uuid4()

    await consumers.on_video_uploaded(tx, uploaded(trial, video_id, device_id))
    await consumers.on_device_joined(tx, joined(trial, video_id, device_id))

    [video] = await videos(tx, trial)
    assert (video.device_id, video.key) == (device_id, f"{video_id}.mov")


# ── cameras final ───────────────────────────────────────────────────────────────────


async def test_a_trial_stopped_without_cameras_fails_with_a_message(tx, make_trial):
    trial = await make_trial("stopped")
    event = CamerasFinal(trial_id=trial.id, session_id=trial.session_id, cameras=[])

    await consumers.on_cameras_final(tx, event)
    await consumers.on_cameras_final(tx, event)

    assert trial.status == "error"
    assert "No cameras were connected" in trial.meta["error_msg"]
    [row] = await outbox(tx)
    assert (row.exchange, row.routing_key) == ("events", "trial.finished")
    assert row.body["data"] == {
        "trial_id": str(trial.id),
        "session_id": str(trial.session_id),
        "status": "error",
        "error_msg": trial.meta["error_msg"],
    }


async def test_a_trial_with_cameras_waits_for_their_videos(tx, make_trial):
    trial = await make_trial("stopped")
    cameras = [Camera(video_id=uuid4(), device_id=uuid4())]

    await consumers.on_cameras_final(
        tx, CamerasFinal(trial_id=trial.id, session_id=trial.session_id, cameras=cameras)
    )

    assert (trial.status, trial.meta) == ("stopped", None)
    assert await outbox(tx) == []


# ── all videos received: the processing job ────────────────────────────────────────


async def test_all_videos_in_queues_one_processing_job(tx, make_trial):
    trial = await make_trial("stopped")
    event = received(trial)

    await consumers.on_videos_received(tx, event)
    await consumers.on_videos_received(tx, event)

    assert (trial.status, trial.processed_count) == ("stopped", 0)  # queued, not claimed
    assert trial.queued_at is not None
    queued, job = await outbox(tx)
    assert (queued.exchange, queued.routing_key) == ("events", "trial.queued")
    assert queued.body["data"] == {
        "trial_id": str(trial.id),
        "session_id": str(trial.session_id),
        "job_id": str(trial.job_id),
    }
    assert (job.exchange, job.routing_key, job.priority) == ("processing", "dynamic", 3)
    assert job.body["type"] == "processing.job"
    data = job.body["data"]
    assert (data["job_id"], data["trial_id"], data["session_id"]) == (
        str(trial.job_id),
        str(trial.id),
        str(trial.session_id),
    )
    assert (data["trial_name"], data["trial_type"], data["attempt"]) == ("walk", "dynamic", 1)
    assert data["videos"] == [v.model_dump(mode="json") for v in event.videos]


@pytest.mark.parametrize(("name", "kind"), [("calibration", "calibration"), ("neutral", "static")])
async def test_the_job_says_how_to_process_the_trial(tx, make_trial, name, kind):
    trial = await make_trial("stopped", name)

    await consumers.on_videos_received(tx, received(trial, 1))

    job = (await outbox(tx))[-1]
    assert (job.body["data"]["trial_name"], job.body["data"]["trial_type"]) == (name, kind)


async def test_videos_of_a_trial_already_failed_queue_nothing(tx, make_trial):
    trial = await make_trial("error")

    await consumers.on_videos_received(tx, received(trial))

    assert trial.status == "error"
    assert await outbox(tx) == []


async def test_events_about_an_unknown_trial_are_ignored(tx, make_trial):
    ghost = await make_trial("stopped")
    await tx.delete(ghost)
    await tx.flush()

    await consumers.on_videos_received(tx, received(ghost))
    await consumers.on_results_recorded(tx, results_of(ghost, 1))

    assert await outbox(tx) == []
    assert await tx.scalar(select(Result.id)) is None


# ── processing ──────────────────────────────────────────────────────────────────────


async def test_the_worker_that_took_the_trial_is_shown(tx, make_trial):
    trial = await make_trial("processing")

    await consumers.on_processing_started(
        tx, ProcessingStarted(job_id=uuid4(), trial_id=trial.id, worker="gpu-" + "x" * 80)
    )

    assert trial.hostname == ("gpu-" + "x" * 80)[:64]


async def test_a_processing_failure_shows_its_messages(tx, make_trial, settings):
    trial = await make_trial("processing")
    event = ProcessingFailed(
        job_id=uuid4(),
        trial_id=trial.id,
        worker="gpu-1",
        error_msg="Calibration failed: checkerboard not found.",
        error_msg_dev="Traceback …",
    )

    on_failed = consumers.make_on_failed(settings)
    await on_failed(tx, event)
    await on_failed(tx, event)

    assert trial.status == "error"
    assert trial.meta == {
        "error_msg": "Calibration failed: checkerboard not found.",
        "error_msg_dev": "Traceback …",
    }
    [row] = await outbox(tx)
    assert row.routing_key == "trial.finished"
    assert (row.body["data"]["status"], row.body["data"]["error_msg"]) == (
        "error",
        "Calibration failed: checkerboard not found.",
    )


async def test_a_late_failure_does_not_undo_a_finished_trial(tx, make_trial, settings):
    trial = await make_trial("done")

    await consumers.make_on_failed(settings)(
        tx, ProcessingFailed(job_id=uuid4(), trial_id=trial.id, worker="w", error_msg="late")
    )

    assert (trial.status, trial.meta) == ("done", None)
    assert await outbox(tx) == []


async def test_recorded_results_finish_the_trial_once(tx, make_trial):
    trial = await make_trial("processing")
    event = results_of(trial, 41, 42)

    await consumers.on_results_recorded(tx, event)
    await consumers.on_results_recorded(tx, event)

    assert trial.status == "done"
    rows = (await tx.scalars(select(Result).order_by(Result.id))).all()
    assert [(r.id, r.trial_id, r.tag, r.device_id) for r in rows] == [
        (41, trial.id, "video_facts", "Cam0"),
        (42, trial.id, "video_facts", "Cam0"),
    ]
    assert [r.key for r in rows] == [r.key for r in event.results]
    [row] = await outbox(tx)
    assert (row.routing_key, row.body["data"]["status"]) == ("trial.finished", "done")


async def test_partial_results_keep_the_trial_processing(tx, make_trial):
    trial = await make_trial("processing")

    await consumers.on_results_recorded(tx, results_of(trial, 43, complete=False))

    assert trial.status == "processing"
    assert await tx.scalar(select(Result.id)) == 43
    assert await outbox(tx) == []
