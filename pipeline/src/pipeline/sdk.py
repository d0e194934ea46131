"""Worker SDK: take processing jobs from RabbitMQ, run a function on the videos, report back.

A worker supplies `process(job, output_dir, videos) -> [OutputFile]` (`job.py`) and calls
`run(process)`. For each job the worker:

1. takes it with basic.get from the job queues of its WORKER_TYPE in preference order
   (`shared.events.WORKER_TYPES`: calibration and neutral jobs first), one at a time,
   looking again every POLL_SECONDS while they are all empty;
2. claims it from the session service (`claims.py`). Refused: the job is acknowledged and
   dropped (stale, or another worker holds the trial). Unanswered after CLAIM_ATTEMPTS
   tries: the job goes back to its queue. Granted: the job is acknowledged at once and
   `processing.started` published; from then on the lease, renewed by a
   `processing.heartbeat` every lease/4 s (`heartbeat.py`), stands for the job, so the
   broker's consumer timeout can never cut or redeliver an hour-long job;
3. downloads the videos, runs `process` in a thread, uploads the output files and
   publishes `processing.completed` (the manifest) or `processing.failed` (`job.py`).

SIGTERM/SIGINT: no new job is taken; the one under way is finished and reported first.
The worker serves the `pipeline_*` Prometheus metrics on METRICS_PORT once it is connected.
"""

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Iterator
from functools import partial

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from pydantic import Field, field_validator

from pipeline.claims import Claims
from pipeline.heartbeat import heartbeats, interval_for
from pipeline.job import OutputFile, Process, ProcessingError, perform, result_key
from shared.config import S3Settings
from shared.db import utcnow
from shared.events import (
    WORKER_TYPES,
    ClaimReply,
    ClaimRequest,
    Envelope,
    Event,
    ProcessingHeartbeat,
    ProcessingJob,
    ProcessingStarted,
)
from shared.logging import configure_logging
from shared.messaging import connect, declare_events, declare_jobs, publish_envelope
from shared.storage import Storage

__all__ = [
    "OutputFile",
    "PipelineSettings",
    "Process",
    "ProcessingError",
    "Worker",
    "result_key",
    "run",
]

log = structlog.get_logger()

JOBS = Counter(
    "pipeline_jobs_total",
    "Jobs taken from the queues, by outcome: claimed, refused, unanswered (put back) or "
    "undecodable; then each claimed job once more as completed or failed",
    ["outcome"],
)
PROCESSING_SECONDS = Histogram(
    "pipeline_processing_seconds",
    "Time from a granted claim to the job's report",
    ["trial_type"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 5400, 7200),
)
CURRENT_JOB = Gauge("pipeline_current_job", "1 while the worker is working on a job")
# Errors of a broker connection that is down or being re-established.
BROKER_ERRORS = (aio_pika.exceptions.AMQPError, ConnectionError, asyncio.TimeoutError)


def job_kinds(worker_type: str) -> list[str]:
    """The job queues of a worker type (or comma-joined types), in preference order."""
    kinds = [kind for part in worker_type.split(",") for kind in WORKER_TYPES[part]]
    return list(dict.fromkeys(kinds))


class PipelineSettings(S3Settings):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Who claims jobs: unique per process, since a claim asked again by the same worker is
    # granted again (two processes on one host must not share a name).
    worker_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # all | calibration | dynamic | mono, or several joined by commas (e.g. "all,mono")
    worker_type: str = "all"
    poll_seconds: float = 0.5  # wait before looking again when every queue is empty
    claim_timeout_seconds: float = 5.0  # wait for the session service's answer to a claim
    claim_attempts: int = 3  # tries before the job goes back to its queue
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9100  # Prometheus endpoint, up once connected (0: none)
    # The reference worker runs this command line on each job instead of its own processing
    # (`command.py`); its time limit in seconds (0: none).
    pipeline_command: str = ""
    pipeline_command_timeout_seconds: float = 0.0
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("worker_type")
    @classmethod
    def _known_worker_type(cls, value: str) -> str:
        if not value or any(part not in WORKER_TYPES for part in value.split(",")):
            raise ValueError(f"WORKER_TYPE must be among: {', '.join(WORKER_TYPES)}")
        return value


class Worker:
    def __init__(self, settings: PipelineSettings, process: Process):
        self.settings, self.process = settings, process
        self.storage = Storage(settings)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Take jobs until SIGTERM/SIGINT (or `stopping` is set); a job under way is finished."""
        connection = await connect(self.settings.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            self.events = await declare_events(channel)
            queues = await declare_jobs(channel)
            self.queues = [queues[kind] for kind in job_kinds(self.settings.worker_type)]
            self.claims = await Claims(
                channel, self.settings.claim_timeout_seconds, self.settings.claim_attempts
            ).open(self.settings.worker_name)
            if self.settings.metrics_port:  # up once connected: it tells readiness too
                start_http_server(self.settings.metrics_port, addr=self.settings.metrics_host)
            with stop_on_signals(self.stopping):
                log.info("pipeline_worker_started", worker=self.settings.worker_name)
                await self._take_jobs()
        log.info("pipeline_worker_stopped")

    async def _take_jobs(self) -> None:
        while not self.stopping.is_set():
            try:
                message = await self._next_job()
            except BROKER_ERRORS as exc:
                log.warning("job_queues_unreachable", error=repr(exc))
                message = None
            if message is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.settings.poll_seconds)
            else:
                await self.handle(message)

    async def _next_job(self) -> AbstractIncomingMessage | None:
        """The first job waiting in the worker's queues, in their order of preference."""
        for queue in self.queues:
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                return message
        return None

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate_json(message.body)
            job = ProcessingJob.model_validate(envelope.data)
        except Exception as exc:
            log.error("job_undecodable", error=repr(exc))
            JOBS.labels("undecodable").inc()
            await settle(message.reject(requeue=False))
            return
        with structlog.contextvars.bound_contextvars(
            correlation_id=envelope.correlation_id,
            trial_id=str(job.trial_id),
            job_id=str(job.job_id),
            attempt=job.attempt,
        ):
            reply = await self.claim(message, job)
            if reply is not None:
                await self.work_on(job, reply.lease_seconds)

    async def claim(
        self, message: AbstractIncomingMessage, job: ProcessingJob
    ) -> ClaimReply | None:
        """The granted claim of the job, or None (the job was dropped or put back)."""
        reply = await self._ask_for(job)
        if reply is None:
            log.warning("job_put_back", reason="claim unanswered")
            JOBS.labels("unanswered").inc()
            await settle(message.reject(requeue=True))
            return None
        await settle(message.ack())  # granted or refused, the broker is done with the message
        JOBS.labels("claimed" if reply.granted else "refused").inc()
        if not reply.granted:
            log.info("job_dropped", reason=reply.reason or "claim refused")
            return None
        log.info("job_claimed", lease_seconds=reply.lease_seconds)
        return reply

    async def _ask_for(self, job: ProcessingJob) -> ClaimReply | None:
        request = ClaimRequest(
            job_id=job.job_id, trial_id=job.trial_id, worker=self.settings.worker_name
        )
        try:
            return await self.claims.request(request)
        except BROKER_ERRORS as exc:
            log.warning("job_claim_failed", error=repr(exc))
            return None

    async def work_on(self, job: ProcessingJob, lease_seconds: float) -> None:
        ids = {"job_id": job.job_id, "trial_id": job.trial_id, "worker": self.settings.worker_name}
        started = time.monotonic()
        CURRENT_JOB.set(1)
        try:
            await self.report(ProcessingStarted(**ids))
            beat = partial(self.report, ProcessingHeartbeat(**ids), attempts=1)
            async with heartbeats(beat, interval_for(lease_seconds)):
                outcome = await asyncio.to_thread(
                    perform, self.storage, self.process, job, self.settings.worker_name
                )
                await self.report(outcome)
        finally:
            CURRENT_JOB.set(0)
        PROCESSING_SECONDS.labels(job.trial_type).observe(time.monotonic() - started)
        JOBS.labels("completed" if outcome.type == "processing.completed" else "failed").inc()

    async def report(self, event: Event, attempts: int = 30) -> None:
        """Publish `event` with the broker's confirm, trying again while the broker is away."""
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
        envelope = Envelope.wrap(
            event, producer="pipeline", occurred_at=utcnow(), correlation_id=correlation_id
        )
        for attempt in range(1, attempts + 1):
            try:
                await publish_envelope(self.events, envelope)
                return
            except BROKER_ERRORS as exc:
                if attempt == attempts:
                    raise
                log.warning("report_retrying", event_type=event.type, error=repr(exc))
                await asyncio.sleep(1.0)


async def settle(acknowledgement: Awaitable[None]) -> None:
    """Ack or reject a job message. If the channel is gone the broker has put the message
    back already: the lease this worker holds makes other workers' claims of it refused."""
    try:
        await acknowledgement
    except BROKER_ERRORS as exc:
        log.warning("job_settle_failed", error=repr(exc))


@contextlib.contextmanager
def stop_on_signals(stopping: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stopping` while the block runs."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(process: Process, settings: PipelineSettings | None = None) -> None:
    """Entry point of a worker process: run `process` on every job until SIGTERM/SIGINT."""
    settings = settings or PipelineSettings()
    configure_logging(settings.log_level, settings.log_json, "pipeline")
    asyncio.run(Worker(settings, process).run())
