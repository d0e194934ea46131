"""The worker SDK end to end on real RabbitMQ and an S3 endpoint: a job in, videos down,
results up, `processing.started` then `processing.completed` / `processing.failed` out."""

import asyncio
import contextlib
import re
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import aio_pika
import pytest

from pipeline import reference
from pipeline.sdk import OutputFile, PipelineSettings, ProcessingError, Worker
from shared.db import utcnow
from shared.events import (
    EVENTS_EXCHANGE,
    JOB_ROUTING_KEY,
    JOBS_EXCHANGE,
    JOBS_QUEUE,
    Envelope,
    Event,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingJob,
    ProcessingStarted,
    UploadedVideo,
    decode,
)
from shared.messaging import declare_events, declare_jobs, publish_envelope

RESULT_KEY = re.compile(
    r"^results/(?P<trial>[0-9a-f-]{36})/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-(?P<name>[^/]+)$"
)


@pytest.fixture
def settings(s3_settings, amqp_url) -> PipelineSettings:
    return PipelineSettings(
        **s3_settings.model_dump(), amqp_url=amqp_url, worker_name="pytest-worker", log_json=False
    )


class Broker:
    """The test's side of RabbitMQ: publishes jobs, reads the pipeline's reports."""

    def __init__(self, channel, jobs_queue, reports):
        self.channel, self.jobs_queue, self.reports = channel, jobs_queue, reports

    async def submit(self, job: ProcessingJob) -> None:
        envelope = Envelope.wrap(
            job, producer="session", occurred_at=utcnow(), correlation_id="corr-7"
        )
        jobs = await self.channel.get_exchange(JOBS_EXCHANGE)
        await publish_envelope(jobs, envelope, JOB_ROUTING_KEY)

    async def report(self, timeout: float = 30.0) -> tuple[Envelope, Event]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            message = await self.reports.get(fail=False, no_ack=True)
            if message is not None:
                envelope = Envelope.model_validate_json(message.body)
                assert message.routing_key == envelope.type
                return envelope, decode(envelope)
            await asyncio.sleep(0.02)
        pytest.fail(f"no report from the worker within {timeout} s")

    async def jobs_waiting(self) -> int:
        """Jobs still in the queue; unacknowledged ones count once their consumer is gone."""
        declared = await self.channel.declare_queue(JOBS_QUEUE, passive=True)
        return declared.declaration_result.message_count


@pytest.fixture
async def broker(amqp_url) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await declare_events(channel)
    jobs_queue = await declare_jobs(channel)
    await jobs_queue.purge()
    reports = await channel.declare_queue(exclusive=True, auto_delete=True)
    await reports.bind(EVENTS_EXCHANGE, routing_key="processing.*")
    yield Broker(channel, jobs_queue, reports)
    await connection.close()


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run `worker` as a task, then stop it and wait until it has finished."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        if hasattr(worker, "stopping"):  # it is up: stop it the way SIGTERM does
            worker.stopping.set()
        else:
            task.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        finally:
            # Worker.run installs these on the loop; give pytest its Ctrl-C back.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def put_videos(storage, clips: list[Path], trial_id: UUID) -> list[UploadedVideo]:
    videos = []
    for clip in clips:
        video = UploadedVideo(
            video_id=uuid4(),
            device_id=uuid4(),
            key=f"videos/{trial_id}/{uuid4()}.mov",
            parameters={"model": "iPhone13,3"},
        )
        storage.put_bytes(video.key, clip.read_bytes(), "video/quicktime")
        videos.append(video)
    return videos


def job_with(trial_id: UUID, videos: list[UploadedVideo]) -> ProcessingJob:
    return ProcessingJob(
        job_id=uuid4(),
        trial_id=trial_id,
        session_id=uuid4(),
        trial_name="walking",
        trial_type="dynamic",
        videos=videos,
    )


async def test_job_yields_started_then_completed_with_stored_results(
    settings, broker, storage, clips
):
    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips, trial_id))
    await broker.submit(job)

    async with running(Worker(settings, reference.process)):
        started_envelope, started = await broker.report()
        completed_envelope, completed = await broker.report()

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


async def test_processing_error_yields_failed_with_its_message(settings, broker, storage, clips):
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


async def test_job_without_videos_fails_with_the_originals_message(settings, broker):
    job = job_with(uuid4(), [])
    await broker.submit(job)

    async with running(Worker(settings, reference.process)):
        await broker.report()
        _, failed = await broker.report()

    assert isinstance(failed, ProcessingFailed)
    assert failed.error_msg.startswith("No videos uploaded.")
    assert await broker.jobs_waiting() == 0


async def test_crash_in_process_yields_a_generic_failure(settings, broker, storage, clips):
    def crash(job, workdir, videos) -> list[OutputFile]:
        raise ZeroDivisionError("bug in the pipeline")

    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips[:1], trial_id))
    await broker.submit(job)

    async with running(Worker(settings, crash)):
        await broker.report()
        _, failed = await broker.report()

    assert isinstance(failed, ProcessingFailed)
    assert failed.error_msg == "Processing failed unexpectedly."
    assert "bug in the pipeline" in failed.error_msg_dev
    assert await broker.jobs_waiting() == 0


async def test_undecodable_job_is_dead_lettered(settings, broker):
    jobs = await broker.channel.get_exchange(JOBS_EXCHANGE)
    await jobs.publish(aio_pika.Message(b"not a job"), routing_key=JOB_ROUTING_KEY)
    dlq = await broker.channel.declare_queue(f"{JOBS_QUEUE}.dlq", durable=True)
    await dlq.purge()

    async with running(Worker(settings, reference.process)):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (dead := await dlq.get(fail=False, no_ack=True)) is None:
            assert loop.time() < deadline, "the job never reached the DLQ"
            await asyncio.sleep(0.02)

    assert dead.body == b"not a job"
    assert await broker.reports.get(fail=False) is None
    assert await broker.jobs_waiting() == 0


async def test_stop_during_a_job_finishes_the_job_first(settings, broker, storage, clips):
    release = threading.Event()

    def slow(job, workdir, videos) -> list[OutputFile]:
        if not release.wait(30):
            raise ProcessingError("never released")
        return reference.process(job, workdir, videos)

    trial_id = uuid4()
    await broker.submit(job_with(trial_id, put_videos(storage, clips[:1], trial_id)))
    worker = Worker(settings, slow)
    task = asyncio.create_task(worker.run())
    try:
        _, started = await broker.report()
        assert isinstance(started, ProcessingStarted)
        worker.stopping.set()  # SIGTERM while the job is under way
        release.set()
        _, completed = await broker.report()
        await asyncio.wait_for(task, 30)
    finally:
        release.set()
        if not task.done():
            task.cancel()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    assert isinstance(completed, ProcessingCompleted) and len(completed.results) == 2
    assert await broker.jobs_waiting() == 0
