"""The worker SDK end to end on real RabbitMQ and an S3 endpoint: a job in, claimed, videos
down, results up, `processing.started` then `processing.completed` / `processing.failed`."""

import asyncio
import re
from uuid import uuid4

import aio_pika

from pipeline import reference
from pipeline.sdk import OutputFile, ProcessingError, Worker
from shared.events import (
    JOBS_EXCHANGE,
    ClaimRequest,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingStarted,
)
from tests.pipeline.support import job_with, put_videos, running

RESULT_KEY = re.compile(
    r"^results/(?P<trial>[0-9a-f-]{36})/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-(?P<name>[^/]+)$"
)


async def test_job_yields_started_then_completed_with_stored_results(
    settings, broker, claims, storage, clips
):
    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips, trial_id))
    await broker.submit(job)

    async with running(Worker(settings, reference.process)):
        started_envelope, started = await broker.report()
        completed_envelope, completed = await broker.report()

    ((request, _),) = claims.requests
    assert request == ClaimRequest(job_id=job.job_id, trial_id=trial_id, worker="pytest-worker")
    assert started == ProcessingStarted(
        job_id=job.job_id, trial_id=trial_id, worker="pytest-worker"
    )
    assert isinstance(completed, ProcessingCompleted)
    assert (completed.job_id, completed.trial_id, completed.worker) == (
        job.job_id,
        trial_id,
        "pytest-worker",
    )
    for envelope in (started_envelope, completed_envelope):
        assert (envelope.producer, envelope.correlation_id) == ("pipeline", "corr-7")
    assert [(r.tag, r.device_id) for r in completed.results] == [
        ("video_facts", "Cam0"),
        ("thumbnail", "Cam0"),
        ("video_facts", "Cam1"),
        ("thumbnail", "Cam1"),
        ("sync_offsets", "all"),
    ]
    for result in completed.results:
        match = RESULT_KEY.match(result.key)
        assert match, result.key
        assert match["trial"] == str(trial_id)
        assert "-" not in match["name"]
        assert storage.size(result.key)
    facts = completed.results[0].meta
    assert (facts["frame_count"], facts["width"], facts["height"]) == (30, 320, 240)
    assert facts["device_id"] == str(job.videos[0].device_id)
    assert await broker.jobs_waiting() == 0


async def test_process_gets_the_videos_as_cameras_in_the_jobs_order(
    settings, broker, claims, storage, clips
):
    seen = []

    def look(job, workdir, videos) -> list[OutputFile]:
        seen.extend((video, path.name, path.read_bytes()) for video, path in videos)
        seen.append(sorted(p.name for p in workdir.iterdir()))
        return []

    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips, trial_id))
    await broker.submit(job)

    async with running(Worker(settings, look)):
        events = await broker.reports_until_final()

    assert seen == [
        (job.videos[0], "Cam0.mov", clips[0].read_bytes()),
        (job.videos[1], "Cam1.mov", clips[1].read_bytes()),
        [],  # the output folder starts empty
    ]
    assert events[-1] == ProcessingCompleted(
        job_id=job.job_id, trial_id=trial_id, worker="pytest-worker", results=[]
    )


async def test_processing_error_yields_failed_with_its_message(
    settings, broker, claims, storage, clips
):
    def refuse(job, workdir, videos) -> list[OutputFile]:
        assert [path.read_bytes() for _, path in videos] == [clips[0].read_bytes()]
        raise ProcessingError("Camera calibration failed.", "checkerboard not found in Cam0")

    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips[:1], trial_id))
    await broker.submit(job)

    async with running(Worker(settings, refuse)):
        _, started = await broker.report()
        _, failed = await broker.report()

    assert isinstance(started, ProcessingStarted)
    assert failed == ProcessingFailed(
        job_id=job.job_id,
        trial_id=trial_id,
        worker="pytest-worker",
        error_msg="Camera calibration failed.",
        error_msg_dev="checkerboard not found in Cam0",
    )
    assert await broker.jobs_waiting() == 0


async def test_job_without_videos_fails_with_the_originals_message(settings, broker, claims):
    await broker.submit(job_with(uuid4(), []))

    async with running(Worker(settings, reference.process)):
        events = await broker.reports_until_final()

    assert isinstance(events[-1], ProcessingFailed)
    assert events[-1].error_msg.startswith("No videos uploaded.")
    assert await broker.jobs_waiting() == 0


async def test_crash_in_process_yields_a_generic_failure(settings, broker, claims, storage, clips):
    def crash(job, workdir, videos) -> list[OutputFile]:
        raise ZeroDivisionError("bug in the pipeline")

    trial_id = uuid4()
    await broker.submit(job_with(trial_id, put_videos(storage, clips[:1], trial_id)))

    async with running(Worker(settings, crash)):
        events = await broker.reports_until_final()

    assert isinstance(events[-1], ProcessingFailed)
    assert events[-1].error_msg == "Processing failed unexpectedly."
    assert events[-1].retry is False
    assert "bug in the pipeline" in events[-1].error_msg_dev
    assert await broker.jobs_waiting() == 0


async def test_an_unreachable_object_store_is_a_failure_worth_retrying(
    settings, broker, claims, storage, clips
):
    """Not the trial's fault: the session service puts it back on the queue (a bug in the
    processing, above, is not retried)."""
    trial_id = uuid4()
    await broker.submit(job_with(trial_id, put_videos(storage, clips[:1], trial_id)))
    away = settings.model_copy(update={"s3_endpoint_url": "http://127.0.0.1:1"})

    async with running(Worker(away, reference.process)):
        events = await broker.reports_until_final()

    assert isinstance(events[-1], ProcessingFailed)
    assert events[-1].retry is True
    assert events[-1].error_msg == "Processing failed unexpectedly."


async def test_undecodable_job_is_dead_lettered_without_a_claim(settings, broker, claims):
    dlq = await broker.channel.declare_queue(f"{JOBS_EXCHANGE}.dlq", durable=True)
    await dlq.purge()
    jobs = await broker.channel.get_exchange(JOBS_EXCHANGE)
    await jobs.publish(aio_pika.Message(b"not a job"), routing_key="dynamic")

    async with running(Worker(settings, reference.process)):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (dead := await dlq.get(fail=False, no_ack=True)) is None:
            assert loop.time() < deadline, "the job never reached the DLQ"
            await asyncio.sleep(0.02)

    assert dead.body == b"not a job"
    assert claims.requests == []
    assert await broker.no_more_reports()
    assert await broker.jobs_waiting() == 0
