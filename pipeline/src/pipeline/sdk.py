"""Worker SDK: take processing jobs from RabbitMQ, run a function on the videos, report back.

A worker supplies `process(job, workdir, videos) -> [OutputFile]`. The SDK downloads the
trial's videos, runs it, uploads every output file to the object store and publishes
`processing.started`, then `processing.completed` (with the manifest of result objects)
or `processing.failed` (with the message users see). The job is acknowledged only after
the report is confirmed by the broker, so a worker that dies mid-job leaves the job to
be delivered again.
"""

import asyncio
import re
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import structlog
from aio_pika.abc import AbstractIncomingMessage

from shared.config import S3Settings
from shared.db import utcnow
from shared.events import (
    Envelope,
    Event,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingJob,
    ProcessingStarted,
    ResultFile,
    UploadedVideo,
)
from shared.logging import configure_logging
from shared.messaging import connect, declare_events, declare_jobs, publish_envelope
from shared.storage import Storage

log = structlog.get_logger()
SAFE_NAME = re.compile(r"[^A-Za-z0-9._]")


class PipelineSettings(S3Settings):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    worker_name: str = socket.gethostname()
    log_level: str = "INFO"
    log_json: bool = True


@dataclass(frozen=True)
class OutputFile:
    path: Path
    tag: str
    device_id: str | None = None
    meta: dict[str, Any] | None = None


class ProcessingError(Exception):
    """A failure to report to the user: `user_message` is what the web app shows."""

    def __init__(self, user_message: str, dev_message: str = ""):
        super().__init__(user_message)
        self.user_message, self.dev_message = user_message, dev_message or user_message


Process = Callable[[ProcessingJob, Path, list[tuple[UploadedVideo, Path]]], list[OutputFile]]


def result_key(trial_id: Any, path: Path) -> str:
    """`results/<trial>/<uuid4>-<name>`: the file name after the last '-', as clients parse it."""
    name = SAFE_NAME.sub("", path.name) or "result"
    return f"results/{trial_id}/{uuid4()}-{name}"


class Worker:
    def __init__(self, settings: PipelineSettings, process: Process):
        self.settings, self.process = settings, process
        self.storage = Storage(settings)

    async def run(self) -> None:
        """Consume jobs until SIGTERM/SIGINT; a job under way is finished first."""
        connection = await connect(self.settings.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=1)
            self.events = await declare_events(channel)
            queue = await declare_jobs(channel)
            self.busy, self.stopping = False, asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            try:
                await self._consume_until_stopped(queue)
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            log.info("pipeline_worker_stopped")

    async def _consume_until_stopped(self, queue) -> None:
        consuming = asyncio.create_task(self._consume(queue))
        stopping = asyncio.create_task(self.stopping.wait())
        log.info("pipeline_worker_started", worker=self.settings.worker_name)
        await asyncio.wait([consuming, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not self.busy:
            consuming.cancel()
        stopping.cancel()
        await asyncio.gather(consuming, stopping, return_exceptions=True)

    async def _consume(self, queue) -> None:
        async with queue.iterator() as jobs:
            async for message in jobs:
                self.busy = True
                try:
                    await self.handle(message)
                finally:
                    self.busy = False
                if self.stopping.is_set():
                    return

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate_json(message.body)
            job = ProcessingJob.model_validate(envelope.data)
        except Exception as exc:
            log.error("job_undecodable", error=repr(exc))
            await message.reject(requeue=False)
            return
        with structlog.contextvars.bound_contextvars(
            correlation_id=envelope.correlation_id,
            trial_id=str(job.trial_id),
            job_id=str(job.job_id),
        ):
            await self.report(
                ProcessingStarted(
                    job_id=job.job_id, trial_id=job.trial_id, worker=self.settings.worker_name
                )
            )
            await self.report(await self.execute(job))
            await message.ack()

    async def execute(self, job: ProcessingJob) -> Event:
        worker = self.settings.worker_name
        try:
            with tempfile.TemporaryDirectory(prefix="opencap-job-") as tmp:
                results = await asyncio.to_thread(self._work, job, Path(tmp))
        except ProcessingError as exc:
            log.warning("job_failed", error=exc.dev_message)
            return ProcessingFailed(
                job_id=job.job_id,
                trial_id=job.trial_id,
                worker=worker,
                error_msg=exc.user_message,
                error_msg_dev=exc.dev_message,
            )
        except Exception as exc:
            log.exception("job_crashed")
            return ProcessingFailed(
                job_id=job.job_id,
                trial_id=job.trial_id,
                worker=worker,
                error_msg="Processing failed unexpectedly.",
                error_msg_dev=repr(exc),
            )
        log.info("job_completed", results=len(results))
        return ProcessingCompleted(
            job_id=job.job_id, trial_id=job.trial_id, worker=worker, results=results
        )

    def _work(self, job: ProcessingJob, workdir: Path) -> list[ResultFile]:
        videos = []
        for video in job.videos:
            path = workdir / f"input-{video.video_id}{Path(video.key).suffix or '.mov'}"
            self.storage.download_file(video.key, str(path))
            videos.append((video, path))
        outputs = workdir / "outputs"
        outputs.mkdir()
        results = []
        for output in self.process(job, outputs, videos):
            key = result_key(job.trial_id, output.path)
            with output.path.open("rb") as handle:
                self.storage.upload_fileobj(handle, key)
            results.append(
                ResultFile(tag=output.tag, device_id=output.device_id, key=key, meta=output.meta)
            )
        return results

    async def report(self, event: Event) -> None:
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
        envelope = Envelope.wrap(
            event, producer="pipeline", occurred_at=utcnow(), correlation_id=correlation_id
        )
        await publish_envelope(self.events, envelope)


def run(process: Process, settings: PipelineSettings | None = None) -> None:
    """Entry point of a worker process: run `process` on every job until interrupted."""
    settings = settings or PipelineSettings()
    configure_logging(settings.log_level, settings.log_json, "pipeline")
    asyncio.run(Worker(settings, process).run())
